package main

import (
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/node"
)

// hush presence shows and sets the setting; contacts and chats show a
// contact's presence when the daemon knows it.
func TestPresenceVerbs(t *testing.T) {
	b, home := daemon(t)
	b.AddContact("alice", "hush://alice")
	b.AddContact("bob", "hush://bob")
	h := func(args ...string) result {
		t.Helper()
		return hush(t, nil, nil, append([]string{"--home", home}, args...)...)
	}
	if r := h("presence"); r.code != 0 || !strings.Contains(r.stdout, "presence is off") {
		t.Errorf("presence: %+v", r)
	}
	if r := h("presence", "on"); r.code != 0 || !strings.Contains(r.stdout, "presence is on") || !b.Presence() {
		t.Errorf("presence on: %+v", r)
	}
	if r := h("presence"); !strings.Contains(r.stdout, "presence is on") {
		t.Errorf("presence after on: %+v", r)
	}
	if r := h("presence", "maybe"); r.code == 0 || !b.Presence() {
		t.Errorf("presence maybe: %+v", r)
	}
	b.SetContactPresence("alice", &node.Presence{Online: true, LastSeen: time.Now()})
	b.SetContactPresence("bob", &node.Presence{LastSeen: time.Now().Add(-5*time.Minute - time.Second)})
	r := h("contact", "list")
	if !strings.Contains(r.stdout, "online") || !strings.Contains(r.stdout, "last seen 5m ago") {
		t.Errorf("contact list: %q", r.stdout)
	}
	r = h("chats")
	if !strings.Contains(r.stdout, "alice · online") || !strings.Contains(r.stdout, "bob · last seen 5m ago") {
		t.Errorf("chats: %q", r.stdout)
	}
	if r := h("presence", "off"); r.code != 0 || b.Presence() {
		t.Errorf("presence off: %+v", r)
	}
}

func TestFormatPresence(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		p    *node.Presence
		want string
	}{
		{nil, ""},
		{&node.Presence{Online: true, LastSeen: now}, "online"},
		{&node.Presence{LastSeen: now.Add(-30 * time.Second)}, "last seen just now"},
		{&node.Presence{LastSeen: now.Add(-3 * time.Hour)}, "last seen 3h ago"},
		{&node.Presence{LastSeen: now.Add(-72 * time.Hour)}, "last seen 3d ago"},
		{&node.Presence{}, "offline"},
	} {
		if got := formatPresence(tc.p, now); got != tc.want {
			t.Errorf("formatPresence(%+v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}
