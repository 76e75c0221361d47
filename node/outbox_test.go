package node

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/internal/wire"
)

// deliverTimeout bounds how long a test waits for direct delivery on
// loopback, which takes milliseconds; a stalled queue waits forever.
const deliverTimeout = 5 * time.Second

// sendAndWait sends count texts to contact and waits until every one is
// delivered.
func sendAndWait(t *testing.T, from *Node, contact string, count int) {
	t.Helper()
	var ids []string
	for i := range count {
		m, err := from.Send(context.Background(), SendRequest{To: contact, Text: fmt.Sprintf("message %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deliverTimeout)
	defer cancel()
	for i, id := range ids {
		m, err := from.WaitState(ctx, id, StateDelivered)
		if err != nil || m.State != StateDelivered {
			t.Fatalf("message %d of %d is %s after %v (%v): the queue stalled", i+1, count, m.State, deliverTimeout, err)
		}
	}
}

// The cause of the stall new contacts saw (issue 9): a link taken from a
// node whose host was not up yet named no peer and no address, so the
// contact's delivery loop had no route and parked for good. A node that
// is not running must refuse to hand out its link.
func TestLinkBeforeRunIsRefused(t *testing.T) {
	home := newHome(t, "bob")
	n, err := New(Config{Home: home, KDF: testKDF})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	s, err := n.Self()
	if !errors.Is(err, ErrNotRunning) {
		c, perr := card.ParseLink(s.Link, time.Now())
		if perr == nil && len(c.Devices[0].PeerID) == 0 {
			t.Fatalf("a node that is not running handed out a link with no peer ID (err %v)", err)
		}
		t.Fatalf("Self before Run: got %v, want ErrNotRunning", err)
	}
	if _, err := n.Card(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Card before Run: got %v, want ErrNotRunning", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := n.WaitLink(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("WaitLink before Run: got %v, want ErrNotRunning", err)
	}
}

// WaitLink returns once the host is up, and the link then names the peer.
func TestWaitLinkThenLinkReaches(t *testing.T) {
	a := startNode(t, newHome(t, "alice"))
	defer a.stop(t)
	home := newHome(t, "bob")
	n, err := New(Config{Home: home, KDF: testKDF, NoMDNS: true, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		n.Close()
	}()
	if err := n.WaitLink(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, err := n.Self()
	if err != nil || s.PeerID == "" {
		t.Fatalf("Self after WaitLink: %+v %v", s, err)
	}
	if _, err := a.n.AddContact("bob", s.Link); err != nil {
		t.Fatal(err)
	}
	sendAndWait(t, a.n, "bob", 10)
}

// A queue parked for want of a route (a card with no peer ID and no
// mailbox, as old versions handed out during start-up) is woken by the
// newer card the contact's first message carries. Before the fix the
// card was stored and the queue slept on.
func TestNewerCardWakesParkedQueue(t *testing.T) {
	a := startNode(t, newHome(t, "alice"))
	defer a.stop(t)
	b := startNode(t, newHome(t, "bob"))
	defer b.stop(t)

	b.n.mu.Lock()
	routeless, err := buildCard(b.n.account, b.n.profile.Name, b.n.list, b.n.cert, b.n.local.Prekeys, "", nil, nil, nil, time.Now().Add(-time.Minute))
	b.n.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.n.AddContact("bob", routeless.Link()); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 10 {
		m, err := a.n.Send(context.Background(), SendRequest{To: "bob", Text: fmt.Sprintf("queued %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}

	// Bob writes first: his prekey message carries his full card.
	sa, err := a.n.Self()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.n.AddContact("alice", sa.Link); err != nil {
		t.Fatal(err)
	}
	sendAndWait(t, b.n, "alice", 1)
	ctx, cancel := context.WithTimeout(context.Background(), deliverTimeout)
	defer cancel()
	for i, id := range ids {
		if m, err := a.n.WaitState(ctx, id, StateDelivered); err != nil {
			t.Fatalf("alice's message %d is %s after bob's card arrived: the queue was not woken", i, m.State)
		}
	}
}

// Dropping an entry whose commit failed wakes its queue: it may have been
// the head that held durable entries back.
func TestDropWakesQueue(t *testing.T) {
	n, err := New(Config{Home: newHome(t, "alice"), KDF: testKDF})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	n.mu.Lock()
	defer n.mu.Unlock()
	cert := n.cert // any certificate: the queue is only inspected
	head := &outEntry{outRec: outRec{Seq: 1}, device: cert.DeviceID()}
	behind := &outEntry{outRec: outRec{Seq: 2}, device: cert.DeviceID(), durable: true}
	n.queueLocked(cert, head)
	n.queueLocked(cert, behind)
	q := n.queues[cert.DeviceID()]
	n.dropQueuedLocked([]*outEntry{head})
	if len(q.pending) != 1 || q.pending[0] != behind {
		t.Fatalf("after the drop the queue holds %d entries", len(q.pending))
	}
	select {
	case <-q.wake:
	default:
		t.Fatal("dropping the head entry did not wake the queue: the durable entry behind it would wait forever")
	}
}

// Entries queued before Run (a send on an established session, which
// needs no card) are not
// queued a second time when Run loads the outbox, and the queue stays in
// order.
func TestOutboxLoadSkipsQueuedEntries(t *testing.T) {
	a, b := pair(t)
	defer b.stop(t)
	sendAndWait(t, a.n, "bob", 1)
	sendAndWait(t, b.n, "alice", 1) // the session is established both ways
	b.stop(t)                       // so that what follows stays queued
	a.stop(t)

	n, err := New(Config{Home: a.home, KDF: testKDF, NoMDNS: true, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Send(context.Background(), SendRequest{To: "bob", Text: "before run"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	<-n.Ready()
	n.mu.Lock()
	var total int
	for _, q := range n.queues {
		total += len(q.pending)
	}
	n.mu.Unlock()
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
	n.Close()
	if total != 1 {
		t.Fatalf("%d queued entries after Run loaded the outbox, want 1", total)
	}
}

// A group message held for a member whose card had not arrived goes out
// when that member becomes a contact; before, only a directory card
// released it and a contact's never did.
func TestHeldGroupMessageReleasedByContactCard(t *testing.T) {
	a := startNode(t, newHome(t, "alice"))
	defer a.stop(t)
	b := startNode(t, newHome(t, "bob"))
	sb, err := b.n.Self()
	if err != nil {
		t.Fatal(err)
	}
	b.stop(t) // what is released stays queued, so it can be counted
	bc, err := card.ParseLink(sb.Link, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dev := bc.Devices[0].ID

	a.n.mu.Lock()
	tx := a.n.newTxnLocked()
	a.n.sendGroupPairwiseLocked(tx, bc.Account(), dev, &payload{Type: ptGroup, Data: []byte("sender key")}, time.Now())
	held := len(a.n.heldPairwise[bc.Account()])
	err = a.n.commitReleasingLock(tx)
	a.n.mu.Unlock()
	if err != nil || held != 1 {
		t.Fatalf("held %d messages (%v), want 1", held, err)
	}

	if _, err := a.n.AddContact("bob", sb.Link); err != nil {
		t.Fatal(err)
	}
	a.n.mu.Lock()
	defer a.n.mu.Unlock()
	if len(a.n.heldPairwise[bc.Account()]) != 0 {
		t.Fatal("the held group message is still held after bob became a contact")
	}
	if q := a.n.queues[dev]; q == nil || len(q.pending) != 1 {
		t.Fatal("the held group message was not queued for bob's device")
	}
}

// A device that answers "retry" to everything (its store failing) gets
// the batch again after the back-off, not at once: before, the loop
// resent the same frames in a tight loop.
func TestRetryAnswerBacksOff(t *testing.T) {
	a := startNode(t, newHome(t, "alice"))
	defer a.stop(t)
	b := startNode(t, newHome(t, "bob"))
	defer b.stop(t)

	// A host that reads frames and answers ackRetry for each, standing in
	// for bob's device (bob's card, this host's peer ID and address).
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	rounds := make(chan time.Time, 64)
	h.SetStreamHandler(ProtocolMsg, func(s network.Stream) {
		defer s.Close()
		for {
			if _, err := wire.ReadFrame(s, maxDirectFrame); err != nil {
				return
			}
			rounds <- time.Now()
			if err := wire.WriteFrame(s, []byte{ackRetry}); err != nil {
				return
			}
		}
	})
	b.n.mu.Lock()
	stand, err := buildCard(b.n.account, b.n.profile.Name, b.n.list, b.n.cert, b.n.local.Prekeys, h.ID(), h.Addrs(), nil, nil, time.Now())
	b.n.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.n.AddContact("bob", stand.Link()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.n.Send(context.Background(), SendRequest{To: "bob", Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	first := <-rounds
	<-rounds
	<-rounds
	fourth := <-rounds
	// Back-offs of 0.5 s, 1 s and 2 s lie between the first and the
	// fourth round (the first may be cut short by the wake-up of the
	// send itself); a loaded machine only makes the gap longer.
	if gap := fourth.Sub(first); gap < backoffMin*3 {
		t.Fatalf("four rounds within %v: the loop resends without backing off", gap)
	}
}

// A contact that moved (restarted on another address) tells us with the
// next message it sends, established session or not, so we reach it
// again even after our own restart. Before, only a session's first
// messages carried the card, and we kept dialling the old address.
func TestMovedContactReachableAfterItWrites(t *testing.T) {
	a, b := pair(t)
	sendAndWait(t, a.n, "bob", 1)
	sendAndWait(t, b.n, "alice", 1) // established both ways
	b.stop(t)
	a.stop(t)

	// Bob comes back on QUIC only: none of his old addresses works.
	bn, err := New(Config{Home: b.home, KDF: testKDF, NoMDNS: true, ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}})
	if err != nil {
		t.Fatal(err)
	}
	bctx, bcancel := context.WithCancel(context.Background())
	bdone := make(chan error, 1)
	go func() { bdone <- bn.Run(bctx) }()
	<-bn.Ready()
	defer func() { bcancel(); <-bdone; bn.Close() }()

	a = startNodeCfg(t, Config{Home: a.home})
	sendAndWait(t, bn, "alice", 1) // bob writes: his new card rides along
	a.stop(t)

	a = startNodeCfg(t, Config{Home: a.home}) // no connection, only the stored card
	defer a.stop(t)
	sendAndWait(t, a.n, "bob", 1)
}

// A typing indicator for a contact that is offline is dropped once older
// than ephemeralTTL, on the node's clock, from the queue and the store,
// with no fsync of its own (a lazy commit: it runs under the node's
// lock, on the delivery loop's way).
func TestStaleTypingDroppedLazily(t *testing.T) {
	clock := &testClock{}
	a := startClocked(t, clock, newHome(t, "alice"))
	b := startNode(t, newHome(t, "bob"))
	befriend(t, a, b)
	b.stop(t)
	defer a.stop(t)
	if err := a.n.SetTyping("bob", true); err != nil {
		t.Fatal(err)
	}
	// pending returns the typing entries queued for bob and whether
	// every one is committed.
	pending := func() (n int, durable bool) {
		a.n.mu.Lock()
		defer a.n.mu.Unlock()
		durable = true
		for _, q := range a.n.queues {
			for _, e := range q.pending {
				if e.Ephemeral {
					n++
					durable = durable && e.durable
				}
			}
		}
		return n, durable
	}
	waitFor(t, "the typing entry, committed", func() bool { n, ok := pending(); return n == 1 && ok })
	stored := func() int {
		n := 0
		if err := a.n.tabs.outbox.Scan(func(_, _ []byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := stored() // the typing entry, and whatever else waits for bob
	if before == 0 {
		t.Fatal("the typing entry is not in the store")
	}
	syncs := a.n.db.SyncedWrites()
	clock.advance(ephemeralTTL + time.Second)
	a.n.mu.Lock()
	for _, q := range a.n.queues {
		a.n.kickLocked(q)
	}
	a.n.mu.Unlock()
	waitFor(t, "the stale entry dropped", func() bool { n, _ := pending(); return n == 0 })
	if got := stored(); got != before-1 {
		t.Fatalf("%d outbox records after the drop, want %d", got, before-1)
	}
	if got := a.n.db.SyncedWrites() - syncs; got != 0 {
		t.Fatalf("dropping stale typing indicators made %d synced writes, want 0", got)
	}
}
