package relay

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
)

// sessionGoroutines counts the relay's goroutines running a session
// function, all of them and the writers among them (the backlog's and
// the push writers).
func sessionGoroutines() (all, writers int) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if i := strings.Index(g, "\ncreated by "); i >= 0 {
			g = g[:i] // the frames only, not who started it
		}
		if strings.Contains(g, "relay.(*session).") || strings.Contains(g, "relay.(*Server).runSession") {
			all++
		}
		if strings.Contains(g, "relay.(*session).write") || strings.Contains(g, "relay.(*Server).runSession") {
			writers++
		}
	}
	return all, writers
}

// An idle live subscription is one goroutine on the relay, its reader: a
// push starts a writer that ends once the push is sent, and a closed
// subscription leaves no goroutine (docs/RELAY.md "Capacity and libp2p
// limits"). Pushes still arrive at once and in order.
func TestIdleSubscriptionOneGoroutine(t *testing.T) {
	r := startRelay(t, Config{})
	c := &Client{}
	ctx := context.Background()
	const n = 3
	type live struct {
		o   *owner
		sub *Subscription
	}
	var subs []live
	for range n {
		h := newHost(t)
		o := createMailbox(t, c, h, r)
		sub, err := c.Subscribe(ctx, h, r.info, o.created.Mailbox, o.key, true)
		if err != nil {
			t.Fatal(err)
		}
		waitDrained(t, sub)
		subs = append(subs, live{o, sub})
	}
	idle := func(what string) {
		t.Helper()
		eventually(t, what, func() bool {
			all, writers := sessionGoroutines()
			return all == n && writers == 0
		})
	}
	idle("idle subscriptions to be one goroutine each")

	h := newHost(t)
	for round := range 3 {
		for _, l := range subs {
			var ids []MessageID
			for range 5 {
				id, err := c.Deposit(ctx, h, r.info, l.o.created.Deposit, sealed(t, 100))
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			got := recvN(t, l.sub, len(ids))
			for i, d := range got {
				if d.Message != ids[i] {
					t.Fatalf("round %d: push %d out of order", round, i)
				}
				l.sub.Ack(d.Message)
			}
		}
		idle("the writers and ack workers to end")
	}

	for _, l := range subs {
		l.sub.Close()
	}
	eventually(t, "closed subscriptions to leave no goroutine", func() bool {
		all, _ := sessionGoroutines()
		return all == 0
	})
}

// A subscriber that stops reading cannot make the relay queue without
// bound: past maxPending queued pushes the session ends at once (not at
// the write deadline, set far off here), and nothing is lost: the next
// subscription gets every envelope.
func TestSlowSubscriberSessionEnds(t *testing.T) {
	r := startRelay(t, Config{MaxMessages: 20000, PeerRate: -1, IPRate: -1, RequestTimeout: Duration(time.Hour)})
	c := &Client{}
	ctx := context.Background()
	h := newHost(t)
	o := createMailbox(t, c, h, r)
	sub, err := c.Subscribe(ctx, h, r.info, o.created.Mailbox, o.key, true)
	if err != nil {
		t.Fatal(err)
	}
	waitDrained(t, sub)
	// Nothing reads sub.Messages: the client stops reading the stream
	// once its channel is full, the stream's window fills, the relay's
	// writer blocks and the pushes queue.
	d, err := c.OpenDepositor(ctx, newHost(t), r.info)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	env := sealed1K(t)
	sent := 0
	for sent < maxPending+2000 {
		items := make([]DepositItem, 100)
		for i := range items {
			e := append([]byte(nil), env...)
			e[len(e)-1] ^= byte(sent + i) // distinct envelopes
			e[len(e)-2] ^= byte((sent + i) >> 8)
			items[i] = DepositItem{Deposit: o.created.Deposit, Envelope: e}
		}
		res, err := d.DepositMany(items)
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range res {
			if x.Err() != nil {
				t.Fatalf("deposit %d: %v", sent+i, x.Err())
			}
		}
		sent += len(items)
	}
	eventually(t, "the slow session to end on the relay", func() bool {
		all, _ := sessionGoroutines()
		return all == 0
	})
	sub.Close()
	if got := drain(t, c, h, r, o); len(got) != sent {
		t.Fatalf("next subscription got %d envelopes, want %d", len(got), sent)
	}
}

// A subscription that sends nothing for IdleTimeout is closed by the
// relay's idle sweep (one ticker for all sessions, no timer each); one
// whose owner pings stays open. Repeated: the sweep runs on a ticker.
func TestIdleSubscriptionClosed(t *testing.T) {
	r := startRelay(t, Config{IdleTimeout: Duration(time.Second)})
	ctx := context.Background()
	for round := range 2 {
		h := newHost(t)
		pinging, silent := &Client{PingInterval: 50 * time.Millisecond}, &Client{PingInterval: time.Hour}
		oa, ob := createMailbox(t, pinging, h, r), createMailbox(t, silent, h, r)
		a, err := pinging.Subscribe(ctx, h, r.info, oa.created.Mailbox, oa.key, true)
		if err != nil {
			t.Fatal(err)
		}
		b, err := silent.Subscribe(ctx, h, r.info, ob.created.Mailbox, ob.key, true)
		if err != nil {
			t.Fatal(err)
		}
		waitDrained(t, a)
		waitDrained(t, b)
		select {
		case <-b.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: a silent subscription still open after 10 idle timeouts", round)
		}
		select {
		case <-a.Done():
			t.Fatalf("round %d: a pinging subscription was closed: %v", round, a.Err())
		default:
		}
		// The pinging one still gets pushes.
		id, err := pinging.Deposit(ctx, h, r.info, oa.created.Deposit, sealed(t, 100))
		if err != nil {
			t.Fatal(err)
		}
		if d := recvN(t, a, 1)[0]; d.Message != id {
			t.Fatalf("round %d: push differs", round)
		}
		a.Close()
	}
}

// Deposits that race with a new live subscription are each delivered
// once: those committed before the backlog scan in the backlog, the rest
// pushed after Drained, never a push written beside the backlog.
// Repeated: the race is between goroutines.
func TestPushesRacingSubscribe(t *testing.T) {
	r := startRelay(t, Config{MaxMessages: 5000, PeerRate: -1, IPRate: -1})
	c := &Client{}
	ctx := context.Background()
	const n = 300
	for round := range 5 {
		h := newHost(t)
		o := createMailbox(t, c, h, r)
		d, err := c.OpenDepositor(ctx, newHost(t), r.info)
		if err != nil {
			t.Fatal(err)
		}
		env := sealed(t, 100)
		deposited := make(chan error, 1)
		go func() {
			for i := 0; i < n; i += 10 {
				items := make([]DepositItem, 10)
				for j := range items {
					e := append([]byte(nil), env...)
					e[len(e)-1] ^= byte(i + j)
					e[len(e)-2] ^= byte((i + j) >> 8)
					items[j] = DepositItem{Deposit: o.created.Deposit, Envelope: e}
				}
				if _, err := d.DepositMany(items); err != nil {
					deposited <- err
					return
				}
			}
			deposited <- nil
		}()
		sub, err := c.Subscribe(ctx, h, r.info, o.created.Mailbox, o.key, true)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[MessageID]bool{}
		for len(seen) < n {
			select {
			case m, ok := <-sub.Messages():
				if !ok {
					t.Fatalf("round %d: subscription ended after %d of %d: %v", round, len(seen), n, sub.Err())
				}
				if seen[m.Message] {
					t.Fatalf("round %d: a message delivered twice", round)
				}
				seen[m.Message] = true
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: %d of %d delivered", round, len(seen), n)
			}
		}
		if err := <-deposited; err != nil {
			t.Fatal(err)
		}
		waitDrained(t, sub)
		select {
		case m := <-sub.Messages():
			t.Fatalf("round %d: one more delivery (%x…) after all %d", round, m.Message[:4], n)
		default:
		}
		sub.Close()
		d.Close()
	}
}
