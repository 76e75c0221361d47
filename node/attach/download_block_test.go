package attach

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"testing"

	"github.com/hushnet/hush/crypto/stream"
)

// partHolds checks that the .part file is exactly blob[:n].
func partHolds(t *testing.T, f *os.File, blob []byte, n int64, what string) {
	t.Helper()
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(got)) != n || !bytes.Equal(got, blob[:n]) {
		t.Fatalf("%s: .part is %d bytes (equal to the blob's first: %v), want the blob's first %d", what, len(got), bytes.HasPrefix(blob, got), n)
	}
}

// The .part never holds a byte that did not verify: after every Write it
// is a prefix of the blob no longer than Verified, and after Flush it is
// exactly the verified bytes; at the end it is the blob.
func TestDownloadPartOnlyVerified(t *testing.T) {
	p, blob := seal(t, plaintext(900_000, 21))
	f, _ := partFile(t)
	d, err := NewDownload(p, f)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(21, 21))
	for rest := blob; len(rest) > 0; {
		k := min(len(rest), 1+r.IntN(90_000))
		if n, err := d.Write(rest[:k]); n != k || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		rest = rest[k:]
		if d.Complete() {
			break
		}
		if r.IntN(4) == 0 {
			if err := d.Flush(); err != nil {
				t.Fatal(err)
			}
			partHolds(t, f, blob, d.Verified(), "after Flush")
			continue
		}
		// Between flushes a block may still be being written: wait for it
		// without writing more, then look.
		if err := d.wait(); err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		if fi.Size() > d.Verified() {
			t.Fatalf(".part holds %d bytes, only %d verified", fi.Size(), d.Verified())
		}
		if d.Stored() != fi.Size() || d.Verified()-d.Stored() > 2*writeBlock {
			t.Fatalf("Stored %d, .part %d bytes, %d verified", d.Stored(), fi.Size(), d.Verified())
		}
		partHolds(t, f, blob, fi.Size(), "between flushes")
	}
	if !d.Complete() {
		t.Fatal("not complete")
	}
	partHolds(t, f, blob, p.BlobSize, "complete")
}

// A flipped byte in any chunk, the first and last of a block included,
// is refused when that chunk completes, whatever the frame sizes: the
// .part is then exactly the chunks before it, Offset its start, and the
// good bytes complete the download.
func TestDownloadTamperEveryChunk(t *testing.T) {
	p, blob := seal(t, plaintext(12*stream.ChunkSize+777, 22))
	r := rand.New(rand.NewPCG(22, 22))
	chunks := (p.EncSize-stream.NonceSize-1)/sealedChunk + 1
	for i := range chunks {
		end := min(chunkStart(i+1), p.EncSize)
		if i == 0 {
			end = stream.NonceSize + sealedChunk
		}
		for _, pos := range []int64{chunkStart(i), end - 1, chunkStart(i) + r.Int64N(end-chunkStart(i))} {
			bad := append([]byte{}, blob...)
			bad[pos] ^= 0x08
			f, _ := partFile(t)
			d, err := NewDownload(p, f)
			if err != nil {
				t.Fatal(err)
			}
			err = feed(d, bad, r, 1+r.IntN(150_000))
			if !errors.Is(err, ErrCorrupt) || d.Offset() != chunkStart(i) || d.Verified() != chunkStart(i) {
				t.Fatalf("flip at %d (chunk %d): %v, offset %d, verified %d", pos, i, err, d.Offset(), d.Verified())
			}
			partHolds(t, f, blob, chunkStart(i), "after a bad chunk")
			if err := feed(d, blob[d.Offset():], r, 70_000); err != nil || !d.Complete() {
				t.Fatalf("flip at %d: the good bytes after it: %v", pos, err)
			}
			partHolds(t, f, blob, p.BlobSize, "complete")
		}
	}
}

// A source that stops anywhere (a truncated stream) leaves, after Flush,
// a .part of whole verified chunks that a new Download resumes after.
func TestDownloadTruncatedSourceResumes(t *testing.T) {
	pt := plaintext(600_000, 23)
	p, blob := seal(t, pt)
	r := rand.New(rand.NewPCG(23, 23))
	for range 20 {
		cut := r.Int64N(p.BlobSize)
		f, _ := partFile(t)
		d, err := NewDownload(p, f)
		if err != nil {
			t.Fatal(err)
		}
		if err := feed(d, blob[:cut], r, 100_000); err != nil {
			t.Fatal(err)
		}
		if err := d.Flush(); err != nil {
			t.Fatal(err)
		}
		partHolds(t, f, blob, d.Verified(), "flushed")
		if cut-d.Verified() > stream.NonceSize+sealedChunk && cut < p.EncSize {
			t.Fatalf("cut at %d: only %d verified", cut, d.Verified())
		}
		d2, err := NewDownload(p, f)
		if err != nil {
			t.Fatal(err)
		}
		if d2.Offset() != d.Verified() {
			t.Fatalf("cut at %d: resumes at %d, %d verified before", cut, d2.Offset(), d.Verified())
		}
		if err := feed(d2, blob[d2.Offset():], r, 100_000); err != nil || !d2.Complete() {
			t.Fatalf("cut at %d: resume: %v", cut, err)
		}
		partHolds(t, f, blob, p.BlobSize, "resumed")
	}
}

// failingPart fails every WriteAt from the nth byte on.
type failingPart struct {
	*os.File
	left int64
}

var errDisk = errors.New("disk full")

func (f *failingPart) WriteAt(b []byte, off int64) (int, error) {
	if int64(len(b)) > f.left {
		return 0, errDisk
	}
	f.left -= int64(len(b))
	return f.File.WriteAt(b, off)
}

// A block that fails to be written fails the download: the error comes
// back from a later Write (or Flush) and from every call after it, and
// the download never completes.
func TestDownloadWriteErrorSticky(t *testing.T) {
	p, blob := seal(t, plaintext(2<<20, 24))
	f, _ := partFile(t)
	fp := &failingPart{File: f, left: 300_000}
	d, err := NewDownload(p, fp)
	if err != nil {
		t.Fatal(err)
	}
	err = feed(d, blob, rand.New(rand.NewPCG(24, 24)), 65536)
	if !errors.Is(err, errDisk) || d.Complete() {
		t.Fatalf("write error: %v, complete %v", err, d.Complete())
	}
	if _, err := d.Write(blob[d.Offset():][:1]); !errors.Is(err, errDisk) {
		t.Fatalf("Write after the error: %v", err)
	}
	if err := d.Flush(); !errors.Is(err, errDisk) {
		t.Fatalf("Flush after the error: %v", err)
	}
	// What reached the disk resumes.
	d2, err := NewDownload(p, f)
	if err != nil {
		t.Fatal(err)
	}
	if d2.Offset() > 300_000 {
		t.Fatalf("resume at %d after 300000 bytes were written", d2.Offset())
	}
	if err := feed(d2, blob[d2.Offset():], rand.New(rand.NewPCG(1, 1)), 65536); err != nil || !d2.Complete() {
		t.Fatalf("resume after a write error: %v", err)
	}
}

// Memory stays flat: a Download holds two blocks and a chunk whatever the
// blob's size, and allocates nothing per byte received.
func TestDownloadMemoryFlat(t *testing.T) {
	p, blob := seal(t, plaintext(16<<20, 25))
	f, _ := partFile(t)
	d, err := NewDownload(p, f)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for rest := blob; len(rest) > 0; rest = rest[min(len(rest), 64<<10):] {
		if _, err := d.Write(rest[:min(len(rest), 64<<10)]); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if !d.Complete() {
		t.Fatal("not complete")
	}
	// A goroutine and a channel per block written, nothing per byte.
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Fatalf("%d KiB allocated to receive %d MiB", got>>10, len(blob)>>20)
	}
	if cap(d.buf) != writeBlock || cap(d.spare) != writeBlock {
		t.Fatalf("blocks grew to %d and %d bytes", cap(d.buf), cap(d.spare))
	}
}

// syncPart counts Syncs and fails them with err.
type syncPart struct {
	*os.File
	mu    sync.Mutex
	syncs int
	err   error
}

func (f *syncPart) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs++
	if f.err != nil {
		return f.err
	}
	return f.File.Sync()
}

// A large download syncs the .part in the background as it goes; a sync
// that fails (written bytes may be lost) fails the download, which never
// completes.
func TestDownloadBackgroundSync(t *testing.T) {
	p, blob := seal(t, plaintext(3*syncEvery, 26))
	for _, fail := range []bool{false, true} {
		f, _ := partFile(t)
		sp := &syncPart{File: f}
		if fail {
			sp.err = errDisk
		}
		d, err := NewDownload(p, sp)
		if err != nil {
			t.Fatal(err)
		}
		err = feed(d, blob, rand.New(rand.NewPCG(26, 26)), 65536)
		sp.mu.Lock()
		syncs := sp.syncs
		sp.mu.Unlock()
		if syncs == 0 {
			t.Fatalf("fail %v: no sync while writing %d MiB", fail, len(blob)>>20)
		}
		if fail {
			if !errors.Is(err, errDisk) || d.Complete() {
				t.Fatalf("failed sync: %v, complete %v", err, d.Complete())
			}
			continue
		}
		if err != nil || !d.Complete() {
			t.Fatalf("%v, complete %v", err, d.Complete())
		}
		partHolds(t, f, blob, p.BlobSize, "complete")
	}
}
