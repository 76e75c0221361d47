// Package gate holds a node's start-up gates: a channel that opens once
// each of a set of keys (relays, here) is done, or once the gate is
// opened outright (a deadline, the end of the run). WaitLink waits on
// one (every configured relay's first mailbox attempt has ended), direct
// delivery on another (every mailbox was drained after the start).
package gate

import "sync"

// Gate opens when every key added before Seal is done. The zero value is
// not usable; call New.
type Gate[K comparable] struct {
	mu      sync.Mutex
	pending map[K]bool
	sealed  bool
	open    chan struct{}
}

// New returns a closed, unsealed gate.
func New[K comparable]() *Gate[K] {
	return &Gate[K]{pending: make(map[K]bool), open: make(chan struct{})}
}

// Add makes the gate wait for k. Keys added after Seal are ignored.
func (g *Gate[K]) Add(k K) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.sealed {
		g.pending[k] = true
	}
}

// Seal ends the adding: the gate opens now if nothing is pending, else
// when the last pending key is done.
func (g *Gate[K]) Seal() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sealed = true
	g.openIfDoneLocked()
}

// Done marks k done. Keys not pending are ignored.
func (g *Gate[K]) Done(k K) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.pending, k)
	g.openIfDoneLocked()
}

// Open opens the gate whatever is pending.
func (g *Gate[K]) Open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	clear(g.pending)
	g.sealed = true
	g.openIfDoneLocked()
}

// Opened is closed once the gate is open.
func (g *Gate[K]) Opened() <-chan struct{} { return g.open }

func (g *Gate[K]) openIfDoneLocked() {
	if !g.sealed || len(g.pending) > 0 {
		return
	}
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}
