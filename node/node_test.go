package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testGroupSync is the anti-entropy interval nodes in tests use, and
// testNoSync turns fsync off for benchmarks that run many nodes.
var (
	testGroupSync = time.Second
	testNoSync    = false
)

var testKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

type running struct {
	n       *Node
	home    string
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

func startNode(t testing.TB, home string) *running {
	t.Helper()
	return startNodeCfg(t, Config{Home: home})
}

// startNodeCfg runs a node on loopback without mDNS.
func startNodeCfg(t testing.TB, cfg Config) *running {
	t.Helper()
	cfg.NoMDNS, cfg.ListenAddrs, cfg.KDF = true, []string{"/ip4/127.0.0.1/tcp/0"}, testKDF
	if cfg.GroupSync == 0 {
		cfg.GroupSync = testGroupSync
	}
	cfg.NoSync = cfg.NoSync || testNoSync
	if os.Getenv("HUSH_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", filepath.Base(cfg.Home))
	}
	home := cfg.Home
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{n: n, home: home, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-r.done:
		t.Fatalf("Run: %v", err)
	}
	return r
}

// stop ends the node; a second call does nothing.
func (r *running) stop(t testing.TB) {
	if r.stopped {
		return
	}
	r.stopped = true
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if err := r.n.Close(); err != nil {
		t.Error(err)
	}
}

func newHome(t testing.TB, name string) string {
	home := t.TempDir()
	if _, err := Init(home, InitOptions{Name: name, KDF: testKDF}); err != nil {
		t.Fatal(err)
	}
	return home
}

// pair starts two nodes that have each other as contacts.
func pair(t testing.TB) (a, b *running) {
	a, b = startNode(t, newHome(t, "alice")), startNode(t, newHome(t, "bob"))
	befriend(t, a, b)
	return a, b
}

func befriend(t testing.TB, a, b *running) {
	t.Helper()
	sa, err := a.n.Self()
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.n.Self()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.n.AddContact("bob", sb.Link); err != nil {
		t.Fatal(err)
	}
	if _, err := b.n.AddContact("alice", sa.Link); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func texts(t testing.TB, n *Node, contact, dir string) []string {
	msgs, err := n.Messages(contact, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		if m.Direction == dir {
			out = append(out, m.Text)
		}
	}
	return out
}

func TestConversationBothWays(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	ctx := context.Background()
	var last Message
	for i := range 20 {
		m, err := a.n.Send(ctx, SendRequest{To: "bob", Text: fmt.Sprintf("a%d 😀", i)})
		if err != nil {
			t.Fatal(err)
		}
		last = m
		if _, err := b.n.Send(ctx, SendRequest{To: "alice", Text: fmt.Sprintf("b%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if m, err := a.n.WaitState(wctx, last.ID, StateDelivered); err != nil || m.State != StateDelivered {
		t.Fatalf("WaitState: %v %v", m.State, err)
	}
	waitFor(t, "20 messages at bob", func() bool { return len(texts(t, b.n, "alice", "in")) == 20 })
	waitFor(t, "20 messages at alice", func() bool { return len(texts(t, a.n, "bob", "in")) == 20 })
	got := texts(t, b.n, "alice", "in")
	for i, s := range got {
		if s != fmt.Sprintf("a%d 😀", i) {
			t.Fatalf("bob's message %d is %q: out of order", i, s)
		}
	}
	// Edit, reaction, delete and read receipt are visible on the other side.
	msgs, _ := b.n.Messages("alice", 0)
	target := msgs[len(msgs)-1]
	if _, err := b.n.Send(ctx, SendRequest{To: "alice", Kind: KindReaction, Text: "👍", Target: lastIn(t, b.n, "alice").ID}); err != nil {
		t.Fatal(err)
	}
	_ = target
	first := lastOut(t, a.n, "bob")
	if _, err := a.n.Send(ctx, SendRequest{To: "bob", Kind: KindEdit, Text: "edited", Target: first.ID}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "edit at bob", func() bool { m := find(t, b.n, "alice", first.ID); return m.Edited && m.Text == "edited" })
	waitFor(t, "reaction at alice", func() bool { m := find(t, a.n, "bob", first.ID); return len(m.Reactions["👍"]) == 1 })
	if err := b.n.MarkRead("alice"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "read receipt at alice", func() bool { return find(t, a.n, "bob", first.ID).State == StateRead })
	if _, err := a.n.Send(ctx, SendRequest{To: "bob", Kind: KindDelete, Target: first.ID}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delete at bob", func() bool { m := find(t, b.n, "alice", first.ID); return m.Deleted && m.Text == "" })
}

func lastIn(t testing.TB, n *Node, c string) Message  { return lastDir(t, n, c, "in") }
func lastOut(t testing.TB, n *Node, c string) Message { return lastDir(t, n, c, "out") }

func lastDir(t testing.TB, n *Node, c, dir string) Message {
	msgs, err := n.Messages(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Direction == dir {
			return msgs[i]
		}
	}
	t.Fatalf("no %s message", dir)
	return Message{}
}

func find(t testing.TB, n *Node, c, id string) Message {
	msgs, err := n.Messages(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("message %s not found", id)
	return Message{}
}

func TestSendErrors(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	ctx := context.Background()
	cases := []struct {
		req  SendRequest
		want error
	}{
		{SendRequest{To: "nobody", Text: "x"}, ErrUnknownContact},
		{SendRequest{To: "bob", Text: "   "}, ErrEmptyMessage},
		{SendRequest{To: "bob", Text: string(make([]byte, MaxTextSize+1))}, ErrMessageTooLarge},
		{SendRequest{To: "bob", Kind: KindEdit, Text: "x", Target: "00"}, ErrUnknownMessage},
	}
	for _, tc := range cases {
		if _, err := a.n.Send(ctx, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%+v: got %v, want %v", tc.req.Text[:min(len(tc.req.Text), 8)], err, tc.want)
		}
	}
}

func TestTxnIDNotSentTwice(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	ctx := context.Background()
	m1, err := a.n.Send(ctx, SendRequest{To: "bob", Text: "once", TxnID: "t-1"})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := a.n.Send(ctx, SendRequest{To: "bob", Text: "once", TxnID: "t-1"})
	if err != nil || m2.ID != m1.ID {
		t.Fatalf("retried txn gave %v, %v", m2.ID, err)
	}
	waitFor(t, "delivery", func() bool { return len(texts(t, b.n, "alice", "in")) == 1 })
	time.Sleep(200 * time.Millisecond)
	if n := len(texts(t, b.n, "alice", "in")); n != 1 {
		t.Fatalf("bob has %d messages, want 1", n)
	}
}
