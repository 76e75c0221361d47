// Package events fans a node's events out: to API subscribers (with a
// short history so a client can resume after a reconnect) and to callers
// waiting for one message to change (Node.WaitState). It owns its state
// and its lock and knows nothing of the node that publishes.
package events

import (
	"sync"

	"github.com/hushnet/hush/api/apitypes"
)

// Limits.
const (
	History        = 1000 // events kept for Subscribe(after) replay
	SubscriberSize = 1024 // buffered events per subscriber before it is dropped
)

// Hub fans events out. The zero value is not usable; call New.
type Hub struct {
	mu      sync.Mutex
	seq     uint64
	history []apitypes.Event // ring of the last History events; history[(first+i)%len] is the i-th oldest
	first   int
	subs    map[chan apitypes.Event]struct{}
	waiters map[string][]chan struct{} // message ID → Wait callers
	closed  bool
}

// New returns an empty hub.
func New() *Hub {
	return &Hub{subs: make(map[chan apitypes.Event]struct{}), waiters: make(map[string][]chan struct{})}
}

// Publish numbers ev, delivers it, and releases the waiters on its
// message. A subscriber whose buffer is full is dropped (its channel
// closed) rather than blocking the publisher.
func (h *Hub) Publish(ev apitypes.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ev.Message != nil {
		for _, ch := range h.waiters[ev.Message.ID] {
			close(ch)
		}
		delete(h.waiters, ev.Message.ID)
	}
	if h.closed {
		return
	}
	h.seq++
	ev.Seq = h.seq
	if len(h.history) < History {
		h.history = append(h.history, ev)
	} else {
		h.history[h.first] = ev
		h.first = (h.first + 1) % History
	}
	for ch := range h.subs {
		select {
		case ch <- ev:
		default:
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// Wait returns a channel closed by the next event on message id (or by
// Close). The caller registers before it lets go of whatever lock orders
// its check against the publisher, so no event falls in between.
func (h *Hub) Wait(id string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan struct{})
	if h.closed {
		close(ch)
		return ch
	}
	h.waiters[id] = append(h.waiters[id], ch)
	return ch
}

// Subscribe returns a channel of the events after seq (0: only new ones)
// and a cancel function. A subscriber that falls SubscriberSize events
// behind is dropped: its channel is closed.
func (h *Hub) Subscribe(after uint64) (<-chan apitypes.Event, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan apitypes.Event, SubscriberSize)
	if h.closed {
		close(ch)
		return ch, func() {}
	}
	if after > 0 {
		for i := range h.history {
			if ev := h.history[(h.first+i)%len(h.history)]; ev.Seq > after {
				ch <- ev
			}
		}
	}
	h.subs[ch] = struct{}{}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// Close ends every subscription and releases every waiter.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.subs {
		close(ch)
	}
	h.subs = nil
	for id, chs := range h.waiters {
		for _, ch := range chs {
			close(ch)
		}
		delete(h.waiters, id)
	}
}
