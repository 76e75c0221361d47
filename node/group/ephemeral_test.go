package group

import (
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/hushnet/hush/crypto/identity"
)

// keysOf is OpenEphemeral's key lookup over the world's users.
func (w *world) keysOf(acc identity.AccountID, dev identity.DeviceID) ed25519.PublicKey {
	if u := w.byDev[dev]; u != nil && u.acct.Public() == acc {
		return u.device.SigningPublic()
	}
	return nil
}

// Ephemeral messages: a member opens one with the sender's account,
// device, time and body; it leaves no trace in the engine (no stored
// message, no journal, the digest unchanged); a tampered, forged,
// foreign or removed member's one is refused.
func TestEphemeral(t *testing.T) {
	w := newWorld(t, "alice", "bob", "carol", "mallory")
	w.create()
	alice, bob, carol, mallory := w.users[0], w.users[1], w.users[2], w.users[3]
	w.say(alice, "hello")
	bob.e.TakeJournal()
	haveBefore := string(alice.e.Have())

	topic, data, err := alice.e.SealEphemeral([]byte("typing"), 42, alice.device.Sign)
	if err != nil {
		t.Fatal(err)
	}
	if topic != alice.e.Topic() || !IsEphemeral(data) || len(data) != 512 {
		t.Fatalf("topic %q, %d bytes, ephemeral %v", topic, len(data), IsEphemeral(data))
	}
	em, err := bob.e.OpenEphemeral(data, w.keysOf)
	if err != nil {
		t.Fatal(err)
	}
	if em.Account != alice.acct.Public() || em.Device != alice.dev || em.TimeMS != 42 || string(em.Body) != "typing" {
		t.Fatalf("opened %+v", em)
	}
	if string(alice.e.Have()) != haveBefore {
		t.Fatal("sealing an ephemeral message moved the sender's chain")
	}
	if j := bob.e.TakeJournal(); len(j) != 0 {
		t.Fatalf("opening an ephemeral message journaled %d messages", len(j))
	}
	if _, err := bob.e.Open(data); err == nil {
		t.Fatal("an ephemeral message opened as a wire message")
	}

	bad := append([]byte(nil), data...)
	bad[len(bad)-1] ^= 1
	if _, err := bob.e.OpenEphemeral(bad, w.keysOf); !errors.Is(err, ErrWrongGroup) {
		t.Fatalf("tampered: %v", err)
	}
	// Carol's device key cannot speak for alice's device.
	_, forged, err := alice.e.SealEphemeral([]byte("typing"), 42, carol.device.Sign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.e.OpenEphemeral(forged, w.keysOf); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged: %v", err)
	}
	// An unknown key is refused.
	if _, err := bob.e.OpenEphemeral(data, func(identity.AccountID, identity.DeviceID) ed25519.PublicKey { return nil }); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("no key: %v", err)
	}
	// Removed: mallory's message of the old epoch, which the others hold
	// for the grace window, is refused once she is out; she cannot seal
	// a new one.
	_, old, err := mallory.e.SealEphemeral([]byte("typing"), 42, mallory.device.Sign)
	if err != nil {
		t.Fatal(err)
	}
	fx, err := alice.e.Remove(mallory.acct.Public())
	w.must(alice, fx, err)
	if _, _, err := mallory.e.SealEphemeral([]byte("typing"), 42, mallory.device.Sign); !errors.Is(err, ErrNotMember) {
		t.Fatalf("removed member sealed: %v", err)
	}
	if _, err := bob.e.OpenEphemeral(old, w.keysOf); !errors.Is(err, ErrNotMember) {
		t.Fatalf("removed member: %v", err)
	}
	// Another group's engine cannot open it.
	w2 := newWorld(t, "x", "y")
	w2.create()
	if _, err := w2.users[1].e.OpenEphemeral(data, w.keysOf); !errors.Is(err, ErrWrongGroup) {
		t.Fatalf("other group: %v", err)
	}
}
