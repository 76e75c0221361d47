package pqxdh

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/mlkem"
	"errors"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/x25519"
)

var t0 = time.Unix(1_800_000_000, 0)

const day = 24 * time.Hour

type device struct {
	id       *ecdh.PrivateKey
	signPriv ed25519.PrivateKey
	signPub  ed25519.PublicKey
	store    *PrekeyStore
}

func newDevice(t testing.TB, oneTime int) *device {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewPrekeyStore(priv, t0)
	if err != nil {
		t.Fatal(err)
	}
	if oneTime > 0 {
		if err := s.GenerateOneTime(oneTime, t0); err != nil {
			t.Fatal(err)
		}
	}
	return &device{id: x25519.GenerateKey(), signPriv: priv, signPub: pub, store: s}
}

// fetch asks d's store for a bundle, drops the one-time keys not wanted and
// sends it through the wire encoding.
func fetch(t testing.TB, d *device, withOPK, withPQOPK bool, now time.Time) *Bundle {
	t.Helper()
	b, err := d.store.Bundle(now)
	if err != nil {
		t.Fatal(err)
	}
	if !withOPK {
		b.OneTime = nil
	}
	if !withPQOPK {
		b.PQOneTime = nil
	}
	parsed, err := ParseBundle(b.Marshal(), d.signPub, now)
	if err != nil {
		t.Fatalf("ParseBundle: %v", err)
	}
	return parsed
}

func snapshot(t testing.TB, s *PrekeyStore) []byte {
	t.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustUnchanged(t *testing.T, s *PrekeyStore, before []byte) {
	t.Helper()
	if !bytes.Equal(snapshot(t, s), before) {
		t.Fatal("store changed after a rejected message")
	}
}

// initiate runs Initiate and sends the Initial through the wire encoding.
func initiate(t testing.TB, alice *device, bob *device, b *Bundle) (*InitResult, *Initial) {
	t.Helper()
	res, err := Initiate(alice.id, bob.id.PublicKey(), b, []byte("ad"))
	if err != nil {
		t.Fatalf("Initiate: %v", err)
	}
	in, err := ParseInitial(res.Initial.Marshal())
	if err != nil {
		t.Fatalf("ParseInitial: %v", err)
	}
	return res, in
}

func TestHandshake(t *testing.T) {
	for _, tc := range []struct {
		name           string
		opk, pqopk     bool
		wantReplayErr  error // error for a second identical initial message
		wantReplayUsed bool  // whether the replay cache grew
	}{
		{"one-time both", true, true, ErrUnknownPrekey, false},
		{"one-time X25519, last-resort ML-KEM", true, false, ErrUnknownPrekey, false},
		{"no OPK, one-time ML-KEM", false, true, ErrUnknownPrekey, false},
		{"last resort only", false, false, ErrReplay, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alice, bob := newDevice(t, 0), newDevice(t, 2)
			b := fetch(t, bob, tc.opk, tc.pqopk, t0)
			res, in := initiate(t, alice, bob, b)
			if len(res.SK) != SKSize {
				t.Fatalf("SK is %d bytes", len(res.SK))
			}
			if in.HasOneTime != tc.opk || in.PQOneTime != tc.pqopk {
				t.Fatalf("initial flags opk=%v pqopk=%v", in.HasOneTime, in.PQOneTime)
			}
			if tc.opk && in.OneTimePrekeyID != b.OneTime.ID {
				t.Fatal("wrong one-time prekey ID")
			}
			wantPQ := b.PQPrekey.ID
			if tc.pqopk {
				wantPQ = b.PQOneTime.ID
			}
			if in.PQPrekeyID != wantPQ || in.SignedPrekeyID != b.SignedPrekey.ID {
				t.Fatal("wrong prekey IDs in initial")
			}
			if !bytes.Equal(res.AD, []byte("ad")) {
				t.Fatal("AD not passed through")
			}
			before := snapshot(t, bob.store)
			p, err := bob.store.Respond(bob.id, alice.id.PublicKey(), in, []byte("ad"), t0.Add(time.Hour))
			if err != nil {
				t.Fatalf("Respond: %v", err)
			}
			if !bytes.Equal(p.SK, res.SK) {
				t.Fatal("initiator and responder derived different SKs")
			}
			if !p.SignedPrekey.PublicKey().Equal(res.PeerSignedPrekey) {
				t.Fatal("responder's signed prekey differs from initiator's view")
			}
			mustUnchanged(t, bob.store, before) // Respond alone changes nothing
			if err := p.Commit(); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			if err := p.Commit(); !errors.Is(err, ErrCommitted) {
				t.Fatalf("second Commit: %v", err)
			}
			if got := len(bob.store.replay); (got == 1) != tc.wantReplayUsed {
				t.Fatalf("replay cache holds %d entries", got)
			}
			after := snapshot(t, bob.store)
			if bytes.Equal(after, before) {
				t.Fatal("Commit changed nothing")
			}
			_, err = bob.store.Respond(bob.id, alice.id.PublicKey(), in, []byte("ad"), t0.Add(time.Hour))
			if !errors.Is(err, tc.wantReplayErr) {
				t.Fatalf("replayed initial: got %v, want %v", err, tc.wantReplayErr)
			}
			mustUnchanged(t, bob.store, after)
		})
	}
}

func TestWrongPeerIdentityGivesOtherSK(t *testing.T) {
	alice, bob, mallory := newDevice(t, 0), newDevice(t, 1), newDevice(t, 0)
	res, in := initiate(t, alice, bob, fetch(t, bob, true, true, t0))
	p, err := bob.store.Respond(bob.id, mallory.id.PublicKey(), in, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(p.SK, res.SK) {
		t.Fatal("SK does not depend on the initiator's identity key")
	}
	// A changed ciphertext gives another SK (ML-KEM implicit rejection),
	// not an error that would be an oracle.
	in.Ciphertext[0] ^= 1
	p, err = bob.store.Respond(bob.id, alice.id.PublicKey(), in, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(p.SK, res.SK) {
		t.Fatal("SK does not depend on the ML-KEM ciphertext")
	}
}

func TestAttackReplayOneTimeConsumed(t *testing.T) {
	alice, bob := newDevice(t, 0), newDevice(t, 1)
	_, in := initiate(t, alice, bob, fetch(t, bob, true, true, t0))
	p, err := bob.store.Respond(bob.id, alice.id.PublicKey(), in, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, bob.store)
	if _, err := bob.store.Respond(bob.id, alice.id.PublicKey(), in, nil, t0); !errors.Is(err, ErrUnknownPrekey) {
		t.Fatalf("replay after OPK consumed: %v", err)
	}
	// Only the X25519 one-time key named: the PQ one has gone too.
	in2 := *in
	in2.PQOneTime, in2.PQPrekeyID = false, fetch(t, bob, false, false, t0).PQPrekey.ID
	before = snapshot(t, bob.store)
	if _, err := bob.store.Respond(bob.id, alice.id.PublicKey(), &in2, nil, t0); !errors.Is(err, ErrUnknownPrekey) {
		t.Fatalf("replay naming the consumed OPK: %v", err)
	}
	mustUnchanged(t, bob.store, before)
}

func TestAttackReplayLastResort(t *testing.T) {
	alice, bob := newDevice(t, 0), newDevice(t, 0)
	_, in := initiate(t, alice, bob, fetch(t, bob, false, false, t0))
	// Two receipts of the same message before either commits: only the
	// first commit succeeds.
	p1, err := bob.store.Respond(bob.id, alice.id.PublicKey(), in, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := bob.store.Respond(bob.id, alice.id.PublicKey(), in, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := p1.Commit(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, bob.store)
	if err := p2.Commit(); !errors.Is(err, ErrReplay) {
		t.Fatalf("second commit of the same message: %v", err)
	}
	mustUnchanged(t, bob.store, before)
	if _, err := bob.store.Respond(bob.id, alice.id.PublicKey(), in, nil, t0); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	mustUnchanged(t, bob.store, before)
	// The replay cache survives serialisation.
	s2, err := UnmarshalPrekeyStore(before, bob.signPriv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Respond(bob.id, alice.id.PublicKey(), in, nil, t0); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay against reloaded store: %v", err)
	}
	// A fresh last-resort message from the same sender is accepted.
	_, in3 := initiate(t, alice, bob, fetch(t, bob, false, false, t0))
	if _, err := bob.store.Respond(bob.id, alice.id.PublicKey(), in3, nil, t0); err != nil {
		t.Fatalf("fresh message: %v", err)
	}
}

func TestAttackDoubledOneTimePrekey(t *testing.T) {
	alice, carol, bob := newDevice(t, 0), newDevice(t, 0), newDevice(t, 1)
	b := fetch(t, bob, true, true, t0)
	// A malicious relay hands the same bundle to Alice and Carol.
	resA, inA := initiate(t, alice, bob, b)
	_, inC := initiate(t, carol, bob, b)

	pA, err := bob.store.Respond(bob.id, alice.id.PublicKey(), inA, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	pC, err := bob.store.Respond(bob.id, carol.id.PublicKey(), inC, nil, t0)
	if err != nil {
		t.Fatal(err) // both pending: neither has decrypted yet
	}
	if err := pA.Commit(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, bob.store)
	if err := pC.Commit(); !errors.Is(err, ErrUnknownPrekey) {
		t.Fatalf("second use of the same OPK committed: %v", err)
	}
	mustUnchanged(t, bob.store, before)
	if _, err := bob.store.Respond(bob.id, carol.id.PublicKey(), inC, nil, t0); !errors.Is(err, ErrUnknownPrekey) {
		t.Fatalf("second use of the same OPK: %v", err)
	}
	mustUnchanged(t, bob.store, before)
	if !bytes.Equal(pA.SK, resA.SK) {
		t.Fatal("first session broken")
	}
}

func TestUnknownPrekey(t *testing.T) {
	alice, bob := newDevice(t, 0), newDevice(t, 1)
	_, good := initiate(t, alice, bob, fetch(t, bob, true, true, t0))
	before := snapshot(t, bob.store)
	for _, tc := range []struct {
		name string
		mod  func(*Initial)
	}{
		{"signed prekey", func(in *Initial) { in.SignedPrekeyID += 1000 }},
		{"one-time prekey", func(in *Initial) { in.OneTimePrekeyID += 1000 }},
		{"PQ one-time prekey", func(in *Initial) { in.PQPrekeyID += 1000 }},
		{"PQ one-time named as last resort", func(in *Initial) { in.PQOneTime = false }},
		{"last resort named as one-time", func(in *Initial) { in.PQPrekeyID = 2 }},
		{"signed prekey ID as one-time", func(in *Initial) { in.OneTimePrekeyID = in.SignedPrekeyID }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := *good
			tc.mod(&in)
			if _, err := bob.store.Respond(bob.id, alice.id.PublicKey(), &in, nil, t0); !errors.Is(err, ErrUnknownPrekey) {
				t.Fatalf("got %v", err)
			}
			mustUnchanged(t, bob.store, before)
		})
	}
}

func TestAttackDowngradeNoPQ(t *testing.T) {
	alice, bob := newDevice(t, 0), newDevice(t, 1)
	b, err := bob.store.Bundle(t0)
	if err != nil {
		t.Fatal(err)
	}
	enc := b.Marshal()

	// 1. The PQ prekey and everything after it stripped from the wire.
	stripped := enc[:2+ecPrekeySize]
	if _, err := ParseBundle(stripped, bob.signPub, t0); !errors.Is(err, ErrNoPQPrekey) {
		t.Fatalf("stripped bundle: %v", err)
	}
	// 2. Stripped PQ prekey with only the flags byte left.
	if _, err := ParseBundle(append(append([]byte{}, stripped...), 0), bob.signPub, t0); err == nil {
		t.Fatal("bundle without PQ prekey accepted")
	}
	// 3. Broken signature on the last-resort PQ prekey.
	bad := append([]byte{}, enc...)
	bad[2+ecPrekeySize+kemPrekeySize-1] ^= 0x40
	if _, err := ParseBundle(bad, bob.signPub, t0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("broken PQ signature: %v", err)
	}
	// 4. Broken signature on the one-time PQ prekey.
	bad = append([]byte{}, enc...)
	bad[len(bad)-1] ^= 0x01
	if _, err := ParseBundle(bad, bob.signPub, t0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("broken PQ one-time signature: %v", err)
	}
	// 5. A Bundle value without PQ keys, built by hand, is refused too.
	b.PQPrekey = KEMPrekey{}
	b.PQOneTime = nil
	if _, err := Initiate(alice.id, bob.id.PublicKey(), b, nil); !errors.Is(err, ErrNoPQPrekey) {
		t.Fatalf("Initiate without PQ prekey: %v", err)
	}
}

func TestAttackStaleBundle(t *testing.T) {
	bob := newDevice(t, 1)
	b, err := bob.store.Bundle(t0)
	if err != nil {
		t.Fatal(err)
	}
	enc := b.Marshal()
	for _, tc := range []struct {
		name string
		now  time.Time
		ok   bool
	}{
		{"fresh", t0, true},
		{"just before expiry", t0.Add(SignedPrekeyLifetime - time.Second), true},
		{"at expiry", t0.Add(SignedPrekeyLifetime), false},
		{"long expired", t0.Add(365 * day), false},
		{"created slightly in the future", t0.Add(-30 * time.Minute), true},
		{"created far in the future", t0.Add(-2 * time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseBundle(enc, bob.signPub, tc.now)
			if tc.ok && err != nil {
				t.Fatal(err)
			}
			if !tc.ok && !errors.Is(err, ErrExpired) {
				t.Fatalf("got %v, want ErrExpired", err)
			}
		})
	}
}

// resign re-signs an ECPrekey or KEMPrekey after a test edits it.
func resignEC(p *ECPrekey, k ed25519.PrivateKey)   { p.Signature = ed25519.Sign(k, p.message()) }
func resignKEM(p *KEMPrekey, k ed25519.PrivateKey) { p.Signature = ed25519.Sign(k, p.message()) }

func TestAttackBadPrekeySignature(t *testing.T) {
	bob, other := newDevice(t, 1), newDevice(t, 1)
	b, err := bob.store.Bundle(t0)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := other.store.Bundle(t0)
	if err != nil {
		t.Fatal(err)
	}
	enc := b.Marshal()
	if _, err := ParseBundle(enc, bob.signPub, t0); err != nil {
		t.Fatal(err)
	}
	t.Run("other signer", func(t *testing.T) {
		if _, err := ParseBundle(enc, other.signPub, t0); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("keys spliced from another device", func(t *testing.T) {
		for i, mod := range []func(c *Bundle){
			func(c *Bundle) { c.SignedPrekey = ob.SignedPrekey },
			func(c *Bundle) { c.PQPrekey = ob.PQPrekey },
			func(c *Bundle) { c.OneTime = ob.OneTime },
			func(c *Bundle) { c.PQOneTime = ob.PQOneTime },
		} {
			c := *b
			mod(&c)
			if _, err := ParseBundle(c.Marshal(), bob.signPub, t0); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("splice %d: got %v", i, err)
			}
		}
	})
	t.Run("kind confusion", func(t *testing.T) {
		c := *b
		c.SignedPrekey, c.OneTime = *b.OneTime, &b.SignedPrekey // one-time key served as signed prekey
		if _, err := ParseBundle(c.Marshal(), bob.signPub, t0); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("OPK as SPK: %v", err)
		}
		c = *b
		c.PQPrekey, c.PQOneTime = *b.PQOneTime, &b.PQPrekey
		if _, err := ParseBundle(c.Marshal(), bob.signPub, t0); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("PQOPK as last resort: %v", err)
		}
	})
	t.Run("every signed field", func(t *testing.T) {
		// Flip one bit in the ID, key, times and signature of each prekey.
		offsets := []int{}
		for _, start := range []int{2, 2 + ecPrekeySize + kemPrekeySize + 1} {
			offsets = append(offsets, start+3, start+4, start+4+31, start+4+32+7, start+4+32+15, start+4+32+16, start+ecPrekeySize-1)
		}
		for _, start := range []int{2 + ecPrekeySize, 2 + 2*ecPrekeySize + kemPrekeySize + 1} {
			offsets = append(offsets, start+3, start+4, start+4+KEMKeySize-1, start+4+KEMKeySize+7, start+4+KEMKeySize+15, start+4+KEMKeySize+16, start+kemPrekeySize-1)
		}
		for _, off := range offsets {
			bad := append([]byte{}, enc...)
			bad[off] ^= 0x01
			if _, err := ParseBundle(bad, bob.signPub, t0); err == nil {
				t.Fatalf("bit flip at %d accepted", off)
			}
		}
	})
	t.Run("malleated signature S+L", func(t *testing.T) {
		bad := append([]byte{}, enc...)
		sig := bad[2+ecPrekeySize-64 : 2+ecPrekeySize]
		addL(sig[32:])
		if _, err := ParseBundle(bad, bob.signPub, t0); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("S+L signature: %v", err)
		}
	})
}

// addL adds the Ed25519 group order L to the little-endian scalar s in
// place (the classic malleability: S+L < 2^256 verifies in lax libraries).
func addL(s []byte) {
	l := [32]byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 31: 0x10}
	var c uint16
	for i := range 32 {
		c += uint16(s[i]) + uint16(l[i])
		s[i] = byte(c)
		c >>= 8
	}
}

func TestAttackWrongLengthKEM(t *testing.T) {
	alice, bob := newDevice(t, 0), newDevice(t, 0)
	b, err := bob.store.Bundle(t0)
	if err != nil {
		t.Fatal(err)
	}
	enc := b.Marshal()
	kemStart := 2 + ecPrekeySize + 4
	t.Run("bundle key short", func(t *testing.T) {
		bad := append(append([]byte{}, enc[:kemStart+KEMKeySize-1]...), enc[kemStart+KEMKeySize:]...)
		if _, err := ParseBundle(bad, bob.signPub, t0); !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("bundle key long", func(t *testing.T) {
		bad := append(append(append([]byte{}, enc[:kemStart+KEMKeySize]...), 0), enc[kemStart+KEMKeySize:]...)
		if _, err := ParseBundle(bad, bob.signPub, t0); !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("modulus overflow, validly signed", func(t *testing.T) {
		raw := b.PQPrekey.Public.Bytes()
		raw[0] = 0xff
		raw[1] |= 0x0f // first 12-bit coefficient = 4095 >= q
		bad := append([]byte{}, enc...)
		copy(bad[kemStart:], raw)
		msg := signedMessage(KindPQLastResort, b.PQPrekey.ID, 0x03, raw, b.PQPrekey.Created, b.PQPrekey.Expires)
		copy(bad[kemStart+KEMKeySize+16:], ed25519.Sign(bob.signPriv, msg))
		if _, err := ParseBundle(bad, bob.signPub, t0); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("got %v", err)
		}
	})
	res, err := Initiate(alice.id, bob.id.PublicKey(), b, nil)
	if err != nil {
		t.Fatal(err)
	}
	ienc := res.Initial.Marshal()
	for _, n := range []int{-1, 1} {
		bad := make([]byte, 0, len(ienc)+1)
		bad = append(bad, ienc[:34+KEMCipherSize+min(n, 0)]...)
		if n > 0 {
			bad = append(bad, 0)
		}
		bad = append(bad, ienc[34+KEMCipherSize:]...)
		if _, err := ParseInitial(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("ciphertext length %+d: %v", n, err)
		}
	}
	before := snapshot(t, bob.store)
	for _, n := range []int{0, KEMCipherSize - 1, KEMCipherSize + 1, mlkem.CiphertextSize768} {
		in := *res.Initial
		in.Ciphertext = make([]byte, n)
		if _, err := bob.store.Respond(bob.id, alice.id.PublicKey(), &in, nil, t0); !errors.Is(err, ErrMalformed) {
			t.Fatalf("Respond with %d-byte ciphertext: %v", n, err)
		}
	}
	mustUnchanged(t, bob.store, before)
}

func TestParseInitialRejects(t *testing.T) {
	alice, bob := newDevice(t, 0), newDevice(t, 1)
	res, _ := initiate(t, alice, bob, fetch(t, bob, true, false, t0))
	enc := res.Initial.Marshal()
	if len(enc) != MaxInitialSize {
		t.Fatalf("initial with OPK is %d bytes", len(enc))
	}
	for n := range len(enc) {
		if n == InitialSize {
			continue // a valid length; the flags then disagree, checked below
		}
		if _, err := ParseInitial(enc[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("prefix of %d bytes: %v", n, err)
		}
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"trailing byte", append(append([]byte{}, enc...), 0), ErrMalformed},
		{"version", append([]byte{2}, enc[1:]...), ErrVersion},
		{"suite", append([]byte{1, 2}, enc[2:]...), ErrVersion},
		{"unknown flag", func() []byte { b := append([]byte{}, enc...); b[34+KEMCipherSize+4] |= 0x80; return b }(), ErrMalformed},
		{"flag says no OPK but ID present", func() []byte { b := append([]byte{}, enc...); b[34+KEMCipherSize+4] &^= 1; return b }(), ErrMalformed},
		{"flag says OPK but ID missing", enc[:InitialSize], ErrMalformed},
	} {
		if _, err := ParseInitial(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestParseBundleRejects(t *testing.T) {
	bob := newDevice(t, 1)
	b, err := bob.store.Bundle(t0)
	if err != nil {
		t.Fatal(err)
	}
	enc := b.Marshal()
	if len(enc) != MaxBundleSize {
		t.Fatalf("full bundle is %d bytes, want %d", len(enc), MaxBundleSize)
	}
	for n := 0; n < len(enc); n += 97 {
		if _, err := ParseBundle(enc[:n], bob.signPub, t0); err == nil {
			t.Fatalf("prefix of %d bytes accepted", n)
		}
	}
	flagAt := 2 + ecPrekeySize + kemPrekeySize
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"trailing byte", append(append([]byte{}, enc...), 0), ErrMalformed},
		{"version", append([]byte{2}, enc[1:]...), ErrVersion},
		{"suite", append([]byte{1, 0}, enc[2:]...), ErrVersion},
		{"unknown flag", func() []byte { b := append([]byte{}, enc...); b[flagAt] |= 4; return b }(), ErrMalformed},
		{"flags claim nothing", func() []byte { b := append([]byte{}, enc...); b[flagAt] = 0; return b }(), ErrMalformed},
		{"low-order signed prekey", func() []byte { b := append([]byte{}, enc...); copy(b[6:38], make([]byte, 32)); return b }(), ErrInvalidKey},
		{"signed prekey high bit", func() []byte { b := append([]byte{}, enc...); b[37] |= 0x80; return b }(), ErrInvalidKey},
	} {
		if _, err := ParseBundle(tc.b, bob.signPub, t0); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := ParseBundle(enc, bob.signPub[:31], t0); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("short signer: %v", err)
	}
	// Without one-time keys the bundle still round-trips.
	b.OneTime, b.PQOneTime = nil, nil
	got, err := ParseBundle(b.Marshal(), bob.signPub, t0)
	if err != nil || got.OneTime != nil || got.PQOneTime != nil || !bytes.Equal(got.Marshal(), b.Marshal()) {
		t.Fatalf("bundle without one-time keys: %v", err)
	}
}

func TestBundleHandsOutOnce(t *testing.T) {
	bob := newDevice(t, 2)
	seen := map[uint32]bool{}
	for i := range 2 {
		b, err := bob.store.Bundle(t0)
		if err != nil {
			t.Fatal(err)
		}
		if b.OneTime == nil || b.PQOneTime == nil {
			t.Fatalf("bundle %d lacks one-time keys", i)
		}
		for _, id := range []uint32{b.OneTime.ID, b.PQOneTime.ID} {
			if seen[id] {
				t.Fatalf("one-time prekey %d handed out twice", id)
			}
			seen[id] = true
		}
	}
	if ec, pq := bob.store.OneTimeAvailable(); ec != 0 || pq != 0 {
		t.Fatalf("available %d %d, want 0 0", ec, pq)
	}
	b, err := bob.store.Bundle(t0)
	if err != nil {
		t.Fatal(err)
	}
	if b.OneTime != nil || b.PQOneTime != nil {
		t.Fatal("exhausted pool still hands out one-time keys")
	}
	if err := bob.store.GenerateOneTime(MaxOneTimePool, t0); !errors.Is(err, ErrPoolFull) {
		t.Fatalf("overfilling the pool: %v", err)
	}
}

func TestRotate(t *testing.T) {
	alice, bob := newDevice(t, 0), newDevice(t, 0)
	old := fetch(t, bob, false, false, t0)
	_, in := initiate(t, alice, bob, old)
	p, err := bob.store.Respond(bob.id, alice.id.PublicKey(), in, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	if changed, err := bob.store.Rotate(t0.Add(RotationPeriod - time.Second)); err != nil || changed {
		t.Fatalf("early rotate: %v %v", changed, err)
	}
	later := t0.Add(RotationPeriod)
	if changed, err := bob.store.Rotate(later); err != nil || !changed {
		t.Fatalf("rotate: %v %v", changed, err)
	}
	nb := fetch(t, bob, false, false, later)
	if nb.SignedPrekey.ID == old.SignedPrekey.ID || nb.PQPrekey.ID == old.PQPrekey.ID {
		t.Fatal("rotation kept the old keys current")
	}
	// The old keys still answer during the grace period, and the replay
	// cache still holds the old entry.
	_, in2 := initiate(t, alice, bob, old)
	inGrace := t0.Add(SignedPrekeyLifetime + GracePeriod - time.Second)
	if _, err := bob.store.Respond(bob.id, alice.id.PublicKey(), in2, nil, inGrace); err != nil {
		t.Fatalf("old prekey within grace: %v", err)
	}
	if _, err := bob.store.Respond(bob.id, alice.id.PublicKey(), in, nil, later); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay after rotation: %v", err)
	}
	// Even without Rotate, keys past grace are refused.
	past := t0.Add(SignedPrekeyLifetime + GracePeriod)
	if _, err := bob.store.Respond(bob.id, alice.id.PublicKey(), in2, nil, past); !errors.Is(err, ErrUnknownPrekey) {
		t.Fatalf("old prekey past grace: %v", err)
	}
	if _, err := bob.store.Rotate(past); err != nil {
		t.Fatal(err)
	}
	if bob.store.findSignedLocked(old.SignedPrekey.ID) != nil || findKEM(bob.store.lastResort, old.PQPrekey.ID) != nil {
		t.Fatal("old private prekeys kept past grace")
	}
	if len(bob.store.replay) != 0 {
		t.Fatal("replay entries outlived their prekeys")
	}
}

func TestStoreRoundTrip(t *testing.T) {
	alice, bob := newDevice(t, 3), newDevice(t, 0)
	_ = alice
	if _, err := bob.store.Bundle(t0); err != nil {
		t.Fatal(err)
	}
	_, in := initiate(t, alice, bob, fetch(t, bob, false, false, t0))
	p, err := bob.store.Respond(bob.id, alice.id.PublicKey(), in, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.store.Rotate(t0.Add(RotationPeriod)); err != nil {
		t.Fatal(err)
	}
	if err := bob.store.GenerateOneTime(2, t0.Add(RotationPeriod)); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.store.Bundle(t0.Add(RotationPeriod)); err != nil {
		t.Fatal(err)
	}
	enc := snapshot(t, bob.store)
	s2, err := UnmarshalPrekeyStore(enc, bob.signPriv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshot(t, s2), enc) {
		t.Fatal("store does not round-trip")
	}
	if _, err := UnmarshalPrekeyStore(enc, alice.signPriv); !errors.Is(err, ErrSignerMismatch) {
		t.Fatalf("wrong signer: %v", err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"trailing", append(append([]byte{}, enc...), 0), ErrMalformed},
		{"version", append([]byte{9}, enc[1:]...), ErrVersion},
		{"empty", nil, ErrMalformed},
	} {
		if _, err := UnmarshalPrekeyStore(tc.b, bob.signPriv); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	for n := 0; n < len(enc); n += 37 {
		if _, err := UnmarshalPrekeyStore(enc[:n], bob.signPriv); err == nil {
			t.Fatalf("prefix of %d bytes accepted", n)
		}
	}
}
