package node

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/card"
)

// linkPasses records, per node, the latest start (on the node's clock)
// of a links-loop pass that finished.
type linkPasses struct {
	mu   sync.Mutex
	last map[*Node]time.Time
}

func tapLinkPasses(t *testing.T) *linkPasses {
	p := &linkPasses{last: map[*Node]time.Time{}}
	taps.Store(&tapFuncs{links: func(n *Node, at time.Time) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if at.After(p.last[n]) {
			p.last[n] = at
		}
	}})
	t.Cleanup(func() { taps.Store(nil) })
	return p
}

// waitPass kicks r's links loop until a pass that began at or after at
// (r's clock) has finished.
func (p *linkPasses) waitPass(t *testing.T, r *running, at time.Time) {
	t.Helper()
	waitFor(t, "a links-loop pass after the clock moved", func() bool {
		p.mu.Lock()
		done := !p.last[r.n].Before(at)
		p.mu.Unlock()
		if !done {
			r.n.kickLinks()
		}
		return done
	})
}

// signedPrekeyID is the ID of the signed prekey in r's current card.
func signedPrekeyID(t *testing.T, r *running) uint32 {
	t.Helper()
	return cardOf(t, r).Devices[0].Bundle.SignedPrekey.ID
}

// A short link printed 35 days ago still works (issue 17): alice's clock
// moves on in weekly steps, her prekeys rotate, and at each step the
// links loop puts her current card into the record. Bob, who kept only
// the link and whose clock moved too (a card from the first day would be
// refused as expired: its signed prekey lived 14 days), adds her, writes
// first, and they talk.
func TestShortLinkThirtyDaysOld(t *testing.T) {
	passes := tapLinkPasses(t)
	addr := startRelay(t, relayCfg())
	clock := &testClock{}
	a := startNodeCfg(t, Config{Home: newHome(t, "alice"), Relays: []string{addr}, Now: clock.now})
	defer a.stop(t)
	waitMailbox(t, a)
	ctx := context.Background()
	l, err := a.n.CreateAddress(ctx, false, "")
	if err != nil {
		t.Fatal(err)
	}
	firstCard := cardOf(t, a).Marshal()
	firstPrekey := signedPrekeyID(t, a)
	b := startNodeCfg(t, Config{Home: newHome(t, "bob"), Now: clock.now})
	defer b.stop(t)

	for range 5 { // 5 × (7 days + 1 hour): 35 days and 5 hours
		clock.advance(7*24*time.Hour + time.Hour)
		passes.waitPass(t, a, clock.now())
	}
	if signedPrekeyID(t, a) == firstPrekey {
		t.Fatal("alice's signed prekey did not rotate in 35 days")
	}
	if _, err := card.Parse(firstCard, clock.now()); err == nil {
		t.Fatal("the first day's card still parses 35 days later: the test would prove nothing")
	}

	// A device whose clock is a month ahead of alice's finds her card
	// out of date: a clear error, nothing added.
	ahead := startNodeCfg(t, Config{Home: newHome(t, "carol"), Now: func() time.Time { return clock.now().Add(30 * 24 * time.Hour) }})
	defer ahead.stop(t)
	if _, err := ahead.n.AddContact("alice", l.Link); !errors.Is(err, ErrLinkStale) {
		t.Fatalf("a link read a month ahead of its card: %v", err)
	}
	if cs, _ := ahead.n.Contacts(); len(cs) != 0 {
		t.Fatalf("an out-of-date link left a contact: %+v", cs)
	}

	c, err := b.n.AddContact("alice", l.Link)
	if err != nil {
		t.Fatalf("the 35-day-old short link: %v", err)
	}
	if c.Account != a.n.cert.Account().Hex() {
		t.Fatal("the short link gave another account")
	}
	if _, err := b.n.Send(ctx, SendRequest{To: "alice", Text: "found your 35-day-old address"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's request at alice", func() bool {
		rs, _ := a.n.Requests()
		return len(rs) == 1 && len(rs[0].Messages) == 1 && rs[0].Messages[0].Text == "found your 35-day-old address"
	})
	if _, err := a.n.AcceptRequest("bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.n.Send(ctx, SendRequest{To: "bob", Text: "hello bob"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's reply at bob", func() bool { return len(texts(t, b.n, "alice", "in")) == 1 })
}
