package node

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/node/gate"
)

// A phone woken by a push drains: it runs the node until every relay
// mailbox has given what it held and what is queued has gone, then stops
// (the mobile facade's Drain, docs/MOBILE.md). These report how far that
// is. Unlike the catch-up gate (mailbox.go), the drain gate has no
// deadline: it opens only once every mailbox was drained in this run.

// drainGate returns this run's drain gate (nil before the first run).
func (n *Node) drainGate() *gate.Gate[peer.ID] {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.drained
}

// WaitDrained waits until every relay mailbox of the running node has
// been drained since the run started: each envelope the relay held was
// received, stored and acknowledged. With no relays it returns once the
// run has started.
func (n *Node) WaitDrained(ctx context.Context) error {
	select {
	case <-n.ready:
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotRunning, ctx.Err())
	}
	select {
	case <-n.drainGate().Opened():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("node: relay mailboxes not drained: %w", ctx.Err())
	}
}

// Sendable returns how many queued outgoing entries wait for a device the
// node has a route to (a peer ID or a mailbox in its card): those a run
// can send now. Entries for a device with no route wait for a newer card
// and are not counted.
func (n *Node) Sendable() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := 0
	for id, q := range n.queues {
		_, direct := n.peerOfLocked(id)
		if !direct && !n.hasMailboxesLocked(id) {
			continue
		}
		for _, e := range q.pending {
			if e.durable {
				k++
			}
		}
	}
	return k
}

// EventHead returns the sequence number of the last event published: a
// subscriber that starts after it sees only new events.
func (n *Node) EventHead() uint64 { return n.events.Head() }

// LastEvent returns the sequence number of the last event numbered: a
// change made before the call (a message stored, a state set) has its
// events at or below it, published once its commit is done.
func (n *Node) LastEvent() uint64 { return n.events.Last() }
