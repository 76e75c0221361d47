package main

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"github.com/hushnet/hush/api/apitypes"
)

const groupSynopsis = "group create NAME | invite GROUP CONTACT | accept GROUP | decline GROUP | remove GROUP MEMBER |\n" +
	"       promote GROUP MEMBER | rename GROUP NAME | leave GROUP | send GROUP TEXT [--reply-to ID] |\n" +
	"       react GROUP MSGID EMOJI | edit GROUP MSGID TEXT | delete GROUP MSGID | messages GROUP [--limit N] [--before ID] [--after ID] [--json] | list [--json] |\n" +
	"       file send GROUP PATH [--caption TEXT] [--json]"

// runGroup dispatches `hush group ...`. GROUP is a group's name where it
// is unambiguous, else its ID.
func runGroup(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("usage: hush %s", groupSynopsis)
	}
	sub, rest := args[0], args[1:]
	show := func(method string, params any) error {
		var g apitypes.Group
		if err := call(ctx, e, method, params, &g); err != nil {
			return err
		}
		printGroup(e, g)
		return nil
	}
	done := func(method string, params any, msg string) error {
		if err := call(ctx, e, method, params, nil); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, msg)
		return nil
	}
	switch sub {
	case "create":
		fs := newFlags(e, "group create")
		txn := fs.String("txn-id", "", "client transaction ID: a retry with the same ID creates no second group")
		pos, err := parseArgs(e, fs, rest, 1, 1, "group create NAME [--txn-id ID]")
		if err != nil {
			return err
		}
		return show("createGroup", apitypes.CreateGroupParams{Name: pos[0], TxnID: *txn})
	case "invite":
		pos, err := parseArgs(e, newFlags(e, "group invite"), rest, 2, 2, "group invite GROUP CONTACT")
		if err != nil {
			return err
		}
		return show("inviteToGroup", apitypes.InviteToGroupParams{Group: pos[0], Contact: pos[1]})
	case "accept":
		pos, err := parseArgs(e, newFlags(e, "group accept"), rest, 1, 1, "group accept GROUP")
		if err != nil {
			return err
		}
		return show("acceptGroup", apitypes.GroupParams{Group: pos[0]})
	case "decline":
		pos, err := parseArgs(e, newFlags(e, "group decline"), rest, 1, 1, "group decline GROUP")
		if err != nil {
			return err
		}
		return done("declineGroup", apitypes.GroupParams{Group: pos[0]}, "invitation declined")
	case "leave":
		pos, err := parseArgs(e, newFlags(e, "group leave"), rest, 1, 1, "group leave GROUP")
		if err != nil {
			return err
		}
		return done("leaveGroup", apitypes.GroupParams{Group: pos[0]}, "left "+pos[0])
	case "remove", "promote":
		pos, err := parseArgs(e, newFlags(e, "group "+sub), rest, 2, 2, "group "+sub+" GROUP MEMBER")
		if err != nil {
			return err
		}
		method := map[string]string{"remove": "removeFromGroup", "promote": "promoteInGroup"}[sub]
		return show(method, apitypes.MemberParams{Group: pos[0], Member: pos[1]})
	case "rename":
		pos, err := parseArgs(e, newFlags(e, "group rename"), rest, 2, 2, "group rename GROUP NAME")
		if err != nil {
			return err
		}
		return show("renameGroup", apitypes.RenameGroupParams{Group: pos[0], Name: pos[1]})
	case "send", "react", "edit", "delete":
		return groupSend(ctx, e, sub, rest)
	case "file":
		return groupFile(ctx, e, rest)
	case "messages":
		return groupMessages(ctx, e, rest)
	case "list", "ls":
		return groupList(ctx, e, rest)
	case "-h", "--help", "help":
		fmt.Fprintf(e.stdout, "usage: hush %s\n", groupSynopsis)
		return nil
	}
	return usagef("unknown group command %q; usage: hush %s", sub, groupSynopsis)
}

// groupFile is `group file send GROUP PATH`: one upload to this
// device's relay, however many members (`hush file get` fetches it).
func groupFile(ctx context.Context, e *env, args []string) error {
	const synopsis = "group file send GROUP PATH [--caption TEXT] [--txn-id ID] [--json]"
	if len(args) == 0 || args[0] != "send" {
		return usagef("usage: hush %s", synopsis)
	}
	fs := newFlags(e, "group file send")
	caption := fs.String("caption", "", "text shown with the file")
	txn := fs.String("txn-id", "", "client transaction ID: a retry with the same ID is not sent twice")
	asJSON := fs.Bool("json", false, "print the message as the API's JSON (and no progress bars)")
	pos, err := parseArgs(e, fs, args[1:], 2, 2, synopsis)
	if err != nil {
		return err
	}
	path, err := sendablePath(pos[1])
	if err != nil {
		return err
	}
	txnID := cmp.Or(*txn, newTxnID())
	return sendFileCommand(ctx, e, "sendGroupFile", apitypes.GroupFileRequest{Group: pos[0], Path: path, Caption: *caption, TxnID: txnID},
		txnID, path, "", 0, *asJSON)
}

func groupSend(ctx context.Context, e *env, sub string, args []string) error {
	fs := newFlags(e, "group "+sub)
	var replyTo *string
	if sub == "send" {
		replyTo = fs.String("reply-to", "", "reply to message ID")
	}
	txn := fs.String("txn-id", "", "client transaction ID: a retry with the same ID is not sent twice")
	var p apitypes.SendGroupParams
	switch sub {
	case "send":
		pos, err := parseArgs(e, fs, args, 2, -1, "group send GROUP TEXT [--reply-to ID] [--txn-id ID]")
		if err != nil {
			return err
		}
		p.Group, p.Text = pos[0], strings.Join(pos[1:], " ")
		if *replyTo != "" {
			p.Kind, p.Target = apitypes.KindReply, *replyTo
		}
	case "react":
		pos, err := parseArgs(e, fs, args, 3, 3, "group react GROUP MSGID EMOJI")
		if err != nil {
			return err
		}
		p = apitypes.SendGroupParams{Group: pos[0], Kind: apitypes.KindReaction, Target: pos[1], Text: pos[2]}
	case "edit":
		pos, err := parseArgs(e, fs, args, 3, -1, "group edit GROUP MSGID TEXT")
		if err != nil {
			return err
		}
		p = apitypes.SendGroupParams{Group: pos[0], Kind: apitypes.KindEdit, Target: pos[1], Text: strings.Join(pos[2:], " ")}
	case "delete":
		pos, err := parseArgs(e, fs, args, 2, 2, "group delete GROUP MSGID")
		if err != nil {
			return err
		}
		p = apitypes.SendGroupParams{Group: pos[0], Kind: apitypes.KindDelete, Target: pos[1]}
	}
	p.TxnID = *txn
	var m apitypes.Message
	if err := call(ctx, e, "sendGroup", p, &m); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s %s\n", m.ID, m.State)
	return nil
}

func groupMessages(ctx context.Context, e *env, args []string) error {
	return listMessages(ctx, e, args, "group messages", "group messages GROUP [--limit N] [--before ID] [--after ID] [--json]", "listGroupMessages", "group",
		func(name string) string { return "no messages in " + name + " yet" },
		func(m apitypes.Message) string { return fmt.Sprintf("%-12s %s", m.Sender+":", formatMessage(m)) })
}

func groupList(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "group list")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if _, err := parseArgs(e, fs, args, 0, 0, "group list [--json]"); err != nil {
		return err
	}
	gs, shown, err := callDecoded[[]apitypes.Group](ctx, e, "listGroups", nil, *asJSON, "malformed groups")
	if err != nil || shown {
		return err
	}
	if len(gs) == 0 {
		fmt.Fprintln(e.stdout, "no groups")
	}
	for _, g := range gs {
		printGroup(e, g)
	}
	return nil
}

func printGroup(e *env, g apitypes.Group) {
	state := ""
	switch {
	case g.Pending:
		state = " (invitation: hush group accept " + g.Name + ")"
	case g.Removed:
		state = " (you were removed; the history stays)"
	}
	fmt.Fprintf(e.stdout, "%s  %s  epoch %d%s\n", g.Name, g.ID, g.Epoch, state)
	for _, m := range g.Members {
		var tags []string
		if m.Admin {
			tags = append(tags, "admin")
		}
		if m.Invited {
			tags = append(tags, "invited")
		}
		t := ""
		if len(tags) > 0 {
			t = " (" + strings.Join(tags, ", ") + ")"
		}
		fmt.Fprintf(e.stdout, "  %s%s\n", m.Name, t)
	}
}
