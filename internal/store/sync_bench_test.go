//go:build linux

package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hushnet/hush/internal/testutil"
)

// BenchmarkDiskSync measures what one durable write costs on this disk,
// the floor under a received message's latency (the receiver commits,
// synced, before it shows or acknowledges a message): p50 and p99 of
// 600 bytes made durable, one write at a time, four ways.
//
//   - store: a synced Put of one record through this store (goleveldb
//     appends to its journal and fsyncs it);
//   - append-fsync: what goleveldb's journal does, without goleveldb;
//   - append-fdatasync: the same with fdatasync (the file's size still
//     changes with each write, so the file system journals it);
//   - prealloc-fdatasync: writes into a file allocated beforehand, so
//     fdatasync flushes data only: the least this disk takes for a
//     durable write.
//
// docs/PERFORMANCE.md "Sixth pass" quotes it against the 1:1 latency
// target.
func BenchmarkDiskSync(b *testing.B) {
	value := make([]byte, 600)
	b.Run("store", func(b *testing.B) {
		tb := benchDB(b, false).Table("bench")
		var i uint64
		timeEach(b, func() {
			if err := tb.PutSeq([]byte("conv"), i, value); err != nil {
				b.Fatal(err)
			}
			i++
		})
	})
	file := func(b *testing.B, prealloc bool) *os.File {
		f, err := os.Create(filepath.Join(b.TempDir(), "journal"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		if prealloc {
			if err := unix.Fallocate(int(f.Fd()), 0, 0, 256<<20); err != nil {
				b.Skipf("fallocate: %v", err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		return f
	}
	b.Run("append-fsync", func(b *testing.B) {
		f := file(b, false)
		timeEach(b, func() {
			if _, err := f.Write(value); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("append-fdatasync", func(b *testing.B) {
		f := file(b, false)
		timeEach(b, func() {
			if _, err := f.Write(value); err != nil {
				b.Fatal(err)
			}
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("prealloc-fdatasync", func(b *testing.B) {
		f := file(b, true)
		var off int64
		timeEach(b, func() {
			if _, err := f.WriteAt(value, off%(256<<20-int64(len(value)))); err != nil {
				b.Fatal(err)
			}
			off += int64(len(value))
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// timeEach runs op once per iteration and reports the p50 and p99 of
// its durations.
func timeEach(b *testing.B, op func()) {
	var d []time.Duration
	for b.Loop() {
		t0 := time.Now()
		op()
		d = append(d, time.Since(t0))
	}
	testutil.ReportPercentiles(b, d)
}
