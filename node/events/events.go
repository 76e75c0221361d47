// Package events fans a node's events out: to API subscribers and to
// callers waiting for one message to change (Node.WaitState). It owns its
// state and its lock and knows nothing of the node that publishes.
//
// Every event has a sequence number. The node numbers the events of a
// change before it queues the change's commit (Number), writes them in
// the same batch, and settles them once the commit is known (Settle):
// subscribers see events in sequence order, each once, whatever order
// concurrent commits finish in. A subscriber is a cursor: it reads the
// events after its sequence number from the recent ones kept in memory
// or, further back, from the persistent log (Log), then waits for new
// ones. A slow subscriber is never dropped; it falls behind and reads
// the log. One whose events were pruned from the log gets one gap event.
package events

import (
	"sort"
	"sync"

	"github.com/hushnet/hush/api/apitypes"
)

// Limits.
const (
	Recent  = 4096 // published events kept in memory for subscribers
	OutSize = 64   // buffered events per subscriber channel
	Chunk   = 256  // events a subscriber takes from memory or the log at a time
)

// Log is the persistent event log a Hub reads back; the node writes it
// (node/eventlog.go).
type Log interface {
	// Read returns the stored events with from <= Seq <= to, oldest
	// first, at most max of them. Numbers with no event (a failed
	// commit, a pruned event) are skipped.
	Read(from, to uint64, max int) ([]apitypes.Event, error)
}

// Config sets up a Hub. The zero value is a hub in memory only, numbering
// from 1.
type Config struct {
	// Log holds the events before the recent ones; nil: memory only (a
	// subscriber further behind than Recent events gets a gap event).
	Log Log
	// Last is the highest sequence number already used: numbering
	// continues after it.
	Last uint64
	// Oldest is the lowest sequence number the log may still hold (0 or
	// 1: nothing was pruned).
	Oldest uint64
}

// Hub fans events out. The zero value is not usable; call New or Open.
type Hub struct {
	mu      sync.Mutex
	log     Log
	next    uint64 // the number Number gives next
	head    uint64 // every number <= head is settled: published or abandoned
	oldest  uint64 // the lowest number a subscriber can still read
	pending map[uint64]pending
	// recent is a ring of the last Recent published events, in order;
	// recent[(first+i)%len] is the i-th oldest. Every published event
	// with Seq >= recentFrom is in it.
	recent     []apitypes.Event
	first      int
	recentFrom uint64
	subs       map[*sub]struct{}
	waiters    map[string][]chan struct{} // message ID → Wait callers
	closed     bool
}

type pending struct {
	ev      apitypes.Event
	settled bool
	ok      bool
}

type sub struct {
	out    chan apitypes.Event
	wake   chan struct{} // cap 1: the head moved
	stop   chan struct{} // closed by cancel or Close
	done   chan struct{} // closed when the pump has returned
	once   sync.Once
	cursor uint64 // the last number delivered (owned by the pump)
}

func (s *sub) end() { s.once.Do(func() { close(s.stop) }) }

// New returns an empty hub in memory only.
func New() *Hub { return Open(Config{}) }

// Open returns a hub that continues the log cfg describes.
func Open(cfg Config) *Hub {
	oldest := max(cfg.Oldest, 1)
	if cfg.Log == nil {
		oldest = cfg.Last + 1
	}
	return &Hub{
		log:        cfg.Log,
		next:       cfg.Last + 1,
		head:       cfg.Last,
		oldest:     oldest,
		pending:    make(map[uint64]pending),
		recentFrom: cfg.Last + 1,
		subs:       make(map[*sub]struct{}),
		waiters:    make(map[string][]chan struct{}),
	}
}

// Number gives evs the next sequence numbers, in order. The caller
// settles them with Settle once their commit is known; until then no
// later event reaches a subscriber.
func (h *Hub) Number(evs []apitypes.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range evs {
		evs[i].Seq = h.next
		h.pending[h.next] = pending{}
		h.next++
	}
}

// Settle publishes evs (numbered by Number) when ok, and releases the
// waiters on their messages; when not ok (their commit failed) their
// numbers are given up and nobody sees them.
func (h *Hub) Settle(evs []apitypes.Event, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.settleLocked(evs, ok)
}

func (h *Hub) settleLocked(evs []apitypes.Event, ok bool) {
	for _, ev := range evs {
		if ok && ev.Message != nil {
			for _, ch := range h.waiters[ev.Message.ID] {
				close(ch)
			}
			delete(h.waiters, ev.Message.ID)
		}
		if _, numbered := h.pending[ev.Seq]; numbered {
			h.pending[ev.Seq] = pending{ev: ev, settled: true, ok: ok}
		}
	}
	moved := false
	for {
		p, ok := h.pending[h.head+1]
		if !ok || !p.settled {
			break
		}
		delete(h.pending, h.head+1)
		h.head++
		moved = true
		if p.ok {
			h.remember(p.ev)
		}
	}
	if moved {
		for s := range h.subs {
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
}

// remember adds a published event to the recent ring.
func (h *Hub) remember(ev apitypes.Event) {
	if len(h.recent) < Recent {
		h.recent = append(h.recent, ev)
		return
	}
	h.recentFrom = h.recent[h.first].Seq + 1
	h.recent[h.first] = ev
	h.first = (h.first + 1) % Recent
	if h.log == nil {
		h.oldest = h.recentFrom
	}
}

// Publish numbers and settles ev at once: for a hub in memory only, or an
// event that needs no commit.
func (h *Hub) Publish(ev apitypes.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ev.Seq = h.next
	h.pending[h.next] = pending{}
	h.next++
	h.settleLocked([]apitypes.Event{ev}, true)
}

// Head returns the highest settled sequence number: every event up to it
// has been published (or its commit failed).
func (h *Hub) Head() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.head
}

// Last returns the number of the last event numbered: published, or
// numbered and waiting for its commit (abandoned if the commit fails).
func (h *Hub) Last() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.next - 1
}

// SetOldest raises the lowest number subscribers may read: the log's
// owner calls it before it deletes the events below it.
func (h *Hub) SetOldest(seq uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.oldest = max(h.oldest, seq)
}

// Oldest returns the lowest number subscribers may read.
func (h *Hub) Oldest() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.oldest
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
// and a cancel function. The events come in order, each once: first the
// stored ones after seq, then new ones as they are published. A seq older
// than the log's retention (or newer than any event) first gets one gap
// event. A subscriber that does not read is not dropped; it catches up
// from the log when it reads again. The channel is closed by cancel, by
// Close or if the log cannot be read.
func (h *Hub) Subscribe(after uint64) (<-chan apitypes.Event, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &sub{
		out:  make(chan apitypes.Event, OutSize),
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if h.closed {
		close(s.out)
		close(s.done)
		return s.out, func() {}
	}
	s.cursor = after
	if after == 0 {
		s.cursor = h.head
	}
	h.subs[s] = struct{}{}
	go h.pump(s)
	return s.out, func() {
		h.mu.Lock()
		delete(h.subs, s)
		h.mu.Unlock()
		s.end()
		<-s.done
	}
}

// pump feeds one subscriber from its cursor.
func (h *Hub) pump(s *sub) {
	defer close(s.done)
	defer close(s.out)
	for {
		batch, wait, ok := h.take(s)
		if !ok {
			return
		}
		if wait {
			select {
			case <-s.wake:
				continue
			case <-s.stop:
				return
			}
		}
		for _, ev := range batch {
			select {
			case s.out <- ev:
			case <-s.stop:
				return
			}
		}
	}
}

// take returns the subscriber's next events and moves its cursor past
// them, or wait when it has seen everything; ok is false when the
// subscription is over.
func (h *Hub) take(s *sub) (batch []apitypes.Event, wait, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for {
		select {
		case <-s.stop:
			return nil, false, false
		default:
		}
		if h.closed {
			return nil, false, false
		}
		cur := s.cursor
		switch {
		case cur == h.head:
			return nil, true, true
		case cur > h.head:
			// Numbers this log never gave (another store, or one
			// reset): the client cannot know what it missed.
			s.cursor = h.head
			return []apitypes.Event{gap(h.head, cur, h.oldest, apitypes.GapUnknown)}, false, true
		case cur+1 < h.oldest:
			s.cursor = h.oldest - 1
			return []apitypes.Event{gap(h.oldest-1, cur, h.oldest, apitypes.GapPruned)}, false, true
		case cur+1 >= h.recentFrom:
			batch = h.recentAfter(cur, Chunk)
			if len(batch) < Chunk {
				s.cursor = h.head // the numbers after the last one were abandoned
			} else {
				s.cursor = batch[len(batch)-1].Seq
			}
			return batch, false, true
		}
		// Behind the recent events: read the log without the lock.
		to := h.recentFrom - 1
		h.mu.Unlock()
		evs, err := h.log.Read(cur+1, to, Chunk)
		h.mu.Lock()
		if err != nil {
			return nil, false, false
		}
		if cur+1 < h.oldest {
			continue // pruned while it was read: the gap comes next
		}
		if len(evs) < Chunk {
			s.cursor = to
		} else {
			s.cursor = evs[len(evs)-1].Seq
		}
		if len(evs) > 0 {
			return evs, false, true
		}
	}
}

// recentAfter returns up to limit recent events with Seq > after.
func (h *Hub) recentAfter(after uint64, limit int) []apitypes.Event {
	n := len(h.recent)
	at := func(i int) apitypes.Event { return h.recent[(h.first+i)%n] }
	i := sort.Search(n, func(i int) bool { return at(i).Seq > after })
	out := make([]apitypes.Event, 0, min(limit, n-i))
	for ; i < n && len(out) < limit; i++ {
		out = append(out, at(i))
	}
	return out
}

func gap(seq, after, oldest uint64, reason string) apitypes.Event {
	return apitypes.Event{Seq: seq, Type: apitypes.EventGap, Gap: &apitypes.Gap{After: after, Oldest: oldest, Reason: reason}}
}

// Close ends every subscription and releases every waiter.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		s.end()
	}
	h.subs = nil
	for id, chs := range h.waiters {
		for _, ch := range chs {
			close(ch)
		}
		delete(h.waiters, id)
	}
}
