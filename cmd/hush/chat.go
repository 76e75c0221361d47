package main

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitypes"
)

// chatHistory is how many messages chat shows when it starts.
const chatHistory = 20

// runChat is a line-oriented chat: history, then every stdin line is
// sent, and incoming messages and state changes print as they happen.
func runChat(ctx context.Context, e *env, args []string) error {
	if len(args) > 1 && chatSettings[args[0]] != nil {
		return runChatSetting(ctx, e, args[0], args[1:])
	}
	pos, err := parseArgs(e, newFlags(e, "chat"), args, 1, 1, "chat NAME")
	if err != nil {
		return err
	}
	name := pos[0]
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Subscribe before reading history so nothing falls between the two.
	sub, err := api.NewClient(socketPath(e.home)).Subscribe(ctx, 0)
	if err != nil {
		return clientError(e, err)
	}
	defer sub.Close()

	var history []apitypes.Message
	if err := call(ctx, e, "listMessages", apitypes.ListMessagesParams{Contact: name, Limit: chatHistory}, &history); err != nil {
		return err
	}
	var outMu sync.Mutex // one line at a time on stdout
	printf := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(e.stdout, format, args...)
	}
	printf("chat with %s — type a message and press Enter; /quit to leave\n", name)
	for _, m := range history {
		printf("%s\n", formatMessage(m))
	}
	markRead := func() { call(ctx, e, "markRead", apitypes.ContactParams{Contact: name}, nil) }
	markRead()

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(e.stdin)
		sc.Buffer(make([]byte, 64<<10), apitypes.MaxTextSize+1024)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()

	for {
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-lines:
			if !ok {
				return nil // EOF
			}
			text := strings.TrimSpace(line)
			switch {
			case text == "":
				continue
			case text == "/quit" || text == "/exit":
				return nil
			}
			var m apitypes.Message
			if err := call(ctx, e, "send", apitypes.SendParams{To: name, Text: line}, &m); err != nil {
				printf("hush: %v\n", err)
				continue
			}
		case ev, ok := <-sub.Events:
			if !ok {
				if err := sub.Err(); err != nil {
					return exitError{code: 1, msg: "lost the daemon's event stream: " + strings.TrimPrefix(err.Error(), "api: ")}
				}
				return nil
			}
			switch ev.Type {
			case apitypes.EventMessage:
				if ev.Message == nil || ev.Message.Contact != name {
					continue
				}
				printf("%s\n", formatMessage(*ev.Message))
				if ev.Message.Direction == "in" {
					markRead()
				}
			case apitypes.EventUpdate:
				if ev.Message == nil || ev.Message.Contact != name {
					continue
				}
				m := ev.Message
				switch {
				case m.Deleted:
					printf("  %s was deleted\n", m.ID)
				case m.Direction == "out":
					printf("  %s %s\n", m.ID, m.State)
				case m.Edited || len(m.Reactions) > 0:
					printf("  updated: %s\n", formatMessage(*m))
				}
			case apitypes.EventTyping:
				if ev.From == name && ev.GroupID == "" && ev.Typing != nil && *ev.Typing { // not the same name typing in a group
					printf("  %s is typing…\n", name)
				}
			case apitypes.EventContact:
				if ev.Contact != nil && ev.Contact.Name == name && ev.Contact.KeyChanged {
					printf("  warning: %s's identity key changed; run: hush contact verify %s\n", name, name)
				}
			}
		}
	}
}
