package store

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/syndtr/goleveldb/leveldb/storage"
)

// countingStorage counts the write calls and bytes that reach table
// files.
type countingStorage struct {
	storage.Storage
	calls, bytes *atomic.Int64
}

func (s countingStorage) Create(fd storage.FileDesc) (storage.Writer, error) {
	w, err := s.Storage.Create(fd)
	if err != nil || fd.Type != storage.TypeTable {
		return w, err
	}
	return countingWriter{w, s.calls, s.bytes}, nil
}

type countingWriter struct {
	storage.Writer
	calls, bytes *atomic.Int64
}

func (w countingWriter) Write(p []byte) (int, error) {
	w.calls.Add(1)
	w.bytes.Add(int64(len(p)))
	return w.Writer.Write(p)
}

// Table files reach the disk in large writes, not goleveldb's 4 KiB
// blocks one call each, and what was written reads back after a reopen
// (the buffer is flushed before the file is synced and closed).
func TestTableFilesWrittenInLargePieces(t *testing.T) {
	var calls, bytes atomic.Int64
	testWrapStorage = func(s storage.Storage) storage.Storage { return countingStorage{s, &calls, &bytes} }
	t.Cleanup(func() { testWrapStorage = nil })
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg(""))
	tb := db.Table("t")
	value := make([]byte, 1000)
	for i := range 3000 {
		b := db.Batch()
		value[0] = byte(i / 100)
		b.Put(tb, fmt.Appendf(nil, "%d", i), value)
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Compact(tb); err != nil { // flushes the memory table to a table file
		t.Fatal(err)
	}
	if bytes.Load() < 2<<20 {
		t.Fatalf("%d bytes written to table files, want the 3 MB put", bytes.Load())
	}
	if per := bytes.Load() / calls.Load(); per < 64<<10 {
		t.Fatalf("table files written %d bytes a call (%d calls), want at least 64 KiB", per, calls.Load())
	}
	db.Close()
	db = mustOpen(t, dir, cfg(""))
	tb = db.Table("t")
	for _, i := range []int{0, 1499, 2999} {
		v, err := tb.Get(fmt.Appendf(nil, "%d", i))
		if err != nil || len(v) != 1000 || v[0] != byte(i/100) {
			t.Fatalf("record %d after reopen: %d bytes, %v", i, len(v), err)
		}
	}
}
