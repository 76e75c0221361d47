package node

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/hushnet/hush/crypto/identity"
)

// queueDrained reports whether r has nothing left to send to device dev:
// everything queued for it was acknowledged (after dev committed it).
func queueDrained(r *running, dev identity.DeviceID) bool {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	q := r.n.queues[dev]
	return q == nil || len(q.pending) == 0
}

func isBlocked(t *testing.T, r *running, name string) bool {
	t.Helper()
	bs, err := r.n.BlockedAccounts()
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(bs, func(b BlockedAccount) bool { return b.Name == name })
}

// A block made on the laptop reaches the phone (issue 17: blocks on
// every device): the phone drops its own message still queued to the
// blocked bob (shown failed), refuses to send him more, and drops what
// he sends next, like the laptop; the unblock reaches the phone too, and
// bob's messages flow to both again. A device linked later gets the
// block with the history.
func TestBlockOnEveryDevice(t *testing.T) {
	laptop := startNode(t, newHome(t, "alice"))
	defer laptop.stop(t)
	bobHome := newHome(t, "bob")
	bob := startNode(t, bobHome)
	defer func() { bob.stop(t) }()
	befriend(t, laptop, bob)
	phone := startNode(t, linkDevice(t, laptop, "phone"))
	defer phone.stop(t)
	waitEntry(t, laptop, phone)
	ctx := context.Background()
	// Bob learns of the phone from the laptop's card.
	if _, err := laptop.n.Send(ctx, SendRequest{To: "bob", Text: "I have a phone now"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the laptop's message at bob", func() bool { return len(texts(t, bob.n, "alice", "in")) == 1 })
	if _, err := bob.n.Send(ctx, SendRequest{To: "alice", Text: "hi alice"}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*running{laptop, phone} {
		waitFor(t, "bob's first message on "+d.home, func() bool { return len(texts(t, d.n, "bob", "in")) == 1 })
	}

	bob.stop(t) // what the phone sends him now waits in its queue
	queued, err := phone.n.Send(ctx, SendRequest{To: "bob", Text: "QUEUED-ON-PHONE"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := laptop.n.BlockContact("bob"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the block on the phone", func() bool { return isBlocked(t, phone, "bob") && contactNamed(t, phone.n, "bob").Blocked })
	waitFor(t, "the phone's queued message dropped", func() bool {
		m, err := phone.n.WaitState(ctx, queued.ID, StateQueued)
		return err == nil && m.State == StateFailed && m.Error == errBlockedUnsent
	})
	if _, err := phone.n.Send(ctx, SendRequest{To: "bob", Text: "more"}); !errors.Is(err, ErrBlocked) {
		t.Fatalf("sending from the phone to the blocked bob: %v", err)
	}

	// Bob writes while blocked: both devices take it off the wire and
	// drop it (his queues to them drain: each acknowledged it).
	bob = startNode(t, bobHome)
	if _, err := bob.n.Send(ctx, SendRequest{To: "alice", Text: "BLOCKED-MARKER"}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*running{laptop, phone} {
		waitFor(t, "bob's message taken by "+d.home, func() bool { return queueDrained(bob, d.n.cert.DeviceID()) })
	}
	for _, d := range []*running{laptop, phone} {
		if got := texts(t, d.n, "bob", "in"); len(got) != 1 {
			t.Fatalf("%s shows %q from the blocked bob", d.home, got)
		}
		if tabs := storeHolds(t, d.n, "BLOCKED-MARKER"); len(tabs) != 0 {
			t.Fatalf("%s stored the blocked bob's message in %v", d.home, tabs)
		}
	}

	if err := laptop.n.UnblockContact("bob"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unblock on the phone", func() bool { return !isBlocked(t, phone, "bob") && !contactNamed(t, phone.n, "bob").Blocked })
	if _, err := bob.n.Send(ctx, SendRequest{To: "alice", Text: "after the unblock"}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*running{laptop, phone} {
		waitFor(t, "bob's message after the unblock on "+d.home, func() bool {
			got := texts(t, d.n, "bob", "in")
			return len(got) == 2 && got[1] == "after the unblock"
		})
	}
	if _, err := phone.n.Send(ctx, SendRequest{To: "bob", Text: "welcome back"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the phone's message at bob", func() bool {
		got := texts(t, bob.n, "alice", "in")
		return slices.Contains(got, "welcome back")
	})
	if got := texts(t, bob.n, "alice", "in"); slices.Contains(got, "QUEUED-ON-PHONE") {
		t.Fatalf("the message queued before the block reached bob: %q", got)
	}

	// Blocked again: a device linked now has the block from the start.
	if _, err := phone.n.BlockContact("bob"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the phone's block on the laptop", func() bool { return isBlocked(t, laptop, "bob") })
	tablet := startNode(t, linkDevice(t, laptop, "tablet"))
	defer tablet.stop(t)
	if !isBlocked(t, tablet, "bob") || !contactNamed(t, tablet.n, "bob").Blocked {
		t.Fatal("the block did not come with the history")
	}
}
