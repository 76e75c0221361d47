package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hushnet/hush/api/apitypes"
)

// runChats is `hush chats`: the conversation list.
func runChats(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "chats")
	archived := fs.Bool("archived", false, "list the archived conversations")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if _, err := parseArgs(e, fs, args, 0, 0, "chats [--archived] [--json]"); err != nil {
		return err
	}
	cs, shown, err := callDecoded[[]apitypes.Conversation](ctx, e, "listConversations", apitypes.ListConversationsParams{Archived: *archived}, *asJSON, "malformed conversations")
	if err != nil || shown {
		return err
	}
	if len(cs) == 0 {
		if *archived {
			fmt.Fprintln(e.stdout, "no archived conversations")
		} else {
			fmt.Fprintln(e.stdout, "no conversations")
		}
	}
	for _, c := range cs {
		fmt.Fprintln(e.stdout, formatConversation(c))
	}
	return nil
}

// formatConversation is one line of `hush chats`: marks, name, unread
// count, then the last message.
func formatConversation(c apitypes.Conversation) string {
	var b strings.Builder
	marks := ""
	if c.Pinned {
		marks += "📌"
	}
	if c.Muted {
		marks += "🔕"
	}
	name := oneLine(c.Name)
	if c.Group != "" {
		name = "#" + name
	}
	fmt.Fprintf(&b, "%s%s", marks, name)
	if c.Unread > 0 {
		fmt.Fprintf(&b, " (%d)", c.Unread)
	}
	if p := formatPresence(c.Presence, time.Now()); p != "" {
		fmt.Fprintf(&b, " · %s", p)
	}
	if m := c.Last; m != nil {
		text := oneLine(m.Preview)
		if m.Deleted {
			text = "(deleted)"
		}
		who := ""
		switch {
		case m.Direction == "out":
			who = "you: "
		case c.Group != "" && m.Sender != "":
			who = oneLine(m.Sender) + ": "
		}
		fmt.Fprintf(&b, "  %s  %s%s", m.Time.Local().Format("2006-01-02 15:04"), who, text)
	}
	return b.String()
}

// chatSettings are `hush chat SETTING NAME`'s settings.
var chatSettings = map[string]func(*apitypes.SetConversationParams){
	"mute":      func(p *apitypes.SetConversationParams) { p.Muted = ptrTo(true) },
	"unmute":    func(p *apitypes.SetConversationParams) { p.Muted = ptrTo(false) },
	"pin":       func(p *apitypes.SetConversationParams) { p.Pinned = ptrTo(true) },
	"unpin":     func(p *apitypes.SetConversationParams) { p.Pinned = ptrTo(false) },
	"archive":   func(p *apitypes.SetConversationParams) { p.Archived = ptrTo(true) },
	"unarchive": func(p *apitypes.SetConversationParams) { p.Archived = ptrTo(false) },
	"clear":     nil, // clearConversation; listed for runChat's dispatch
}

func init() { chatSettings["clear"] = func(*apitypes.SetConversationParams) {} }

func ptrTo[T any](v T) *T { return &v }

// runChatSetting is `hush chat mute|unmute|pin|unpin|archive|unarchive|clear NAME [--group]`.
func runChatSetting(ctx context.Context, e *env, setting string, args []string) error {
	fs := newFlags(e, "chat "+setting)
	isGroup := fs.Bool("group", false, "NAME is a group")
	pos, err := parseArgs(e, fs, args, 1, 1, "chat "+setting+" NAME [--group]")
	if err != nil {
		return err
	}
	contact, group := conversationOf(pos[0], *isGroup)
	if setting == "clear" {
		if err := call(ctx, e, "clearConversation", apitypes.ConversationParams{Contact: contact, Group: group}, nil); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "cleared the conversation with %s on this device\n", oneLine(pos[0]))
		return nil
	}
	p := apitypes.SetConversationParams{Contact: contact, Group: group}
	chatSettings[setting](&p)
	var c apitypes.Conversation
	if err := call(ctx, e, "setConversation", p, &c); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, formatConversation(c))
	return nil
}
