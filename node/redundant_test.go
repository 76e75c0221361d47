package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/relay"
)

// relayProc is an in-process relay that stops and starts again with the
// same identity, address and store, as a relay daemon restarted does.
type relayProc struct {
	t      testing.TB
	key    crypto.PrivKey
	dir    string
	listen string // the listen address; its port is kept after the first start
	addr   string // the relay's multiaddr, ending in /p2p/<id>
	stop   func()
}

func newRelayProc(t testing.TB) *relayProc {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &relayProc{t: t, key: key, dir: t.TempDir(), listen: "/ip4/127.0.0.1/tcp/0"}
	r.start()
	return r
}

func (r *relayProc) start() {
	t := r.t
	t.Helper()
	h, err := libp2p.New(libp2p.Identity(r.key), libp2p.ListenAddrStrings(r.listen))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(r.dir, relay.StoreConfig(store.Config{NoSync: true}))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := relay.New(relayCfg(), h, db)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Ready()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			srv.Close()
			db.Close()
			h.Close()
		})
	}
	t.Cleanup(r.stop)
	r.listen = h.Addrs()[0].String()
	r.addr = fmt.Sprintf("%s/p2p/%s", h.Addrs()[0], h.ID())
}

// halt stops the relay; its store stays for the next start.
func (r *relayProc) halt() { r.stop() }

func waitMailboxes(t testing.TB, r *running, count int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d mailboxes", count), func() bool {
		s, err := r.n.Self()
		return err == nil && s.Mailboxes == count
	})
}

// outboxLen counts the entries in a node's outbox table.
func outboxLen(t testing.TB, n *Node) int {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	count := 0
	if err := n.tabs.outbox.Scan(func(_, _ []byte) error { count++; return nil }); err != nil {
		t.Fatal(err)
	}
	return count
}

// sendSent sends texts and waits until a relay holds each.
func sendSent(t testing.TB, n *Node, to string, texts []string) {
	t.Helper()
	ctx := context.Background()
	for _, text := range texts {
		m, err := n.Send(ctx, SendRequest{To: to, Text: text})
		if err != nil {
			t.Fatal(err)
		}
		if m, err := n.WaitState(ctx, m.ID, StateSent); err != nil || m.State != StateSent {
			t.Fatalf("%q: state %s, %v (want sent)", text, m.State, err)
		}
	}
}

func numbered(prefix string, count int) []string {
	out := make([]string, count)
	for i := range out {
		out[i] = fmt.Sprintf("%s %02d", prefix, i)
	}
	return out
}

// Bob lists mailboxes on two relays. Relay 1 is down while alice writes
// to him (he is away), so relay 2 takes everything and alice's messages
// are sent; her outbox keeps relay 1's copies and deposits them once it
// is back. Relay 2 then dies with its store, and bob, back with relay 1
// only, gets every message, in order. (Each entry used to be deposited
// once into each mailbox: relay 1 never got them, and bob got none.)
func TestRedundantMailboxesSurviveRelayLoss(t *testing.T) {
	r1 := newRelayProc(t)
	addr2, stop2 := startStoppableRelay(t, relayCfg())
	aHome, bHome := newHome(t, "alice"), newHome(t, "bob")
	a := startNodeCfg(t, Config{Home: aHome})
	defer a.stop(t)
	b := startNodeCfg(t, Config{Home: bHome, Relays: []string{r1.addr, addr2}})
	waitMailboxes(t, b, 2)
	befriend(t, a, b)
	b.stop(t)
	r1.halt()

	want := numbered("while relay 1 was down", 20)
	sendSent(t, a.n, "bob", want)
	r1.start()
	waitFor(t, "relay 1 to confirm every message", func() bool { return outboxLen(t, a.n) == 0 })
	stop2() // its store goes with it

	b = startNodeCfg(t, Config{Home: bHome, Relays: []string{r1.addr}})
	defer b.stop(t)
	waitFor(t, "every message at bob", func() bool { return len(texts(t, b.n, "alice", "in")) == len(want) })
	if got := texts(t, b.n, "alice", "in"); !slices.Equal(got, want) {
		t.Fatalf("bob got %q, want %q", got, want)
	}
	if ns := notices(t, b.n, "alice"); len(ns) != 0 {
		t.Fatalf("notices %+v", ns)
	}
}

// A restart in the middle of redundant deposits continues them: the
// mailboxes that have not confirmed an entry are stored with it.
func TestRedundantDepositsContinueAfterRestart(t *testing.T) {
	addr1, stop1 := startStoppableRelay(t, relayCfg())
	r2 := newRelayProc(t)
	aHome, bHome := newHome(t, "alice"), newHome(t, "bob")
	a := startNodeCfg(t, Config{Home: aHome})
	defer func() { a.stop(t) }()
	b := startNodeCfg(t, Config{Home: bHome, Relays: []string{addr1, r2.addr}})
	waitMailboxes(t, b, 2)
	befriend(t, a, b)
	b.stop(t)
	r2.halt()

	want := numbered("before the restart", 10)
	sendSent(t, a.n, "bob", want)
	waitFor(t, "the entries stored with relay 2 left", func() bool { return outboxLen(t, a.n) == len(want) })
	a.stop(t)
	r2.start()
	a = startNodeCfg(t, Config{Home: aHome})
	waitFor(t, "relay 2 to confirm every message after the restart", func() bool { return outboxLen(t, a.n) == 0 })
	stop1()

	b = startNodeCfg(t, Config{Home: bHome, Relays: []string{r2.addr}})
	defer b.stop(t)
	waitFor(t, "every message at bob", func() bool { return len(texts(t, b.n, "alice", "in")) == len(want) })
	if got := texts(t, b.n, "alice", "in"); !slices.Equal(got, want) {
		t.Fatalf("bob got %q, want %q", got, want)
	}
	for _, m := range lastMessages(t, a.n, "bob") {
		if m.State.Rank() < StateSent.Rank() {
			t.Fatalf("message %q went back to %s", m.Text, m.State)
		}
	}
}

func lastMessages(t testing.TB, n *Node, contact string) []Message {
	msgs, err := n.Messages(contact, 0)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}
