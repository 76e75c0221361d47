package node

import "sync"

// Event fan-out limits.
const (
	eventHistory   = 1000 // events kept for Subscribe(after) replay
	subscriberSize = 1024 // buffered events per subscriber before it is dropped
)

// hub fans events out to subscribers and keeps a short history so an API
// client can resume with Last-Event-ID.
type hub struct {
	mu      sync.Mutex
	seq     uint64
	history []Event // ring of the last eventHistory events; history[(first+i)%len] is the i-th oldest
	first   int
	subs    map[chan Event]struct{}
	closed  bool
}

func newHub() *hub { return &hub{subs: make(map[chan Event]struct{})} }

// publish numbers ev and delivers it. A subscriber whose buffer is full is
// dropped (its channel closed) rather than blocking the node.
func (h *hub) publish(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.seq++
	ev.Seq = h.seq
	if len(h.history) < eventHistory {
		h.history = append(h.history, ev)
	} else {
		h.history[h.first] = ev
		h.first = (h.first + 1) % eventHistory
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

func (h *hub) subscribe(after uint64) (<-chan Event, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan Event, subscriberSize)
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

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.subs {
		close(ch)
	}
	h.subs = nil
}

// Subscribe returns a channel of events after seq (0: only new ones) and a
// cancel function. A subscriber that falls too far behind is dropped: its
// channel is closed.
func (n *Node) Subscribe(after uint64) (<-chan Event, func()) { return n.events.subscribe(after) }
