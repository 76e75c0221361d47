package api

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node"
)

func mSearch(_ context.Context, b Backend, p apitypes.SearchParams) ([]node.Message, error) {
	if err := required("text", p.Text); err != nil {
		return nil, err
	}
	if p.Contact != "" && p.Group != "" {
		return nil, invalidParams("give %q or %q, not both", "contact", "group")
	}
	if p.Limit < 0 {
		return nil, invalidParams("%q must not be negative", "limit")
	}
	return orEmpty(b.Search(node.SearchRequest{Text: p.Text, Contact: p.Contact, Group: p.Group, Limit: p.Limit}))
}

func mSetTimer(_ context.Context, b Backend, p apitypes.SetTimerParams) (apitypes.TimerResult, error) {
	if (p.Contact == "") == (p.Group == "") {
		return apitypes.TimerResult{}, invalidParams("give %q or %q", "contact", "group")
	}
	ttl, err := ParseTimer(p.Timer)
	if err != nil {
		return apitypes.TimerResult{}, invalidParams("%q: %v", "timer", err)
	}
	got, err := b.SetTimer(node.TimerRequest{Contact: p.Contact, Group: p.Group, TTL: ttl})
	if err != nil {
		return apitypes.TimerResult{}, err
	}
	return apitypes.TimerResult{Contact: p.Contact, Group: p.Group, Seconds: int64(got / time.Second)}, nil
}

// mGetTimer is getTimer: a contact's or a group's disappearing-messages
// timer.
func mGetTimer(_ context.Context, b Backend, p apitypes.ConversationParams) (apitypes.TimerResult, error) {
	if err := oneConversation(p.Contact, p.Group); err != nil {
		return apitypes.TimerResult{}, err
	}
	var got time.Duration
	var err error
	if p.Group != "" {
		got, err = b.GroupTimer(p.Group)
	} else {
		got, err = b.Timer(p.Contact)
	}
	if err != nil {
		return apitypes.TimerResult{}, err
	}
	return apitypes.TimerResult{Contact: p.Contact, Group: p.Group, Seconds: int64(got / time.Second)}, nil
}

// ParseTimer reads a disappearing-messages timer: "off", a number of
// days ("1d") or weeks ("1w"), or a Go duration ("1h", "90m"), between
// node.MinTimer and node.MaxTimer.
func ParseTimer(s string) (time.Duration, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	var d time.Duration
	switch {
	case s == "off" || s == "0":
		return 0, nil
	case strings.HasSuffix(s, "d") || strings.HasSuffix(s, "w"):
		n, err := strconv.Atoi(s[:len(s)-1])
		if err != nil || n <= 0 {
			return 0, errTimer
		}
		d = time.Duration(n) * 24 * time.Hour
		if s[len(s)-1] == 'w' {
			d *= 7
		}
	default:
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, errTimer
		}
	}
	if d < node.MinTimer || d > node.MaxTimer {
		return 0, errTimer
	}
	return d, nil
}

var errTimer = timerError{}

type timerError struct{}

func (timerError) Error() string {
	return "a timer is off, or 1h, 1d, 1w (any duration from 1m to 365d)"
}
