package x25519

import (
	"encoding/binary"
	"math/bits"
)

// fieldElement is an element of GF(2^255-19) in five 51-bit limbs,
// value = l[0] + l[1]*2^51 + l[2]*2^102 + l[3]*2^153 + l[4]*2^204.
//
// Operations keep every limb below 2^52 between calls (add, sub and mul
// all end with a carry), which is what mul's overflow bound assumes. The
// arithmetic is variable time: it only ever sees public keys.
type fieldElement [5]uint64

const maskLow51 = 1<<51 - 1

// a24 is (A-2)/4 = 121665 for Curve25519's A = 486662 (RFC 7748 §5).
const a24 = 121665

var (
	feZero = fieldElement{}
	feOne  = fieldElement{1}
	// feA is the Montgomery coefficient A = 486662.
	feA = fieldElement{486662}
)

// setBytes loads a 32-byte little-endian value, ignoring bit 255.
// It does not reduce: a value in [p, 2^255) stays as is.
func (v *fieldElement) setBytes(b *[32]byte) *fieldElement {
	v[0] = binary.LittleEndian.Uint64(b[0:8]) & maskLow51
	v[1] = (binary.LittleEndian.Uint64(b[6:14]) >> 3) & maskLow51
	v[2] = (binary.LittleEndian.Uint64(b[12:20]) >> 6) & maskLow51
	v[3] = (binary.LittleEndian.Uint64(b[19:27]) >> 1) & maskLow51
	v[4] = (binary.LittleEndian.Uint64(b[24:32]) >> 12) & maskLow51
	return v
}

// bytes returns the canonical 32-byte little-endian encoding of v.
func (v *fieldElement) bytes() [32]byte {
	t := *v
	t.reduce()
	var out [32]byte
	var buf [8]byte
	for i, l := range t {
		bitsOffset := i * 51
		binary.LittleEndian.PutUint64(buf[:], l<<uint(bitsOffset%8))
		for j, bb := range buf {
			off := bitsOffset/8 + j
			if off >= len(out) {
				break
			}
			out[off] |= bb
		}
	}
	return out
}

// carry brings every limb below 2^51 + 2^13*19.
func (v *fieldElement) carry() {
	c0 := v[0] >> 51
	c1 := v[1] >> 51
	c2 := v[2] >> 51
	c3 := v[3] >> 51
	c4 := v[4] >> 51
	v[0] = v[0]&maskLow51 + c4*19
	v[1] = v[1]&maskLow51 + c0
	v[2] = v[2]&maskLow51 + c1
	v[3] = v[3]&maskLow51 + c2
	v[4] = v[4]&maskLow51 + c3
}

// reduce brings v to its canonical representative in [0, p).
func (v *fieldElement) reduce() {
	v.carry()
	// v < 2^255 + 2^13*19 now; c is 1 exactly when v >= p.
	c := (v[0] + 19) >> 51
	c = (v[1] + c) >> 51
	c = (v[2] + c) >> 51
	c = (v[3] + c) >> 51
	c = (v[4] + c) >> 51
	v[0] += 19 * c
	v[1] += v[0] >> 51
	v[0] &= maskLow51
	v[2] += v[1] >> 51
	v[1] &= maskLow51
	v[3] += v[2] >> 51
	v[2] &= maskLow51
	v[4] += v[3] >> 51
	v[3] &= maskLow51
	v[4] &= maskLow51
}

// isZero reports whether v ≡ 0 mod p.
func (v *fieldElement) isZero() bool {
	t := *v
	t.reduce()
	return t == feZero
}

// add sets v = a + b.
func (v *fieldElement) add(a, b *fieldElement) *fieldElement {
	v[0] = a[0] + b[0]
	v[1] = a[1] + b[1]
	v[2] = a[2] + b[2]
	v[3] = a[3] + b[3]
	v[4] = a[4] + b[4]
	v.carry()
	return v
}

// sub sets v = a - b, adding 2p first so no limb underflows.
func (v *fieldElement) sub(a, b *fieldElement) *fieldElement {
	v[0] = (a[0] + 0xFFFFFFFFFFFDA) - b[0]
	v[1] = (a[1] + 0xFFFFFFFFFFFFE) - b[1]
	v[2] = (a[2] + 0xFFFFFFFFFFFFE) - b[2]
	v[3] = (a[3] + 0xFFFFFFFFFFFFE) - b[3]
	v[4] = (a[4] + 0xFFFFFFFFFFFFE) - b[4]
	v.carry()
	return v
}

type uint128 struct{ lo, hi uint64 }

func mul64(a, b uint64) uint128 {
	hi, lo := bits.Mul64(a, b)
	return uint128{lo, hi}
}

func addMul64(v uint128, a, b uint64) uint128 {
	hi, lo := bits.Mul64(a, b)
	lo, c := bits.Add64(lo, v.lo, 0)
	hi, _ = bits.Add64(hi, v.hi, c)
	return uint128{lo, hi}
}

func shiftRightBy51(a uint128) uint64 {
	return (a.hi << (64 - 51)) | (a.lo >> 51)
}

// mul sets v = a * b. With limbs below 2^52 each column sum is below
// 2^111, so the carries fit comfortably in 64 bits after *19.
func (v *fieldElement) mul(a, b *fieldElement) *fieldElement {
	a0, a1, a2, a3, a4 := a[0], a[1], a[2], a[3], a[4]
	b0, b1, b2, b3, b4 := b[0], b[1], b[2], b[3], b[4]
	a1_19 := a1 * 19
	a2_19 := a2 * 19
	a3_19 := a3 * 19
	a4_19 := a4 * 19

	r0 := mul64(a0, b0)
	r0 = addMul64(r0, a1_19, b4)
	r0 = addMul64(r0, a2_19, b3)
	r0 = addMul64(r0, a3_19, b2)
	r0 = addMul64(r0, a4_19, b1)

	r1 := mul64(a0, b1)
	r1 = addMul64(r1, a1, b0)
	r1 = addMul64(r1, a2_19, b4)
	r1 = addMul64(r1, a3_19, b3)
	r1 = addMul64(r1, a4_19, b2)

	r2 := mul64(a0, b2)
	r2 = addMul64(r2, a1, b1)
	r2 = addMul64(r2, a2, b0)
	r2 = addMul64(r2, a3_19, b4)
	r2 = addMul64(r2, a4_19, b3)

	r3 := mul64(a0, b3)
	r3 = addMul64(r3, a1, b2)
	r3 = addMul64(r3, a2, b1)
	r3 = addMul64(r3, a3, b0)
	r3 = addMul64(r3, a4_19, b4)

	r4 := mul64(a0, b4)
	r4 = addMul64(r4, a1, b3)
	r4 = addMul64(r4, a2, b2)
	r4 = addMul64(r4, a3, b1)
	r4 = addMul64(r4, a4, b0)

	c0 := shiftRightBy51(r0)
	c1 := shiftRightBy51(r1)
	c2 := shiftRightBy51(r2)
	c3 := shiftRightBy51(r3)
	c4 := shiftRightBy51(r4)

	v[0] = r0.lo&maskLow51 + c4*19
	v[1] = r1.lo&maskLow51 + c0
	v[2] = r2.lo&maskLow51 + c1
	v[3] = r3.lo&maskLow51 + c2
	v[4] = r4.lo&maskLow51 + c3
	v.carry()
	return v
}

// mulSmall sets v = a * s for s < 2^32: each limb product stays below
// 2^84, so one 51-bit split per limb is enough.
func (v *fieldElement) mulSmall(a *fieldElement, s uint64) *fieldElement {
	x0 := mul64(a[0], s)
	x1 := mul64(a[1], s)
	x2 := mul64(a[2], s)
	x3 := mul64(a[3], s)
	x4 := mul64(a[4], s)
	v[0] = x0.lo&maskLow51 + shiftRightBy51(x4)*19
	v[1] = x1.lo&maskLow51 + shiftRightBy51(x0)
	v[2] = x2.lo&maskLow51 + shiftRightBy51(x1)
	v[3] = x3.lo&maskLow51 + shiftRightBy51(x2)
	v[4] = x4.lo&maskLow51 + shiftRightBy51(x3)
	v.carry()
	return v
}

// square sets v = a * a.
func (v *fieldElement) square(a *fieldElement) *fieldElement {
	l0, l1, l2, l3, l4 := a[0], a[1], a[2], a[3], a[4]
	l0_2 := l0 * 2
	l1_2 := l1 * 2
	l1_38 := l1 * 38
	l2_38 := l2 * 38
	l3_38 := l3 * 38
	l3_19 := l3 * 19
	l4_19 := l4 * 19

	r0 := mul64(l0, l0)
	r0 = addMul64(r0, l1_38, l4)
	r0 = addMul64(r0, l2_38, l3)

	r1 := mul64(l0_2, l1)
	r1 = addMul64(r1, l2_38, l4)
	r1 = addMul64(r1, l3_19, l3)

	r2 := mul64(l0_2, l2)
	r2 = addMul64(r2, l1, l1)
	r2 = addMul64(r2, l3_38, l4)

	r3 := mul64(l0_2, l3)
	r3 = addMul64(r3, l1_2, l2)
	r3 = addMul64(r3, l4_19, l4)

	r4 := mul64(l0_2, l4)
	r4 = addMul64(r4, l1_2, l3)
	r4 = addMul64(r4, l2, l2)

	c0 := shiftRightBy51(r0)
	c1 := shiftRightBy51(r1)
	c2 := shiftRightBy51(r2)
	c3 := shiftRightBy51(r3)
	c4 := shiftRightBy51(r4)

	v[0] = r0.lo&maskLow51 + c4*19
	v[1] = r1.lo&maskLow51 + c0
	v[2] = r2.lo&maskLow51 + c1
	v[3] = r3.lo&maskLow51 + c2
	v[4] = r4.lo&maskLow51 + c3
	v.carry()
	return v
}

// squareN sets v = a^(2^n) for n >= 1.
func (v *fieldElement) squareN(a *fieldElement, n int) *fieldElement {
	v.square(a)
	for i := 1; i < n; i++ {
		v.square(v)
	}
	return v
}

// pow22523 sets v = a^((p-5)/8) = a^(2^252-3), the standard addition chain.
func (v *fieldElement) pow22523(a *fieldElement) *fieldElement {
	var t0, t1, t2 fieldElement
	t0.square(a)         // 2
	t1.squareN(&t0, 2)   // 8
	t1.mul(a, &t1)       // 9
	t0.mul(&t0, &t1)     // 11
	t0.square(&t0)       // 22
	t0.mul(&t1, &t0)     // 31 = 2^5 - 1
	t1.squareN(&t0, 5)   // 2^10 - 2^5
	t0.mul(&t1, &t0)     // 2^10 - 1
	t1.squareN(&t0, 10)  // 2^20 - 2^10
	t1.mul(&t1, &t0)     // 2^20 - 1
	t2.squareN(&t1, 20)  // 2^40 - 2^20
	t1.mul(&t2, &t1)     // 2^40 - 1
	t1.squareN(&t1, 10)  // 2^50 - 2^10
	t0.mul(&t1, &t0)     // 2^50 - 1
	t1.squareN(&t0, 50)  // 2^100 - 2^50
	t1.mul(&t1, &t0)     // 2^100 - 1
	t2.squareN(&t1, 100) // 2^200 - 2^100
	t1.mul(&t2, &t1)     // 2^200 - 1
	t1.squareN(&t1, 50)  // 2^250 - 2^50
	t0.mul(&t1, &t0)     // 2^250 - 1
	t0.squareN(&t0, 2)   // 2^252 - 4
	return v.mul(&t0, a) // 2^252 - 3
}

// legendre returns a^((p-1)/2): 1 for a nonzero square, p-1 for a
// non-square, 0 for zero. (p-1)/2 = 2^254 - 10 = 4*(2^252-3) + 2.
func (v *fieldElement) legendre(a *fieldElement) *fieldElement {
	var t, a2 fieldElement
	t.pow22523(a)
	t.squareN(&t, 2)
	a2.square(a)
	return v.mul(&t, &a2)
}

// invert sets v = a^(p-2) = 1/a (0 for a = 0). p-2 = 8*(2^252-3) + 3.
func (v *fieldElement) invert(a *fieldElement) *fieldElement {
	var t, a3 fieldElement
	t.pow22523(a)
	t.squareN(&t, 3)
	a3.square(a)
	a3.mul(&a3, a)
	return v.mul(&t, &a3)
}
