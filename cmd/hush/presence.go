package main

import (
	"context"
	"fmt"
	"time"

	"github.com/hushnet/hush/api/apitypes"
)

// runPresence is `hush presence [on|off]`: this account's presence
// setting, shown or changed.
func runPresence(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "presence")
	pos, err := parseArgs(e, fs, args, 0, 1, "presence [on|off]")
	if err != nil {
		return err
	}
	var res apitypes.PresenceSetting
	if len(pos) == 0 {
		if err := call(ctx, e, "getPresence", nil, &res); err != nil {
			return err
		}
	} else {
		var on bool
		switch pos[0] {
		case "on":
			on = true
		case "off":
		default:
			return usagef("presence is on or off, not %q; usage: hush presence [on|off]", pos[0])
		}
		if err := call(ctx, e, "setPresence", apitypes.SetPresenceParams{On: &on}, &res); err != nil {
			return err
		}
	}
	if res.On {
		fmt.Fprintln(e.stdout, "presence is on: contacts who turned theirs on see when you are online, and you see theirs")
	} else {
		fmt.Fprintln(e.stdout, "presence is off: nobody sees when you are online, and you see nobody's")
	}
	return nil
}

// formatPresence is a contact's presence as the lists show it: "online",
// "last seen 5m ago", or "" when unknown.
func formatPresence(p *apitypes.Presence, now time.Time) string {
	switch {
	case p == nil:
		return ""
	case p.Online:
		return "online"
	case p.LastSeen.IsZero():
		return "offline"
	}
	return "last seen " + ago(now.Sub(p.LastSeen))
}

// ago is a short, rounded-down age: "just now", "5m ago", "3h ago",
// "2d ago".
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}
