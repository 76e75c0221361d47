package main

import (
	"context"
	"fmt"

	"github.com/hushnet/hush/api/apitypes"
)

const requestSynopsis = "request list [--json] | accept NAME | decline NAME | block NAME"

// runRequest is `hush request`: message requests, first messages from
// accounts that are not contacts (docs/protocol/addresses.md §20.5).
func runRequest(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("usage: hush %s", requestSynopsis)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "list", "ls":
		return requestList(ctx, e, rest)
	case "accept":
		pos, err := parseArgs(e, newFlags(e, "request accept"), rest, 1, 1, "request accept NAME")
		if err != nil {
			return err
		}
		var c apitypes.Contact
		if err := call(ctx, e, "acceptRequest", apitypes.NameParams{Name: pos[0]}, &c); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "accepted %s: a contact now (hush contact rename %s NEW to name it)\n", oneLine(c.Name), oneLine(c.Name))
		return nil
	case "decline":
		pos, err := parseArgs(e, newFlags(e, "request decline"), rest, 1, 1, "request decline NAME")
		if err != nil {
			return err
		}
		if err := call(ctx, e, "declineRequest", apitypes.NameParams{Name: pos[0]}, nil); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "declined %s; its messages are deleted\n", oneLine(pos[0]))
		return nil
	case "block":
		pos, err := parseArgs(e, newFlags(e, "request block"), rest, 1, 1, "request block NAME")
		if err != nil {
			return err
		}
		if err := call(ctx, e, "blockRequest", apitypes.NameParams{Name: pos[0]}, nil); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "blocked %s: its messages are deleted and nothing more from it is kept (hush contact blocked)\n", oneLine(pos[0]))
		return nil
	case "-h", "--help", "help":
		fmt.Fprintf(e.stdout, "usage: hush %s\n", requestSynopsis)
		return nil
	}
	return usagef("unknown request command %q; usage: hush %s", sub, requestSynopsis)
}

// requestList prints each request with the messages it sent.
func requestList(ctx context.Context, e *env, args []string) error {
	flags := newFlags(e, "request list")
	asJSON := flags.Bool("json", false, "print the API's JSON")
	if _, err := parseArgs(e, flags, args, 0, 0, "request list [--json]"); err != nil {
		return err
	}
	rs, shown, err := callDecoded[[]apitypes.Request](ctx, e, "listRequests", nil, *asJSON, "a malformed request list")
	if err != nil || shown {
		return err
	}
	if len(rs) == 0 {
		fmt.Fprintln(e.stdout, "no message requests")
		return nil
	}
	for _, r := range rs {
		fmt.Fprintf(e.stdout, "%s  (since %s, %d message%s)\n", oneLine(r.Name), r.Added.Local().Format("2006-01-02 15:04"),
			len(r.Messages), plural(len(r.Messages)))
		for _, m := range r.Messages {
			fmt.Fprintf(e.stdout, "  %s\n", formatMessage(m))
		}
	}
	fmt.Fprintln(e.stdout, "hush request accept NAME | decline NAME | block NAME")
	return nil
}
