package node

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/node/events"
)

// The persistent event log (docs/API.md "Events"): every event the node
// publishes is a record of the "events" table, written in the batch of
// the change that caused it, so a message event is durable exactly when
// its message is. Its sequence number goes on across restarts. The log
// keeps the last EventRetention events, and none older than
// EventRetentionAge, pruned in the background.
const (
	EventRetention    = 100_000
	EventRetentionAge = 7 * 24 * time.Hour
)

// Test hooks: retention, and the log turned off (the hub in memory only,
// as before the log; benchmarks compare the two).
var (
	eventRetention    = EventRetention
	eventRetentionAge = EventRetentionAge
	eventLogOff       = false
)

// pruneEvery is how often the pruner runs for the age limit; the count
// limit wakes it when the log outgrows it by a tenth.
const pruneEvery = 10 * time.Minute

// Records of the events table: an event under its 8-byte big-endian seq
// (u64 unix nanoseconds when it was numbered ‖ a form byte ‖ the event's
// JSON), and two counters under ids of other lengths. An event that
// carries a message is kept as a reference (evRef: the message holds its
// ID only) and read back with the message as the store has it then: the
// log keeps no second copy of a text, so a message deleted here (on this
// device only, cleared, expired) leaves nothing of itself in the log, and
// its events are no longer read back. Records of the first form wrote the
// JSON right after the time ('{').
var (
	evLastID   = []byte("last")   // u64: a mark at or above every seq written (evAhead)
	evOldestID = []byte("oldest") // u64: the lowest seq not pruned
)

// evAhead is how far above the last seq numbered the stored mark is set.
// The mark is rewritten when the numbers come within half of it (about
// once every 2,048 events), not in every commit, and a restarted log
// numbers on from the mark: the numbers between the last event and the
// mark are skipped, never given twice (a client may have seen one, on a
// presence event that is not logged). Stores that wrote the exact last
// seq read it as a mark.
const evAhead = 4096

// Forms of a logged event (the byte after the time).
const (
	evFull byte = 1 // the event's JSON as published
	evRef  byte = 2 // the event's JSON with its message reduced to the ID
	// evMsg is an event that carries a message and nothing else (its
	// type and the message's ID, most of the log), without JSON: the
	// type's length (one byte), the type, the message ID. Its seq is
	// the record's key.
	evMsg byte = 3
)

// eventLog is the node's side of the log: the store table the hub reads
// through (events.Log) and the pruner.
type eventLog struct {
	db     *store.DB
	tab    *store.Table
	oldest atomic.Uint64 // the lowest seq not deleted (the pruner's, read by append)
	// mark is the mark a committed record holds (the node's lock, or
	// the test's goroutine, guards it).
	mark uint64
	kick chan struct{} // cap 1: the log outgrew its count limit
	// message returns a message as the store has it now, false if it is
	// gone (set by the node; nil: references read back as logged).
	message func(id string) (*Message, bool)
}

func seqID(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// openEvents reads the log's counters and returns it and the hub that
// continues it (memory only with the test hook).
func openEvents(db *store.DB) (*eventLog, *events.Hub, error) {
	if eventLogOff {
		return nil, events.New(), nil
	}
	l := &eventLog{db: db, tab: db.Table("events"), kick: make(chan struct{}, 1)}
	last, err := l.counter(evLastID)
	if err != nil {
		return nil, nil, err
	}
	oldest, err := l.counter(evOldestID)
	if err != nil {
		return nil, nil, err
	}
	l.oldest.Store(max(oldest, 1))
	l.mark = last
	return l, events.Open(events.Config{Log: l, Last: last, Oldest: l.oldest.Load()}), nil
}

func (l *eventLog) counter(id []byte) (uint64, error) {
	b, err := l.tab.Get(id)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("node: event log: %w", err)
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("node: event log: %w: counter of %d bytes", store.ErrCorrupt, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// append writes evs (numbered) in b, and a new mark when the last of
// them comes within evAhead/2 of the stored one: committed must then
// be called with it once b is.
func (l *eventLog) append(b *store.Batch, evs []Event, now time.Time) (mark uint64, wrote bool) {
	for _, ev := range evs {
		if ev.Type == EventPresence || ev.Type == EventFile {
			continue // volatile: numbered, never kept (docs/API.md, "The event log")
		}
		at := uint64(now.UnixNano())
		form := evFull
		if ev.Message != nil {
			if len(ev.Type) <= 0xff && onlyMessage(ev) {
				v := binary.BigEndian.AppendUint64(make([]byte, 0, 10+len(ev.Type)+len(ev.Message.ID)), at)
				v = append(append(append(v, evMsg, byte(len(ev.Type))), ev.Type...), ev.Message.ID...)
				b.Put(l.tab, seqID(ev.Seq), v)
				continue
			}
			form, ev.Message = evRef, &Message{ID: ev.Message.ID}
		}
		js, _ := json.Marshal(ev) // plain data: it cannot fail
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 9+len(js)), at)
		b.Put(l.tab, seqID(ev.Seq), append(append(v, form), js...))
	}
	last := evs[len(evs)-1].Seq
	if last-l.oldest.Load() > uint64(eventRetention+eventRetention/10) {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	if last+evAhead/2 <= l.mark {
		return 0, false
	}
	mark = last + evAhead
	b.Put(l.tab, evLastID, seqID(mark))
	return mark, true
}

// committed records that a batch holding mark committed.
func (l *eventLog) committed(mark uint64) { l.mark = max(l.mark, mark) }

// Read implements events.Log.
func (l *eventLog) Read(from, to uint64, limit int) ([]apitypes.Event, error) {
	var out []apitypes.Event
	for seq := from; seq <= to && len(out) < limit; seq++ {
		ev, _, err := l.get(seq)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if ev.Message != nil && l.message != nil {
			m, ok := l.message(ev.Message.ID)
			if !ok {
				continue // the message is gone from this device: so are its events
			}
			ev.Message = m
		}
		out = append(out, ev)
	}
	return out, nil
}

func (l *eventLog) get(seq uint64) (Event, time.Time, error) {
	b, err := l.tab.Get(seqID(seq))
	if err != nil {
		return Event{}, time.Time{}, err
	}
	if len(b) < 8 {
		return Event{}, time.Time{}, fmt.Errorf("node: event log: %w: record of %d bytes", store.ErrCorrupt, len(b))
	}
	at := time.Unix(0, int64(binary.BigEndian.Uint64(b)))
	js := b[8:]
	if len(js) > 0 && js[0] == evMsg {
		if len(js) < 2 || len(js) < 2+int(js[1]) {
			return Event{}, time.Time{}, fmt.Errorf("node: event log: %w: message event of %d bytes", store.ErrCorrupt, len(b))
		}
		typ, id := js[2:2+int(js[1])], js[2+int(js[1]):]
		return Event{Seq: seq, Type: EventType(typ), Message: &Message{ID: string(id)}}, at, nil
	}
	if len(js) > 0 && (js[0] == evFull || js[0] == evRef) {
		js = js[1:]
	}
	var ev Event
	if err := json.Unmarshal(js, &ev); err != nil {
		return Event{}, time.Time{}, fmt.Errorf("node: event log: %w: %v", store.ErrCorrupt, err)
	}
	return ev, at, nil
}

// onlyMessage reports whether ev holds nothing but its seq, its type and
// a message: what the evMsg form keeps.
func onlyMessage(ev Event) bool {
	ev.Seq, ev.Type, ev.Message = 0, "", nil
	return ev == Event{}
}

// prune deletes the events beyond the retention: all but the last
// eventRetention, and those numbered before now-eventRetentionAge. It
// raises the hub's oldest before it deletes, so a subscriber never reads
// a half-pruned range as complete. It runs on the pruner's goroutine only.
func (l *eventLog) prune(hub *events.Hub, now time.Time) error {
	head := hub.Head()
	cutoff := now.Add(-eventRetentionAge)
	var keepFrom uint64 = 1 // the count limit: keep seqs >= keepFrom
	if head > uint64(eventRetention) {
		keepFrom = head - uint64(eventRetention) + 1
	}
	const chunk = 1024
	for oldest := l.oldest.Load(); oldest <= head; oldest = l.oldest.Load() {
		// Find the end of this chunk: below keepFrom, or older than cutoff.
		end := oldest
		for end <= head && end-oldest < chunk {
			if end >= keepFrom {
				_, at, err := l.get(end)
				if err == nil && !at.Before(cutoff) {
					break
				}
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
			end++
		}
		if end == oldest {
			return nil
		}
		hub.SetOldest(end)
		b := l.db.Batch()
		b.Lazy() // a lost prune is done again
		for seq := oldest; seq < end; seq++ {
			b.Delete(l.tab, seqID(seq))
		}
		b.Put(l.tab, evOldestID, seqID(end))
		if err := l.db.CommitGrouped(b); err != nil {
			return err
		}
		l.oldest.Store(end)
	}
	return nil
}

// pruneLoop prunes at start, every pruneEvery and when the log outgrows
// its count limit.
func (n *Node) pruneLoop(ctx context.Context) {
	if n.evlog == nil {
		return
	}
	tick := time.NewTicker(pruneEvery)
	defer tick.Stop()
	for {
		if err := n.evlog.prune(n.events, time.Now()); err != nil {
			n.logStoreError("event log prune failed", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-n.evlog.kick:
		}
	}
}

// numberEventsLocked numbers t's events, in the order its commit is
// queued, and writes them in its batch; afterCommitLocked settles them. A
// change that writes nothing but events (typing) is committed lazily: a
// killed process loses nothing written, only a power loss could.
func (n *Node) numberEventsLocked(t *txn) {
	if len(t.events) == 0 {
		return
	}
	n.events.Number(t.events)
	if n.evlog == nil {
		return
	}
	if t.b.Len() == 0 {
		t.b.Lazy()
	}
	if mark, ok := n.evlog.append(t.b, t.events, time.Now()); ok {
		t.committed = append(t.committed, func() { n.evlog.committed(mark) })
	}
}

// loggedMessage is a logged event's message as the store has it now;
// false if it is gone from this device.
func (n *Node) loggedMessage(idHex string) (*Message, bool) {
	id, err := parseMsgID(idHex)
	if err != nil {
		return nil, false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	m, ix, err := n.loadMsgLocked(id)
	if err != nil {
		return nil, false
	}
	v := n.viewByKeyLocked(ix.Account, m)
	return &v, true
}
