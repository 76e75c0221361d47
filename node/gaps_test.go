package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/relay"
)

// ranges lists a gapTrack's ranges as "from-to" strings.
func ranges(g *gapTrack) []string {
	var out []string
	for _, r := range g.Gaps {
		out = append(out, fmt.Sprintf("%d-%d", r.From, r.To))
	}
	return out
}

// The gap tracker alone: texts out of order, a second copy of a counter,
// a sender whose counter went back, and a hostile sender's huge counter.
func TestGapTrack(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	grace := 10 * time.Minute
	t.Run("in order", func(t *testing.T) {
		g := &gapTrack{}
		for c := uint64(1); c <= 5; c++ {
			if filled, opened := g.observe(c, 1000+c, t0); filled != "" || opened {
				t.Fatalf("counter %d: filled %q, opened %v", c, filled, opened)
			}
		}
		if g.High != 5 || len(g.Gaps) != 0 {
			t.Fatalf("high %d, ranges %v", g.High, ranges(g))
		}
	})
	t.Run("first counter is where tracking starts", func(t *testing.T) {
		g := &gapTrack{}
		g.observe(57, 1000, t0) // the sender counted before this device listened
		if g.High != 57 || len(g.Gaps) != 0 {
			t.Fatalf("high %d, ranges %v", g.High, ranges(g))
		}
		g.observe(40, 900, t0) // a late text from before: not missing, not a reset
		if g.High != 57 || len(g.Gaps) != 0 {
			t.Fatalf("after a late text: high %d, ranges %v", g.High, ranges(g))
		}
	})
	t.Run("out of order", func(t *testing.T) {
		g := &gapTrack{}
		g.observe(1, 1001, t0)
		if _, opened := g.observe(5, 1005, t0); !opened {
			t.Fatal("no range opened for 2-4")
		}
		if got := ranges(g); !slices.Equal(got, []string{"2-4"}) {
			t.Fatalf("ranges %v", got)
		}
		g.observe(3, 1003, t0.Add(time.Second)) // splits the range
		if got := ranges(g); !slices.Equal(got, []string{"2-2", "4-4"}) {
			t.Fatalf("after 3: ranges %v", got)
		}
		if _, ok := g.nextDue(grace); !ok {
			t.Fatal("nothing waits for its grace period")
		}
		if n := g.report("n1", t0.Add(grace-time.Second), grace); n != 0 {
			t.Fatalf("reported %d before the grace period ended", n)
		}
		if n := g.report("n1", t0.Add(grace), grace); n != 2 {
			t.Fatalf("reported %d, want 2", n)
		}
		if _, ok := g.nextDue(grace); ok {
			t.Fatal("a reported range still waits")
		}
		if filled, _ := g.observe(2, 1002, t0); filled != "n1" {
			t.Fatalf("2 filled %q, want n1", filled)
		}
		if filled, _ := g.observe(4, 1004, t0); filled != "n1" || len(g.Gaps) != 0 {
			t.Fatalf("4 filled %q, ranges %v", filled, ranges(g))
		}
	})
	t.Run("a counter seen twice", func(t *testing.T) {
		g := &gapTrack{}
		g.observe(1, 1001, t0)
		g.observe(4, 1004, t0)
		g.observe(2, 1002, t0)
		// The receiver stores a text once per message ID, so the same
		// counter again is a different text. This one's sender time is
		// older than 4's, so it is no reset, and 2 is not missing: a
		// stale copy, ignored.
		g.observe(2, 1002, t0)
		if got := ranges(g); !slices.Equal(got, []string{"3-3"}) || g.High != 4 {
			t.Fatalf("ranges %v, high %d", got, g.High)
		}
	})
	t.Run("reset", func(t *testing.T) {
		g := &gapTrack{}
		g.observe(1, 1001, t0)
		g.observe(100, 1100, t0) // 2-99 missing
		g.report("n1", t0.Add(grace), grace)
		// The sender's store came back from a backup at counter 51: its
		// next text has counter 51 and a newer time. No bogus gap, and
		// no fills from the old count.
		g.observe(51, 5000, t0.Add(2*grace))
		if g.High != 51 || len(g.Gaps) != 0 {
			t.Fatalf("after the reset: high %d, ranges %v", g.High, ranges(g))
		}
		if _, opened := g.observe(52, 5001, t0); opened || len(g.Gaps) != 0 {
			t.Fatalf("after the reset 52 opened %v, ranges %v", opened, ranges(g))
		}
	})
	t.Run("huge counter", func(t *testing.T) {
		g := &gapTrack{}
		g.observe(1, 1001, t0)
		g.observe(1<<60, 1002, t0)
		count := g.report("n1", t0.Add(grace), grace)
		if count != 1<<60-2 {
			t.Fatalf("count %d", count)
		}
		if got := missingText(count, "mallory"); got != "1000 or more messages from mallory may be missing" {
			t.Fatalf("text %q", got)
		}
		if shownMissing(count) != MaxMissing {
			t.Fatalf("shown %d", shownMissing(count))
		}
		// Filling every other counter would split the range without end:
		// at most maxGapRanges ranges are kept, the highest.
		for c := uint64(3); c < 3+4*maxGapRanges; c += 2 {
			g.observe(c, 1001, t0) // sent before the huge one
		}
		if len(g.Gaps) != maxGapRanges {
			t.Fatalf("%d ranges kept, want %d", len(g.Gaps), maxGapRanges)
		}
		if last := g.Gaps[len(g.Gaps)-1]; last.To != 1<<60-1 {
			t.Fatalf("the highest range ends at %d", last.To)
		}
		g.observe(math.MaxUint64, 1004, t0) // no overflow at the top
		if last := g.Gaps[len(g.Gaps)-1]; last.From != 1<<60+1 || last.To != math.MaxUint64-1 {
			t.Fatalf("the top range is %d-%d", last.From, last.To)
		}
		if g.report("n2", t0.Add(grace), grace) != math.MaxUint64-1-(1<<60) {
			t.Fatal("wrong count for the top range")
		}
	})
}

// A counter rides in the payload of 1:1 texts only, and a payload without
// one (from an older version) is read as before; a malformed extension
// is ignored, not the message.
func TestPayloadCounter(t *testing.T) {
	p := &payload{Type: ptText, ID: newMessageID(), TimeMS: 1, Text: "hi", Counter: 7}
	got, err := parsePayload(p.marshal())
	if err != nil || got.Counter != 7 || got.Text != "hi" {
		t.Fatalf("counter %d, text %q, %v", got.Counter, got.Text, err)
	}
	old := &payload{Type: ptText, ID: newMessageID(), TimeMS: 1, Text: "from before"}
	if got, err := parsePayload(old.marshal()); err != nil || got.Counter != 0 || got.Text != "from before" {
		t.Fatalf("old payload: counter %d, %v", got.Counter, err)
	}
	odd := &payload{Type: ptText, ID: newMessageID(), TimeMS: 1, Text: "odd", Data: []byte{1, 0, 0}}
	if got, err := parsePayload(odd.marshal()); err != nil || got.Counter != 0 || got.Text != "odd" {
		t.Fatalf("malformed extension: counter %d, %v", got.Counter, err)
	}
	unknown := &payload{Type: ptText, ID: newMessageID(), TimeMS: 1, Text: "new",
		Data: []byte{9, 0, 0, 0, 1, 0xff, extCounter, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 3}}
	if got, err := parsePayload(unknown.marshal()); err != nil || got.Counter != 3 {
		t.Fatalf("unknown extension before the counter: counter %d, %v", got.Counter, err)
	}
	group := &payload{Type: ptGroup, ID: newMessageID(), Data: []byte("engine data"), Counter: 9}
	if got, err := parsePayload(group.marshal()); err != nil || got.Counter != 0 || string(got.Data) != "engine data" {
		t.Fatalf("group payload: counter %d, data %q, %v", got.Counter, got.Data, err)
	}
}

// setGapGrace shortens the grace period for a test.
func setGapGrace(t *testing.T, d time.Duration) {
	prev := gapGraceNS.Swap(int64(d))
	t.Cleanup(func() { gapGraceNS.Store(prev) })
}

// notices returns the missing-messages notices of a conversation.
func notices(t testing.TB, n *Node, contact string) []Message {
	msgs, err := n.Messages(contact, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []Message
	for _, m := range msgs {
		if m.Direction == dirSystem && m.Kind == KindMissing {
			out = append(out, m)
		}
	}
	return out
}

// waitEvent waits for an event that satisfies ok.
func waitEvent(t testing.TB, evs <-chan Event, what string, ok func(Event) bool) Event {
	t.Helper()
	timeout := time.After(45 * time.Second)
	for {
		select {
		case ev, open := <-evs:
			if !open {
				t.Fatalf("event stream closed waiting for %s", what)
			}
			if ok(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// A relay that acknowledges a deposit and then loses it no longer means
// silence: bob gets the texts before and after it, then a notice that a
// message from alice may be missing (on the event stream and in the
// conversation), and the notice goes when the text arrives after all,
// here from his second mailbox, where alice's outbox put it once that
// relay was back.
func TestLostDepositShowsMissingMessages(t *testing.T) {
	setGapGrace(t, time.Second)
	addr1 := startRelay(t, relayCfg())
	r2 := newRelayProc(t)
	aHome, bHome := newHome(t, "alice"), newHome(t, "bob")
	a := startNodeCfg(t, Config{Home: aHome})
	defer func() { a.stop(t) }()
	both := []string{addr1, r2.addr}
	b := startNodeCfg(t, Config{Home: bHome, Relays: both})
	waitMailboxes(t, b, 2)
	befriend(t, a, b)
	ri1, err := relay.ParseRelayAddr(addr1)
	if err != nil {
		t.Fatal(err)
	}
	b.n.mu.Lock()
	rec1 := *b.n.mailboxes[ri1.ID]
	b.n.mu.Unlock()
	b.stop(t)
	r2.halt()

	ctx := context.Background()
	for _, text := range []string{"one", "two", "three"} {
		m, err := a.n.Send(ctx, SendRequest{To: "bob", Text: text})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.n.WaitState(ctx, m.ID, StateSent); err != nil {
			t.Fatal(err)
		}
	}
	// Relay 1 loses "two": it is acknowledged away with bob's owner key.
	loseSecond(t, ri1, rec1)

	b = startNodeCfg(t, Config{Home: bHome, Relays: []string{addr1}})
	evs, cancel := b.n.Subscribe(0)
	waitFor(t, "the texts relay 1 kept", func() bool {
		return slices.Equal(texts(t, b.n, "alice", "in"), []string{"one", "three"})
	})
	ev := waitEvent(t, evs, "a missing event", func(ev Event) bool { return ev.Type == EventMissing })
	cancel()
	if ev.From != "alice" || ev.Missing == nil || *ev.Missing != 1 || ev.Message == nil || ev.Message.Kind != KindMissing {
		t.Fatalf("missing event %+v", ev)
	}
	ns := notices(t, b.n, "alice")
	if len(ns) != 1 || ns[0].Text != "1 message from alice may be missing" || ns[0].ID != ev.Message.ID {
		t.Fatalf("notices %+v", ns)
	}
	if _, err := b.n.Send(ctx, SendRequest{To: "alice", Kind: KindReaction, Target: ns[0].ID, Text: "👍"}); err == nil {
		t.Fatal("a reaction to the notice was accepted")
	}
	b.stop(t)

	// Relay 2 comes back; alice's outbox gives it what it has not
	// confirmed ("two": bob's receipts ended the copies of the others).
	r2.start()
	waitFor(t, "alice's redundant deposits", func() bool { return outboxLen(t, a.n) == 0 })
	b = startNodeCfg(t, Config{Home: bHome, Relays: both})
	defer b.stop(t)
	if ns := notices(t, b.n, "alice"); len(ns) != 1 {
		t.Fatalf("after a restart: notices %+v", ns)
	}
	evs, cancel = b.n.Subscribe(0)
	defer cancel()
	waitFor(t, "the lost text from relay 2", func() bool {
		return slices.Equal(texts(t, b.n, "alice", "in"), []string{"one", "three", "two"})
	})
	ev = waitEvent(t, evs, "the notice withdrawn", func(ev Event) bool { return ev.Type == EventMissing })
	if ev.Missing == nil || *ev.Missing != 0 || ev.Message == nil || !ev.Message.Deleted {
		t.Fatalf("missing event %+v", ev)
	}
	if ns := notices(t, b.n, "alice"); len(ns) != 0 {
		t.Fatalf("notices after the text arrived: %+v", ns)
	}
}

// loseSecond makes a relay lose the second of the three envelopes in a
// mailbox (an owner's acknowledgement deletes it) and checks that the
// others stay.
func loseSecond(t *testing.T, ri peer.AddrInfo, rec mailboxRec) {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var mbox relay.ID
	copy(mbox[:], rec.Mailbox)
	c := &relay.Client{}
	held := func(ackSecond bool) int {
		sub, err := c.Subscribe(context.Background(), h, ri, mbox, ed25519.PrivateKey(rec.Owner), false)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close() // flushes the ack
		select {
		case <-sub.Drained():
		case <-time.After(10 * time.Second):
			t.Fatal("relay 1 did not send its backlog")
		}
		var ds []*relay.Deliver
		for more := true; more; {
			select {
			case d := <-sub.Messages():
				ds = append(ds, d)
			default:
				more = false
			}
		}
		if ackSecond && len(ds) == 3 {
			if err := sub.Ack(ds[1].Message); err != nil {
				t.Fatal(err)
			}
		}
		return len(ds)
	}
	if n := held(true); n != 3 {
		t.Fatalf("relay 1 held %d envelopes, want 3", n)
	}
	if n := held(false); n != 2 {
		t.Fatalf("relay 1 holds %d envelopes after losing one, want 2", n)
	}
}

// A sender's counter survives its restarts (it is kept in each text's
// record), and what is not a text takes none: edits, reactions and
// typing indicators in between leave the receiver with no gap.
func TestCounterAcrossRestartAndOtherKinds(t *testing.T) {
	setGapGrace(t, 0)
	aHome := newHome(t, "alice")
	a := startNode(t, aHome)
	b := startNode(t, newHome(t, "bob"))
	defer b.stop(t)
	befriend(t, a, b)
	ctx := context.Background()
	first := sendAndWaitDelivered(t, a.n, "one")
	if _, err := a.n.Send(ctx, SendRequest{To: "bob", Kind: KindEdit, Target: first.ID, Text: "one, edited"}); err != nil {
		t.Fatal(err)
	}
	if err := a.n.SetTyping("bob", true); err != nil {
		t.Fatal(err)
	}
	sendAndWaitDelivered(t, a.n, "two")
	a.stop(t)
	a = startNode(t, aHome)
	defer a.stop(t)
	sendAndWaitDelivered(t, a.n, "three")

	bob := b.n.cert.Account()
	a.n.mu.Lock()
	var counters []uint64
	err := a.n.tabs.messages.ScanSeq(bob[:], 0, math.MaxUint64, func(_ uint64, v []byte) error {
		var m msgRec
		if err := decodeMsgRec(v, &m); err != nil {
			return err
		}
		counters = append(counters, m.Counter)
		return nil
	})
	a.n.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(counters, []uint64{1, 2, 3}) {
		t.Fatalf("alice's texts have counters %v, want 1 2 3", counters)
	}
	b.n.mu.Lock()
	g := b.n.trackLocked(a.n.cert.DeviceID(), a.n.cert.Account())
	b.n.mu.Unlock()
	if g.High != 3 || len(g.Gaps) != 0 {
		t.Fatalf("bob's tracker: high %d, ranges %v", g.High, ranges(g))
	}
	if ns := notices(t, b.n, "alice"); len(ns) != 0 {
		t.Fatalf("notices %+v", ns)
	}
}

func sendAndWaitDelivered(t *testing.T, n *Node, text string) Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := n.Send(ctx, SendRequest{To: "bob", Text: text})
	if err != nil {
		t.Fatal(err)
	}
	if m, err = n.WaitState(ctx, m.ID, StateDelivered); err != nil {
		t.Fatalf("%q: %v", text, err)
	}
	return m
}
