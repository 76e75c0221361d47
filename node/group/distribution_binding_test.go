package group

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hushnet/hush/crypto/senderkey"
)

// A sender-key distribution is bound to the device whose pairwise session
// delivered it: a member cannot install a chain under another member's
// device and then write in that member's name. (The Receiver keys chains
// by the distribution's Device field alone; the engine's check that it is
// the sending device is the only thing between the two.)
func TestAttackDistributionForAnotherDevice(t *testing.T) {
	w := newWorld(t, "alice", "bob", "mallory")
	w.create()
	alice, bob, mal := w.users[0], w.users[1], w.users[2]
	st := bob.e.State()
	keyMsg := func(sk *senderkey.SenderKey) []byte {
		bob.e.mu.Lock()
		defer bob.e.mu.Unlock()
		return bob.e.keyMsg(bob.e.ro.epoch(), [32]byte{}, &ownKey{sk: sk})
	}
	state := func() []byte {
		b, err := bob.e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// Mallory, a member, makes a chain of her own that names Alice's
	// device and sends its distribution to Bob over her own session.
	forged, err := senderkey.NewSenderKey(st.ID, st.Epoch, alice.dev)
	if err != nil {
		t.Fatal(err)
	}
	before := state()
	if _, err := bob.e.HandlePairwise(mal.acct.Public(), mal.dev, keyMsg(forged)); !errors.Is(err, ErrWrongSender) {
		t.Fatalf("Mallory's distribution naming Alice's device: %v, want ErrWrongSender", err)
	}
	if !bytes.Equal(before, state()) {
		t.Fatal("the refused distribution changed Bob's state")
	}
	// Her message on that chain is not shown as Alice's.
	ct, err := forged.Encrypt(append([]byte{kindAppMsg}, "alice says: send me your password"...))
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := bob.e.Open(append([]byte{Version, kindGroupMsg}, ct...)); err == nil {
		t.Fatalf("Mallory's message accepted as from account %v device %v: %q", rec.Account, rec.Device, rec.Plaintext)
	}

	// The same kind of distribution naming the device that sends it is
	// installed: only the device made the difference.
	own, err := senderkey.NewSenderKey(st.ID, st.Epoch, mal.dev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.e.HandlePairwise(mal.acct.Public(), mal.dev, keyMsg(own)); err != nil {
		t.Fatalf("Mallory's distribution for her own device: %v", err)
	}
	ct, err = own.Encrypt(append([]byte{kindAppMsg}, "mallory here"...))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := bob.e.Open(append([]byte{Version, kindGroupMsg}, ct...))
	if err != nil || rec.Account != mal.acct.Public() || rec.Device != mal.dev || string(rec.Plaintext) != "mallory here" {
		t.Fatalf("Mallory's own chain: %+v, %v", rec, err)
	}
}
