package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hushnet/hush/api/apitypes"
)

func TestRequestCommands(t *testing.T) {
	b, home := daemon(t)
	run := func(args ...string) result {
		t.Helper()
		return hush(t, nil, nil, append([]string{"--home", home, "request"}, args...)...)
	}
	if r := run("list"); r.code != 0 || r.stdout != "no message requests\n" {
		t.Fatalf("empty list: %+v", r)
	}
	// A stranger's text with an escape sequence and a bidi override: the
	// terminal gets neither.
	b.ReceiveRequest("mallory", "hi \x1b[2J\u202eyou")
	b.ReceiveRequest("carol", "hello")
	r := run("list")
	if r.code != 0 || !strings.Contains(r.stdout, "mallory  (since ") || !strings.Contains(r.stdout, "carol  (since ") ||
		!strings.Contains(r.stdout, "hi \ufffd[2J\ufffdyou") {
		t.Fatalf("list:\n%s%s", r.stdout, r.stderr)
	}
	if strings.ContainsAny(r.stdout, "\x1b\u202e") {
		t.Fatal("a control character reached the terminal")
	}
	var rs []apitypes.Request
	if r := run("list", "--json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &rs) != nil || len(rs) != 2 || len(rs[1].Messages) != 1 {
		t.Fatalf("list --json: %+v", r)
	}
	if r := run("accept", "carol"); r.code != 0 || !strings.HasPrefix(r.stdout, "accepted carol") {
		t.Fatalf("accept: %+v", r)
	}
	if ms, err := b.Messages("carol", 0); err != nil || len(ms) != 1 || ms[0].Text != "hello" {
		t.Fatalf("carol's conversation: %+v, %v", ms, err)
	}
	if r := run("decline", "mallory"); r.code != 0 {
		t.Fatalf("decline: %+v", r)
	}
	if rs, _ := b.Requests(); len(rs) != 0 {
		t.Fatalf("requests left: %+v", rs)
	}
	if r := run("accept", "carol"); r.code != 1 || !strings.Contains(r.stderr, "not a message request") {
		t.Fatalf("accepting a contact: %+v", r)
	}
	b.ReceiveRequest("spammer", "buy now")
	if r := run("block", "spammer"); r.code != 0 || !strings.HasPrefix(r.stdout, "blocked spammer") {
		t.Fatalf("block: %+v", r)
	}
	if rs, _ := b.Requests(); len(rs) != 0 {
		t.Fatalf("requests after the block: %+v", rs)
	}
	if r := run("decline", "nobody"); r.code != 1 || r.stderr != "hush: unknown contact\n" {
		t.Fatalf("declining nobody: %+v", r)
	}
	for _, args := range [][]string{{}, {"bogus"}, {"accept"}, {"decline", "a", "b"}, {"list", "x"}} {
		if r := run(args...); r.code != 2 {
			t.Errorf("%q: %+v, want usage error", args, r)
		}
	}
}

// A notice the node wrote shows as a line of its own, without an arrow,
// ID or state.
func TestFormatSystemEntry(t *testing.T) {
	m := apitypes.Message{ID: "abc", Direction: "system", Kind: apitypes.KindSession, Text: "secure session re-established", State: "received"}
	got := formatMessage(m)
	if !strings.HasSuffix(got, " · secure session re-established") || strings.Contains(got, "abc") || strings.Contains(got, "received") {
		t.Fatalf("system entry: %q", got)
	}
}
