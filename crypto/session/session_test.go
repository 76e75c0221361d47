package session

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"errors"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/pqxdh"
	"github.com/hushnet/hush/crypto/ratchet"
	"github.com/hushnet/hush/crypto/suite"
)

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

type dev struct {
	local  *Local
	opener *envelope.Opener
}

func newDev(t testing.TB) *dev { return newDevOTK(t, 10) }

// newDevOTK makes a device with n one-time prekeys.
func newDevOTK(t testing.TB, n int) *dev {
	t.Helper()
	a, err := identity.NewAccount()
	if err != nil {
		t.Fatal(err)
	}
	d, err := identity.NewDevice()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := a.Certify(d, now)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := pqxdh.NewPrekeyStore(d.SigningKey(), now)
	if err != nil {
		t.Fatal(err)
	}
	if n > 0 {
		if err := pk.GenerateOneTime(n, now); err != nil {
			t.Fatal(err)
		}
	}
	o, err := LocalMailbox(d)
	if err != nil {
		t.Fatal(err)
	}
	return &dev{local: &Local{Cert: cert, Device: d, Prekeys: pk}, opener: o}
}

func (d *dev) bundle(t testing.TB) *pqxdh.Bundle {
	t.Helper()
	b, err := d.local.Prekeys.Bundle(now)
	if err != nil {
		t.Fatal(err)
	}
	// Go through the wire form, as a peer would.
	parsed, err := pqxdh.ParseBundle(b.Marshal(), d.local.Cert.SigningKey(), now)
	if err != nil {
		t.Fatal(err)
	}
	return parsed
}

// send encrypts on set and seals the body to the recipient's mailbox.
func send(t testing.TB, from *dev, set *Set, to *dev, text string) []byte {
	t.Helper()
	kind, body, err := set.Encrypt(from.local, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := envelope.Seal(to.local.Cert.MailboxKey(), &envelope.Inner{
		SenderAccount: from.local.Cert.Account(),
		SenderDevice:  from.local.Cert.DeviceID(),
		Kind:          kind,
		Body:          body,
	})
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

func receive(t testing.TB, to *dev, set *Set, sealed []byte) (string, error) {
	t.Helper()
	in, err := to.opener.Open(sealed)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := set.Decrypt(to.local, in, now)
	return string(pt), err
}

func mustReceive(t testing.TB, to *dev, set *Set, sealed []byte, want string) {
	t.Helper()
	got, err := receive(t, to, set, sealed)
	if err != nil {
		t.Fatalf("receive %q: %v", want, err)
	}
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func kindOf(t testing.TB, to *dev, sealed []byte) envelope.Kind {
	in, err := to.opener.Open(sealed)
	if err != nil {
		t.Fatal(err)
	}
	return in.Kind
}

func TestConversation(t *testing.T) {
	alice, bob := newDev(t), newDev(t)
	aSet := NewSet(bob.local.Cert)
	if err := aSet.Start(alice.local, bob.bundle(t)); err != nil {
		t.Fatal(err)
	}
	m1 := send(t, alice, aSet, bob, "hello")
	m2 := send(t, alice, aSet, bob, "still there?")
	if kindOf(t, bob, m1) != envelope.KindPrekeyMessage || kindOf(t, bob, m2) != envelope.KindPrekeyMessage {
		t.Fatal("messages before the first reply must be prekey messages")
	}
	sender, err := PrekeySender(mustOpen(t, bob, m2).Body)
	if err != nil || !sender.Equal(alice.local.Cert) {
		t.Fatalf("PrekeySender: %v", err)
	}
	bSet := NewSet(sender)
	// The second message arrives first: either can start the session.
	mustReceive(t, bob, bSet, m2, "still there?")
	mustReceive(t, bob, bSet, m1, "hello")
	r1 := send(t, bob, bSet, alice, "hi alice")
	if kindOf(t, alice, r1) != envelope.KindMessage {
		t.Fatal("the responder sends plain messages")
	}
	mustReceive(t, alice, aSet, r1, "hi alice")
	m3 := send(t, alice, aSet, bob, "great")
	if kindOf(t, bob, m3) != envelope.KindMessage {
		t.Fatal("after a reply the initiator must stop sending prekey messages")
	}
	mustReceive(t, bob, bSet, m3, "great")

	// Replays are rejected, state unchanged.
	before, _ := bSet.MarshalBinary()
	if _, err := receive(t, bob, bSet, m1); err == nil {
		t.Fatal("replayed prekey message accepted")
	}
	if _, err := receive(t, bob, bSet, m3); err == nil {
		t.Fatal("replayed message accepted")
	}
	after, _ := bSet.MarshalBinary()
	if !bytes.Equal(before, after) {
		t.Fatal("a rejected replay changed the session state")
	}
}

func mustOpen(t testing.TB, to *dev, sealed []byte) *envelope.Inner {
	in, err := to.opener.Open(sealed)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// Both sides start a session at once (Sesame §2): each receives the
// other's prekey message; sessions converge on whichever last decrypted.
func TestSimultaneousInitiation(t *testing.T) {
	alice, bob := newDev(t), newDev(t)
	aSet, bSet := NewSet(bob.local.Cert), NewSet(alice.local.Cert)
	if err := aSet.Start(alice.local, bob.bundle(t)); err != nil {
		t.Fatal(err)
	}
	if err := bSet.Start(bob.local, alice.bundle(t)); err != nil {
		t.Fatal(err)
	}
	a1 := send(t, alice, aSet, bob, "from alice")
	b1 := send(t, bob, bSet, alice, "from bob")
	mustReceive(t, bob, bSet, a1, "from alice")
	mustReceive(t, alice, aSet, b1, "from bob")
	for i := range 4 {
		a := send(t, alice, aSet, bob, "ping")
		mustReceive(t, bob, bSet, a, "ping")
		b := send(t, bob, bSet, alice, "pong")
		mustReceive(t, alice, aSet, b, "pong")
		_ = i
	}
}

func TestAttackForgedSender(t *testing.T) {
	alice, bob, mallory := newDev(t), newDev(t), newDev(t)
	aSet := NewSet(bob.local.Cert)
	if err := aSet.Start(alice.local, bob.bundle(t)); err != nil {
		t.Fatal(err)
	}
	bSet := NewSet(alice.local.Cert)
	mustReceive(t, bob, bSet, send(t, alice, aSet, bob, "hi"), "hi")
	// Mallory seals her own session's message but claims Alice inside.
	mSet := NewSet(bob.local.Cert)
	if err := mSet.Start(mallory.local, bob.bundle(t)); err != nil {
		t.Fatal(err)
	}
	kind, body, err := mSet.Encrypt(mallory.local, []byte("i am alice"))
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := envelope.Seal(bob.local.Cert.MailboxKey(), &envelope.Inner{
		SenderAccount: alice.local.Cert.Account(), SenderDevice: alice.local.Cert.DeviceID(), Kind: kind, Body: body})
	if _, err := receive(t, bob, bSet, sealed); !errors.Is(err, ErrRemoteChanged) && !errors.Is(err, ErrDecrypt) {
		t.Fatalf("forged sender: got %v", err)
	}
	// Mallory's envelope with her true identity does not match Alice's set.
	sealed = send(t, mallory, mSet, bob, "x")
	if _, err := receive(t, bob, bSet, sealed); !errors.Is(err, ErrWrongSender) {
		t.Fatalf("wrong sender: got %v, want ErrWrongSender", err)
	}
}

func TestAttackTamperedBody(t *testing.T) {
	alice, bob := newDev(t), newDev(t)
	aSet := NewSet(bob.local.Cert)
	if err := aSet.Start(alice.local, bob.bundle(t)); err != nil {
		t.Fatal(err)
	}
	kind, body, err := aSet.Encrypt(alice.local, []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	bSet := NewSet(alice.local.Cert)
	storeBefore, _ := bob.local.Prekeys.MarshalBinary()
	for i := range body {
		b := bytes.Clone(body)
		b[i] ^= 0x40
		in := &envelope.Inner{SenderAccount: alice.local.Cert.Account(), SenderDevice: alice.local.Cert.DeviceID(), Kind: kind, Body: b}
		if _, err := bSet.Decrypt(bob.local, in, now); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
	storeAfter, _ := bob.local.Prekeys.MarshalBinary()
	if !bytes.Equal(storeBefore, storeAfter) || bSet.HasSession() {
		t.Fatal("rejected prekey messages changed state")
	}
	in := &envelope.Inner{SenderAccount: alice.local.Cert.Account(), SenderDevice: alice.local.Cert.DeviceID(), Kind: kind, Body: body}
	if pt, err := bSet.Decrypt(bob.local, in, now); err != nil || string(pt) != "payload" {
		t.Fatalf("the genuine message no longer decrypts: %v", err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	alice, bob := newDev(t), newDev(t)
	aSet := NewSet(bob.local.Cert)
	if err := aSet.Start(alice.local, bob.bundle(t)); err != nil {
		t.Fatal(err)
	}
	bSet := NewSet(alice.local.Cert)
	mustReceive(t, bob, bSet, send(t, alice, aSet, bob, "one"), "one")
	for _, s := range []**Set{&aSet, &bSet} {
		b, err := (*s).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if *s, err = Unmarshal(b); err != nil {
			t.Fatal(err)
		}
	}
	mustReceive(t, alice, aSet, send(t, bob, bSet, alice, "two"), "two")
	mustReceive(t, bob, bSet, send(t, alice, aSet, bob, "three"), "three")
}

func FuzzUnmarshal(f *testing.F) {
	alice, bob := newDev(f), newDev(f)
	set := NewSet(bob.local.Cert)
	if err := set.Start(alice.local, bob.bundle(f)); err != nil {
		f.Fatal(err)
	}
	b, _ := set.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Unmarshal(b)
		if err != nil {
			return
		}
		if _, err := s.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzDecrypt(f *testing.F) {
	alice, bob := newDev(f), newDev(f)
	aSet := NewSet(bob.local.Cert)
	if err := aSet.Start(alice.local, bob.bundle(f)); err != nil {
		f.Fatal(err)
	}
	_, body, _ := aSet.Encrypt(alice.local, []byte("seed"))
	f.Add(uint8(envelope.KindPrekeyMessage), body)
	f.Add(uint8(envelope.KindMessage), body[:40])
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		bSet := NewSet(alice.local.Cert)
		in := &envelope.Inner{SenderAccount: alice.local.Cert.Account(), SenderDevice: alice.local.Cert.DeviceID(), Kind: envelope.Kind(kind), Body: body}
		bSet.Decrypt(bob.local, in, now)
	})
}

// The figures the foundation issue asks for, in one run: the full
// per-message path (ratchet + envelope, seal and open) against HPKE alone
// and raw XChaCha20-Poly1305 for the same 256-byte message.
func BenchmarkMessage256(b *testing.B) {
	alice, bob := newDev(b), newDev(b)
	aSet := NewSet(bob.local.Cert)
	if err := aSet.Start(alice.local, bob.bundle(b)); err != nil {
		b.Fatal(err)
	}
	bSet := NewSet(alice.local.Cert)
	mustReceive(b, bob, bSet, send(b, alice, aSet, bob, "x"), "x")
	mustReceive(b, alice, aSet, send(b, bob, bSet, alice, "y"), "y")
	msg := bytes.Repeat([]byte{'m'}, 256)
	mailbox := bob.local.Cert.MailboxKey()
	b.ReportAllocs()
	b.SetBytes(256)
	for b.Loop() {
		kind, body, err := aSet.Encrypt(alice.local, msg)
		if err != nil {
			b.Fatal(err)
		}
		sealed, err := envelope.Seal(mailbox, &envelope.Inner{SenderAccount: alice.local.Cert.Account(), SenderDevice: alice.local.Cert.DeviceID(), Kind: kind, Body: body})
		if err != nil {
			b.Fatal(err)
		}
		in, err := bob.opener.Open(sealed)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bSet.Decrypt(bob.local, in, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHPKESealOpen256 is HPKE alone on a 512-byte plaintext (the
// envelope bucket a 256-byte message lands in).
func BenchmarkHPKESealOpen256(b *testing.B) {
	bob := newDev(b)
	pub, err := hpke.NewDHKEMPublicKey(bob.local.Cert.MailboxKey())
	if err != nil {
		b.Fatal(err)
	}
	priv, err := hpke.NewDHKEMPrivateKey(bob.local.Device.MailboxKey())
	if err != nil {
		b.Fatal(err)
	}
	pt := make([]byte, 512-16-50)
	b.ReportAllocs()
	b.SetBytes(256)
	for b.Loop() {
		ct, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), []byte("info"), pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), []byte("info"), ct); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkXChaCha256(b *testing.B) {
	key := make([]byte, 32)
	pt := make([]byte, 256)
	b.ReportAllocs()
	b.SetBytes(256)
	for b.Loop() {
		if _, err := suite.Open(key, suite.Seal(key, pt, nil), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandshake is a full session start: PQXDH on a parsed bundle,
// the first prekey message, and the responder accepting it.
func BenchmarkHandshake(b *testing.B) {
	alice, bob := newDev(b), newDevOTK(b, 0)
	bundle := bob.bundle(b) // last-resort keys only, so it can be reused
	msg := []byte("hello")
	b.ReportAllocs()
	for b.Loop() {
		aSet := NewSet(bob.local.Cert)
		if err := aSet.Start(alice.local, bundle); err != nil {
			b.Fatal(err)
		}
		kind, body, err := aSet.Encrypt(alice.local, msg)
		if err != nil {
			b.Fatal(err)
		}
		bSet := NewSet(alice.local.Cert)
		in := &envelope.Inner{SenderAccount: alice.local.Cert.Account(), SenderDevice: alice.local.Cert.DeviceID(), Kind: kind, Body: body}
		if _, err := bSet.Decrypt(bob.local, in, now); err != nil {
			b.Fatal(err)
		}
	}
}

// The largest plaintext the ratchet accepts, sent as a prekey message (the
// biggest body a session produces), must still fit in an envelope.
func TestLargestMessageFitsEnvelope(t *testing.T) {
	alice, bob := newDev(t), newDev(t)
	aSet := NewSet(bob.local.Cert)
	if err := aSet.Start(alice.local, bob.bundle(t)); err != nil {
		t.Fatal(err)
	}
	kind, body, err := aSet.Encrypt(alice.local, make([]byte, ratchet.MaxPlaintext))
	if err != nil {
		t.Fatal(err)
	}
	if kind != envelope.KindPrekeyMessage {
		t.Fatal("want a prekey message")
	}
	if _, err := envelope.Seal(bob.local.Cert.MailboxKey(), &envelope.Inner{Kind: kind, Body: body}); err != nil {
		t.Fatalf("largest prekey message does not fit an envelope: %v", err)
	}
}

// A prekey message read with DecryptUncommitted and then refused (the
// caller did not call commit) changes neither the prekey store nor the
// set; committed later, it opens the session. A refused request cannot
// use up one-time prekeys or fill the replay cache.
func TestRefusedPrekeyMessageChangesNothing(t *testing.T) {
	for _, otk := range []int{0, 10} { // last-resort only (replay cache) and one-time
		alice, bob := newDev(t), newDevOTK(t, otk)
		aSet := NewSet(bob.local.Cert)
		if err := aSet.Start(alice.local, bob.bundle(t)); err != nil {
			t.Fatal(err)
		}
		m1 := send(t, alice, aSet, bob, "let me in")
		storeBefore, _ := bob.local.Prekeys.MarshalBinary()
		bSet := NewSet(alice.local.Cert)
		setBefore, _ := bSet.MarshalBinary()
		pt, commit, err := bSet.DecryptUncommitted(bob.local, mustOpen(t, bob, m1), now)
		if err != nil || string(pt) != "let me in" || commit == nil {
			t.Fatalf("otk %d: %q, %v, commit %v", otk, pt, err, commit != nil)
		}
		storeAfter, _ := bob.local.Prekeys.MarshalBinary()
		setAfter, _ := bSet.MarshalBinary()
		if !bytes.Equal(storeBefore, storeAfter) || !bytes.Equal(setBefore, setAfter) || bSet.HasSession() {
			t.Fatalf("otk %d: an uncommitted prekey message changed state", otk)
		}
		// The same message again, accepted this time.
		if _, commit, err = bSet.DecryptUncommitted(bob.local, mustOpen(t, bob, m1), now); err != nil {
			t.Fatalf("otk %d: second read: %v", otk, err)
		}
		if err := commit(); err != nil {
			t.Fatal(err)
		}
		if !bSet.HasSession() {
			t.Fatalf("otk %d: commit opened no session", otk)
		}
		if after, _ := bob.local.Prekeys.MarshalBinary(); bytes.Equal(after, storeBefore) {
			t.Fatalf("otk %d: commit did not record the prekey use", otk)
		}
	}
}

// claimDevice returns a certificate in which account claims the device
// that cert describes: the same device ID and keys under another account.
// A certificate proves no possession of the keys it names, so any account
// can sign one; only the session's associated data, which binds both
// certificates, tells it from the genuine one.
func claimDevice(t testing.TB, account *identity.Account, cert *identity.DeviceCert) *identity.DeviceCert {
	t.Helper()
	enc := cert.Marshal()
	id := account.Public()
	copy(enc[2:2+identity.AccountIDSize], id[:]) // after version ‖ suite
	body := enc[:identity.CertSize-identity.SignatureSize]
	priv, err := account.MarshalBinary() // version ‖ suite ‖ kind ‖ seed
	if err != nil {
		t.Fatal(err)
	}
	w := codec.NewWriter(2 + 32 + len(body))
	w.String16("hush/v1/device-cert")
	w.Fixed(body)
	copy(enc[len(body):], ed25519.Sign(ed25519.NewKeyFromSeed(priv[3:]), w.Bytes()))
	forged, err := identity.ParseDeviceCert(enc)
	if err != nil {
		t.Fatalf("forged certificate: %v", err)
	}
	if forged.Account() == cert.Account() || forged.DeviceID() != cert.DeviceID() ||
		!forged.IdentityKey().Equal(cert.IdentityKey()) || !forged.MailboxKey().Equal(cert.MailboxKey()) {
		t.Fatal("forged certificate does not claim the same device under another account")
	}
	return forged
}

// Unknown-key share: the associated data binds both certificates, so a
// session's messages decrypt only between the two certificates it was
// started with, even when an attacker's account has certified the very
// same device keys (the PQXDH key agreement, which sees only the keys,
// would agree).
func TestAttackUnknownKeyShare(t *testing.T) {
	// Eve relabels Alice's prekey message as her own: her account's
	// certificate for Alice's device replaces Alice's. Bob must not read
	// Alice's words as Eve's.
	t.Run("initiator", func(t *testing.T) {
		alice, bob := newDev(t), newDev(t)
		eve, err := identity.NewAccount()
		if err != nil {
			t.Fatal(err)
		}
		eveCert := claimDevice(t, eve, alice.local.Cert)
		aSet := NewSet(bob.local.Cert)
		if err := aSet.Start(alice.local, bob.bundle(t)); err != nil {
			t.Fatal(err)
		}
		kind, body, err := aSet.Encrypt(alice.local, []byte("alice to bob"))
		if err != nil || kind != envelope.KindPrekeyMessage {
			t.Fatalf("encrypt: kind %d, %v", kind, err)
		}
		r := codec.NewReader(body)
		r.Bytes16(identity.CertSize)
		initial := r.Bytes16(pqxdh.MaxInitialSize)
		msg := r.Bytes32(ratchet.MaxMessageSize)
		if err := r.Done(); err != nil {
			t.Fatal(err)
		}
		w := codec.NewWriter(len(body))
		w.Bytes16(eveCert.Marshal())
		w.Bytes16(initial)
		w.Bytes32(msg)
		relabelled := w.Bytes()

		sender, err := PrekeySender(relabelled)
		if err != nil || !sender.Equal(eveCert) {
			t.Fatalf("PrekeySender: %v", err)
		}
		storeBefore, _ := bob.local.Prekeys.MarshalBinary()
		eSet := NewSet(sender)
		in := &envelope.Inner{SenderAccount: eve.Public(), SenderDevice: eveCert.DeviceID(), Kind: kind, Body: relabelled}
		if pt, err := eSet.Decrypt(bob.local, in, now); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("Alice's message relabelled as Eve's: got %q, %v; want ErrDecrypt", pt, err)
		}
		storeAfter, _ := bob.local.Prekeys.MarshalBinary()
		if !bytes.Equal(storeBefore, storeAfter) || eSet.HasSession() {
			t.Fatal("the refused message changed state")
		}
		// The same message under Alice's own certificate decrypts: only
		// the certificate made the difference.
		in = &envelope.Inner{SenderAccount: alice.local.Cert.Account(), SenderDevice: alice.local.Cert.DeviceID(), Kind: kind, Body: body}
		if pt, err := NewSet(alice.local.Cert).Decrypt(bob.local, in, now); err != nil || string(pt) != "alice to bob" {
			t.Fatalf("the genuine message: %q, %v", pt, err)
		}
	})

	// Eve publishes Bob's device (and his signed bundle) as her own. Alice
	// writes to "Eve"; Eve forwards the envelope, which is sealed to Bob's
	// mailbox key. Bob must not read as written to him what Alice wrote to
	// Eve.
	t.Run("responder", func(t *testing.T) {
		alice, bob := newDev(t), newDev(t)
		eve, err := identity.NewAccount()
		if err != nil {
			t.Fatal(err)
		}
		eveCert := claimDevice(t, eve, bob.local.Cert)
		aSet := NewSet(eveCert)
		if err := aSet.Start(alice.local, bob.bundle(t)); err != nil {
			t.Fatal(err)
		}
		sealed := send(t, alice, aSet, bob, "alice to eve") // eveCert's mailbox key is Bob's
		in := mustOpen(t, bob, sealed)
		sender, err := PrekeySender(in.Body)
		if err != nil || !sender.Equal(alice.local.Cert) {
			t.Fatalf("PrekeySender: %v", err)
		}
		storeBefore, _ := bob.local.Prekeys.MarshalBinary()
		bSet := NewSet(sender)
		if pt, err := bSet.Decrypt(bob.local, in, now); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("a message to Eve read by Bob: got %q, %v; want ErrDecrypt", pt, err)
		}
		storeAfter, _ := bob.local.Prekeys.MarshalBinary()
		if !bytes.Equal(storeBefore, storeAfter) || bSet.HasSession() {
			t.Fatal("the refused message changed state")
		}
		// Alice writing to Bob's own certificate reaches him.
		aSet = NewSet(bob.local.Cert)
		if err := aSet.Start(alice.local, bob.bundle(t)); err != nil {
			t.Fatal(err)
		}
		mustReceive(t, bob, bSet, send(t, alice, aSet, bob, "alice to bob"), "alice to bob")
	})
}
