package store

import (
	"encoding/binary"
	"testing"
)

func benchDB(b *testing.B, noSync bool) *DB {
	c := cfg("")
	c.NoSync = noSync
	return mustOpen(b, b.TempDir(), c)
}

// BenchmarkPutSynced measures single fsynced Puts of 1 KiB: the cost a
// caller pays without batching.
func BenchmarkPutSynced(b *testing.B) {
	tb := benchDB(b, false).Table("bench")
	value := make([]byte, 1024)
	b.SetBytes(int64(len(value)))
	var i uint64
	for b.Loop() {
		if err := tb.PutSeq([]byte("conv"), i, value); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkBatchSynced measures fsynced batches of 100 records of 1 KiB;
// divide ns/op by 100 for the per-record cost.
func BenchmarkBatchSynced(b *testing.B) {
	db := benchDB(b, false)
	tb := db.Table("bench")
	value := make([]byte, 1024)
	b.SetBytes(100 * int64(len(value)))
	var i uint64
	batch := db.Batch()
	for b.Loop() {
		batch.Reset()
		for range 100 {
			batch.PutSeq(tb, []byte("conv"), i, value)
			i++
		}
		if err := batch.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i), "ns/record")
}

// BenchmarkGet measures random reads of 1 KiB records from 10,000.
func BenchmarkGet(b *testing.B) {
	db := benchDB(b, true)
	tb := db.Table("bench")
	const n = 10000
	batch := db.Batch()
	value := make([]byte, 1024)
	var id [8]byte
	for i := range uint64(n) {
		binary.BigEndian.PutUint64(id[:], i)
		batch.Put(tb, id[:], value)
	}
	if err := batch.Commit(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(value)))
	var i uint64
	for b.Loop() {
		binary.BigEndian.PutUint64(id[:], (i*7919)%n)
		if _, err := tb.Get(id[:]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
