// Package codec is hush's canonical binary encoding: fixed-width
// big-endian integers, fixed-size byte strings and length-prefixed byte
// strings with a caller-stated maximum.
//
// Every hush wire and signed structure is written with a Writer and read
// back with a Reader. A Reader checks each declared length against the
// caller's cap before allocating, and Done rejects trailing bytes, so any
// value has exactly one accepted encoding. The package depends only on the
// standard library, so the crypto packages can use it.
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sentinel errors returned (wrapped with the field name) by Reader.
var (
	ErrTruncated = errors.New("codec: truncated input")
	ErrTooLarge  = errors.New("codec: length over limit")
	ErrTrailing  = errors.New("codec: trailing bytes")
	ErrInvalid   = errors.New("codec: invalid value")
)

// Writer appends canonical encodings to a byte slice. The zero value is
// ready to use.
type Writer struct {
	b []byte
}

// NewWriter returns a Writer whose buffer starts with capacity n.
func NewWriter(n int) *Writer { return &Writer{b: make([]byte, 0, n)} }

// Bytes returns the encoded bytes. The Writer must not be used afterwards
// if the caller keeps the slice.
func (w *Writer) Bytes() []byte { return w.b }

// Len reports the number of bytes written so far.
func (w *Writer) Len() int { return len(w.b) }

// U8 appends one byte.
func (w *Writer) U8(v uint8) { w.b = append(w.b, v) }

// U16 appends a big-endian uint16.
func (w *Writer) U16(v uint16) { w.b = binary.BigEndian.AppendUint16(w.b, v) }

// U32 appends a big-endian uint32.
func (w *Writer) U32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }

// U64 appends a big-endian uint64.
func (w *Writer) U64(v uint64) { w.b = binary.BigEndian.AppendUint64(w.b, v) }

// Bool appends 1 for true and 0 for false.
func (w *Writer) Bool(v bool) {
	if v {
		w.U8(1)
	} else {
		w.U8(0)
	}
}

// Fixed appends b as is; the reader must know its size.
func (w *Writer) Fixed(b []byte) { w.b = append(w.b, b...) }

// Bytes16 appends b with a uint16 length prefix. It panics if b is longer
// than 65535 bytes: callers enforce their own, smaller limits first.
func (w *Writer) Bytes16(b []byte) {
	if len(b) > 0xFFFF {
		panic("codec: Bytes16 value longer than 65535 bytes")
	}
	w.U16(uint16(len(b)))
	w.b = append(w.b, b...)
}

// Bytes32 appends b with a uint32 length prefix.
func (w *Writer) Bytes32(b []byte) {
	if uint64(len(b)) > 0xFFFFFFFF {
		panic("codec: Bytes32 value longer than 2^32-1 bytes")
	}
	w.U32(uint32(len(b)))
	w.b = append(w.b, b...)
}

// String16 appends s with a uint16 length prefix.
func (w *Writer) String16(s string) { w.Bytes16([]byte(s)) }

// Reader decodes canonical encodings. The first error sticks: later calls
// return zero values and Err (or Done) reports the first failure.
type Reader struct {
	b   []byte
	off int
	err error
}

// NewReader returns a Reader over b. Slices returned by the Reader alias b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err returns the first error met, if any.
func (r *Reader) Err() error { return r.err }

// Remaining reports how many bytes are left unread.
func (r *Reader) Remaining() int { return len(r.b) - r.off }

// Fail records err as the Reader's error unless one is already set. Callers
// use it to report semantic errors (an unknown tag) the same way.
func (r *Reader) Fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// Done returns the first error, or ErrTrailing if bytes remain.
func (r *Reader) Done() error {
	if r.err != nil {
		return r.err
	}
	if r.off != len(r.b) {
		return fmt.Errorf("%w: %d bytes", ErrTrailing, len(r.b)-r.off)
	}
	return nil
}

func (r *Reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.err = fmt.Errorf("%w: %s needs %d bytes, %d left", ErrTruncated, what, n, len(r.b)-r.off)
		return nil
	}
	s := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return s
}

// U8 reads one byte.
func (r *Reader) U8() uint8 {
	b := r.take(1, "u8")
	if b == nil {
		return 0
	}
	return b[0]
}

// U16 reads a big-endian uint16.
func (r *Reader) U16() uint16 {
	b := r.take(2, "u16")
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

// U32 reads a big-endian uint32.
func (r *Reader) U32() uint32 {
	b := r.take(4, "u32")
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

// U64 reads a big-endian uint64.
func (r *Reader) U64() uint64 {
	b := r.take(8, "u64")
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// Bool reads a byte that must be 0 or 1.
func (r *Reader) Bool() bool {
	v := r.U8()
	if v > 1 {
		r.Fail(fmt.Errorf("%w: boolean byte %d", ErrInvalid, v))
		return false
	}
	return v == 1
}

// Fixed reads exactly n bytes.
func (r *Reader) Fixed(n int) []byte { return r.take(n, "fixed field") }

// Bytes16 reads a uint16-length-prefixed string of at most max bytes. The
// length is checked against max before anything is sliced.
func (r *Reader) Bytes16(max int) []byte {
	n := int(r.U16())
	if r.err != nil {
		return nil
	}
	if n > max {
		r.err = fmt.Errorf("%w: field of %d bytes, limit %d", ErrTooLarge, n, max)
		return nil
	}
	return r.take(n, "bytes16 field")
}

// Bytes32 reads a uint32-length-prefixed string of at most max bytes.
func (r *Reader) Bytes32(max int) []byte {
	n := uint64(r.U32())
	if r.err != nil {
		return nil
	}
	if n > uint64(max) {
		r.err = fmt.Errorf("%w: field of %d bytes, limit %d", ErrTooLarge, n, max)
		return nil
	}
	return r.take(int(n), "bytes32 field")
}

// String16 reads a uint16-length-prefixed string of at most max bytes.
func (r *Reader) String16(max int) string { return string(r.Bytes16(max)) }

// Count reads a uint16 element count of at most max, for lists.
func (r *Reader) Count(max int) int {
	n := int(r.U16())
	if r.err != nil {
		return 0
	}
	if n > max {
		r.err = fmt.Errorf("%w: %d elements, limit %d", ErrTooLarge, n, max)
		return 0
	}
	return n
}

// Clone returns a copy of b, so a decoded value does not alias the input.
func Clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
