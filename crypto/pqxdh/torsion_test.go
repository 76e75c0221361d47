package pqxdh

import (
	"bytes"
	"errors"
	"math/big"
	"testing"

	"github.com/hushnet/hush/crypto/x25519"
)

// Affine Montgomery-curve arithmetic on Curve25519 (v² = u³ + A·u² + u),
// test-only, to build public keys with a small-order component.
var (
	fp        = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	curveA    = big.NewInt(486662)
	orderL, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
)

type mpoint struct {
	u, v *big.Int
	inf  bool
}

func fmod(x *big.Int) *big.Int { return x.Mod(x, fp) }

func finv(x *big.Int) *big.Int { return new(big.Int).ModInverse(x, fp) }

func madd(p, q mpoint) mpoint {
	if p.inf {
		return q
	}
	if q.inf {
		return p
	}
	var lambda *big.Int
	if p.u.Cmp(q.u) == 0 {
		if fmod(new(big.Int).Add(p.v, q.v)).Sign() == 0 {
			return mpoint{inf: true}
		}
		// (3u² + 2Au + 1) / 2v
		num := new(big.Int).Mul(big.NewInt(3), new(big.Int).Mul(p.u, p.u))
		num.Add(num, new(big.Int).Mul(new(big.Int).Mul(big.NewInt(2), curveA), p.u))
		num.Add(num, big.NewInt(1))
		lambda = fmod(num.Mul(num, finv(fmod(new(big.Int).Mul(big.NewInt(2), p.v)))))
	} else {
		num := fmod(new(big.Int).Sub(q.v, p.v))
		den := fmod(new(big.Int).Sub(q.u, p.u))
		lambda = fmod(num.Mul(num, finv(den)))
	}
	u3 := new(big.Int).Mul(lambda, lambda)
	u3.Sub(u3, curveA).Sub(u3, p.u).Sub(u3, q.u)
	fmod(u3)
	v3 := new(big.Int).Sub(p.u, u3)
	v3.Mul(v3, lambda).Sub(v3, p.v)
	return mpoint{u: u3, v: fmod(v3)}
}

func mmul(k *big.Int, p mpoint) mpoint {
	r := mpoint{inf: true}
	for i := k.BitLen() - 1; i >= 0; i-- {
		r = madd(r, r)
		if k.Bit(i) == 1 {
			r = madd(r, p)
		}
	}
	return r
}

// lift returns a point with u-coordinate u, or false if u is on the twist.
func lift(u *big.Int) (mpoint, bool) {
	rhs := new(big.Int).Mul(u, u)
	rhs.Mul(rhs, u)
	rhs.Add(rhs, new(big.Int).Mul(curveA, new(big.Int).Mul(u, u)))
	rhs.Add(rhs, u)
	v := new(big.Int).ModSqrt(fmod(rhs), fp)
	if v == nil {
		return mpoint{}, false
	}
	return mpoint{u: new(big.Int).Set(u), v: v}, true
}

func uFromLE(b []byte) *big.Int {
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	return new(big.Int).SetBytes(be)
}

func uToLE(u *big.Int) []byte {
	out := make([]byte, 32)
	be := u.FillBytes(make([]byte, 32))
	for i := range be {
		out[31-i] = be[i]
	}
	return out
}

// order8Point finds a point of order exactly 8.
func order8Point(t *testing.T) mpoint {
	for u := int64(2); u < 1000; u++ {
		p, ok := lift(big.NewInt(u))
		if !ok {
			continue
		}
		tp := mmul(orderL, p)
		if !tp.inf && !mmul(big.NewInt(4), tp).inf {
			return tp
		}
	}
	t.Fatal("no order-8 point found")
	return mpoint{}
}

// torsioned returns pub + T for a point T of order 8: different bytes,
// same X25519 result for every clamped scalar.
func torsioned(t *testing.T, pub []byte) []byte {
	p, ok := lift(uFromLE(pub))
	if !ok {
		t.Fatal("public key not on curve")
	}
	return uToLE(madd(p, order8Point(t)).u)
}

func TestAttackReplayTorsionedEphemeral(t *testing.T) {
	alice, bob := newDevice(t, 0), newDevice(t, 0)
	_, in := initiate(t, alice, bob, fetch(t, bob, false, false, t0))
	p, err := bob.store.Respond(bob.id, alice.id.PublicKey(), in, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, bob.store)

	tors := torsioned(t, in.Ephemeral[:])
	if bytes.Equal(tors, in.Ephemeral[:]) {
		t.Fatal("torsioned key equals original")
	}
	// The construction is right: the raw X25519 function cannot tell the
	// two keys apart, so a cache on raw bytes would miss this replay.
	ek1, err1 := bob.id.Curve().NewPublicKey(in.Ephemeral[:])
	ek2, err2 := bob.id.Curve().NewPublicKey(tors)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	s1, _ := bob.id.ECDH(ek1)
	s2, _ := bob.id.ECDH(ek2)
	if !bytes.Equal(s1, s2) {
		t.Fatal("torsioned key gives a different shared secret; construction wrong")
	}

	replay := *in
	copy(replay.Ephemeral[:], tors)
	_, err = bob.store.Respond(bob.id, alice.id.PublicKey(), &replay, nil, t0)
	if !errors.Is(err, ErrInvalidKey) || !errors.Is(err, x25519.ErrInvalidKey) || errors.Is(err, ErrReplay) {
		t.Fatalf("torsioned replay: got %v, want an invalid-key rejection", err)
	}
	mustUnchanged(t, bob.store, before)

	// Known bad ephemeral keys: each is refused as invalid before any
	// prekey lookup or cache check (the IDs are even unknown here).
	pMinus := func(d int64) []byte { return uToLE(new(big.Int).Sub(fp, big.NewInt(d))) }
	plus := func(u int64) []byte { return uToLE(new(big.Int).Add(fp, big.NewInt(u))) }
	highBit := append([]byte{}, in.Ephemeral[:]...)
	highBit[31] |= 0x80
	o8 := order8Point(t)
	bad := map[string][]byte{
		"zero":                  make([]byte, 32),
		"one":                   uToLE(big.NewInt(1)),
		"p-1 (order 4)":         pMinus(1),
		"p (non-canonical 0)":   pMinus(0),
		"p+1 (non-canonical 1)": plus(1),
		"2^255-1":               bytes.Repeat([]byte{0xff}, 32),
		"order 8":               uToLE(o8.u),
		"order 8 negated":       uToLE(madd(o8, madd(o8, madd(o8, madd(o8, o8)))).u),
		"high bit set":          highBit,
		"torsioned":             tors,
	}
	for u := int64(2); ; u++ {
		if _, ok := lift(big.NewInt(u)); !ok {
			bad["on twist"] = uToLE(big.NewInt(u))
			break
		}
	}
	for name, k := range bad {
		probe := *in
		copy(probe.Ephemeral[:], k)
		probe.SignedPrekeyID = 0xdeadbeef
		if _, err := bob.store.Respond(bob.id, alice.id.PublicKey(), &probe, nil, t0); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s: got %v, want ErrInvalidKey", name, err)
		}
	}
	mustUnchanged(t, bob.store, before)
}
