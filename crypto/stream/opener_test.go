package stream

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

// decryptOpener opens every chunk of payload with an Opener, in reverse
// order, and returns the plaintext.
func decryptOpener(key, payload []byte) ([]byte, error) {
	if len(payload) < NonceSize {
		return nil, ErrTruncated
	}
	o, err := NewOpener(key, payload[:NonceSize], int64(len(payload)))
	if err != nil {
		return nil, err
	}
	parts := make([][]byte, o.Chunks())
	for i := o.Chunks() - 1; i >= 0; i-- {
		off, n := o.ChunkRange(i)
		if parts[i], err = o.Open(nil, payload[off:off+n], i); err != nil {
			return nil, err
		}
	}
	return bytes.Join(parts, nil), nil
}

func TestOpenerRoundTrip(t *testing.T) {
	key := newKey()
	for _, n := range sizes {
		pt := pattern(n)
		payload := encrypt(t, key, pt)
		got, err := decryptOpener(key, payload)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("size %d: %v", n, err)
		}
		o, err := NewOpener(key, payload[:NonceSize], int64(len(payload)))
		if err != nil {
			t.Fatal(err)
		}
		if o.Size() != int64(n) {
			t.Fatalf("size %d: Size() = %d", n, o.Size())
		}
		// The ranges tile the payload after the nonce.
		end := int64(NonceSize)
		for i := range o.Chunks() {
			off, k := o.ChunkRange(i)
			if off != end || k < TagSize || k > encChunk {
				t.Fatalf("size %d: chunk %d at %d+%d, previous ended at %d", n, i, off, k, end)
			}
			end = off + k
		}
		if end != int64(len(payload)) {
			t.Fatalf("size %d: chunks end at %d of %d", n, end, len(payload))
		}
		// In place, as cipher.AEAD allows.
		off, k := o.ChunkRange(0)
		buf := append([]byte(nil), payload[off:off+k]...)
		out, err := o.Open(buf[:0], buf, 0)
		if err != nil || !bytes.Equal(out, pt[:min(n, ChunkSize)]) {
			t.Fatalf("size %d: in place: %v", n, err)
		}
	}
}

// Every tampered byte fails the chunk that holds it (the nonce: every
// chunk), and only that chunk.
func TestOpenerTamper(t *testing.T) {
	key := newKey()
	payload := encrypt(t, key, pattern(3*ChunkSize+10))
	for _, pos := range []int{0, NonceSize - 1, NonceSize, NonceSize + 100, NonceSize + encChunk - 1, NonceSize + encChunk, NonceSize + 2*encChunk + 5, len(payload) - 1} {
		p := append([]byte(nil), payload...)
		p[pos] ^= 0x20
		o, err := NewOpener(key, p[:NonceSize], int64(len(p)))
		if err != nil {
			t.Fatal(err)
		}
		for i := range o.Chunks() {
			off, n := o.ChunkRange(i)
			_, err := o.Open(nil, p[off:off+n], i)
			hit := pos < NonceSize || (int64(pos) >= off && int64(pos) < off+n)
			if hit && !errors.Is(err, ErrDecrypt) || !hit && err != nil {
				t.Fatalf("flip at %d, chunk %d: %v", pos, i, err)
			}
		}
	}
	if _, err := decryptOpener(newKey(), payload); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong key: %v", err)
	}
}

// A chunk authenticates only at its own index and finality: chunks moved,
// a payload cut or extended at a chunk boundary (its size then says
// another chunk is the final one), and a chunk of another payload fail.
func TestOpenerWrongPlace(t *testing.T) {
	key := newKey()
	payload := encrypt(t, key, pattern(3*ChunkSize+10))
	size := int64(len(payload))
	o, err := NewOpener(key, payload[:NonceSize], size)
	if err != nil {
		t.Fatal(err)
	}
	chunk := func(i int64) []byte { off, n := o.ChunkRange(i); return payload[off : off+n] }
	for _, c := range [][2]int64{{0, 1}, {1, 0}, {2, 1}, {1, 2}} {
		if _, err := o.Open(nil, chunk(c[0]), c[1]); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("chunk %d as %d: %v", c[0], c[1], err)
		}
	}
	// Payloads of whole chunks, cut or extended by a chunk: the size then
	// puts the final flag on another chunk, and the chunk fails.
	full := encrypt(t, key, pattern(3*ChunkSize))
	for _, c := range []struct {
		size  int64
		chunk int64
	}{
		{NonceSize + 2*encChunk, 1}, // cut: chunk 1 is not final
		{NonceSize + 4*encChunk, 2}, // extended: chunk 2 is final
	} {
		oc, err := NewOpener(key, full[:NonceSize], c.size)
		if err != nil {
			t.Fatal(err)
		}
		off, n := oc.ChunkRange(c.chunk)
		if _, err := oc.Open(nil, full[off:off+n], c.chunk); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("payload of %d bytes, chunk %d: %v", c.size, c.chunk, err)
		}
	}
	other := encrypt(t, key, pattern(3*ChunkSize+10))
	oo, _ := NewOpener(key, other[:NonceSize], size)
	off, n := oo.ChunkRange(1)
	if _, err := o.Open(nil, other[off:off+n], 1); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("chunk of another payload: %v", err)
	}
}

func TestOpenerFraming(t *testing.T) {
	key := newKey()
	payload := encrypt(t, key, pattern(2*ChunkSize+10))
	o, err := NewOpener(key, payload[:NonceSize], int64(len(payload)))
	if err != nil {
		t.Fatal(err)
	}
	off, n := o.ChunkRange(0)
	if _, err := o.Open(nil, payload[off:off+n-1], 0); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short chunk: %v", err)
	}
	if _, err := o.Open(nil, payload[off:off+n+1], 0); !errors.Is(err, ErrTrailingData) {
		t.Fatalf("long chunk: %v", err)
	}
	last, ln := o.ChunkRange(2)
	if _, err := o.Open(nil, payload[last:last+ln-1], 2); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short final chunk: %v", err)
	}
	if _, err := o.Open(nil, payload[off:off+n], 0); err != nil {
		t.Fatalf("whole chunk after framing errors: %v", err)
	}
	for _, i := range []int64{-1, 3, 1 << 40} {
		if _, err := o.Open(nil, payload[off:off+n], i); !errors.Is(err, ErrInvalidSize) {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	if _, err := NewOpener(key[:31], payload[:NonceSize], int64(len(payload))); !errors.Is(err, ErrKeySize) {
		t.Fatalf("short key: %v", err)
	}
	if _, err := NewOpener(key, payload[:NonceSize-1], int64(len(payload))); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short nonce: %v", err)
	}
	for _, enc := range []int64{-1, 0, 31, NonceSize + encChunk + TagSize} {
		if _, err := NewOpener(key, payload[:NonceSize], enc); !errors.Is(err, ErrInvalidSize) {
			t.Fatalf("size %d: %v", enc, err)
		}
	}
}

func TestOpenerConcurrent(t *testing.T) {
	key := newKey()
	pt := pattern(8*ChunkSize + 1)
	payload := encrypt(t, key, pt)
	o, err := NewOpener(key, payload[:NonceSize], int64(len(payload)))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, o.Chunks())
	for i := range o.Chunks() {
		wg.Go(func() {
			off, n := o.ChunkRange(i)
			got, err := o.Open(nil, payload[off:off+n], i)
			if err == nil && !bytes.Equal(got, pt[i*ChunkSize:min(int64(len(pt)), (i+1)*ChunkSize)]) {
				err = errors.New("wrong plaintext")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
