package session

import (
	"testing"

	"github.com/hushnet/hush/crypto/envelope"
)

// Bob's set goes back to an earlier copy: alice's next message no longer
// decrypts; its header names one of alice's current ratchet keys (and
// not a random one), and a new session bob starts from alice's bundle
// carries the conversation on, both ways (docs/protocol/recovery.md).
func TestRecoveryAfterRestoredSet(t *testing.T) {
	alice, bob := newDev(t), newDev(t)
	aSet := NewSet(bob.local.Cert)
	if err := aSet.Start(alice.local, bob.bundle(t)); err != nil {
		t.Fatal(err)
	}
	bSet := NewSet(alice.local.Cert)
	mustReceive(t, bob, bSet, send(t, alice, aSet, bob, "one"), "one")
	mustReceive(t, alice, aSet, send(t, bob, bSet, alice, "two"), "two")
	saved, err := bSet.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	mustReceive(t, bob, bSet, send(t, alice, aSet, bob, "three"), "three")
	mustReceive(t, alice, aSet, send(t, bob, bSet, alice, "four"), "four")

	old, err := Unmarshal(saved)
	if err != nil {
		t.Fatal(err)
	}
	in := mustOpen(t, bob, send(t, alice, aSet, bob, "five"))
	if _, err := old.Decrypt(bob.local, in, now); err == nil {
		t.Fatal("the restored set decrypted a message from after the copy")
	}
	h, ok := MessageHeader(in)
	if !ok || !aSet.HasRatchetKey(h.RatchetKey[:]) {
		t.Fatalf("the failed header (%v) does not name alice's ratchet key", ok)
	}
	var random [32]byte
	random[0] = 1
	if aSet.HasRatchetKey(random[:]) {
		t.Fatal("a random key is taken for alice's")
	}
	if _, ok := MessageHeader(&envelope.Inner{Kind: envelope.KindMessage, Body: []byte{1, 2}}); ok {
		t.Fatal("a truncated body has a header")
	}

	// Bob's reset: a new session from alice's bundle, a prekey message.
	if err := old.Start(bob.local, alice.bundle(t)); err != nil {
		t.Fatal(err)
	}
	reset := send(t, bob, old, alice, "reset")
	if kindOf(t, alice, reset) != envelope.KindPrekeyMessage {
		t.Fatal("a reset must be a prekey message")
	}
	if h, ok := MessageHeader(mustOpen(t, alice, reset)); !ok || !old.HasRatchetKey(h.RatchetKey[:]) {
		t.Fatal("a prekey message's header is not read")
	}
	mustReceive(t, alice, aSet, reset, "reset")
	mustReceive(t, bob, old, send(t, alice, aSet, bob, "five again"), "five again")
	mustReceive(t, alice, aSet, send(t, bob, old, alice, "six"), "six")
	if _, err := receive(t, alice, aSet, reset); err == nil {
		t.Fatal("a replayed reset was taken again")
	}
}
