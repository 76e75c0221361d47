package x25519

import (
	"bytes"
	"fmt"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// lMinusOne is the scalar L − 1, where L = 2^252 +
// 27742317777372353535851937790883648493 is the order of the prime-order
// subgroup. A Scalar is always below L, so [L]P is computed as
// [L − 1]P + P.
var lMinusOne = func() *edwards25519.Scalar {
	one := make([]byte, 32)
	one[0] = 1
	s, err := edwards25519.NewScalar().SetCanonicalBytes(one)
	if err != nil {
		panic("x25519: " + err.Error())
	}
	return s.Negate(s)
}()

// Check reports whether b is an acceptable received X25519 public key. It
// returns nil, or an error wrapping ErrInvalidKey that names the first rule
// b breaks, in this order:
//
//  1. length: exactly 32 bytes;
//  2. top bit: bit 255 is clear;
//  3. canonical: u < p = 2^255-19;
//  4. zero: u != 0 (the point of order 2);
//  5. on curve: u^3 + 486662u^2 + u is a square mod p (else u is on the twist);
//  6. small order: [8]P != O;
//  7. torsion free: [L]P = O for the prime subgroup order L.
//
// Rules 5 to 7 map u to the birationally equivalent edwards25519 point
// (RFC 7748 §4.1) and use filippo.io/edwards25519's group arithmetic; no
// curve or field arithmetic is written here. Every X25519 public key made
// by clamping a scalar and multiplying the base point passes.
func Check(b []byte) error {
	if len(b) != KeySize {
		return fmt.Errorf("%w: length %d, want %d", ErrInvalidKey, len(b), KeySize)
	}
	if b[31]&0x80 != 0 {
		return fmt.Errorf("%w: top bit set", ErrInvalidKey)
	}
	// field.Element.SetBytes reduces mod p, so with bit 255 clear the
	// encoding is canonical exactly when it survives the round trip.
	u, err := new(field.Element).SetBytes(b)
	if err != nil || !bytes.Equal(u.Bytes(), b) {
		return fmt.Errorf("%w: u not below 2^255-19 (non-canonical)", ErrInvalidKey)
	}
	if u.Equal(new(field.Element).Zero()) == 1 {
		return fmt.Errorf("%w: u = 0 (point of order 2)", ErrInvalidKey)
	}
	p, ok := edwardsPoint(u)
	if !ok {
		return fmt.Errorf("%w: point on the twist, not on Curve25519", ErrInvalidKey)
	}
	identity := edwards25519.NewIdentityPoint()
	if new(edwards25519.Point).MultByCofactor(p).Equal(identity) == 1 {
		return fmt.Errorf("%w: point of small order", ErrInvalidKey)
	}
	lp := new(edwards25519.Point).ScalarMult(lMinusOne, p)
	if lp.Add(lp, p).Equal(identity) != 1 {
		return fmt.Errorf("%w: point has a torsion component", ErrInvalidKey)
	}
	return nil
}

// edwardsPoint returns an edwards25519 point whose Montgomery
// u-coordinate is u, through y = (u − 1)/(u + 1) (RFC 7748 §4.1), or false
// if u is on the twist. u must not be 0. Of the two points ±P with this
// u, it returns the one whose x is non-negative; both have the same order.
func edwardsPoint(u *field.Element) (*edwards25519.Point, bool) {
	one := new(field.Element).One()
	den := new(field.Element).Add(u, one)
	if den.Equal(new(field.Element).Zero()) == 1 {
		// u = −1 has no Edwards image, and it is on the twist:
		// u^3 + 486662u^2 + u = 486660 is not a square mod p.
		return nil, false
	}
	y := new(field.Element).Subtract(u, one)
	y.Multiply(y, den.Invert(den))
	// SetBytes recovers x from y and fails exactly when x^2 = (y^2 − 1) /
	// (d·y^2 + 1) is not a square, i.e. when v^2 = u^3 + 486662u^2 + u is
	// not (x = sqrt(−486664)·u/v); y.Bytes() is canonical with the sign
	// bit clear.
	p, err := new(edwards25519.Point).SetBytes(y.Bytes())
	return p, err == nil
}
