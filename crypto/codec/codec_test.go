package codec

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	w := NewWriter(0)
	w.U8(7)
	w.U16(0xBEEF)
	w.U32(0xDEADBEEF)
	w.U64(1 << 60)
	w.Bool(true)
	w.Fixed([]byte{1, 2, 3})
	w.Bytes16([]byte("hello"))
	w.Bytes32([]byte("world!"))
	w.String16("☺")

	r := NewReader(w.Bytes())
	if r.U8() != 7 || r.U16() != 0xBEEF || r.U32() != 0xDEADBEEF || r.U64() != 1<<60 || !r.Bool() {
		t.Fatal("integer round trip mismatch")
	}
	if !bytes.Equal(r.Fixed(3), []byte{1, 2, 3}) ||
		string(r.Bytes16(5)) != "hello" ||
		string(r.Bytes32(6)) != "world!" ||
		r.String16(3) != "☺" {
		t.Fatal("byte string round trip mismatch")
	}
	if err := r.Done(); err != nil {
		t.Fatal(err)
	}
}

func TestRejects(t *testing.T) {
	w := NewWriter(0)
	w.Bytes16([]byte("hello"))
	enc := w.Bytes()

	if err := readBytes16(enc, 4); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over-limit length: got %v, want ErrTooLarge", err)
	}
	for n := range len(enc) {
		if err := readBytes16(enc[:n], 5); !errors.Is(err, ErrTruncated) {
			t.Errorf("prefix %d: got %v, want ErrTruncated", n, err)
		}
	}
	if err := readBytes16(append(enc, 0), 5); !errors.Is(err, ErrTrailing) {
		t.Errorf("trailing byte: got %v, want ErrTrailing", err)
	}
	r := NewReader([]byte{2})
	r.Bool()
	if err := r.Done(); !errors.Is(err, ErrInvalid) {
		t.Errorf("boolean 2: got %v, want ErrInvalid", err)
	}
	r = NewReader([]byte{0, 9})
	r.Count(8)
	if err := r.Done(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("count over limit: got %v, want ErrTooLarge", err)
	}
}

func readBytes16(b []byte, max int) error {
	r := NewReader(b)
	r.Bytes16(max)
	return r.Done()
}

// A huge declared length must fail before anything of that size is
// allocated.
func TestHugeLengthDoesNotAllocate(t *testing.T) {
	in := []byte{0x3F, 0xFF, 0xFF, 0xFF} // declares 1 GiB, within the cap
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		r := NewReader(in)
		r.Bytes32(1 << 30)
		if !errors.Is(r.Err(), ErrTruncated) {
			t.Fatalf("got %v, want ErrTruncated", r.Err())
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 64<<10 {
		t.Fatalf("%d bytes allocated for 100 truncated huge fields", d)
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte{0, 3, 'a', 'b', 'c', 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(b)
		s := r.Bytes16(64)
		v := r.Bool()
		if r.Done() != nil {
			return
		}
		w := NewWriter(0)
		w.Bytes16(s)
		w.Bool(v)
		if !bytes.Equal(w.Bytes(), b) {
			t.Fatalf("accepted a non-canonical encoding %x", b)
		}
	})
}
