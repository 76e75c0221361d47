package events

import (
	"testing"

	"github.com/hushnet/hush/api/apitypes"
)

// The history keeps the last History events, in order, for resuming
// subscribers.
func TestEventHistoryRing(t *testing.T) {
	h := New()
	for range History + 250 {
		h.Publish(apitypes.Event{Type: apitypes.EventTyping})
	}
	after := uint64(History + 250 - 10)
	ch, cancel := h.Subscribe(after)
	defer cancel()
	for want := after + 1; want <= History+250; want++ {
		if ev := <-ch; ev.Seq != want {
			t.Fatalf("got event %d, want %d", ev.Seq, want)
		}
	}
	// Resuming from before the history gives the whole history, oldest first.
	ch2, cancel2 := h.Subscribe(1)
	defer cancel2()
	if ev := <-ch2; ev.Seq != 251 {
		t.Fatalf("oldest kept event is %d, want 251", ev.Seq)
	}
}

// A subscriber that does not read is dropped, and the others go on.
func TestSlowSubscriberDropped(t *testing.T) {
	h := New()
	slow, cancelSlow := h.Subscribe(0)
	defer cancelSlow()
	fast, cancelFast := h.Subscribe(0)
	defer cancelFast()
	for i := range SubscriberSize + 1 {
		h.Publish(apitypes.Event{Type: apitypes.EventTyping})
		if ev := <-fast; ev.Seq != uint64(i+1) {
			t.Fatalf("fast subscriber got %d, want %d", ev.Seq, i+1)
		}
	}
	n := 0
	for range slow {
		n++
	}
	if n != SubscriberSize {
		t.Fatalf("slow subscriber got %d events before being dropped, want %d", n, SubscriberSize)
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
