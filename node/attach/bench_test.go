package attach

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

const benchSize = 64 << 20

// BenchmarkSeal: encrypt, pad and hash a 64 MiB file (MB/s of file).
// The blob is 66 MiB: 64 MiB and the tags, padded to its bucket.
func BenchmarkSeal(b *testing.B) {
	b.SetBytes(benchSize)
	for b.Loop() {
		if _, err := Seal(io.Discard, &genReader{n: benchSize}, benchSize, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyDecrypt: receive a sealed 64 MiB file into a .part file
// in 1 MiB writes (each chunk verified, the hash checked), then decrypt it
// to a destination file (MB/s of file).
func BenchmarkVerifyDecrypt(b *testing.B) {
	dir := b.TempDir()
	blobPath := filepath.Join(dir, "blob")
	bf, err := os.Create(blobPath)
	if err != nil {
		b.Fatal(err)
	}
	s, err := Seal(bf, &genReader{n: benchSize}, benchSize, nil)
	if err != nil {
		b.Fatal(err)
	}
	bf.Close()
	p := s.Pointer()
	buf := make([]byte, 1<<20)
	b.SetBytes(benchSize)
	for b.Loop() {
		src, err := os.Open(blobPath)
		if err != nil {
			b.Fatal(err)
		}
		part, err := os.OpenFile(filepath.Join(dir, "blob.part"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		d, err := NewDownload(p, part)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(onlyWriter{d}, src, buf); err != nil {
			b.Fatal(err)
		}
		if err := d.DecryptTo(filepath.Join(dir, "out")); err != nil {
			b.Fatal(err)
		}
		src.Close()
		part.Close()
	}
}

// BenchmarkDownloadWrite: receive a sealed 64 MiB file into a .part file
// in 64 KiB writes, as /hush/file/1 frames arrive (each chunk verified,
// the hash checked; MB/s of blob).
func BenchmarkDownloadWrite(b *testing.B) {
	var blob bytes.Buffer
	s, err := Seal(&blob, &genReader{n: benchSize}, benchSize, nil)
	if err != nil {
		b.Fatal(err)
	}
	p := s.Pointer()
	path := filepath.Join(b.TempDir(), "blob.part")
	b.SetBytes(p.BlobSize)
	for b.Loop() {
		part, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		d, err := NewDownload(p, part)
		if err != nil {
			b.Fatal(err)
		}
		for rest := blob.Bytes(); len(rest) > 0; {
			k := min(len(rest), 64<<10)
			if _, err := d.Write(rest[:k]); err != nil {
				b.Fatal(err)
			}
			rest = rest[k:]
		}
		if !d.Complete() {
			b.Fatal("incomplete")
		}
		part.Close()
	}
}
