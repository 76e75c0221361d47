package x25519

import "fmt"

// groupOrder is L = 2^252 + 27742317777372353535851937790883648493, the
// order of Curve25519's prime-order subgroup, little endian.
var groupOrder = [32]byte{
	0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
	0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
}

// groupOrderBits is the bit length of L.
const groupOrderBits = 253

// fieldPrime is p = 2^255 - 19, little endian.
var fieldPrime = [32]byte{
	0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
}

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
// Every X25519 public key made by clamping a scalar and multiplying the
// base point passes. The arithmetic is variable time; b is public.
func Check(b []byte) error {
	if len(b) != KeySize {
		return fmt.Errorf("%w: length %d, want %d", ErrInvalidKey, len(b), KeySize)
	}
	var in [32]byte
	copy(in[:], b)
	if in[31]&0x80 != 0 {
		return fmt.Errorf("%w: top bit set", ErrInvalidKey)
	}
	if !lessThan(&in, &fieldPrime) {
		return fmt.Errorf("%w: u not below 2^255-19 (non-canonical)", ErrInvalidKey)
	}
	var u fieldElement
	u.setBytes(&in)
	if u.isZero() {
		return fmt.Errorf("%w: u = 0 (point of order 2)", ErrInvalidKey)
	}
	// [L]P = O holds exactly for the torsion-free points of the curve: a
	// twist point has order dividing 4*L' for another prime L', and a point
	// with a small-order component T has [L]P = [L]T != O. So one ladder
	// decides acceptance; the cheaper tests below only name the reason.
	if _, z := ladder(&u, &groupOrder, groupOrderBits); z.isZero() {
		return nil
	}
	if !onCurve(&u) {
		return fmt.Errorf("%w: point on the twist, not on Curve25519", ErrInvalidKey)
	}
	if smallOrder(&u) {
		return fmt.Errorf("%w: point of small order", ErrInvalidKey)
	}
	return fmt.Errorf("%w: point has a torsion component", ErrInvalidKey)
}

// lessThan reports whether a < b as little-endian 256-bit integers.
func lessThan(a, b *[32]byte) bool {
	for i := 31; i >= 0; i-- {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// onCurve reports whether u^3 + A*u^2 + u is a nonzero square, i.e. whether
// u is the u-coordinate of a point on Curve25519 v^2 = u^3 + A*u^2 + u.
// The right-hand side is zero only for u = 0 (A^2-4 is not a square), which
// Check has already rejected.
func onCurve(u *fieldElement) bool {
	// rhs = u * (u*(u + A) + 1)
	var rhs, l fieldElement
	rhs.add(u, &feA)
	rhs.mul(&rhs, u)
	rhs.add(&rhs, &feOne)
	rhs.mul(&rhs, u)
	l.legendre(&rhs)
	l.reduce()
	return l == feOne
}

// smallOrder reports whether [8]P = O, by three x-only doublings.
func smallOrder(u *fieldElement) bool {
	x, z := *u, feOne
	for range 3 {
		x, z = double(&x, &z)
	}
	return z.isZero()
}

// double returns [2](x:z) with the RFC 7748 doubling formulas.
func double(x, z *fieldElement) (fieldElement, fieldElement) {
	var a, aa, b, bb, e, x2, z2 fieldElement
	a.add(x, z)
	aa.square(&a)
	b.sub(x, z)
	bb.square(&b)
	e.sub(&aa, &bb)
	x2.mul(&aa, &bb)
	z2.mulSmall(&e, a24)
	z2.add(&z2, &aa)
	z2.mul(&z2, &e)
	return x2, z2
}

// ladder computes [k](u:1) with the RFC 7748 §5 Montgomery ladder over the
// low nbits bits of the little-endian scalar k, WITHOUT clamping, and
// returns the projective result (X:Z); Z = 0 means the point at infinity.
// It is valid for any u != 0 on the curve or its twist. It is variable
// time: use it only on public inputs.
func ladder(u *fieldElement, k *[32]byte, nbits int) (x, z fieldElement) {
	x1 := *u
	x2, z2 := feOne, feZero
	x3, z3 := *u, feOne
	swap := uint8(0)
	var a, aa, b, bb, e, c, d, da, cb fieldElement
	for t := nbits - 1; t >= 0; t-- {
		kt := (k[t/8] >> uint(t%8)) & 1
		if swap^kt == 1 {
			x2, x3 = x3, x2
			z2, z3 = z3, z2
		}
		swap = kt
		a.add(&x2, &z2)
		aa.square(&a)
		b.sub(&x2, &z2)
		bb.square(&b)
		e.sub(&aa, &bb)
		c.add(&x3, &z3)
		d.sub(&x3, &z3)
		da.mul(&d, &a)
		cb.mul(&c, &b)
		x3.add(&da, &cb)
		x3.square(&x3)
		z3.sub(&da, &cb)
		z3.square(&z3)
		z3.mul(&z3, &x1)
		x2.mul(&aa, &bb)
		z2.mulSmall(&e, a24)
		z2.add(&z2, &aa)
		z2.mul(&z2, &e)
	}
	if swap == 1 {
		x2, z2 = x3, z3
	}
	return x2, z2
}
