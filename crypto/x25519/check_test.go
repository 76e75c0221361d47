package x25519

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"slices"
	"strings"
	"testing"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// ---- math/big reference -------------------------------------------------
//
// refCheck is an independent, slow implementation of Check: it recovers a
// full affine point (u, v) with a modular square root and multiplies it by
// L with textbook affine double-and-add, handling the point at infinity
// explicitly. It shares no code with the edwards25519 check.

var (
	bigP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	bigA = big.NewInt(486662)
	bigL = func() *big.Int {
		l, _ := new(big.Int).SetString("27742317777372353535851937790883648493", 10)
		return l.Add(l, new(big.Int).Lsh(big.NewInt(1), 252))
	}()
)

type refPoint struct {
	x, y *big.Int
	inf  bool
}

func mod(x *big.Int) *big.Int { return x.Mod(x, bigP) }

func refAdd(p, q refPoint) refPoint {
	if p.inf {
		return q
	}
	if q.inf {
		return p
	}
	var lambda *big.Int
	if p.x.Cmp(q.x) == 0 {
		if mod(new(big.Int).Add(p.y, q.y)).Sign() == 0 {
			return refPoint{inf: true}
		}
		// (3x^2 + 2Ax + 1) / 2y
		num := new(big.Int).Mul(big.NewInt(3), new(big.Int).Mul(p.x, p.x))
		num.Add(num, new(big.Int).Mul(new(big.Int).Mul(big.NewInt(2), bigA), p.x))
		num.Add(num, big.NewInt(1))
		den := mod(new(big.Int).Mul(big.NewInt(2), p.y))
		lambda = mod(num.Mul(num, new(big.Int).ModInverse(den, bigP)))
	} else {
		num := mod(new(big.Int).Sub(q.y, p.y))
		den := mod(new(big.Int).Sub(q.x, p.x))
		lambda = mod(num.Mul(num, new(big.Int).ModInverse(den, bigP)))
	}
	x3 := new(big.Int).Mul(lambda, lambda)
	x3.Sub(x3, bigA).Sub(x3, p.x).Sub(x3, q.x)
	mod(x3)
	y3 := new(big.Int).Sub(p.x, x3)
	y3.Mul(y3, lambda).Sub(y3, p.y)
	mod(y3)
	return refPoint{x: x3, y: y3}
}

func refMul(k *big.Int, p refPoint) refPoint {
	r := refPoint{inf: true}
	for i := k.BitLen() - 1; i >= 0; i-- {
		r = refAdd(r, r)
		if k.Bit(i) == 1 {
			r = refAdd(r, p)
		}
	}
	return r
}

func leToBig(b []byte) *big.Int {
	be := slices.Clone(b)
	slices.Reverse(be)
	return new(big.Int).SetBytes(be)
}

func bigToLE(x *big.Int) [32]byte {
	var out [32]byte
	x.FillBytes(out[:])
	slices.Reverse(out[:])
	return out
}

func refCheck(b []byte) bool {
	if len(b) != 32 || b[31]&0x80 != 0 {
		return false
	}
	u := leToBig(b)
	if u.Cmp(bigP) >= 0 || u.Sign() == 0 {
		return false
	}
	rhs := new(big.Int).Mul(u, u)
	rhs.Mul(rhs, u)
	rhs.Add(rhs, new(big.Int).Mul(bigA, new(big.Int).Mul(u, u)))
	rhs.Add(rhs, u)
	mod(rhs)
	if big.Jacobi(rhs, bigP) != 1 {
		return false
	}
	v := new(big.Int).ModSqrt(rhs, bigP)
	return refMul(bigL, refPoint{x: u, y: v}).inf
}

// refLift returns the point (u, v) of Curve25519 with u-coordinate b and
// one of the two square roots v, or false if b is not a canonical u of a
// curve point.
func refLift(b []byte) (refPoint, bool) {
	if len(b) != 32 || b[31]&0x80 != 0 {
		return refPoint{}, false
	}
	u := leToBig(b)
	if u.Cmp(bigP) >= 0 {
		return refPoint{}, false
	}
	rhs := new(big.Int).Mul(u, u)
	rhs.Mul(rhs, u)
	rhs.Add(rhs, new(big.Int).Mul(bigA, new(big.Int).Mul(u, u)))
	rhs.Add(rhs, u)
	v := new(big.Int).ModSqrt(mod(rhs), bigP)
	if v == nil {
		return refPoint{}, false
	}
	return refPoint{x: u, y: v}, true
}

func refBytes(p refPoint) []byte {
	b := bigToLE(p.x)
	return b[:]
}

func randBig(t testing.TB, max *big.Int) *big.Int {
	n, err := rand.Int(rand.Reader, max)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ---- the Montgomery-to-Edwards map ------------------------------------------

func TestLMinusOne(t *testing.T) {
	want := bigToLE(new(big.Int).Sub(bigL, big.NewInt(1)))
	if got := lMinusOne.Bytes(); !bytes.Equal(got, want[:]) {
		t.Fatalf("lMinusOne = %x, want L-1 = %x", got, want)
	}
}

// TestEdwardsMap checks edwardsPoint against crypto/ecdh and the math/big
// reference: an honest key maps to ±[k]B for its clamped scalar k, every
// image maps back to the same u, and a u maps to a point exactly when the
// reference finds it on the curve.
func TestEdwardsMap(t *testing.T) {
	for range 64 {
		priv := GenerateKey()
		pub := priv.PublicKey().Bytes()
		u, err := new(field.Element).SetBytes(pub)
		if err != nil {
			t.Fatal(err)
		}
		p, ok := edwardsPoint(u)
		if !ok {
			t.Fatalf("honest key %x has no Edwards image", pub)
		}
		if got := p.BytesMontgomery(); !bytes.Equal(got, pub) {
			t.Fatalf("edwardsPoint(%x) maps back to %x", pub, got)
		}
		k, err := edwards25519.NewScalar().SetBytesWithClamping(priv.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		kB := new(edwards25519.Point).ScalarBaseMult(k)
		if kB.Equal(p) != 1 && kB.Equal(new(edwards25519.Point).Negate(p)) != 1 {
			t.Fatalf("edwardsPoint(%x) is not ±[k]B", pub)
		}
	}
	for range 200 {
		b := make([]byte, 32)
		rand.Read(b)
		b[31] &= 0x7f
		u, _ := new(field.Element).SetBytes(b)
		if !bytes.Equal(u.Bytes(), b) || u.Equal(new(field.Element).Zero()) == 1 {
			continue
		}
		p, ok := edwardsPoint(u)
		if ok != refIsOnCurve(b) {
			t.Fatalf("edwardsPoint(%x) ok=%v, reference on-curve=%v", b, ok, refIsOnCurve(b))
		}
		if ok && !bytes.Equal(p.BytesMontgomery(), b) {
			t.Fatalf("edwardsPoint(%x) maps back to %x", b, p.BytesMontgomery())
		}
	}
	minusOne := bigToLE(new(big.Int).Sub(bigP, big.NewInt(1)))
	u, _ := new(field.Element).SetBytes(minusOne[:])
	if _, ok := edwardsPoint(u); ok || refIsOnCurve(minusOne[:]) {
		t.Fatal("u = -1 must be on the twist")
	}
}

// ---- Check ----------------------------------------------------------------

func TestCheckAcceptsGeneratedKeys(t *testing.T) {
	for range 300 {
		pub := GenerateKey().PublicKey().Bytes()
		if err := Check(pub); err != nil {
			t.Fatalf("Check(%x) = %v", pub, err)
		}
		if _, err := ParsePublicKey(pub); err != nil {
			t.Fatalf("ParsePublicKey(%x) = %v", pub, err)
		}
	}
	// The base point u = 9 itself.
	base := make([]byte, 32)
	base[0] = 9
	if err := Check(base); err != nil {
		t.Fatalf("Check(base point) = %v", err)
	}
}

func mustHex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckRejects(t *testing.T) {
	le := func(x *big.Int) []byte { b := bigToLE(x); return b[:] }
	p := bigP
	good := GenerateKey().PublicKey().Bytes()
	topBit := slices.Clone(good)
	topBit[31] |= 0x80
	tests := []struct {
		name   string
		in     []byte
		reason string
	}{
		{"empty", nil, "length"},
		{"short", good[:31], "length"},
		{"long", append(slices.Clone(good), 0), "length"},
		{"top bit set", topBit, "top bit"},
		{"u = p", le(p), "non-canonical"},
		{"u = p+1", le(new(big.Int).Add(p, big.NewInt(1))), "non-canonical"},
		{"u = 2^255-1", le(new(big.Int).Add(p, big.NewInt(18))), "non-canonical"},
		{"u = 0", make([]byte, 32), "order 2"},
		{"u = 1 (order 4)", le(big.NewInt(1)), "small order"},
		{"u = p-1 (twist)", le(new(big.Int).Sub(p, big.NewInt(1))), "twist"},
		{"order 8 point a", mustHex(t, "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"), "small order"},
		{"order 8 point b", mustHex(t, "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"), "small order"},
		{"u = 2 (twist)", le(big.NewInt(2)), "twist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.in)
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("Check = %v, want ErrInvalidKey", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Check = %q, want reason %q", err, tc.reason)
			}
			if refCheck(tc.in) {
				t.Fatalf("reference accepts %x", tc.in)
			}
			if _, err := ParsePublicKey(tc.in); !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("ParsePublicKey = %v", err)
			}
		})
	}
}

func TestCheckMatchesReference(t *testing.T) {
	// Random 32-byte strings hit every rule: about half are on the twist,
	// and of the on-curve ones only 1 in 8 is torsion free, so also build
	// torsion-free ones by multiplying by 8.
	for i := range 120 {
		b := make([]byte, 32)
		rand.Read(b)
		if i%3 != 0 {
			b[31] &= 0x7f
		}
		if i%3 == 1 {
			if p, ok := refLift(b); ok {
				q := refMul(big.NewInt(8), p)
				if q.inf {
					continue
				}
				b = refBytes(q)
			}
		}
		if got, want := Check(b) == nil, refCheck(b); got != want {
			t.Fatalf("Check(%x) accepted=%v, reference %v (%v)", b, got, want, Check(b))
		}
	}
}

func refIsOnCurve(b []byte) bool {
	u := leToBig(b)
	if b[31]&0x80 != 0 || u.Cmp(bigP) >= 0 || u.Sign() == 0 {
		return false
	}
	rhs := new(big.Int).Mul(u, u)
	rhs.Mul(rhs, u)
	rhs.Add(rhs, new(big.Int).Mul(bigA, new(big.Int).Mul(u, u)))
	rhs.Add(rhs, u)
	return big.Jacobi(mod(rhs), bigP) == 1
}

// order8 is the u-coordinate of a point of order 8.
const order8 = "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"

// TestAttackTorsionedKeySameSecret shows why Check rejects torsion: X25519
// clamps scalars to multiples of 8, so adding any of the seven non-zero
// points T of order 1 < ord(T) | 8 to an honest key P gives different bytes
// but the same X25519 output for every private key, which would let a
// replay cache keyed on key bytes be bypassed. Check must accept P and
// reject all seven P + T; it fails if rule 7 (or the edwards25519 [L]P
// test behind it) is removed or weakened.
func TestAttackTorsionedKeySameSecret(t *testing.T) {
	t8, ok := refLift(mustHex(t, order8))
	if !ok || refMul(big.NewInt(4), t8).inf || !refMul(big.NewInt(8), t8).inf {
		t.Fatal("order8 is not a point of order 8")
	}
	privs := []*ecdh.PrivateKey{GenerateKey(), GenerateKey(), GenerateKey(), GenerateKey()}
	for range 3 {
		clean := GenerateKey().PublicKey().Bytes()
		if err := Check(clean); err != nil {
			t.Fatalf("Check(clean) = %v", err)
		}
		p, ok := refLift(clean)
		if !ok {
			t.Fatal("honest key not on the curve")
		}
		cleanPub, _ := ecdh.X25519().NewPublicKey(clean)
		tp := refPoint{inf: true}
		for i := 1; i < 8; i++ {
			tp = refAdd(tp, t8) // [i]T8: orders 8, 4, 8, 2, 8, 4, 8
			torsioned := refBytes(refAdd(p, tp))
			if bytes.Equal(torsioned, clean) {
				t.Fatalf("[%d]T: torsioned key has the clean key's bytes", i)
			}
			err := Check(torsioned)
			if !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), "torsion") {
				t.Fatalf("[%d]T: Check(torsioned) = %v, want torsion rejection", i, err)
			}
			if _, err := ParsePublicKey(torsioned); err == nil {
				t.Fatalf("[%d]T: ParsePublicKey accepted the torsioned key", i)
			}
			torsPub, err := ecdh.X25519().NewPublicKey(torsioned)
			if err != nil {
				t.Fatal(err)
			}
			for _, priv := range privs {
				s1, err1 := priv.ECDH(cleanPub)
				s2, err2 := priv.ECDH(torsPub)
				if err1 != nil || err2 != nil || !bytes.Equal(s1, s2) {
					t.Fatalf("[%d]T: secrets differ: %x %v / %x %v", i, s1, err1, s2, err2)
				}
			}
		}
	}
}

// TestAttackReencodedKeySameSecret covers the other way to give one key
// two encodings: X25519 ignores bit 255 and reduces u mod p, so an honest
// key with its top bit set, and u + p for a u below 19 (the base point
// u = 9 is one), give the same output as the canonical bytes. Check must
// accept the canonical encoding only.
func TestAttackReencodedKeySameSecret(t *testing.T) {
	honest := GenerateKey().PublicKey().Bytes()
	topBit := slices.Clone(honest)
	topBit[31] |= 0x80
	base := make([]byte, 32)
	base[0] = 9
	basePlusP := bigToLE(new(big.Int).Add(bigP, big.NewInt(9)))
	for _, tc := range []struct {
		name           string
		canonical, alt []byte
		reason         string
	}{
		{"top bit", honest, topBit, "top bit"},
		{"u + p", base, basePlusP[:], "non-canonical"},
	} {
		if err := Check(tc.canonical); err != nil {
			t.Fatalf("%s: Check(canonical) = %v", tc.name, err)
		}
		err := Check(tc.alt)
		if !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), tc.reason) {
			t.Fatalf("%s: Check(re-encoded) = %v, want %q", tc.name, err, tc.reason)
		}
		pub1, _ := ecdh.X25519().NewPublicKey(tc.canonical)
		pub2, err := ecdh.X25519().NewPublicKey(tc.alt)
		if err != nil {
			t.Fatal(err)
		}
		priv := GenerateKey()
		s1, err1 := priv.ECDH(pub1)
		s2, err2 := priv.ECDH(pub2)
		if err1 != nil || err2 != nil || !bytes.Equal(s1, s2) {
			t.Fatalf("%s: secrets differ: %x %v / %x %v", tc.name, s1, err1, s2, err2)
		}
	}
}

func TestDHRejectsZeroOutput(t *testing.T) {
	priv := GenerateKey()
	for _, h := range []string{
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000000",
		"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	} {
		pub, err := ecdh.X25519().NewPublicKey(mustHex(t, h))
		if err != nil {
			t.Fatal(err)
		}
		if s, err := DH(priv, pub); !errors.Is(err, ErrInvalidKey) || s != nil {
			t.Fatalf("DH(%s) = %x, %v; want ErrInvalidKey", h, s, err)
		}
	}
	peer := GenerateKey()
	s1, err := DH(priv, peer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	s2, err := DH(peer, priv.PublicKey())
	if err != nil || !bytes.Equal(s1, s2) {
		t.Fatalf("DH not symmetric: %x %x %v", s1, s2, err)
	}
}

// ---- Wycheproof ------------------------------------------------------------

type wycheproofX25519 struct {
	NumberOfTests int `json:"numberOfTests"`
	TestGroups    []struct {
		Tests []struct {
			TcID    int      `json:"tcId"`
			Comment string   `json:"comment"`
			Flags   []string `json:"flags"`
			Public  string   `json:"public"`
			Private string   `json:"private"`
			Shared  string   `json:"shared"`
			Result  string   `json:"result"`
		} `json:"tests"`
	} `json:"testGroups"`
}

func TestWycheproofX25519(t *testing.T) {
	data, err := os.ReadFile("../../testdata/wycheproof/wycheproof_x25519_test.json")
	if err != nil {
		t.Fatal(err)
	}
	var f wycheproofX25519
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	mustReject := []string{"LowOrderPublic", "ZeroSharedSecret", "NonCanonicalPublic", "Twist"}
	ran, accepted := 0, 0
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			ran++
			pubBytes := mustHex(t, tc.Public)
			priv, err := ecdh.X25519().NewPrivateKey(mustHex(t, tc.Private))
			if err != nil {
				t.Fatalf("tc %d: private key: %v", tc.TcID, err)
			}
			pub, err := ecdh.X25519().NewPublicKey(pubBytes)
			if err != nil {
				t.Fatalf("tc %d: public key: %v", tc.TcID, err)
			}
			// The primitive.
			shared, ecdhErr := priv.ECDH(pub)
			zero := slices.Contains(tc.Flags, "ZeroSharedSecret")
			switch {
			case zero:
				if ecdhErr == nil {
					t.Errorf("tc %d: ecdh accepted an all-zero secret", tc.TcID)
				}
				if _, err := DH(priv, pub); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("tc %d: DH = %v, want ErrInvalidKey", tc.TcID, err)
				}
			case ecdhErr != nil:
				t.Errorf("tc %d (%s): ecdh: %v", tc.TcID, tc.Result, ecdhErr)
			case hex.EncodeToString(shared) != tc.Shared:
				t.Errorf("tc %d: shared %x, want %s", tc.TcID, shared, tc.Shared)
			}
			// The policy.
			ok := Check(pubBytes) == nil
			if ok != refCheck(pubBytes) {
				t.Errorf("tc %d: Check accepted=%v, reference disagrees", tc.TcID, ok)
			}
			for _, fl := range mustReject {
				if ok && slices.Contains(tc.Flags, fl) {
					t.Errorf("tc %d: Check accepted a %s key", tc.TcID, fl)
				}
			}
			if ok {
				accepted++
				if s, err := DH(priv, pub); err != nil || !bytes.Equal(s, shared) {
					t.Errorf("tc %d: DH on an accepted key = %x, %v", tc.TcID, s, err)
				}
			}
		}
	}
	if ran == 0 || ran != f.NumberOfTests {
		t.Fatalf("ran %d vectors, file has %d", ran, f.NumberOfTests)
	}
	if accepted == 0 {
		t.Fatal("Check accepted no vector at all")
	}
	t.Logf("ran %d vectors, Check accepted %d public keys", ran, accepted)
}

// ---- fuzz and benchmarks -----------------------------------------------------

func FuzzCheck(f *testing.F) {
	f.Add(GenerateKey().PublicKey().Bytes())
	f.Add(make([]byte, 32))
	f.Add([]byte{9})
	f.Add(mustHex(f, "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"))
	f.Add(mustHex(f, "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"))
	f.Add(mustHex(f, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Check(b)
		if err != nil && !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("Check error %v does not wrap ErrInvalidKey", err)
		}
		if len(b) == 32 && (err == nil) != refCheck(b) {
			t.Fatalf("Check(%x) = %v, reference disagrees", b, err)
		}
		if err == nil {
			pub, err := ecdh.X25519().NewPublicKey(b)
			if err != nil {
				t.Fatalf("ecdh rejects accepted key %x: %v", b, err)
			}
			if _, err := DH(GenerateKey(), pub); err != nil {
				t.Fatalf("DH with accepted key %x: %v", b, err)
			}
		}
	})
}

func BenchmarkCheck(b *testing.B) {
	pub := GenerateKey().PublicKey().Bytes()
	for b.Loop() {
		if err := Check(pub); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDH(b *testing.B) {
	priv := GenerateKey()
	pub := GenerateKey().PublicKey()
	for b.Loop() {
		if _, err := DH(priv, pub); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAndDH(b *testing.B) {
	priv := GenerateKey()
	raw := GenerateKey().PublicKey().Bytes()
	for b.Loop() {
		pub, err := ParsePublicKey(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DH(priv, pub); err != nil {
			b.Fatal(err)
		}
	}
}
