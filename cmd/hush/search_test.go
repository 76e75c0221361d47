package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node"
)

func TestSearchAndTimer(t *testing.T) {
	b, home := daemon(t)
	b.AddContact("alice", "hush://alice")
	b.AddContact("bob", "hush://bob")
	ctx := context.Background()
	b.Send(ctx, node.SendRequest{To: "alice", Text: "Lunch at noon?"})
	b.Receive("bob", "lunchtime!")
	b.Receive("alice", "dinner")

	r := hush(t, nil, nil, "--home", home, "search", "LUNCH")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "bob") || !strings.Contains(lines[1], "Lunch at noon?") {
		t.Fatalf("search: %+v", r)
	}
	r = hush(t, nil, nil, "--home", home, "search", "lunch", "--in", "alice", "--json")
	var got []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got) != 1 || got[0]["contact"] != "alice" {
		t.Fatalf("search --in --json: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "search", "nothing"); r.code != 0 || !strings.Contains(r.stdout, "no messages") {
		t.Fatalf("no hits: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "search"); r.code != 2 {
		t.Fatalf("no text: %+v", r)
	}

	timer := func(name string) time.Duration { d, _ := b.Timer(name); return d }
	if r := hush(t, nil, nil, "--home", home, "timer", "alice"); r.code != 0 || !strings.Contains(r.stdout, "off with alice") {
		t.Fatalf("timer shown: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "timer", "alice", "1d"); r.code != 0 || timer("alice") != 24*time.Hour {
		t.Fatalf("timer 1d: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "timer", "alice", "1w"); r.code != 0 || timer("alice") != 7*24*time.Hour {
		t.Fatalf("timer 1w: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "timer", "alice"); r.code != 0 || !strings.Contains(r.stdout, "disappear 168h0m0s after") {
		t.Fatalf("timer shown: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "timer", "nobody"); r.code != 1 || r.stderr != "hush: unknown contact\n" {
		t.Fatalf("timer of nobody: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "timer", "alice", "off"); r.code != 0 || timer("alice") != 0 || !strings.Contains(r.stdout, "off") {
		t.Fatalf("timer off: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "timer", "alice", "soon"); r.code != 1 || !strings.Contains(r.stderr, "timer") {
		t.Fatalf("timer soon: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "timer", "club", "1h", "--group"); r.code != 1 || !strings.Contains(r.stderr, "unknown group") {
		t.Fatalf("timer of an unknown group: %+v", r)
	}
	if _, err := b.CreateGroup("club"); err != nil {
		t.Fatal(err)
	}
	if r := hush(t, nil, nil, "--home", home, "timer", "club", "1d", "--group"); r.code != 0 || !strings.Contains(r.stdout, "disappear 1d") {
		t.Fatalf("group timer 1d: %+v", r)
	}
	if d, _ := b.GroupTimer("club"); d != 24*time.Hour {
		t.Fatalf("the group's timer: %v", d)
	}
	if r := hush(t, nil, nil, "--home", home, "timer", "club", "--group"); r.code != 0 || !strings.Contains(r.stdout, "disappear 24h0m0s after") {
		t.Fatalf("group timer shown: %+v", r)
	}
}

// A group message this account sent shows its read count and readers.
func TestFormatReadCount(t *testing.T) {
	m := apitypes.Message{ID: "ab", Direction: "out", Text: "hi", State: apitypes.StateSent, ReadBy: []string{"bob", "carol"}, ReadOf: 3}
	if got := formatMessage(m); !strings.Contains(got, "(read by 2 of 3: bob, carol)") {
		t.Fatalf("%q", got)
	}
	m.ReadBy = nil
	if got := formatMessage(m); !strings.Contains(got, "(read by 0 of 3)") {
		t.Fatalf("%q", got)
	}
}
