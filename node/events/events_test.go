package events

import (
	"sync"
	"testing"

	"github.com/hushnet/hush/api/apitypes"
)

// memLog is a Log in memory: the test writes what the node would write in
// a change's batch.
type memLog struct {
	mu  sync.Mutex
	evs map[uint64]apitypes.Event
}

func (l *memLog) put(evs []apitypes.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range evs {
		l.evs[ev.Seq] = ev
	}
}

func (l *memLog) prune(below uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for seq := range l.evs {
		if seq < below {
			delete(l.evs, seq)
		}
	}
}

func (l *memLog) Read(from, to uint64, limit int) ([]apitypes.Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []apitypes.Event
	for seq := from; seq <= to && len(out) < limit; seq++ {
		if ev, ok := l.evs[seq]; ok {
			out = append(out, ev)
		}
	}
	return out, nil
}

// publish numbers, logs and settles n typing events, as a node's commit.
func publish(h *Hub, l *memLog, n int) {
	for range n {
		evs := []apitypes.Event{{Type: apitypes.EventTyping}}
		h.Number(evs)
		l.put(evs)
		h.Settle(evs, true)
	}
}

func expectSeqs(t *testing.T, ch <-chan apitypes.Event, from, to uint64) {
	t.Helper()
	for want := from; want <= to; want++ {
		ev, ok := <-ch
		if !ok {
			t.Fatalf("channel closed before event %d", want)
		}
		if ev.Seq != want || ev.Type != apitypes.EventTyping {
			t.Fatalf("got event %d (%s), want %d", ev.Seq, ev.Type, want)
		}
	}
}

func expectNothing(t *testing.T, ch <-chan apitypes.Event, h *Hub) {
	t.Helper()
	// A subscriber at the head is parked; one more event proves nothing
	// else was queued before it.
	marker := []apitypes.Event{{Type: apitypes.EventContact}}
	h.Number(marker)
	h.Settle(marker, true)
	if ev := <-ch; ev.Seq != marker[0].Seq {
		t.Fatalf("got event %d (%s) before the marker %d", ev.Seq, ev.Type, marker[0].Seq)
	}
}

// A hub in memory keeps the last Recent events; a subscriber resuming
// from before them gets one gap event, then the kept ones.
func TestMemoryHubGap(t *testing.T) {
	h := New()
	for range Recent + 250 {
		h.Publish(apitypes.Event{Type: apitypes.EventTyping})
	}
	after := uint64(Recent + 250 - 10)
	ch, cancel := h.Subscribe(after)
	defer cancel()
	expectSeqs(t, ch, after+1, Recent+250)
	ch2, cancel2 := h.Subscribe(1)
	defer cancel2()
	ev := <-ch2
	if ev.Type != apitypes.EventGap || ev.Gap.Reason != apitypes.GapPruned || ev.Seq != 250 || ev.Gap.Oldest != 251 || ev.Gap.After != 1 {
		t.Fatalf("first event %+v %+v, want a pruned gap at 250", ev, ev.Gap)
	}
	expectSeqs(t, ch2, 251, Recent+250)
}

// Events settle out of order (concurrent commits) but reach subscribers
// in sequence order; a failed commit's numbers are skipped.
func TestSettleOrder(t *testing.T) {
	h := New()
	ch, cancel := h.Subscribe(0)
	defer cancel()
	a, b := []apitypes.Event{{Type: apitypes.EventTyping}}, []apitypes.Event{{Type: apitypes.EventTyping}, {Type: apitypes.EventTyping}}
	h.Number(a)
	h.Number(b)
	h.Settle(b, true)
	if h.Head() != 0 {
		t.Fatalf("head %d before the first number settled", h.Head())
	}
	if h.Last() != 3 {
		t.Fatalf("last %d, want 3: every number given counts, settled or not", h.Last())
	}
	h.Settle(a, true)
	expectSeqs(t, ch, 1, 3)
	failed, c := []apitypes.Event{{Type: apitypes.EventTyping}}, []apitypes.Event{{Type: apitypes.EventTyping}}
	h.Number(failed)
	h.Number(c)
	h.Settle(c, true)
	h.Settle(failed, false)
	if ev := <-ch; ev.Seq != 5 {
		t.Fatalf("got %d after a failed 4, want 5", ev.Seq)
	}
	expectNothing(t, ch, h)
}

// A subscriber that does not read is not dropped: when it reads again it
// gets every event, in order, from the log for those no longer in memory.
func TestSlowSubscriberReadsTheLog(t *testing.T) {
	l := &memLog{evs: make(map[uint64]apitypes.Event)}
	h := Open(Config{Log: l})
	slow, cancelSlow := h.Subscribe(0)
	defer cancelSlow()
	fast, cancelFast := h.Subscribe(0)
	defer cancelFast()
	const total = 3*Recent + 17
	for i := range total {
		publish(h, l, 1)
		if ev := <-fast; ev.Seq != uint64(i+1) {
			t.Fatalf("fast subscriber got %d, want %d", ev.Seq, i+1)
		}
	}
	expectSeqs(t, slow, 1, total)
	expectNothing(t, slow, h)
}

// A hub opened on a log goes on numbering after its last event and
// replays the log to a subscriber resuming from before the restart; one
// resuming from before the retention gets a gap, one from beyond the last
// event too.
func TestResumeAcrossRestart(t *testing.T) {
	l := &memLog{evs: make(map[uint64]apitypes.Event)}
	h := Open(Config{Log: l})
	publish(h, l, 500)
	h.Close()

	h = Open(Config{Log: l, Last: 500, Oldest: 1})
	defer h.Close()
	publish(h, l, 10)
	ch, cancel := h.Subscribe(100)
	defer cancel()
	expectSeqs(t, ch, 101, 510)
	expectNothing(t, ch, h) // 511

	h.SetOldest(200)
	l.prune(200)
	old, cancelOld := h.Subscribe(50)
	defer cancelOld()
	if ev := <-old; ev.Type != apitypes.EventGap || ev.Seq != 199 || ev.Gap.Reason != apitypes.GapPruned {
		t.Fatalf("got %+v, want a pruned gap at 199", ev)
	}
	expectSeqs(t, old, 200, 510)

	ahead, cancelAhead := h.Subscribe(9999)
	defer cancelAhead()
	if ev := <-ahead; ev.Type != apitypes.EventGap || ev.Seq != 511 || ev.Gap.Reason != apitypes.GapUnknown {
		t.Fatalf("got %+v, want an unknown gap at 511", ev)
	}
	expectNothing(t, ahead, h)
}

// Cancel closes the channel; Close ends every subscription.
func TestCancelAndClose(t *testing.T) {
	h := New()
	ch, cancel := h.Subscribe(0)
	cancel()
	if _, ok := <-ch; ok {
		t.Fatal("event after cancel")
	}
	ch2, cancel2 := h.Subscribe(0)
	defer cancel2()
	h.Close()
	for range ch2 {
	}
}

// Wait is released by an event on its message only, and by Close.
func TestWaitReleasedByItsMessage(t *testing.T) {
	h := New()
	a, b := h.Wait("a"), h.Wait("b")
	h.Publish(apitypes.Event{Type: apitypes.EventMessage, Message: &apitypes.Message{ID: "a"}})
	select {
	case <-a:
	default:
		t.Fatal("waiter on a not released by an event on a")
	}
	select {
	case <-b:
		t.Fatal("waiter on b released by an event on a")
	default:
	}
	h.Close()
	<-b
	<-h.Wait("c") // after Close, Wait does not block
}

// BenchmarkFanOut50: one event published (and logged) to 50 subscribers
// that read it; those that fall behind read the log.
func BenchmarkFanOut50(b *testing.B) {
	l := &memLog{evs: make(map[uint64]apitypes.Event)}
	h := Open(Config{Log: l})
	defer h.Close()
	var wg sync.WaitGroup
	chans := make([]<-chan apitypes.Event, 50)
	for i := range chans {
		ch, cancel := h.Subscribe(0)
		defer cancel()
		chans[i] = ch
	}
	b.ResetTimer()
	for i := range chans {
		wg.Go(func() {
			for range b.N {
				<-chans[i]
			}
		})
	}
	publish(h, l, b.N)
	wg.Wait()
}
