package node

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/hushnet/hush/crypto/identity"
)

// settledOut waits until r's latest message to contact has left the queue
// and returns it.
func settledOut(t *testing.T, r *running, contact string) Message {
	t.Helper()
	var last Message
	waitFor(t, "the message to "+contact+" settled", func() bool {
		ms, _ := r.n.Messages(contact, 0)
		for _, m := range ms {
			if m.Direction == "out" {
				last = m
			}
		}
		return last.ID != "" && last.State != StateQueued
	})
	return last
}

// A one-time invitation used twice, however it races (issue 17): two
// people read its record before either writes, and write at once;
// alice takes whichever first message comes first as her contact and
// refuses the other, whose sender sees why. A deleted invitation refuses
// a late first message the same way, and a link whose record is gone is
// a clear error at `contact add`. Nothing of the refused sender is kept
// at alice: no contact, no request.
func TestInvitationSecondUse(t *testing.T) {
	addr := startRelay(t, relayCfg())
	a := startNodeCfg(t, Config{Home: newHome(t, "alice"), Relays: []string{addr}})
	defer a.stop(t)
	waitMailbox(t, a)
	ctx := context.Background()
	inv, err := a.n.CreateInvite(ctx, "the winner", "")
	if err != nil {
		t.Fatal(err)
	}
	b := startNode(t, newHome(t, "bob"))
	defer b.stop(t)
	c := startNode(t, newHome(t, "carol"))
	defer c.stop(t)
	for _, r := range []*running{b, c} {
		if _, err := r.n.AddContact("alice", inv.Link); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for _, r := range []*running{b, c} {
		wg.Go(func() {
			if _, err := r.n.Send(ctx, SendRequest{To: "alice", Text: "I have your invitation"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	mb, mc := settledOut(t, b, "alice"), settledOut(t, c, "alice")
	winner, loser, lost := b, c, mc
	if mb.State == StateFailed {
		winner, loser, lost = c, b, mb
	}
	if lost.State != StateFailed || lost.Error != errInviteRefused {
		t.Fatalf("the second use: %s %q (the first: %s %q)", lost.State, lost.Error, mb.State, mc.State)
	}
	if m := settledOut(t, winner, "alice"); m.State == StateFailed {
		t.Fatalf("both uses refused: %q", m.Error)
	}
	waitFor(t, "the winner alice's contact", func() bool {
		cs, _ := a.n.Contacts()
		return len(cs) == 1 && cs[0].Name == "the winner" && len(texts(t, a.n, "the winner", "in")) == 1
	})
	winnerSelf, _ := winner.n.Self()
	if cs, _ := a.n.Contacts(); cs[0].Account != winnerSelf.Account {
		t.Fatal("alice's contact is not the first user")
	}
	// The loser writes again: refused again.
	if _, err := loser.n.Send(ctx, SendRequest{To: "alice", Text: "let me in"}); err != nil {
		t.Fatal(err)
	}
	if m := settledOut(t, loser, "alice"); m.State != StateFailed || m.Error != errInviteRefused {
		t.Fatalf("the second use again: %s %q", m.State, m.Error)
	}

	// A deleted invitation: dave read it before alice deleted it.
	inv2, err := a.n.CreateInvite(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	d := startNode(t, newHome(t, "dave"))
	defer d.stop(t)
	if _, err := d.n.AddContact("alice", inv2.Link); err != nil {
		t.Fatal(err)
	}
	if err := a.n.DeleteInvite(ctx, inv2.ID); err != nil {
		t.Fatal(err)
	}
	if is, _ := a.n.Invites(); len(is) != 1 || is[0].ID != inv.ID {
		t.Fatalf("alice's invitations after the delete: %+v", is)
	}
	if _, err := d.n.Send(ctx, SendRequest{To: "alice", Text: "from a deleted invitation"}); err != nil {
		t.Fatal(err)
	}
	if m := settledOut(t, d, "alice"); m.State != StateFailed || m.Error != errInviteRefused {
		t.Fatalf("a deleted invitation's late use: %s %q", m.State, m.Error)
	}
	if cs, _ := a.n.Contacts(); len(cs) != 1 {
		t.Fatalf("alice's contacts after refused uses: %+v", cs)
	}
	if rs, _ := a.n.Requests(); len(rs) != 0 {
		t.Fatalf("a refused use made a request: %+v", rs)
	}
	// Deleting the used one, once its record left the relay, is
	// harmless (it used to sign with a key it no longer had).
	waitFor(t, "the used invitation's record deleted", func() bool {
		id, _ := hex.DecodeString(inv.ID)
		a.n.mu.Lock()
		defer a.n.mu.Unlock()
		var rec linkRec
		return a.n.getJSON(a.n.tabs.links, id, &rec) == nil && rec.Used && rec.Owner == nil
	})
	if err := a.n.DeleteInvite(ctx, inv.ID); err != nil {
		t.Fatal(err)
	}

	// Read after the records went: a clear error, nothing added.
	e := startNode(t, newHome(t, "erin"))
	defer e.stop(t)
	for _, l := range []string{inv.Link, inv2.Link} {
		_, err := e.n.AddContact("alice", l)
		if !errors.Is(err, ErrLinkGone) || !strings.Contains(err.Error(), "invitation was used or deleted") {
			t.Fatalf("a used or deleted invitation's link: %v", err)
		}
	}
	if cs, _ := e.n.Contacts(); len(cs) != 0 {
		t.Fatalf("a dead link left a contact: %+v", cs)
	}
}

// The same race while alice is offline: both first messages wait in her
// mailbox; back, she takes the first she drains as her contact and
// refuses the other (nothing kept, no request). Its sender saw only the
// relay's receipt and cannot learn of the refusal (no session carries
// it): its message stays "sent".
func TestInvitationSecondUseOffline(t *testing.T) {
	addr := startRelay(t, relayCfg())
	aHome := newHome(t, "alice")
	a := startNodeCfg(t, Config{Home: aHome, Relays: []string{addr}})
	waitMailbox(t, a)
	ctx := context.Background()
	inv, err := a.n.CreateInvite(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	a.stop(t)
	var users []*running
	for _, name := range []string{"bob", "carol"} {
		r := startNode(t, newHome(t, name))
		defer r.stop(t)
		if _, err := r.n.AddContact("alice", inv.Link); err != nil {
			t.Fatal(err)
		}
		if _, err := r.n.Send(ctx, SendRequest{To: "alice", Text: "hello from " + name}); err != nil {
			t.Fatal(err)
		}
		if m := settledOut(t, r, "alice"); m.State != StateSent {
			t.Fatalf("%s's message: %s %q", name, m.State, m.Error)
		}
		users = append(users, r)
	}
	var seen struct {
		sync.Mutex
		from map[identity.AccountID]bool
	}
	seen.from = map[identity.AccountID]bool{}
	taps.Store(&tapFuncs{receive: func(_ *Node, from identity.AccountID) {
		seen.Lock()
		defer seen.Unlock()
		for _, r := range users {
			if r.n.cert.Account() == from {
				seen.from[from] = true
			}
		}
	}})
	defer taps.Store(nil)
	a = startNodeCfg(t, Config{Home: aHome, Relays: []string{addr}})
	defer a.stop(t)
	waitFor(t, "one of them alice's contact", func() bool {
		cs, _ := a.n.Contacts()
		return len(cs) == 1 && len(texts(t, a.n, cs[0].Name, "in")) == 1
	})
	waitFor(t, "both first messages taken from alice's mailbox", func() bool {
		seen.Lock()
		defer seen.Unlock()
		return len(seen.from) == 2
	})
	if cs, _ := a.n.Contacts(); len(cs) != 1 {
		t.Fatalf("alice's contacts: %+v", cs)
	}
	if rs, _ := a.n.Requests(); len(rs) != 0 {
		t.Fatalf("the second use made a request: %+v", rs)
	}
}
