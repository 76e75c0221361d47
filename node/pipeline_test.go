package node

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/internal/wire"
)

// TestPipelinedRoundWhileStatusesWait: while bob's sync of one message is
// held (its status not sent), alice writes the next message and bob shows
// it: neither side waits for the first message's statuses
// (messaging.md "Pipelined rounds"). Released, both are delivered, each
// once, in order.
func TestPipelinedRoundWhileStatusesWait(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	ctx := context.Background()
	sendAndWaitDelivered(t, a.n, "warm")
	const first, second = "first, its sync held", "second, written meanwhile"
	held, release := holdSyncOf(t, b.n, first)
	defer release() // before the nodes stop: a held sync would hold bob's stop
	events, cancel := b.n.Subscribe(0)
	defer cancel()
	m1, err := a.n.Send(ctx, SendRequest{To: "bob", Text: first})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(time.Minute):
		t.Fatal("bob never reached the synced write of the first message")
	}
	m2, err := a.n.Send(ctx, SendRequest{To: "bob", Text: second})
	if err != nil {
		t.Fatal(err)
	}
	for shown := false; !shown; {
		select {
		case ev := <-events:
			shown = ev.Type == EventMessage && ev.Message.ID == m2.ID
		case <-time.After(streamDeadline / 2):
			// Past streamDeadline a sender that waits resets the stream
			// and sends both again: the message would come, too late.
			t.Fatal("the second message was not shown while the first one's sync was held: a round waited for the last one's statuses")
		}
	}
	for _, id := range []string{m1.ID, m2.ID} {
		if m, err := a.n.GetMessage(id); err != nil || m.State == StateDelivered {
			t.Fatalf("%s is %v (%v) before bob's sync", id, m.State, err)
		}
	}
	release()
	for _, id := range []string{m1.ID, m2.ID} {
		if _, err := a.n.WaitState(ctx, id, StateDelivered); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := texts(t, b.n, "alice", "in"), []string{"warm", first, second}; !slices.Equal(got, want) {
		t.Fatalf("bob has %q, want %q", got, want)
	}
}

// TestPipelinedStatusesBadOrRetry runs alice's delivery loop against a
// receiver that answers as a faulty or busy device would: it reads the
// second message before answering the first (the sender writes on while
// statuses are due), then answers "stored" for the first and "try again"
// for the second; on the next stream it answers more statuses than
// frames, on the one after an empty status frame. Each time the unanswered
// messages stay queued and go again; once bob answers normally again,
// both are delivered and bob has each once, in order.
func TestPipelinedStatusesBadOrRetry(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	ctx := context.Background()
	sendAndWaitDelivered(t, a.n, "warm")

	type stream struct {
		s  network.Stream
		in []*envelope.Inner
	}
	streams := make(chan network.Stream, 4)
	b.n.host.SetStreamHandler(ProtocolMsg, func(s network.Stream) { streams <- s })
	b.n.host.Network().ClosePeer(a.n.host.ID()) // alice's open stream goes to the real handler
	next := func() *stream {
		t.Helper()
		select {
		case s := <-streams:
			return &stream{s: s}
		case <-time.After(time.Minute):
			t.Fatal("alice opened no new delivery stream")
			return nil
		}
	}
	read := func(st *stream) {
		t.Helper()
		st.s.SetReadDeadline(time.Now().Add(time.Minute))
		f, err := wire.ReadFrame(st.s, maxDirectFrame)
		if err != nil {
			t.Fatalf("reading alice's frame: %v", err)
		}
		in, err := decodeDirect(f)
		if err != nil {
			t.Fatal(err)
		}
		st.in = append(st.in, in)
	}
	answer := func(st *stream, statuses []byte) {
		t.Helper()
		if err := wire.WriteFrame(st.s, statuses); err != nil {
			t.Fatal(err)
		}
	}

	const first, second = "first", "second"
	m1, err := a.n.Send(ctx, SendRequest{To: "bob", Text: first})
	if err != nil {
		t.Fatal(err)
	}
	st := next()
	read(st)
	m2, err := a.n.Send(ctx, SendRequest{To: "bob", Text: second})
	if err != nil {
		t.Fatal(err)
	}
	read(st) // the first one's status is not sent yet
	if got := b.n.receive(st.in[:1], false); got[0] != ackOK {
		t.Fatalf("bob's store answered %d for the first message", got[0])
	}
	answer(st, []byte{ackOK, ackRetry})
	if _, err := a.n.WaitState(ctx, m1.ID, StateDelivered); err != nil {
		t.Fatal(err)
	}

	st = next() // the retry, after alice's back-off
	read(st)
	answer(st, []byte{ackOK, ackOK})
	st = next()
	read(st)
	answer(st, nil)

	b.n.host.SetStreamHandler(ProtocolMsg, b.n.handleMsgStream)
	if _, err := a.n.WaitState(ctx, m2.ID, StateDelivered); err != nil {
		t.Fatal(err)
	}
	if got, want := texts(t, b.n, "alice", "in"), []string{"warm", first, second}; !slices.Equal(got, want) {
		t.Fatalf("bob has %q, want %q", got, want)
	}
}

// A group of received frames that bob fails to write is answered "try
// again" and loses nothing (messaging.md "A failed write loses
// nothing"): bob puts back the session state the failed write held, so
// the copy alice sends again is read, not taken for one already stored;
// and bob reads nothing more from that stream, so a message alice wrote
// behind it is not stored before it. Both arrive, once each, in the
// order sent. Twice: while alice still sends prekey messages (bob has not
// written to her yet), and once bob has.
func TestFailedReceiveWriteLosesNothing(t *testing.T) {
	t.Run("prekey-message", func(t *testing.T) { failReceiveWrite(t, false, false) })
	t.Run("message", func(t *testing.T) { failReceiveWrite(t, true, false) })
	// The set is used after the failed batch was built (bob seals a
	// message under it while the write runs): it cannot be read back,
	// and the copy alice sends again is read as the first one was
	// (unwritten.go).
	t.Run("set-used-meanwhile", func(t *testing.T) { failReceiveWrite(t, true, true) })
}

func failReceiveWrite(t *testing.T, replied, useSet bool) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	ctx := context.Background()
	sendAndWaitDelivered(t, a.n, "warm")
	if replied {
		m, err := b.n.Send(ctx, SendRequest{To: "alice", Text: "reply"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.n.WaitState(ctx, m.ID, StateDelivered); err != nil {
			t.Fatal(err)
		}
	}
	const first, second = "first, its write fails", "second, sent behind it"
	failing, proceed := make(chan struct{}), make(chan struct{})
	var once, going atomic.Bool
	goOn := func() {
		if going.CompareAndSwap(false, true) {
			close(proceed)
		}
	}
	defer goOn() // before the nodes stop
	taps.Store(&tapFuncs{failCommit: func(n *Node, tx *txn) bool {
		if n != b.n || !tx.shows(first) || !once.CompareAndSwap(false, true) {
			return false
		}
		if useSet {
			// A message to alice sealed now (and lost on its way), whose
			// batch reserved further indices (encryptToCardLocked does
			// when the reservation runs low): the set's stored form
			// changed after the failed batch took it.
			set := n.sets[a.n.cert.DeviceID()]
			if _, _, err := set.Encrypt(n.local, []byte("meanwhile")); err != nil {
				panic(err)
			}
			set.Reserve()
			if marshalsTo(set, tx.sessions[0].enc) {
				panic("the set's stored form did not change")
			}
		}
		close(failing)
		<-proceed // alice sends the second meanwhile
		return true
	}})
	defer taps.Store(nil)
	m1, err := a.n.Send(ctx, SendRequest{To: "bob", Text: first})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-failing:
	case <-time.After(time.Minute):
		t.Fatal("bob never wrote the first message")
	}
	m2, err := a.n.Send(ctx, SendRequest{To: "bob", Text: second})
	if err != nil {
		t.Fatal(err)
	}
	goOn()
	for _, id := range []string{m1.ID, m2.ID} {
		if _, err := a.n.WaitState(ctx, id, StateDelivered); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := texts(t, b.n, "alice", "in"), []string{"warm", first, second}; !slices.Equal(got, want) {
		t.Fatalf("bob has %q, want %q", got, want)
	}
}

// shows reports whether t publishes a message event for text (for taps
// that pick the commit holding a given message).
func (t *txn) shows(text string) bool {
	return slices.ContainsFunc(t.events, func(ev Event) bool {
		return ev.Type == EventMessage && ev.Message != nil && ev.Message.Text == text
	})
}

// A received message's session set is written when its txn commits, as
// it is then (once for a round of messages, not once a message); a set
// the same txn ended afterwards (its device dropped, its contact removed)
// is not written back, or the ended session would come back from the
// store.
func TestSessionEndedInTxnStaysEnded(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	sendAndWaitDelivered(t, a.n, "warm")
	dev := a.n.cert.DeviceID()
	b.n.mu.Lock()
	set := b.n.sets[dev]
	if set == nil {
		b.n.mu.Unlock()
		t.Fatal("bob has no session with alice's device")
	}
	tx := b.n.newTxnLocked()
	b.n.saveSessionLocked(tx, set, envelope.KindMessage)
	b.n.endDeviceLocked(tx, dev)
	err := b.n.commitReleasingLock(tx)
	b.n.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.n.tabs.sessions.Get(dev[:]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the ended session is in the store again (err %v)", err)
	}
}
