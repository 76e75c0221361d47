package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/node/events"
)

// openTestLog opens the event log of a store in dir, as New does.
func openTestLog(t *testing.T, dir string) (*store.DB, *eventLog, *events.Hub) {
	t.Helper()
	db, err := openStore(dir, nil, testKDF, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, h, err := openEvents(db)
	if err != nil {
		t.Fatal(err)
	}
	return db, l, h
}

// logEvents writes n events in n commits, as changes do, numbered at at.
func logEvents(t *testing.T, db *store.DB, l *eventLog, h *events.Hub, n int, at time.Time) {
	t.Helper()
	for i := range n {
		evs := []Event{{Type: EventTyping, From: fmt.Sprint(i)}}
		h.Number(evs)
		b := db.Batch()
		mark, wrote := l.append(b, evs, at)
		err := db.CommitGrouped(b)
		h.Settle(evs, err == nil)
		if err != nil {
			t.Fatal(err)
		}
		if wrote {
			l.committed(mark)
		}
	}
}

func wantSeqs(t *testing.T, ch <-chan Event, from, to uint64) {
	t.Helper()
	for want := from; want <= to; want++ {
		if ev := <-ch; ev.Seq != want || ev.Type != EventTyping {
			t.Fatalf("got event %d (%s), want %d", ev.Seq, ev.Type, want)
		}
	}
}

// The sequence goes on across a restart, from the stored mark: no number
// is given twice (the ones between the last event and the mark are
// skipped), and a subscriber resuming from before it gets the stored
// events, then new ones. The mark is written about once every
// evAhead/2 events, not with each.
func TestEventLogRestartKeepsSeq(t *testing.T) {
	dir := t.TempDir()
	db, l, h := openTestLog(t, dir)
	writes := 0
	for range 3 * evAhead {
		evs := []Event{{Type: EventTyping}}
		h.Number(evs)
		b := db.Batch()
		mark, wrote := l.append(b, evs, time.Now())
		if err := db.CommitGrouped(b); err != nil {
			t.Fatal(err)
		}
		h.Settle(evs, true)
		if wrote {
			writes++
			l.committed(mark)
		}
	}
	if writes > 7 {
		t.Fatalf("the mark was written %d times for %d events, want at most 7", writes, 3*evAhead)
	}
	logEvents(t, db, l, h, 300, time.Now())
	last := h.Head()
	h.Close()
	db.Close()

	db, l, h = openTestLog(t, dir)
	defer db.Close()
	defer h.Close()
	if h.Head() < last || h.Head() > last+evAhead {
		t.Fatalf("head after restart %d, want from %d to %d", h.Head(), last, last+evAhead)
	}
	ch, cancel := h.Subscribe(last - 300 + 17)
	defer cancel()
	logEvents(t, db, l, h, 5, time.Now())
	wantSeqs(t, ch, last-300+18, last)
	prev := last
	for range 5 {
		ev := <-ch
		if ev.Seq <= prev || ev.Type != EventTyping {
			t.Fatalf("after restart: event %d (%s) after %d", ev.Seq, ev.Type, prev)
		}
		prev = ev.Seq
	}
}

// Pruning keeps the last eventRetention events and none older than
// eventRetentionAge; a subscriber from before them gets one gap event,
// then what is kept; the pruned bound survives a restart.
func TestEventLogRetentionAndGap(t *testing.T) {
	oldN, oldAge := eventRetention, eventRetentionAge
	eventRetention, eventRetentionAge = 2000, 24*time.Hour
	defer func() { eventRetention, eventRetentionAge = oldN, oldAge }()
	dir := t.TempDir()
	db, l, h := openTestLog(t, dir)
	t0 := time.Now()
	logEvents(t, db, l, h, 100, t0.Add(-48*time.Hour)) // 1..100: too old
	logEvents(t, db, l, h, 2900, t0)                   // 101..3000: the last 2000 are kept
	if err := l.prune(h, t0); err != nil {
		t.Fatal(err)
	}
	if got := h.Oldest(); got != 1001 {
		t.Fatalf("oldest after prune %d, want 1001", got)
	}
	if evs, _ := l.Read(1, 1000, 10); len(evs) != 0 {
		t.Fatalf("pruned events still read: %d", len(evs))
	}
	ch, cancel := h.Subscribe(5)
	ev := <-ch
	if ev.Type != EventGap || ev.Seq != 1000 || ev.Gap.After != 5 || ev.Gap.Oldest != 1001 {
		t.Fatalf("got %+v, want a gap at 1000", ev)
	}
	wantSeqs(t, ch, 1001, 3000)
	cancel()

	// The age limit alone: everything numbered before the cutoff goes.
	logEvents(t, db, l, h, 10, t0.Add(time.Hour))
	if err := l.prune(h, t0.Add(25*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := h.Oldest(); got != 3001 {
		t.Fatalf("oldest after the age prune %d, want 3001", got)
	}
	h.Close()
	db.Close()

	db, l, h = openTestLog(t, dir)
	defer db.Close()
	defer h.Close()
	if h.Oldest() != 3001 || h.Head() < 3010 {
		t.Fatalf("after restart oldest %d head %d, want 3001 and at least 3010", h.Oldest(), h.Head())
	}
	ch, cancel = h.Subscribe(2999)
	defer cancel()
	if ev := <-ch; ev.Type != EventGap || ev.Seq != 3000 {
		t.Fatalf("got %+v, want a gap at 3000", ev)
	}
	wantSeqs(t, ch, 3001, 3010)
}

// A failed commit gives its numbers up: nothing of it is logged or seen,
// and the next event follows.
func TestEventLogFailedCommit(t *testing.T) {
	db, l, h := openTestLog(t, t.TempDir())
	defer db.Close()
	defer h.Close()
	ch, cancel := h.Subscribe(0)
	defer cancel()
	logEvents(t, db, l, h, 2, time.Now())
	failed := []Event{{Type: EventTyping}}
	h.Number(failed)
	h.Settle(failed, false)
	logEvents(t, db, l, h, 1, time.Now())
	wantSeqs(t, ch, 1, 2)
	if ev := <-ch; ev.Seq != 4 {
		t.Fatalf("got %d after the failed 3, want 4", ev.Seq)
	}
	r, cancelR := h.Subscribe(1)
	defer cancelR()
	if a, b := <-r, <-r; a.Seq != 2 || b.Seq != 4 {
		t.Fatalf("replay gave %d, %d; want 2, 4", a.Seq, b.Seq)
	}
}

// Message events are logged with their messages: a node restarted after
// receiving replays them to a subscriber resuming from before.
func TestNodeEventsSurviveRestart(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	start := b.n.events.Head()
	var ids []string
	for i := range 5 {
		m, err := a.n.Send(context.Background(), SendRequest{To: "bob", Text: fmt.Sprint("hello ", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	waitFor(t, "five messages at bob", func() bool { return len(texts(t, b.n, "alice", "in")) == 5 })
	home := b.n.cfg.Home
	b.stop(t)
	b = startNode(t, home)
	defer b.stop(t)
	ch, cancel := b.n.Subscribe(start)
	defer cancel()
	seen := map[string]int{}
	for len(seen) < len(ids) {
		ev := <-ch
		if ev.Type == EventMessage {
			seen[ev.Message.ID]++
		}
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Fatalf("message %s: %d events, want 1", id, seen[id])
		}
	}
}

// The log keeps no copy of a text: a message event is a reference read
// back with the message as it is; deleted on this device, the message
// takes its events with it.
func TestEventLogKeepsNoText(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	events, cancel := b.n.Subscribe(0)
	defer cancel()
	m, err := a.n.Send(context.Background(), SendRequest{To: "bob", Text: "EVENTLOG-MARKER"})
	if err != nil {
		t.Fatal(err)
	}
	// The event, not the message's record: a record is readable while
	// its commit (which holds the event's log record) is being written.
	waitEvent(t, events, "the message's event at bob", func(ev Event) bool {
		return ev.Type == EventMessage && ev.Message.ID == m.ID
	})
	read := func() (found bool) {
		evs, err := b.n.evlog.Read(1, b.n.events.Head(), 10000)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Message != nil && ev.Message.ID == m.ID {
				if ev.Message.Text != "EVENTLOG-MARKER" {
					t.Fatalf("the logged event reads back %+v", ev.Message)
				}
				found = true
			}
		}
		return found
	}
	if !read() {
		t.Fatal("the message's event is not in the log")
	}
	b.n.evlog.tab.Scan(func(k, v []byte) error {
		if bytes.Contains(v, []byte("EVENTLOG-MARKER")) {
			t.Fatalf("the log record %x holds the text", k)
		}
		return nil
	})
	if err := b.n.DeleteLocal("alice", "", m.ID); err != nil {
		t.Fatal(err)
	}
	if read() {
		t.Fatal("a message deleted here is still read back from the log")
	}
}

// An event that carries a message and nothing else is logged without
// JSON (evMsg: its type and the message's ID), and reads back as the
// same event; one with more than that keeps the JSON reference form; a
// cut record of the compact form is corrupt, not misread.
func TestEventLogCompactMessageForm(t *testing.T) {
	db, l, h := openTestLog(t, t.TempDir())
	defer db.Close()
	defer h.Close()
	id := strings.Repeat("ab", 16)
	evs := []Event{
		{Type: EventMessage, Message: &Message{ID: id, Text: "not logged", Contact: "bob"}},
		{Type: EventUpdate, Message: &Message{ID: id}, From: "bob"},
		{Type: EventTyping, From: "carol"},
	}
	h.Number(evs)
	b := db.Batch()
	l.append(b, evs, time.Unix(0, 42))
	if err := db.CommitGrouped(b); err != nil {
		t.Fatal(err)
	}
	h.Settle(evs, true)
	wantForm := []byte{evMsg, evRef, evFull}
	for i, want := range evs {
		raw, err := l.tab.Get(seqID(want.Seq))
		if err != nil {
			t.Fatal(err)
		}
		if raw[8] != wantForm[i] {
			t.Errorf("event %d (%s) logged in form %d, want %d", i, want.Type, raw[8], wantForm[i])
		}
		got, at, err := l.get(want.Seq)
		if err != nil {
			t.Fatal(err)
		}
		if at.UnixNano() != 42 || got.Seq != want.Seq || got.Type != want.Type || got.From != want.From ||
			(want.Message == nil) != (got.Message == nil) || (got.Message != nil && !reflect.DeepEqual(*got.Message, Message{ID: id})) {
			t.Errorf("event %d reads back as %+v at %v, want %+v", i, got, at, want)
		}
	}
	if raw, _ := l.tab.Get(seqID(evs[0].Seq)); len(raw) != 8+2+len(EventMessage)+len(id) {
		t.Errorf("the compact record is %d bytes", len(raw))
	}
	for _, cut := range [][]byte{{evMsg}, {evMsg, 200, 'm'}} {
		b := db.Batch()
		b.Put(l.tab, seqID(1000), append(make([]byte, 8), cut...))
		if err := db.CommitGrouped(b); err != nil {
			t.Fatal(err)
		}
		if _, _, err := l.get(1000); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("a cut record %x reads back with %v", cut, err)
		}
	}
}
