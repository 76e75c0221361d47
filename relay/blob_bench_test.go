package relay

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"testing"
	"time"
)

// BenchmarkBlobUploadDownload uploads a 64 MiB blob to a relay on
// loopback (its files and store on the test's temporary disk, fsynced)
// and downloads it again, reporting MB/s of each; the receipt of its one
// recipient deletes it after each round.
func BenchmarkBlobUploadDownload(b *testing.B) {
	const size = 64 << 20
	r := startBlobRelay(b, Config{})
	h := newHost(b)
	var c Client
	ctx := ctxT(b)
	data := make([]byte, size)
	rand.Read(data)
	var token [32]byte
	rand.Read(token[:])
	receipts := []BlobHash{BlobTokenHash(token)}
	var up, down time.Duration
	b.SetBytes(2 * size)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		data[0], data[1] = byte(i), byte(i>>8)
		hash := BlobHash(sha256.Sum256(data))
		b.StartTimer()
		t0 := time.Now()
		if _, err := c.PutBlob(ctx, h, r.info, hash, size, receipts, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		br, err := c.OpenBlob(ctx, h, r.info, hash, 0)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, br)
		br.Close()
		if err != nil || n != size {
			b.Fatalf("downloaded %d bytes, %v", n, err)
		}
		t2 := time.Now()
		up += t1.Sub(t0)
		down += t2.Sub(t1)
		if _, err := c.BlobDone(ctx, h, r.info, hash, token); err != nil {
			b.Fatal(err)
		}
	}
	mb := float64(size) * float64(b.N) / 1e6
	b.ReportMetric(mb/up.Seconds(), "upload-MB/s")
	b.ReportMetric(mb/down.Seconds(), "download-MB/s")
}
