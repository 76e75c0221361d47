package attach

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// marker is a string planted in every test plaintext; it must never
// appear in a blob or a .part file.
const marker = "HUSH-PLAINTEXT-MARKER-7f3a"

// plaintext returns n bytes of seeded noise with the marker planted
// every 4 KiB.
func plaintext(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	for i := 0; i+len(marker) <= n; i += 4096 {
		copy(b[i:], marker)
	}
	return b
}

// seal seals pt and returns its pointer and blob.
func seal(t testing.TB, pt []byte) (*Pointer, []byte) {
	t.Helper()
	var blob bytes.Buffer
	s, err := Seal(&blob, bytes.NewReader(pt), int64(len(pt)), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Pointer()
	p.Name, p.MIME, p.Sources = "f.bin", "application/octet-stream", []Source{{Kind: SourceDirect}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return p, blob.Bytes()
}

// partFile opens a fresh .part file in a temporary directory.
func partFile(t testing.TB) (*os.File, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "blob.part")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, dir
}

// feed writes b to d in frames of random sizes up to max bytes and
// returns the first error.
func feed(d *Download, b []byte, r *rand.Rand, max int) error {
	for len(b) > 0 {
		n := min(len(b), 1+r.IntN(max))
		m, err := d.Write(b[:n])
		if err != nil {
			return err
		}
		if m != n {
			return errShort
		}
		b = b[n:]
	}
	return nil
}

var errShort = os.ErrInvalid
