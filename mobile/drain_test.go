package mobile

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/node"
)

func drain(t testing.TB) drainResult {
	t.Helper()
	s, err := Drain(60_000)
	if err != nil {
		t.Fatalf("Drain: %v", err)
	}
	var r drainResult
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("Drain summary %q: %v", s, err)
	}
	return r
}

// What a contact sends while the phone's node is closed waits in its
// relay mailbox; a Drain after a (push) wake-up delivers it through the
// callback, sends what the app queued meanwhile, and turns the network
// off again. A second Drain (the node has run once: it reopens) does the
// same.
func TestDrainDeliversFromRelay(t *testing.T) {
	relayAddr := startRelay(t)
	bob := startPlainNode(t, "bob")
	home, key := t.TempDir(), newKey()
	start(t, config{Home: home, Name: "alice", Key: key, Relays: []string{relayAddr}}, &recorder{})
	var self node.Self
	waitFor(t, "alice's mailbox on the relay", func() bool {
		call(t, "getSelf", nil, &self)
		return self.Mailboxes > 0
	})
	call(t, "addContact", map[string]string{"name": "bob", "link": bob.link(t)}, nil)
	if _, err := bob.n.AddContact("alice", self.Link); err != nil {
		t.Fatal(err)
	}
	call(t, "send", map[string]string{"to": "bob", "text": "hi bob"}, nil)
	waitFor(t, "alice's first message at bob", func() bool { return bob.received(t, "alice", "hi bob") })
	if err := Close(); err != nil {
		t.Fatal(err)
	}

	// Asleep: bob's message goes to alice's mailbox on the relay.
	bob.send(t, "alice", "while you slept", node.StateSent)

	// The push wakes the app: it opens the node offline and drains.
	rec := &recorder{}
	start(t, config{Home: home, Key: key, Relays: []string{relayAddr}, Offline: true}, rec)
	if rec.has("while you slept") {
		t.Fatal("an offline start delivered a message")
	}
	r := drain(t)
	if !rec.has("while you slept") {
		t.Fatalf("Drain returned %+v before the callback got the relay's message", r)
	}
	if r.Delivered != 1 || !r.Drained || !r.Complete || r.Queued != 0 {
		t.Fatalf("first Drain = %+v, want 1 delivered, drained, complete", r)
	}
	if current().networkOn() {
		t.Fatal("the network is still on after a Drain that started it")
	}

	// Still asleep: another message waits on the relay, and the app
	// queues a reply while the network is off.
	bob.send(t, "alice", "and again", node.StateSent)
	var m node.Message
	call(t, "send", map[string]string{"to": "bob", "text": "queued while asleep"}, &m)
	if m.State != node.StateQueued {
		t.Fatalf("send while asleep = %+v", m)
	}
	r = drain(t)
	if !rec.has("and again") || r.Delivered != 1 || !r.Complete {
		t.Fatalf("second Drain = %+v, events %q", r, rec.incoming())
	}
	if r.Sent != 1 || r.Queued != 0 {
		t.Fatalf("second Drain = %+v, want the queued reply sent", r)
	}
	waitFor(t, "the reply at bob", func() bool { return bob.received(t, "alice", "queued while asleep") })
	if got := rec.incoming(); len(got) != 2 {
		t.Fatalf("events %q: a drain delivered something twice or lost it", got)
	}
	// Reading after the drain needs no network.
	var msgs []node.Message
	call(t, "listMessages", map[string]any{"contact": "bob"}, &msgs)
	if len(msgs) != 4 {
		t.Fatalf("listMessages after the drains: %d messages, want 4", len(msgs))
	}
}

// A Drain on a node whose network is on leaves it on.
func TestDrainWhileOnline(t *testing.T) {
	relayAddr := startRelay(t)
	start(t, config{Home: t.TempDir(), Name: "alice", Key: newKey(), Relays: []string{relayAddr}}, &recorder{})
	r := drain(t)
	if !r.Drained || !r.Complete {
		t.Fatalf("Drain = %+v", r)
	}
	if !current().networkOn() {
		t.Fatal("a Drain turned off a network it did not start")
	}
}

// A relay that does not answer keeps a Drain waiting until its timeout,
// which it reports as incomplete; Close ends a Drain under way at once.
func TestDrainUnreachableRelayAndClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nobody listens there now
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, id)
	start(t, config{Home: t.TempDir(), Name: "alice", Key: newKey(), Relays: []string{dead}, Offline: true}, &recorder{})

	s, err := Drain(200)
	if err != nil {
		t.Fatal(err)
	}
	var r drainResult
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatal(err)
	}
	if r.Drained || r.Complete {
		t.Fatalf("Drain with an unreachable relay = %+v, want neither drained nor complete", r)
	}

	done := make(chan error, 1)
	go func() {
		_, err := Drain(int(maxDrainTimeout / time.Millisecond))
		done <- err
	}()
	waitFor(t, "the drain to start the network", func() bool {
		f := current()
		if f == nil || !f.networkOn() {
			return false
		}
		select {
		case <-f.node().Ready():
			return true
		default:
			return false
		}
	})
	if err := Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Drain ended by Close: %v", err)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("Close returned but the Drain under way did not end")
	}
}
