package attach

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/hushnet/hush/crypto/stream"
)

func TestSealRoundTrip(t *testing.T) {
	sizes := []int{0, 1, stream.ChunkSize - 1, stream.ChunkSize, stream.ChunkSize + 1, 65504, 3<<20 + 17}
	for i := range 5 {
		sizes = append(sizes, int(plaintext(4, uint64(i))[0])*1013+i)
	}
	for _, n := range sizes {
		pt := plaintext(n, uint64(n))
		p, blob := seal(t, pt)
		if p.Size != int64(n) || p.EncSize != stream.EncryptedSize(int64(n)) || int64(len(blob)) != p.BlobSize || p.BlobSize != BlobSize(p.EncSize) {
			t.Fatalf("size %d: sizes %d/%d/%d, blob %d", n, p.Size, p.EncSize, p.BlobSize, len(blob))
		}
		if sha256.Sum256(blob) != p.Hash {
			t.Fatalf("size %d: hash is not SHA-256 of the blob", n)
		}
		dec, err := stream.NewReader(bytes.NewReader(blob[:p.EncSize]), p.Key[:])
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(dec)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("size %d: payload does not decrypt to the file (%v)", n, err)
		}
		if bytes.Contains(blob, []byte(marker)) {
			t.Fatalf("size %d: plaintext marker in the blob", n)
		}
	}
}

func TestSealFreshKeys(t *testing.T) {
	p1, b1 := seal(t, []byte("same"))
	p2, b2 := seal(t, []byte("same"))
	if p1.Key == p2.Key || p1.Hash == p2.Hash || bytes.Equal(b1[p1.EncSize:], b2[p2.EncSize:]) {
		t.Fatal("two seals of one file share a key, a hash or padding")
	}
}

func TestSealRefusesChangedFile(t *testing.T) {
	pt := plaintext(200_000, 1)
	for name, c := range map[string]struct {
		src  io.Reader
		size int64
	}{
		"shrank": {bytes.NewReader(pt[:150_000]), 200_000},
		"grew":   {bytes.NewReader(pt), 150_000},
		"grew 1": {bytes.NewReader(pt), 199_999},
	} {
		_, err := Seal(io.Discard, c.src, c.size, nil)
		if !errors.Is(err, ErrSizeChanged) {
			t.Errorf("%s: %v, want ErrSizeChanged", name, err)
		}
	}
	if _, err := Seal(io.Discard, iotest.ErrReader(io.ErrClosedPipe), 10, nil); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("read error: %v", err)
	}
	if _, err := Seal(io.Discard, bytes.NewReader(nil), MaxSize+1, nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over MaxSize: %v", err)
	}
}

// genReader yields n bytes without holding them.
type genReader struct{ n, off int64 }

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.n-g.off)]
	for i := range p {
		p[i] = byte(g.off + int64(i))
	}
	g.off += int64(len(p))
	return len(p), nil
}

// heapProbe is a writer that samples the heap every 16 MiB written.
type heapProbe struct {
	n, next int64
	peak    uint64
}

func (h *heapProbe) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	if h.n >= h.next {
		h.next += 16 << 20
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		h.peak = max(h.peak, ms.HeapInuse)
	}
	return len(p), nil
}

func TestSealMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("seals 256 MiB")
	}
	const size = 256 << 20
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	probe := &heapProbe{}
	s, err := Seal(probe, &genReader{n: size}, size, nil)
	if err != nil {
		t.Fatal(err)
	}
	if probe.n != s.BlobSize || s.BlobSize != BlobSize(stream.EncryptedSize(size)) {
		t.Fatalf("wrote %d, blob %d", probe.n, s.BlobSize)
	}
	growth := int64(probe.peak) - int64(before.HeapInuse)
	t.Logf("sealed %d MiB into a %d MiB blob; heap in use grew by at most %d KiB", size>>20, s.BlobSize>>20, growth>>10)
	if growth > 16<<20 {
		t.Fatalf("heap grew by %d MiB while sealing", growth>>20)
	}
}
