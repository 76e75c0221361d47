package node

import (
	"slices"
	"sync/atomic"
	"testing"
)

// A group text whose write fails at a member is not lost (messaging.md
// "A failed write loses nothing"): the member's engine is read again from
// the store, so the text is not taken for one already seen, and the next
// anti-entropy round brings it.
func TestGroupFailedReceiveWriteLosesNothing(t *testing.T) {
	nodes := makeGroup(t, 2, "club")
	admin, member := nodes[0], nodes[1]
	texts := func() []string { return groupTextsOnly(t, member, "club") }
	sendGroupEventually(t, admin, "club", "warm")
	waitFor(t, "the warm-up at the member", func() bool { return slices.Contains(texts(), "warm") })
	const text = "its write fails"
	var failed atomic.Bool
	taps.Store(&tapFuncs{failCommit: func(n *Node, t *txn) bool {
		return n == member.n && t.shows(text) && failed.CompareAndSwap(false, true)
	}})
	defer taps.Store(nil)
	sendGroupEventually(t, admin, "club", text)
	waitFor(t, "the member's failed write", failed.Load)
	waitFor(t, "the text at the member after its failed write", func() bool {
		return slices.Contains(texts(), text)
	})
	if got := texts(); !slices.Equal(got, []string{"warm", text}) {
		t.Fatalf("the member has %q", got)
	}
}
