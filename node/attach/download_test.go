package attach

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/hushnet/hush/crypto/stream"
)

// chunkStart is the blob offset of STREAM chunk i (the first includes
// the nonce, so it starts at 0).
func chunkStart(i int64) int64 {
	if i == 0 {
		return 0
	}
	return stream.NonceSize + i*sealedChunk
}

// download feeds blob into a fresh Download and decrypts it to a file,
// returning the plaintext read back.
func download(t *testing.T, p *Pointer, blob []byte, seed uint64) []byte {
	t.Helper()
	f, dir := partFile(t)
	d, err := NewDownload(p, f)
	if err != nil {
		t.Fatal(err)
	}
	if d.Offset() != 0 {
		t.Fatalf("fresh download at %d", d.Offset())
	}
	if err := feed(d, blob, rand.New(rand.NewPCG(seed, 2)), 200_000); err != nil {
		t.Fatal(err)
	}
	if !d.Complete() || d.Verified() != p.BlobSize {
		t.Fatalf("not complete after the whole blob: verified %d of %d", d.Verified(), p.BlobSize)
	}
	out := filepath.Join(dir, "out.bin")
	if err := d.DecryptTo(out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	part, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(part, blob) {
		t.Fatal(".part file is not the blob")
	}
	if bytes.Contains(part, []byte(marker)) {
		t.Fatal("plaintext marker in the .part file")
	}
	if _, err := os.Stat(out + ".hush-part"); !os.IsNotExist(err) {
		t.Fatal("temporary file left behind")
	}
	return got
}

func TestDownloadRoundTrip(t *testing.T) {
	sizes := []int{0, 1, stream.ChunkSize, stream.ChunkSize + 1, 65504, 2*stream.ChunkSize + 5, 5 << 20}
	r := rand.New(rand.NewPCG(9, 9))
	for range 4 {
		sizes = append(sizes, r.IntN(1<<20))
	}
	for _, n := range sizes {
		pt := plaintext(n, uint64(n)+3)
		p, blob := seal(t, pt)
		if got := download(t, p, blob, uint64(n)); !bytes.Equal(got, pt) {
			t.Fatalf("size %d: decrypted file differs", n)
		}
	}
}

// After a crash the .part file is cut at a random point: the resume offset
// is the end of the last whole chunk before it, so at most one chunk is
// sent again, and the download completes.
func TestDownloadResume(t *testing.T) {
	pt := plaintext(700_000, 5)
	p, blob := seal(t, pt)
	r := rand.New(rand.NewPCG(5, 5))
	cuts := []int64{0, 1, 15, 16, 17, stream.NonceSize + sealedChunk - 1, stream.NonceSize + sealedChunk, p.EncSize - 1, p.EncSize, p.EncSize + 1, p.BlobSize - 1}
	for range 12 {
		cuts = append(cuts, r.Int64N(p.BlobSize))
	}
	for _, cut := range cuts {
		f, dir := partFile(t)
		if _, err := f.WriteAt(blob[:cut], 0); err != nil {
			t.Fatal(err)
		}
		d, err := NewDownload(p, f)
		if err != nil {
			t.Fatal(err)
		}
		want := cut
		if cut < p.EncSize {
			i := max(0, (cut-stream.NonceSize)/sealedChunk)
			if want = chunkStart(i); cut >= stream.NonceSize+(i+1)*sealedChunk {
				want = stream.NonceSize + (i+1)*sealedChunk
			}
			if cut < stream.NonceSize+sealedChunk {
				want = 0
			}
		}
		if d.Offset() != want || d.Verified() != want {
			t.Fatalf("cut at %d: resume at %d (verified %d), want %d", cut, d.Offset(), d.Verified(), want)
		}
		if cut-d.Offset() > stream.NonceSize+sealedChunk {
			t.Fatalf("cut at %d: %d bytes to send again", cut, cut-d.Offset())
		}
		if fi, _ := f.Stat(); fi.Size() != d.Offset() {
			t.Fatalf("cut at %d: .part is %d bytes, resume at %d", cut, fi.Size(), d.Offset())
		}
		if err := feed(d, blob[d.Offset():], r, 100_000); err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		out := filepath.Join(dir, "out")
		if err := d.DecryptTo(out); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, pt) {
			t.Fatalf("cut at %d: decrypted file differs", cut)
		}
	}
}

// A flipped byte in chunk k is caught when chunk k completes; the chunk's
// bytes are dropped and the good bytes complete the download.
func TestDownloadFlippedByte(t *testing.T) {
	pt := plaintext(500_000, 6)
	p, blob := seal(t, pt)
	r := rand.New(rand.NewPCG(6, 6))
	for _, pos := range []int64{0, 15, 16, 100, chunkStart(1) + 7, chunkStart(3), p.EncSize - 1} {
		bad := append([]byte{}, blob...)
		bad[pos] ^= 0x40
		i := max(0, (pos-stream.NonceSize)/sealedChunk)
		if pos < stream.NonceSize {
			i = 0
		}
		f, _ := partFile(t)
		d, err := NewDownload(p, f)
		if err != nil {
			t.Fatal(err)
		}
		err = feed(d, bad, r, 30_000)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at %d: %v, want ErrCorrupt", pos, err)
		}
		if d.Offset() != chunkStart(i) || d.Verified() != chunkStart(i) {
			t.Fatalf("flip at %d (chunk %d): offset %d, verified %d, want %d", pos, i, d.Offset(), d.Verified(), chunkStart(i))
		}
		if fi, _ := f.Stat(); fi.Size() != chunkStart(i) {
			t.Fatalf("flip at %d: bad chunk kept (.part %d bytes)", pos, fi.Size())
		}
		if err := feed(d, blob[d.Offset():], r, 30_000); err != nil || !d.Complete() {
			t.Fatalf("flip at %d: good bytes after a bad chunk: %v", pos, err)
		}
	}
}

// A byte flipped on disk inside the .part is found on resume.
func TestDownloadResumeFindsDiskDamage(t *testing.T) {
	pt := plaintext(400_000, 7)
	p, blob := seal(t, pt)
	f, _ := partFile(t)
	bad := append([]byte{}, blob...)
	bad[chunkStart(2)+100] ^= 1
	if _, err := f.WriteAt(bad, 0); err != nil {
		t.Fatal(err)
	}
	d, err := NewDownload(p, f)
	if err != nil {
		t.Fatal(err)
	}
	if d.Offset() != chunkStart(2) {
		t.Fatalf("resume at %d, want %d", d.Offset(), chunkStart(2))
	}
}

func TestDownloadWrongKey(t *testing.T) {
	p, blob := seal(t, plaintext(300_000, 8))
	p.Key[0] ^= 1
	f, _ := partFile(t)
	d, err := NewDownload(p, f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write(blob); !errors.Is(err, ErrCorrupt) || d.Offset() != 0 {
		t.Fatalf("wrong key: %v, offset %d", err, d.Offset())
	}
}

func TestDownloadWrongHashAndPadding(t *testing.T) {
	for _, n := range []int{300_000, 65504 /* no padding: enc_size is 64 KiB */, 0} {
		pt := plaintext(n, 10)
		p, blob := seal(t, pt)
		wrong := *p
		wrong.Hash[3] ^= 1
		padded := append([]byte{}, blob...)
		padded[len(padded)-1] ^= 1
		cut := p.EncSize
		if p.EncSize == p.BlobSize {
			cut = 0 // the only chunk is dropped, to be fetched again
		}
		for name, c := range map[string]struct {
			p    *Pointer
			blob []byte
		}{"wrong hash": {&wrong, blob}, "padding altered": {p, padded}} {
			if name == "padding altered" && p.EncSize == p.BlobSize {
				continue // no padding: the last byte is the final chunk's tag
			}
			f, dir := partFile(t)
			d, err := NewDownload(c.p, f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = d.Write(c.blob)
			if !errors.Is(err, ErrHashMismatch) || d.Complete() {
				t.Fatalf("size %d, %s: %v, complete %v", n, name, err, d.Complete())
			}
			if d.Offset() != cut {
				t.Fatalf("size %d, %s: offset %d after a hash mismatch, want %d", n, name, d.Offset(), cut)
			}
			out := filepath.Join(dir, "out")
			if err := d.DecryptTo(out); !errors.Is(err, ErrIncomplete) {
				t.Fatalf("size %d, %s: DecryptTo: %v", n, name, err)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Fatal("file written after a hash mismatch")
			}
		}
	}
}

func TestDownloadTruncatedAndOverrun(t *testing.T) {
	p, blob := seal(t, plaintext(200_000, 11))
	f, dir := partFile(t)
	d, err := NewDownload(p, f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write(blob[:len(blob)-1]); err != nil {
		t.Fatal(err)
	}
	if d.Complete() {
		t.Fatal("complete without the last byte")
	}
	if err := d.DecryptTo(filepath.Join(dir, "out")); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("truncated blob decrypted: %v", err)
	}
	n, err := d.Write([]byte{blob[len(blob)-1], 0, 0})
	if n != 1 || !errors.Is(err, ErrOverrun) || !d.Complete() {
		t.Fatalf("overrun: %d, %v, complete %v", n, err, d.Complete())
	}
	if _, err := d.Write([]byte{0}); !errors.Is(err, ErrOverrun) {
		t.Fatalf("write after completion: %v", err)
	}
}

func TestDecryptToDestination(t *testing.T) {
	pt := plaintext(150_000, 12)
	p, blob := seal(t, pt)
	f, dir := partFile(t)
	d, err := NewDownload(p, f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write(blob); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := d.DecryptTo(sub); !errors.Is(err, ErrIsDir) {
		t.Fatalf("directory destination: %v", err)
	}
	if _, err := os.Stat(sub + ".hush-part"); !os.IsNotExist(err) {
		t.Fatal("temporary file left beside a refused destination")
	}
	// The .part damaged on disk after verification: decryption fails, and
	// nothing is left at the destination or beside it.
	if _, err := f.WriteAt([]byte{blob[chunkStart(1)+5] ^ 1}, chunkStart(1)+5); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := d.DecryptTo(out); !errors.Is(err, stream.ErrDecrypt) {
		t.Fatalf("damaged .part: %v", err)
	}
	for _, path := range []string{out, out + ".hush-part"} {
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatalf("%s exists after a failed decryption", path)
		}
	}
	// An existing file at the destination is replaced whole.
	if _, err := f.WriteAt(blob[chunkStart(1)+5:chunkStart(1)+6], chunkStart(1)+5); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.DecryptTo(out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, pt) {
		t.Fatal("destination not replaced by the file")
	}
}

// Each chunk is checked against the place the pointer gives it: a blob
// whose final chunk comes earlier or later than the pointer's size says is
// refused at that chunk, even though each chunk authenticates.
func TestDownloadFinalChunkWhereThePointerSays(t *testing.T) {
	three, blob3 := seal(t, plaintext(3*stream.ChunkSize, 13))
	two, blob2 := seal(t, plaintext(2*stream.ChunkSize, 14))
	for name, c := range map[string]struct {
		size int64
		key  [KeySize]byte
		blob []byte
	}{
		"pointer says 2 chunks, blob has 3": {2 * stream.ChunkSize, three.Key, blob3},
		"pointer says 3 chunks, blob has 2": {3 * stream.ChunkSize, two.Key, append(append([]byte{}, blob2[:two.EncSize]...), make([]byte, sealedChunk)...)},
	} {
		p := &Pointer{Key: c.key, Size: c.size, EncSize: stream.EncryptedSize(c.size)}
		p.BlobSize = BlobSize(p.EncSize)
		f, _ := partFile(t)
		d, err := NewDownload(p, f)
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.Write(c.blob[:min(int64(len(c.blob)), p.BlobSize)])
		if !errors.Is(err, ErrCorrupt) || d.Offset() != chunkStart(1) {
			t.Fatalf("%s: %v, offset %d", name, err, d.Offset())
		}
	}
}
