package store

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/syndtr/goleveldb/leveldb"

	"github.com/hushnet/hush/internal/testutil"
)

// BenchmarkKeyLocality asks what keys with locality would save: goleveldb
// alone, with the store's options (ldbOptions), takes records of 400
// bytes in unsynced batches of 8 (about a node's records for two
// messages) under 24-byte keys that are either uniformly random (the
// store's keyed hashes) or ordered by time (an 8-byte counter, then
// random bytes: what a key with a time-ordered prefix would be). It
// reports the CPU per record over the first and the last tenth of the
// records (compaction runs beside the writes, in the same process) and
// the megabytes goleveldb wrote to its tables (memory-table flushes and
// compactions, from "leveldb.stats"). The
// store's keys are not ordered (docs/protocol/store.md §11.8); this
// measures what that costs as a store grows. HUSH_BENCH_LOCALITY_N sets
// the records (default 400,000: about 100,000 messages' worth).
func BenchmarkKeyLocality(b *testing.B) {
	n := 400_000
	if s := os.Getenv("HUSH_BENCH_LOCALITY_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	for _, ordered := range []bool{false, true} {
		name := map[bool]string{false: "random", true: "ordered"}[ordered]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				early, late, mb := keyLocalityRun(b, n, ordered)
				b.ReportMetric(early, "cpu-µs/record-early")
				b.ReportMetric(late, "cpu-µs/record-late")
				b.ReportMetric(late/early, "late/early")
				b.ReportMetric(mb, "table-write-MB")
			}
		})
	}
}

func keyLocalityRun(b *testing.B, n int, ordered bool) (early, late, tableMB float64) {
	db, err := leveldb.OpenFile(b.TempDir(), ldbOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const per = 8 // records a batch
	value := make([]byte, 400)
	rand.Read(value)
	keys := make([]byte, keyLen*per)
	var batch leveldb.Batch
	batches := n / per
	tenth := batches / 10 // batches a window
	cpu := map[int]time.Duration{}
	for i := 0; i <= batches; i++ {
		if i == 0 || i == tenth || i == batches-tenth || i == batches {
			cpu[i] = testutil.ProcessCPU()
		}
		if i == batches {
			break
		}
		rand.Read(keys)
		batch.Reset()
		for j := range per {
			k := keys[j*keyLen : (j+1)*keyLen]
			if ordered {
				binary.BigEndian.PutUint64(k, uint64(i*per+j))
			}
			batch.Put(k, value)
		}
		if err := db.Write(&batch, nil); err != nil {
			b.Fatal(err)
		}
	}
	stats, err := db.GetProperty("leveldb.stats")
	if err != nil {
		b.Fatal(err)
	}
	records := float64(tenth * per)
	early = float64((cpu[tenth] - cpu[0]).Microseconds()) / records
	late = float64((cpu[batches] - cpu[batches-tenth]).Microseconds()) / records
	return early, late, tableWriteMB(stats)
}

// tableWriteMB sums the Write(MB) column of goleveldb's
// "leveldb.stats" table (flushes count as level 0's writes).
func tableWriteMB(stats string) float64 {
	total := 0.0
	row := regexp.MustCompile(`(?m)^\s*\d+\s*\|\s*\d+\s*\|\s*[\d.]+\s*\|\s*[\d.]+\s*\|\s*[\d.]+\s*\|\s*([\d.]+)\s*$`)
	for _, m := range row.FindAllStringSubmatch(stats, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		total += v
	}
	return total
}

// BenchmarkL0Trigger compares the store's first-level compaction trigger
// (8 tables, ldbOptions) with goleveldb's default (4), the rest of the
// options as the store's: 400,000 random-key records of 400 bytes in
// unsynced batches of 8 (write-s, table-write-MB), then random reads of
// a present and an absent key (µs/read-pair, the ns/op), which look in
// every first-level table whose Bloom filter does not rule the key out
// (docs/protocol/store.md §11.6).
func BenchmarkL0Trigger(b *testing.B) {
	for _, trigger := range []int{4, 8} {
		b.Run(fmt.Sprintf("l0-%d", trigger), func(b *testing.B) {
			o := ldbOptions()
			if trigger == 4 {
				o.CompactionL0Trigger, o.WriteL0SlowdownTrigger, o.WriteL0PauseTrigger = 0, 0, 0 // goleveldb's defaults
			}
			db, err := leveldb.OpenFile(b.TempDir(), o)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			value := make([]byte, 400)
			keys := make([]byte, 400_000*keyLen)
			rand.Read(keys)
			var batch leveldb.Batch
			t0 := time.Now()
			for i := 0; i < len(keys); i += 8 * keyLen {
				batch.Reset()
				for j := i; j < i+8*keyLen; j += keyLen {
					batch.Put(keys[j:j+keyLen], value)
				}
				if err := db.Write(&batch, nil); err != nil {
					b.Fatal(err)
				}
			}
			wrote := time.Since(t0)
			stats, err := db.GetProperty("leveldb.stats")
			if err != nil {
				b.Fatal(err)
			}
			absent := make([]byte, keyLen)
			i := 0
			for b.Loop() {
				k := (i * 7919 % 400_000) * keyLen
				if _, err := db.Get(keys[k:k+keyLen], nil); err != nil {
					b.Fatal(err)
				}
				rand.Read(absent)
				if _, err := db.Get(absent, nil); err != leveldb.ErrNotFound {
					b.Fatal(err)
				}
				i++
			}
			// Reported after the loop: b.Loop's start deletes metrics.
			b.ReportMetric(wrote.Seconds(), "write-s")
			b.ReportMetric(tableWriteMB(stats), "table-write-MB")
		})
	}
}
