package node

import "testing"

// The history keeps the last eventHistory events, in order, for resuming
// subscribers.
func TestEventHistoryRing(t *testing.T) {
	h := newHub()
	for range eventHistory + 250 {
		h.publish(Event{Type: EventTyping})
	}
	after := uint64(eventHistory + 250 - 10)
	ch, cancel := h.subscribe(after)
	defer cancel()
	for want := after + 1; want <= eventHistory+250; want++ {
		if ev := <-ch; ev.Seq != want {
			t.Fatalf("got event %d, want %d", ev.Seq, want)
		}
	}
	// Resuming from before the history gives the whole history, oldest first.
	ch2, cancel2 := h.subscribe(1)
	defer cancel2()
	if ev := <-ch2; ev.Seq != 251 {
		t.Fatalf("oldest kept event is %d, want 251", ev.Seq)
	}
}
