package main

import (
	"strings"
	"testing"
)

// The conversation verbs against the fake daemon: chats, chat settings,
// read, paging, delete --local and clear.
func TestChatsVerbs(t *testing.T) {
	b, home := daemon(t)
	b.AddContact("alice", "hush://alice")
	b.AddContact("bob", "hush://bob")
	h := func(args ...string) result {
		t.Helper()
		r := hush(t, nil, nil, append([]string{"--home", home}, args...)...)
		if r.code != 0 {
			t.Fatalf("%q: %+v", args, r)
		}
		return r
	}
	m1 := b.Receive("alice", "hello there")
	m2 := b.Receive("alice", "second")
	m3 := b.Receive("alice", "third")
	if r := h("chats"); !strings.Contains(r.stdout, "alice (3)") || !strings.Contains(r.stdout, "third") {
		t.Errorf("chats: %q", r.stdout)
	}
	h("read", "alice")
	if r := h("chats", "--json"); !strings.Contains(r.stdout, `"unread": 0`) {
		t.Errorf("after read: %q", r.stdout)
	}
	h("chat", "pin", "bob")
	if r := h("chats"); !strings.HasPrefix(r.stdout, "📌bob") {
		t.Errorf("pinned first: %q", r.stdout)
	}
	h("chat", "archive", "alice")
	if r := h("chats"); strings.Contains(r.stdout, "alice") {
		t.Errorf("archived still listed: %q", r.stdout)
	}
	if r := h("chats", "--archived"); !strings.Contains(r.stdout, "alice") {
		t.Errorf("chats --archived: %q", r.stdout)
	}
	h("chat", "unarchive", "alice")
	if r := h("messages", "alice", "--before", m3.ID, "--limit", "1"); !strings.Contains(r.stdout, "second") || strings.Contains(r.stdout, "hello") {
		t.Errorf("messages --before: %q", r.stdout)
	}
	if r := h("messages", "alice", "--after", m1.ID); strings.Contains(r.stdout, "hello") || !strings.Contains(r.stdout, "third") {
		t.Errorf("messages --after: %q", r.stdout)
	}
	if r := h("delete", "alice", m2.ID, "--local"); !strings.Contains(r.stdout, "deleted on this device") {
		t.Errorf("delete --local: %q", r.stdout)
	}
	if r := h("messages", "alice"); strings.Contains(r.stdout, "second") {
		t.Errorf("deleted message listed: %q", r.stdout)
	}
	h("chat", "clear", "alice")
	if r := h("messages", "alice"); r.stdout != "no messages with alice yet\n" {
		t.Errorf("after clear: %q", r.stdout)
	}
	h("group", "create", "club", "--txn-id", "g1")
	h("group", "create", "club", "--txn-id", "g1")
	if gs, _ := b.Groups(); len(gs) != 1 {
		t.Errorf("group create retried: %d groups", len(gs))
	}
	b.ReceiveGroup("club", "alice", "hi all")
	h("read", "club", "--group")
	h("chat", "mute", "club", "--group")
	if r := h("chats", "--json"); !strings.Contains(r.stdout, `"muted": true`) {
		t.Errorf("group muted: %q", r.stdout)
	}
	if r := hush(t, nil, nil, "--home", home, "chat", "mute", "nobody"); r.code != 1 {
		t.Errorf("unknown contact: %+v", r)
	}
}
