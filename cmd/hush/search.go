package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hushnet/hush/api/apitypes"
)

// runSearch is `hush search TEXT [--in NAME [--group]] [--limit N] [--json]`.
func runSearch(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "search")
	in := fs.String("in", "", "search one conversation: a contact (or a group with --group)")
	group := fs.Bool("group", false, "--in names a group")
	limit := fs.Int("limit", 50, "at most N results (up to 1000)")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, err := parseArgs(e, fs, args, 1, -1, "search TEXT [--in NAME [--group]] [--limit N] [--json]")
	if err != nil {
		return err
	}
	if *limit < 0 {
		return usagef("--limit must not be negative")
	}
	if *group && *in == "" {
		return usagef("--group goes with --in NAME")
	}
	p := apitypes.SearchParams{Text: strings.Join(pos, " "), Limit: *limit}
	if *group {
		p.Group = *in
	} else {
		p.Contact = *in
	}
	ms, shown, err := callDecoded[[]apitypes.Message](ctx, e, "search", p, *asJSON, "malformed messages")
	if err != nil || shown {
		return err
	}
	if len(ms) == 0 {
		fmt.Fprintf(e.stdout, "no messages with %q\n", p.Text)
	}
	for _, m := range ms {
		conv := m.Contact
		if m.Group != "" {
			conv = "#" + m.Contact
		}
		fmt.Fprintf(e.stdout, "%-12s %s\n", oneLine(conv), formatMessage(m))
	}
	return nil
}

// runTimer is `hush timer NAME 1h|1d|1w|off [--group]`.
func runTimer(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "timer")
	group := fs.Bool("group", false, "NAME is a group")
	pos, err := parseArgs(e, fs, args, 1, 2, "timer NAME [1h|1d|1w|off] [--group]")
	if err != nil {
		return err
	}
	if len(pos) == 1 { // show it
		var q apitypes.ConversationParams
		q.Contact, q.Group = conversationOf(pos[0], *group)
		var res apitypes.TimerResult
		if err := call(ctx, e, "getTimer", q, &res); err != nil {
			return err
		}
		if res.Seconds == 0 {
			fmt.Fprintf(e.stdout, "disappearing messages off with %s\n", oneLine(pos[0]))
		} else {
			fmt.Fprintf(e.stdout, "messages with %s disappear %s after they are read (or sent)\n", oneLine(pos[0]), time.Duration(res.Seconds)*time.Second)
		}
		return nil
	}
	p := apitypes.SetTimerParams{Contact: pos[0], Timer: pos[1]}
	if *group {
		p.Contact, p.Group = "", pos[0]
	}
	var res apitypes.TimerResult
	if err := call(ctx, e, "setTimer", p, &res); err != nil {
		return err
	}
	if res.Seconds == 0 {
		fmt.Fprintf(e.stdout, "disappearing messages off with %s\n", oneLine(pos[0]))
		return nil
	}
	fmt.Fprintf(e.stdout, "new messages with %s disappear %s after they are read (or sent)\n", oneLine(pos[0]), pos[1])
	return nil
}
