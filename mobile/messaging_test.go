package mobile

import (
	"testing"

	"github.com/hushnet/hush/node"
)

// A facade node and an ordinary node befriend through Call; a message
// from the node arrives as an event through the callback (a callback
// that panics on an event loses none after it), and one sent with Call
// arrives at the node.
func TestMessagesThroughCallAndCallback(t *testing.T) {
	bob := startPlainNode(t, "bob")
	rec := &recorder{panics: 1}
	start(t, config{Home: t.TempDir(), Name: "alice", Key: newKey()}, rec)

	var self node.Self
	call(t, "getSelf", nil, &self)
	var c node.Contact
	call(t, "addContact", map[string]string{"name": "bob", "link": bob.link(t)}, &c)
	if c.Name != "bob" {
		t.Fatalf("addContact = %+v", c)
	}
	if _, err := bob.n.AddContact("alice", self.Link); err != nil {
		t.Fatal(err)
	}

	bob.send(t, "alice", "first, into a panicking callback", node.StateDelivered)
	bob.send(t, "alice", "hello from bob", node.StateDelivered)
	waitFor(t, "bob's messages as events", func() bool { return rec.has("hello from bob") })
	if got := rec.incoming(); len(got) != 2 || got[0] != "first, into a panicking callback" {
		t.Fatalf("incoming events %q, want both of bob's messages in order", got)
	}

	var m node.Message
	call(t, "send", map[string]string{"to": "bob", "text": "hello from alice"}, &m)
	if m.State != node.StateQueued || m.Direction != "out" {
		t.Fatalf("send = %+v", m)
	}
	waitFor(t, "alice's message at bob", func() bool { return bob.received(t, "alice", "hello from alice") })
	var msgs []node.Message
	call(t, "listMessages", map[string]any{"contact": "bob"}, &msgs)
	if len(msgs) != 3 {
		t.Fatalf("listMessages: %d messages, want 3", len(msgs))
	}
}

// Events resume from a seq: "since" in the config replays what came
// after it, and Call("subscribe") does the same on a running node.
func TestEventsResumeFromSeq(t *testing.T) {
	bob := startPlainNode(t, "bob")
	home, key := t.TempDir(), newKey()
	rec := &recorder{}
	start(t, config{Home: home, Name: "alice", Key: key}, rec)
	var self node.Self
	call(t, "getSelf", nil, &self)
	call(t, "addContact", map[string]string{"name": "bob", "link": bob.link(t)}, nil)
	if _, err := bob.n.AddContact("alice", self.Link); err != nil {
		t.Fatal(err)
	}
	bob.send(t, "alice", "one", node.StateDelivered)
	bob.send(t, "alice", "two", node.StateDelivered)
	waitFor(t, "both messages as events", func() bool { return rec.has("two") })
	seqOne := rec.seqOf("one")

	// On the running node: subscribe from before "two".
	call(t, "unsubscribe", nil, nil)
	rec.reset()
	call(t, "subscribe", map[string]uint64{"since": seqOne}, nil)
	waitFor(t, "two replayed", func() bool { return rec.has("two") })
	if rec.has("one") {
		t.Fatal("subscribe since one's seq replayed one too")
	}
	if e := callErr(t, "subscribe", `{"since":1,"after":2}`); e.Code != -32602 {
		t.Fatalf("subscribe with since and after differing: %+v", e)
	}

	// After a restart: since in the config.
	if err := Close(); err != nil {
		t.Fatal(err)
	}
	replay := &recorder{}
	start(t, config{Home: home, Key: key, Since: seqOne - 1}, replay)
	waitFor(t, "both replayed after the restart", func() bool { return replay.has("one") && replay.has("two") })
}
