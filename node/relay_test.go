package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/relay"
)

// startRelay runs an in-process relay on loopback and returns its address.
func startRelay(t testing.TB, cfg relay.Config) string {
	t.Helper()
	addr, _ := startStoppableRelay(t, cfg)
	return addr
}

// startStoppableRelay is startRelay that also returns a function stopping
// the relay (idempotent; the test's cleanup calls it too).
func startStoppableRelay(t testing.TB, cfg relay.Config) (string, func()) {
	t.Helper()
	addr, _, stop := launchRelay(t, cfg, "")
	return addr, stop
}

// launchRelay runs an in-process relay and returns its address, its host
// (to see who connects to it) and a stop function.
// startRelayIn is startRelay with the relay's store in dir.
func startRelayIn(t testing.TB, cfg relay.Config, dir string) string {
	t.Helper()
	addr, _, _ := launchRelay(t, cfg, dir)
	return addr
}

func launchRelay(t testing.TB, cfg relay.Config, dir string) (string, host.Host, func()) {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	if dir == "" {
		dir = t.TempDir()
	}
	db, err := store.Open(dir, relay.StoreConfig(store.Config{}))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := relay.New(cfg, h, db)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Ready()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			srv.Close()
			db.Close()
			h.Close()
		})
	}
	t.Cleanup(stop)
	return fmt.Sprintf("%s/p2p/%s", h.Addrs()[0], h.ID()), h, stop
}

// relayCfg is a relay configuration for tests: no rate limits.
func relayCfg() relay.Config { return relay.Config{PeerRate: -1, IPRate: -1} }

func waitMailbox(t testing.TB, r *running) {
	waitFor(t, "a mailbox on the relay", func() bool {
		s, err := r.n.Self()
		return err == nil && s.Mailboxes > 0
	})
}

const offlineCount = 100

func TestOfflineDeliveryThroughRelay(t *testing.T) {
	addr := startRelay(t, relay.Config{})
	aHome, bHome := newHome(t, "alice"), newHome(t, "bob")
	a := startNodeCfg(t, Config{Home: aHome, Relays: []string{addr}})
	defer func() { a.stop(t) }()
	b := startNodeCfg(t, Config{Home: bHome, Relays: []string{addr}})
	waitMailbox(t, a)
	waitMailbox(t, b)
	befriend(t, a, b)
	// Alice fetched a one-time prekey bundle from Bob's relay, so her
	// first message gets one-time keys (forward secrecy from the start).
	// (Bob uploads his bundles after creating the mailbox: ask again until
	// they are there.)
	waitFor(t, "a one-time bundle from the relay", func() bool {
		a.n.mu.Lock()
		got := len(a.n.prefetched) == 1
		c, _ := a.n.cardOfAccountLocked(b.n.cert.Account())
		a.n.mu.Unlock()
		if !got && c != nil {
			a.n.prefetchPrekeys(context.Background(), c)
		}
		return got
	})
	b.stop(t)

	ctx := context.Background()
	var ids []string
	for i := range offlineCount {
		m, err := a.n.Send(ctx, SendRequest{To: "bob", Text: fmt.Sprintf("offline %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	a.n.mu.Lock()
	if len(a.n.prefetched) != 0 {
		t.Error("the fetched one-time bundle was not used")
	}
	a.n.mu.Unlock()
	for _, id := range ids {
		wctx, cancel := context.WithTimeout(ctx, 20e9)
		m, err := a.n.WaitState(wctx, id, StateSent)
		cancel()
		if err != nil || m.State != StateSent {
			t.Fatalf("message %s: state %s, %v (want sent: on the relay)", id, m.State, err)
		}
	}
	b = startNodeCfg(t, Config{Home: bHome, Relays: []string{addr}})
	defer b.stop(t)
	waitFor(t, "messages from the relay", func() bool { return len(texts(t, b.n, "alice", "in")) == offlineCount })
	for i, s := range texts(t, b.n, "alice", "in") {
		if s != fmt.Sprintf("offline %d", i) {
			t.Fatalf("message %d is %q", i, s)
		}
	}
	// Bob's delivery receipts move Alice's messages to delivered.
	waitFor(t, "delivery receipts", func() bool {
		msgs, _ := a.n.Messages("bob", 0)
		for _, m := range msgs {
			if m.State != StateDelivered {
				return false
			}
		}
		return true
	})
}

// Messages left in the mailbox while the recipient was away are shown
// before those that follow them directly once it is back: a full mailbox
// keeps the rest queued at the sender, who delivers them directly as
// soon as the recipient returns, while the recipient drains its mailbox.
func TestMailboxBeforeDirectAfterRestart(t *testing.T) {
	addr := startRelay(t, relay.Config{PeerRate: -1, IPRate: -1, MaxMessages: 40})
	aHome, bHome := newHome(t, "alice"), newHome(t, "bob")
	a := startNodeCfg(t, Config{Home: aHome, Relays: []string{addr}})
	defer func() { a.stop(t) }()
	b := startNodeCfg(t, Config{Home: bHome, Relays: []string{addr}})
	waitMailbox(t, b)
	befriend(t, a, b)
	b.stop(t)
	const total = 120
	var want []string
	for i := range total {
		text := fmt.Sprintf("in order %03d", i)
		want = append(want, text)
		if _, err := a.n.Send(context.Background(), SendRequest{To: "bob", Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the mailbox full", func() bool {
		msgs, _ := a.n.Messages("bob", 0)
		sent := 0
		for _, m := range msgs {
			if m.State == StateSent {
				sent++
			}
		}
		return sent == 40
	})
	b = startNodeCfg(t, Config{Home: bHome, Relays: []string{addr}})
	defer b.stop(t)
	// Bob reaches Alice at once (as mDNS would), so her queue starts
	// delivering directly while his mailbox drains.
	if err := b.n.host.Connect(context.Background(), peer.AddrInfo{ID: a.n.host.ID(), Addrs: a.n.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every message at bob", func() bool { return len(texts(t, b.n, "alice", "in")) == total })
	if got := texts(t, b.n, "alice", "in"); !slices.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("message %d is %q, want %q", i, got[i], want[i])
			}
		}
	}
}

// Restarts and reconnects top the relay's one-time prekeys up instead of
// replacing them: sixty session starts leave the relay with its twenty
// bundles and the store with no more keys than the relay holds plus what
// senders fetched (it used to grow by twenty per start and stop at the
// pool's cap after about fifty, leaving new sessions on the last-resort
// key).
func TestPrekeysToppedUpNotReplaced(t *testing.T) {
	addr := startRelay(t, relayCfg())
	r := startNodeCfg(t, Config{Home: newHome(t, "owner"), Relays: []string{addr}})
	defer r.stop(t)
	waitMailbox(t, r)
	ri, err := relay.ParseRelayAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	n := r.n
	n.mu.Lock()
	rec := n.mailboxes[ri.ID]
	n.mu.Unlock()
	var mbox, deposit relay.ID
	copy(mbox[:], rec.Mailbox)
	copy(deposit[:], rec.Deposit)
	ctx := context.Background()
	owner := ed25519.PrivateKey(rec.Owner)
	start := func() {
		t.Helper()
		if err := n.uploadPrekeys(ctx, ri, mbox, owner); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the first session's upload", func() bool {
		n.mu.Lock()
		lr, err := n.lastResortBundleLocked(time.Now())
		n.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		held, err := n.relays.AddPrekeys(ctx, n.hostOf(), ri, mbox, owner, lr, nil)
		return err == nil && held == oneTimeBundles
	})
	for range 60 {
		start()
	}
	if held := n.local.Prekeys.OneTimeHeld(); held > oneTimeBundles {
		t.Fatalf("after 60 session starts the store holds %d one-time keys, want at most %d", held, oneTimeBundles)
	}
	// Senders fetch five; the next start replaces exactly those five.
	stranger, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	c := &relay.Client{}
	for range 5 {
		if _, oneTime, err := c.GetPrekeys(ctx, stranger, ri, deposit); err != nil || !oneTime {
			t.Fatalf("fetch: one-time %v, %v", oneTime, err)
		}
	}
	start()
	if held := n.local.Prekeys.OneTimeHeld(); held != oneTimeBundles+5 {
		t.Fatalf("after 5 fetches and a start the store holds %d one-time keys, want %d (20 on the relay, 5 with senders)", held, oneTimeBundles+5)
	}
	for i := range oneTimeBundles {
		if _, oneTime, err := c.GetPrekeys(ctx, stranger, ri, deposit); err != nil || !oneTime {
			t.Fatalf("fetch %d after the top-up: one-time %v, %v", i, oneTime, err)
		}
	}
}

// Deposits and prekey fetches reach other people's relays from
// identities of their own: the relay never sees the PeerID the sender's
// card names, and the deposits for two contacts come from two different
// identities (finding 6 of the hardening issue).
func TestDepositsFromOwnIdentities(t *testing.T) {
	addr, rh, _ := launchRelay(t, relayCfg(), "")
	var mu sync.Mutex
	seen := map[peer.ID]bool{}
	rh.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		mu.Lock()
		seen[c.RemotePeer()] = true
		mu.Unlock()
	}})
	a := startNode(t, newHome(t, "alice"))
	defer a.stop(t)
	var contacts []*running
	for _, name := range []string{"bob", "carol"} {
		r := startNodeCfg(t, Config{Home: newHome(t, name), Relays: []string{addr}})
		waitMailbox(t, r)
		sr, err := r.n.Self()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.n.AddContact(name, sr.Link); err != nil {
			t.Fatal(err)
		}
		contacts = append(contacts, r)
	}
	ids := make([]peer.ID, len(contacts))
	for i, r := range contacts {
		ids[i] = r.n.host.ID()
		r.stop(t) // offline: what alice sends goes to the relay
	}
	for _, name := range []string{"bob", "carol"} {
		m, err := a.n.Send(context.Background(), SendRequest{To: name, Text: "while you sleep"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.n.WaitState(context.Background(), m.ID, StateSent); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if seen[a.n.host.ID()] {
		t.Fatal("the relay saw the PeerID alice's card names")
	}
	for _, id := range ids {
		delete(seen, id) // the owners' own mailbox sessions
	}
	if len(seen) < 2 {
		t.Fatalf("the relay saw %d depositors for two contacts, want one identity each", len(seen))
	}
}

// A one-time bundle fetched while a session with the device started is
// not kept (the fetch runs without the node's lock): kept, it would wait
// for a session that never comes, and TestOfflineDeliveryThroughRelay
// saw it left over when a slow fetch finished after the first message.
func TestPrefetchedBundleNotKeptOnceSessionStarted(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	sendAndWaitDelivered(t, a.n, "a session")
	a.n.mu.Lock()
	defer a.n.mu.Unlock()
	if a.n.keepPrefetchedLocked(b.n.cert.DeviceID(), []byte("bundle")) {
		t.Error("a bundle was kept for a device with a session")
	}
	var other identity.DeviceID
	other[0] = 1
	if !a.n.keepPrefetchedLocked(other, []byte("first")) {
		t.Error("a bundle for a device without a session was not kept")
	}
	if a.n.keepPrefetchedLocked(other, []byte("second")) || string(a.n.prefetched[other]) != "first" {
		t.Error("a second bundle replaced the first")
	}
	delete(a.n.prefetched, other)
}
