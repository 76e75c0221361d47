package node

import (
	"context"
	"slices"
	"testing"
	"time"
)

// Bob restores his home from a week-old copy, on day 15 of a friendship
// (issue 17): the recovery starts from the card of alice his copy holds,
// which must still be valid. Alice's card rides on her next message
// whenever her prekeys rotate (routeKey), so the copy, taken on day 8,
// holds her day-8 card (its signed prekey valid to day 22), not the
// day-0 one (expired on day 14). Alice's next message and bob's reply
// arrive after the automatic recovery, each side shows one notice, and
// alice's history is whole.
func TestSessionRecoveryWeekOldCopy(t *testing.T) {
	clock := &testClock{}
	a := startClocked(t, clock, newHome(t, "alice"))
	defer func() { a.stop(t) }()
	bHome := newHome(t, "bob")
	b := startClocked(t, clock, bHome)
	befriend(t, a, b)
	sendTo(t, a.n, "bob", "day 0")
	sendTo(t, b.n, "alice", "day 0, bob")
	clock.advance(8 * 24 * time.Hour) // both rotate their prekeys
	sendTo(t, a.n, "bob", "day 8")
	sendTo(t, b.n, "alice", "day 8, bob")
	b.stop(t)
	old := copyHome(t, bHome)
	b = startClocked(t, clock, bHome)
	sendTo(t, b.n, "alice", "after the copy, bob")
	sendTo(t, a.n, "bob", "after the copy")
	b.stop(t)

	clock.advance(7 * 24 * time.Hour) // day 15: the copy is a week old
	b = startClocked(t, clock, old)
	defer func() { b.stop(t) }()
	ctx := context.Background()
	m, err := a.n.Send(ctx, SendRequest{To: "bob", Text: "after restore"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's text on bob's restored device", func() bool {
		return slices.Contains(texts(t, b.n, "alice", "in"), "after restore")
	})
	waitFor(t, "the text delivered", func() bool { return find(t, a.n, "bob", m.ID).State == StateDelivered })
	// Bob's copy may follow alice's ratchet and read her text, while
	// his reply fails at hers (his ratchet went back): her device then
	// starts the recovery, from the card of bob she holds, and his
	// device sends the reply again. So no sendTo.
	if _, err := b.n.Send(ctx, SendRequest{To: "alice", Text: "reply"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's reply at alice", func() bool { return slices.Contains(texts(t, a.n, "bob", "in"), "reply") })
	waitFor(t, "a notice on each side", func() bool {
		return len(sessionNotices(t, a.n, "bob")) == 1 && len(sessionNotices(t, b.n, "alice")) == 1
	})
	if got, want := texts(t, a.n, "bob", "out"), []string{"day 0", "day 8", "after the copy", "after restore"}; !slices.Equal(got, want) {
		t.Fatalf("alice's sent texts %q, want %q", got, want)
	}
	if got, want := texts(t, a.n, "bob", "in"), []string{"day 0, bob", "day 8, bob", "after the copy, bob", "reply"}; !slices.Equal(got, want) {
		t.Fatalf("alice's received texts %q, want %q", got, want)
	}
}
