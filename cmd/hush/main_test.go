package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitest"
	"github.com/hushnet/hush/internal/testutil"
	"github.com/hushnet/hush/node"
)

type result struct {
	code           int
	stdout, stderr string
}

// hush runs the CLI in-process with the given stdin and environment.
func hush(t *testing.T, stdin io.Reader, envv map[string]string, args ...string) result {
	t.Helper()
	var out, errb testutil.SyncBuffer
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	e := &env{stdin: stdin, stdout: &out, stderr: &errb, getenv: func(k string) string { return envv[k] }}
	code := run(context.Background(), args, e)
	return result{code, out.String(), errb.String()}
}

// daemon serves a fake backend on home's socket, as a daemon would.
func daemon(t *testing.T) (*apitest.Backend, string) {
	t.Helper()
	home := t.TempDir()
	b := apitest.New()
	srv := api.NewServer(b, api.Config{Home: home})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return b, home
}

func TestUsageErrors(t *testing.T) {
	home := t.TempDir()
	tests := [][]string{
		{"frobnicate"},
		{"--bogus", "id"},
		{"send"},
		{"send", "alice"},
		{"send", "alice", "hi", "--wait", "soon"},
		{"send", "alice", "hi", "--timeout", "-1s"},
		{"send", "alice", "hi", "--nope"},
		{"contact"},
		{"contact", "frob"},
		{"contact", "add", "alice"},
		{"contact", "add", "alice", "hush://x", "extra"},
		{"contact", "verify"},
		{"contact", "remove"},
		{"contact", "list", "extra"},
		{"react", "alice", "m1"},
		{"edit", "alice", "m1"},
		{"delete", "alice"},
		{"read"},
		{"messages"},
		{"messages", "alice", "--limit", "-3"},
		{"messages", "alice", "--limit", "many"},
		{"chat"},
		{"id", "extra"},
		{"init"},
		{"init", "--name", "me"},
		{"init", "--name", "me", "--no-passphrase", "--passphrase-file", "f"},
		{"init", "--no-passphrase"},
		{"daemon", "--log-format", "xml"},
		{"daemon", "stray"},
	}
	for _, args := range tests {
		r := hush(t, nil, nil, append([]string{"--home", home}, args...)...)
		if r.code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, r.code, r.stderr)
		}
		if !strings.HasPrefix(r.stderr, "hush: ") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: stderr %q, want one hush: line", args, r.stderr)
		}
	}
	// No verb: usage on stderr, exit 2.
	if r := hush(t, nil, nil); r.code != 2 || !strings.Contains(r.stderr, "usage: hush") {
		t.Errorf("no args: %+v", r)
	}
	// help and -h succeed.
	for _, args := range [][]string{{"help"}, {"--help"}, {"send", "-h"}} {
		if r := hush(t, nil, nil, args...); r.code != 0 || !strings.Contains(r.stdout, "usage: hush") {
			t.Errorf("%q: %+v", args, r)
		}
	}
}

func TestNoDaemon(t *testing.T) {
	home := t.TempDir()
	want := "hush: no daemon running for " + home + "; start it with: hush --home " + home + " daemon\n"
	verbs := [][]string{
		{"id"}, {"id", "--qr"},
		{"contact", "add", "alice", "hush://x"}, {"contact", "list"}, {"contact", "list", "--json"},
		{"contact", "verify", "alice", "--yes"}, {"contact", "remove", "alice"},
		{"send", "alice", "hi"}, {"send", "alice", "hi", "--wait", "delivered"},
		{"react", "alice", "m1", "👍"}, {"edit", "alice", "m1", "x"}, {"delete", "alice", "m1"},
		{"read", "alice"}, {"messages", "alice"}, {"messages", "alice", "--json"}, {"chat", "alice"},
	}
	for _, args := range verbs {
		r := hush(t, nil, nil, append([]string{"--home", home}, args...)...)
		if r.code != 1 || r.stderr != want || r.stdout != "" {
			t.Errorf("%q: exit %d stdout %q stderr %q; want exit 1 and %q", args, r.code, r.stdout, r.stderr, want)
		}
	}
	// A stale socket file (connection refused) reads the same.
	os.WriteFile(filepath.Join(home, api.SocketFile), nil, 0o600)
	if r := hush(t, nil, nil, "--home", home, "id"); r.code != 1 || r.stderr != want {
		t.Errorf("stale socket file: %+v", r)
	}
}

func TestHomeResolution(t *testing.T) {
	tests := []struct {
		flag string
		env  map[string]string
		want string
	}{
		{"/a/flag", map[string]string{"HUSH_HOME": "/b", "XDG_DATA_HOME": "/c"}, "/a/flag"},
		{"", map[string]string{"HUSH_HOME": "/b", "XDG_DATA_HOME": "/c"}, "/b"},
		{"", map[string]string{"XDG_DATA_HOME": "/c", "HOME": "/h"}, "/c/hush"},
		{"", map[string]string{"HOME": "/h"}, "/h/.local/share/hush"},
	}
	for _, tc := range tests {
		got, err := resolveHome(tc.flag, func(k string) string { return tc.env[k] })
		if err != nil || got != tc.want {
			t.Errorf("resolveHome(%q, %v) = %q, %v; want %q", tc.flag, tc.env, got, err, tc.want)
		}
	}
	// --home after the verb, and HUSH_HOME, reach the client.
	_, home := daemon(t)
	if r := hush(t, nil, nil, "id", "--home", home); r.code != 0 {
		t.Errorf("--home after the verb: %+v", r)
	}
	if r := hush(t, nil, map[string]string{"HUSH_HOME": home}, "id"); r.code != 0 {
		t.Errorf("HUSH_HOME: %+v", r)
	}
}

func TestMessagesJSONIsTheAPIs(t *testing.T) {
	b, home := daemon(t)
	b.AddContact("alice", "hush://alice")
	ctx := context.Background()
	m1, _ := b.Send(ctx, node.SendRequest{To: "alice", Text: "hello"})
	in := b.Receive("alice", "hi back")
	b.Send(ctx, node.SendRequest{To: "alice", Kind: node.KindReaction, Target: in.ID, Text: "👍"})
	b.Send(ctx, node.SendRequest{To: "alice", Kind: node.KindReply, Target: in.ID, Text: "re"})
	b.Send(ctx, node.SendRequest{To: "alice", Kind: node.KindEdit, Target: m1.ID, Text: "hello!"})
	b.SetState(m1.ID, node.StateDelivered)

	r := hush(t, nil, nil, "--home", home, "messages", "alice", "--json")
	if r.code != 0 {
		t.Fatalf("messages --json: %+v", r)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not a JSON array: %v\n%s", err, r.stdout)
	}
	raw, _ := json.Marshal(mustMessages(t, b, "alice"))
	var want []map[string]any
	json.Unmarshal(raw, &want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("messages --json:\n got %v\nwant %v", got, want)
	}
	if len(got) != 3 || got[0]["id"] != m1.ID || got[1]["direction"] != "in" {
		t.Fatalf("order or content: %v", got)
	}
	// Field names and shapes the contract promises.
	first := got[0]
	for _, k := range []string{"id", "direction", "text", "state", "time", "edited"} {
		if _, ok := first[k]; !ok {
			t.Errorf("first message lacks %q: %v", k, first)
		}
	}
	if _, err := time.Parse(time.RFC3339, first["time"].(string)); err != nil {
		t.Errorf("time %v is not RFC 3339", first["time"])
	}
	if first["state"] != "delivered" || first["text"] != "hello!" {
		t.Errorf("first = %v", first)
	}
	if _, ok := got[1]["reactions"].(map[string]any)["👍"]; !ok {
		t.Errorf("reactions missing: %v", got[1])
	}
	if got[2]["reply_to"] != in.ID {
		t.Errorf("reply_to missing: %v", got[2])
	}
	if _, ok := got[1]["reply_to"]; ok {
		t.Errorf("reply_to present where it does not apply: %v", got[1])
	}

	// --limit reaches the API.
	r = hush(t, nil, nil, "--home", home, "messages", "alice", "--json", "--limit", "1")
	json.Unmarshal([]byte(r.stdout), &got)
	if len(got) != 1 || got[0]["reply_to"] != in.ID {
		t.Errorf("--limit 1: %s", r.stdout)
	}

	// The human form: arrow, id, state, text, reactions.
	r = hush(t, nil, nil, "--home", home, "messages", "alice")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 {
		t.Fatalf("messages: %+v", r)
	}
	for _, want := range []string{"→", m1.ID, "delivered", "hello!", "(edited)"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line %q lacks %q", lines[0], want)
		}
	}
	if !strings.Contains(lines[1], "←") || !strings.Contains(lines[1], "👍 me") {
		t.Errorf("incoming line %q", lines[1])
	}

	// An unknown contact is one line from the daemon's error.
	r = hush(t, nil, nil, "--home", home, "messages", "zed")
	if r.code != 1 || r.stderr != "hush: "+node.ErrUnknownContact.Error()+"\n" {
		t.Errorf("unknown contact: %+v", r)
	}
}

func mustMessages(t *testing.T, b *apitest.Backend, c string) []node.Message {
	t.Helper()
	ms, err := b.Messages(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func TestContactVerbs(t *testing.T) {
	b, home := daemon(t)
	r := hush(t, nil, nil, "--home", home, "contact", "add", "alice", "hush://alice")
	if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "alice") {
		t.Fatalf("contact add: %+v", r)
	}
	// Same name, new key: a warning on stderr, still success.
	r = hush(t, nil, nil, "--home", home, "contact", "add", "alice", "hush://alice2")
	if r.code != 0 || !strings.Contains(r.stderr, "warning") || !strings.Contains(r.stderr, "hush contact verify alice") {
		t.Errorf("contact add with a new key: %+v", r)
	}
	r = hush(t, nil, nil, "--home", home, "contact", "add", "bob", "nonsense")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "hush: ") {
		t.Errorf("bad link: %+v", r)
	}

	r = hush(t, nil, nil, "--home", home, "contact", "list", "--json")
	var cs []node.Contact
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &cs) != nil || len(cs) != 1 || cs[0].Name != "alice" || !cs[0].KeyChanged {
		t.Errorf("contact list --json: %+v", r)
	}
	r = hush(t, nil, nil, "--home", home, "contact", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "alice") || !strings.Contains(r.stdout, "KEY CHANGED") {
		t.Errorf("contact list: %+v", r)
	}

	// verify: refused without a yes, done with one.
	r = hush(t, strings.NewReader("n\n"), nil, "--home", home, "contact", "verify", "alice")
	if r.code != 1 || !strings.Contains(r.stdout, "01234 56789 01234 56789\n") {
		t.Errorf("verify answered no: %+v", r)
	}
	if cs, _ := b.Contacts(); cs[0].Verified {
		t.Fatal("verified after answering no")
	}
	r = hush(t, strings.NewReader("y\n"), nil, "--home", home, "contact", "verify", "alice")
	if cs, _ := b.Contacts(); r.code != 0 || !cs[0].Verified {
		t.Errorf("verify answered yes: %+v", r)
	}
	if n := strings.Count(r.stdout, "01234 56789"); n != 6 {
		t.Errorf("safety number not in 12 blocks of 5: %q", r.stdout)
	}
	r = hush(t, nil, nil, "--home", home, "contact", "verify", "--yes", "zed")
	if r.code != 1 || r.stderr != "hush: unknown contact\n" {
		t.Errorf("verify unknown: %+v", r)
	}

	r = hush(t, nil, nil, "--home", home, "contact", "remove", "alice")
	if cs, _ := b.Contacts(); r.code != 0 || len(cs) != 0 {
		t.Errorf("remove: %+v", r)
	}
}

func TestSendVerbs(t *testing.T) {
	b, home := daemon(t)
	b.AddContact("alice", "hush://alice")

	// Flags after the positional arguments; words joined into the text.
	r := hush(t, nil, nil, "--home", home, "send", "alice", "hello", "there", "--timeout", "5s")
	if r.code != 0 || !strings.HasSuffix(r.stdout, " queued\n") {
		t.Fatalf("send: %+v", r)
	}
	ms := mustMessages(t, b, "alice")
	if len(ms) != 1 || ms[0].Text != "hello there" {
		t.Fatalf("sent %+v", ms)
	}
	id := ms[0].ID

	// --wait returns once delivered.
	go func() {
		time.Sleep(50 * time.Millisecond)
		for _, m := range mustMessages(t, b, "alice") {
			if m.Text == "waiting" {
				b.SetState(m.ID, node.StateDelivered)
			}
		}
	}()
	r = hush(t, nil, nil, "--home", home, "send", "--wait", "delivered", "alice", "waiting")
	if r.code != 0 || !strings.HasSuffix(r.stdout, " delivered\n") {
		t.Errorf("send --wait: %+v", r)
	}
	// --wait times out with one line and exit 1.
	r = hush(t, nil, nil, "--home", home, "send", "alice", "slow", "--wait", "read", "--timeout", "50ms")
	if r.code != 1 || !strings.Contains(r.stderr, "did not reach") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("send --wait timeout: %+v", r)
	}

	if r := hush(t, nil, nil, "--home", home, "send", "alice", "re", "--reply-to", id); r.code != 0 {
		t.Errorf("reply: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "react", "alice", id, "🎉"); r.code != 0 {
		t.Errorf("react: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "edit", "alice", id, "hello", "again"); r.code != 0 {
		t.Errorf("edit: %+v", r)
	}
	ms = mustMessages(t, b, "alice")
	if ms[0].Text != "hello again" || !ms[0].Edited || len(ms[0].Reactions["🎉"]) != 1 || ms[3].ReplyTo != id {
		t.Errorf("after reply, react, edit: %+v", ms)
	}
	if r := hush(t, nil, nil, "--home", home, "delete", "alice", id); r.code != 0 {
		t.Errorf("delete: %+v", r)
	}
	if ms := mustMessages(t, b, "alice"); !ms[0].Deleted {
		t.Errorf("not deleted: %+v", ms[0])
	}
	in := b.Receive("alice", "unread")
	if r := hush(t, nil, nil, "--home", home, "read", "alice"); r.code != 0 {
		t.Errorf("read: %+v", r)
	}
	for _, m := range mustMessages(t, b, "alice") {
		if m.ID == in.ID && m.State != node.StateRead {
			t.Errorf("read did not mark %s: %s", m.ID, m.State)
		}
	}
	r = hush(t, nil, nil, "--home", home, "send", "alice", "   ")
	if r.code != 1 || r.stderr != "hush: message is empty\n" {
		t.Errorf("empty message: %+v", r)
	}
}

func TestID(t *testing.T) {
	b, home := daemon(t)
	self, _ := b.Self()
	r := hush(t, nil, nil, "--home", home, "id")
	if r.code != 0 || strings.SplitN(r.stdout, "\n", 2)[0] != self.Link || !strings.Contains(r.stdout, self.Fingerprint) {
		t.Errorf("id: %+v", r)
	}
	r = hush(t, nil, nil, "--home", home, "id", "--qr")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != 0 || lines[0] != self.Link || len(lines) < 15 || !strings.ContainsAny(lines[len(lines)-2], "█▀▄") {
		t.Errorf("id --qr: %+v", r)
	}
	// With an address, its QR ends the output and all of it fits the
	// screen an 80×24 terminal shows after the command (23 lines and the
	// prompt).
	if r := hush(t, nil, nil, "--home", home, "address", "create"); r.code != 0 {
		t.Fatalf("address create: %+v", r)
	}
	r = hush(t, nil, nil, "--home", home, "id", "--qr")
	lines = strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	qr := 0
	for i := len(lines) - 1; i >= 0 && strings.ContainsAny(lines[i], "█▀▄"); i-- {
		qr++
	}
	if r.code != 0 || lines[0] != self.Link || qr < 15 || qr > 23 || strings.ContainsAny(strings.Join(lines[:len(lines)-qr], ""), "█▀▄") {
		t.Fatalf("id --qr with an address: the QR is the last %d lines of\n%s", qr, r.stdout)
	}
	for _, l := range lines[len(lines)-qr:] {
		if w := len([]rune(l)); w > 80 {
			t.Fatalf("a QR line of %d columns", w)
		}
	}
}

func TestChat(t *testing.T) {
	b, home := daemon(t)
	b.AddContact("alice", "hush://alice")
	b.AddContact("bob", "hush://bob")
	b.Receive("alice", "earlier")
	pr, pw := io.Pipe()
	var out, errb testutil.SyncBuffer
	e := &env{stdin: pr, stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	done := make(chan int, 1)
	go func() { done <- run(context.Background(), []string{"--home", home, "chat", "alice"}, e) }()

	waitOut := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(out.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("chat output lacks %q:\n%s\nstderr: %s", want, out.String(), errb.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitOut("earlier")
	io.WriteString(pw, "hi alice\n")
	waitOut("hi alice")
	ms := mustMessages(t, b, "alice")
	if last := ms[len(ms)-1]; last.Text != "hi alice" || last.Direction != "out" {
		t.Fatalf("chat did not send: %+v", ms)
	}
	b.Receive("bob", "not for this chat")
	b.Receive("alice", "live reply")
	waitOut("live reply")
	b.SetState(ms[len(ms)-1].ID, node.StateDelivered)
	waitOut(ms[len(ms)-1].ID + " delivered")
	io.WriteString(pw, "/quit\n")
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("chat exit %d: %s", code, errb.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("chat did not quit")
	}
	pw.Close()
	if strings.Contains(out.String(), "not for this chat") {
		t.Error("chat showed another contact's message")
	}
	// Showing messages marks them read.
	for _, m := range mustMessages(t, b, "alice") {
		if m.Direction == "in" && m.State != node.StateRead {
			t.Errorf("%s %q still %s", m.ID, m.Text, m.State)
		}
	}
}

func TestInitPassphraseFile(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	r := hush(t, nil, nil, "--home", filepath.Join(dir, "h"), "init", "--name", "me", "--passphrase-file", empty)
	if r.code != 1 || !strings.Contains(r.stderr, "empty") {
		t.Errorf("empty passphrase: %+v", r)
	}
	r = hush(t, nil, nil, "--home", filepath.Join(dir, "h"), "init", "--name", "me", "--passphrase-file", filepath.Join(dir, "missing"))
	if r.code != 1 || !strings.HasPrefix(r.stderr, "hush: reading passphrase file") {
		t.Errorf("missing passphrase file: %+v", r)
	}
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("correct horse\r\n"), 0o600)
	e := &env{stdin: strings.NewReader("")}
	p, err := readPassphrase(e, good)
	if err != nil || string(p) != "correct horse" {
		t.Errorf("readPassphrase = %q, %v", p, err)
	}
	e.stdin = strings.NewReader("from stdin\n\n")
	p, err = readPassphrase(e, "-")
	if err != nil || string(p) != "from stdin\n" {
		t.Errorf("readPassphrase(-) = %q, %v; only one newline is stripped", p, err)
	}
}

func TestGroupSafetyNumber(t *testing.T) {
	sn := "123456789012345678901234567890123456789012345678901234567890"
	want := "12345 67890 12345 67890\n12345 67890 12345 67890\n12345 67890 12345 67890\n"
	if got := groupSafetyNumber(sn); got != want {
		t.Errorf("groupSafetyNumber = %q, want %q", got, want)
	}
}

func TestParseArgsInterleaved(t *testing.T) {
	e := &env{stdout: io.Discard}
	fs := newFlags(e, "send")
	wait := fs.String("wait", "", "")
	pos, err := parseArgs(e, fs, []string{"alice", "--wait", "read", "hi", "--", "--not-a-flag"}, 2, -1, "x")
	if err != nil || *wait != "read" || !reflect.DeepEqual(pos, []string{"alice", "hi", "--not-a-flag"}) {
		t.Errorf("parseArgs = %q, %v (wait %q)", pos, err, *wait)
	}
}
