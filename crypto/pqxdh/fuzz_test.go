package pqxdh

import (
	"bytes"
	"crypto/ed25519"
	"testing"
	"time"
)

// fuzzSigner is a fixed signing key so seeds built with it parse.
var fuzzSigner = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))

func fuzzStore(t testing.TB) *PrekeyStore {
	s, err := NewPrekeyStore(fuzzSigner, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.GenerateOneTime(1, t0); err != nil {
		t.Fatal(err)
	}
	return s
}

func FuzzParseBundle(f *testing.F) {
	s := fuzzStore(f)
	b, err := s.Bundle(t0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b.Marshal())
	b.OneTime = nil
	f.Add(b.Marshal())
	b.PQOneTime = nil
	f.Add(b.Marshal())
	f.Add([]byte{1, 1})
	pub := fuzzSigner.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := ParseBundle(in, pub, t0)
		if err != nil {
			return
		}
		if !bytes.Equal(got.Marshal(), in) {
			t.Fatal("accepted bundle does not re-encode to its input")
		}
		if _, err := ParseBundle(in, pub, t0.Add(SignedPrekeyLifetime+time.Hour)); err == nil {
			t.Fatal("bundle accepted after expiry")
		}
	})
}

func FuzzParseInitial(f *testing.F) {
	alice, bob := newDevice(f, 0), newDevice(f, 1)
	r1, _ := initiate(f, alice, bob, fetch(f, bob, true, true, t0))
	r2, _ := initiate(f, alice, bob, fetch(f, bob, false, false, t0))
	f.Add(r1.Initial.Marshal())
	f.Add(r2.Initial.Marshal())
	f.Add([]byte{1, 1, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := ParseInitial(in)
		if err != nil {
			return
		}
		if !bytes.Equal(got.Marshal(), in) {
			t.Fatal("accepted initial does not re-encode to its input")
		}
		// Respond must never panic on a structurally valid initial.
		before := snapshot(t, bob.store)
		bob.store.Respond(bob.id, alice.id.PublicKey(), got, nil, t0)
		if !bytes.Equal(snapshot(t, bob.store), before) {
			t.Fatal("Respond changed the store")
		}
	})
}

func FuzzPrekeyStoreUnmarshal(f *testing.F) {
	s := fuzzStore(f)
	f.Add(snapshot(f, s))
	if _, err := s.Bundle(t0); err != nil {
		f.Fatal(err)
	}
	f.Add(snapshot(f, s))
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := UnmarshalPrekeyStore(in, fuzzSigner)
		if err != nil {
			return
		}
		if !bytes.Equal(snapshot(t, got), in) {
			t.Fatal("accepted store does not re-encode to its input")
		}
		// A loaded store must work: rotating and issuing a bundle succeed.
		if _, err := got.Bundle(t0); err != nil {
			t.Fatal(err)
		}
	})
}

func BenchmarkHandshake(b *testing.B) {
	alice, bob := newDevice(b, 0), newDevice(b, 0)
	bundle := fetch(b, bob, false, false, t0)
	for b.Loop() {
		res, err := Initiate(alice.id, bob.id.PublicKey(), bundle, nil)
		if err != nil {
			b.Fatal(err)
		}
		p, err := bob.store.Respond(bob.id, alice.id.PublicKey(), res.Initial, nil, t0)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Commit(); err != nil {
			b.Fatal(err)
		}
		if len(bob.store.replay) >= MaxReplayEntries/2 {
			bob.store.replay, bob.store.replaySet = nil, map[[32]byte]struct{}{}
		}
	}
}

func BenchmarkHandshakeOneTime(b *testing.B) {
	alice, bob := newDevice(b, 0), newDevice(b, 0)
	bundle := fetch(b, bob, false, false, t0)
	opk := &ecKey{priv: bob.store.signed[0].priv}
	for b.Loop() {
		// Reuse one one-time key pair under fresh IDs, so the benchmark
		// measures the handshake rather than ML-KEM key generation.
		b.StopTimer()
		id, _ := bob.store.allocID()
		k := *opk
		k.pub = ECPrekey{Kind: KindOneTime, ID: id, Public: k.priv.PublicKey(), Created: t0.Unix(), Expires: t0.Unix() + 3600}
		bob.store.oneTime = append(bob.store.oneTime, &k)
		bundle.OneTime = &k.pub
		b.StartTimer()
		res, err := Initiate(alice.id, bob.id.PublicKey(), bundle, nil)
		if err != nil {
			b.Fatal(err)
		}
		p, err := bob.store.Respond(bob.id, alice.id.PublicKey(), res.Initial, nil, t0)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseBundle(b *testing.B) {
	s := fuzzStore(b)
	bundle, err := s.Bundle(t0)
	if err != nil {
		b.Fatal(err)
	}
	enc := bundle.Marshal()
	pub := fuzzSigner.Public().(ed25519.PublicKey)
	for b.Loop() {
		if _, err := ParseBundle(enc, pub, t0); err != nil {
			b.Fatal(err)
		}
	}
}
