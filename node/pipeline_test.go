package node

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/hushnet/hush/crypto/envelope"
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
	held, release := make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	const first, second = "first, its sync held", "second, written meanwhile"
	taps.Store(&tapFuncs{syncWait: func(n *Node) {
		if n != b.n {
			return
		}
		ms, _ := n.Messages("alice", 0)
		if len(ms) > 0 && ms[len(ms)-1].Text == first && once.CompareAndSwap(false, true) {
			close(held)
			<-release
		}
	}})
	defer taps.Store(nil)
	released := false
	free := func() {
		if !released {
			released = true
			close(release)
		}
	}
	defer free()
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
	free()
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
