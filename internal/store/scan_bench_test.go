package store

import (
	"math"
	"testing"
)

// fillSeq puts n records of size bytes under id, in batches of 1,000.
func fillSeq(b *testing.B, db *DB, tb *Table, id []byte, n, size int) {
	b.Helper()
	value := make([]byte, size)
	batch := db.Batch()
	for s := range uint64(n) {
		batch.PutSeq(tb, id, s, value)
		if batch.Len() == 1000 {
			if err := batch.Commit(); err != nil {
				b.Fatal(err)
			}
			batch.Reset()
		}
	}
	if err := batch.Commit(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkLast50Of10000 measures the "last N messages" query: the 50
// newest of 10,000 records of 1 KiB under one id.
func BenchmarkLast50Of10000(b *testing.B) {
	db := benchDB(b, true)
	tb := db.Table("bench")
	id := []byte("conv")
	fillSeq(b, db, tb, id, 10000, 1024)
	for b.Loop() {
		n := 0
		err := tb.ScanSeqReverse(id, 0, math.MaxUint64, 50, func(uint64, []byte) error { n++; return nil })
		if err != nil || n != 50 {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkScanSeq1000 measures a full ascending scan of 1,000 records of
// 1 KiB under one id (a relay's backlog fetch).
func BenchmarkScanSeq1000(b *testing.B) {
	db := benchDB(b, true)
	tb := db.Table("bench")
	id := []byte("conv")
	fillSeq(b, db, tb, id, 1000, 1024)
	for b.Loop() {
		n := 0
		err := tb.ScanSeq(id, 0, math.MaxUint64, func(uint64, []byte) error { n++; return nil })
		if err != nil || n != 1000 {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkAppendSeq measures one PutSeq of 1 KiB after the last, one
// commit each, without fsync: the write cost of the index.
func BenchmarkAppendSeq(b *testing.B) {
	tb := benchDB(b, true).Table("bench")
	value := make([]byte, 1024)
	var s uint64
	for b.Loop() {
		if err := tb.PutSeq([]byte("conv"), s, value); err != nil {
			b.Fatal(err)
		}
		s++
	}
}
