package group

import (
	"fmt"
	"slices"
	"testing"

	"github.com/hushnet/hush/internal/gossip"
)

func TestFiveMembers(t *testing.T) {
	w := newWorld(t, "alice", "bob", "carol", "dave", "erin")
	w.strict = true
	w.create()
	ref := w.stateBytes(w.users[0])
	for _, u := range w.users {
		if got := w.stateBytes(u); got != ref {
			t.Fatalf("%s: state differs", u.name)
		}
		if u.e.Topic() == "" || u.e.Topic() != w.users[0].e.Topic() {
			t.Fatalf("%s: topic %q", u.name, u.e.Topic())
		}
	}
	if st := w.users[0].e.State(); len(st.Members) != 5 || st.Name != "friends" {
		t.Fatalf("state %+v", st)
	}
	for _, u := range w.users {
		for i := range 3 {
			w.say(u, fmt.Sprintf("%s %d", u.name, i))
		}
	}
	for _, u := range w.users {
		if len(u.inbox) != 12 {
			t.Fatalf("%s got %d messages: %q", u.name, len(u.inbox), u.inbox)
		}
		for _, o := range w.users {
			if o == u {
				continue
			}
			for i := range 3 {
				if !slices.Contains(u.inbox, fmt.Sprintf("%s %d", o.name, i)) {
					t.Fatalf("%s missed %s %d", u.name, o.name, i)
				}
			}
		}
	}
}

// The largest sender-key message fits the topic message cap that group
// members and relays share.
func TestWireFitsGossipCap(t *testing.T) {
	if Version != gossip.TagVersion || TopicOverhead+minWire < gossip.MinMessageSize {
		t.Fatal("topic framing differs from internal/gossip's")
	}
	if MaxTopicSize > gossip.MaxMessageSize {
		t.Fatalf("MaxTopicSize %d does not fit gossip.MaxMessageSize %d", MaxTopicSize, gossip.MaxMessageSize)
	}
}
