package store

import (
	"crypto/rand"
	"encoding/binary"
	"os"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
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

func keyLocalityRun(b *testing.B, n int, ordered bool) (early, late, compactedMB float64) {
	db, err := leveldb.OpenFile(b.TempDir(), ldbOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	value := make([]byte, 400)
	rand.Read(value)
	keys := make([]byte, keyLen*8)
	var batch leveldb.Batch
	tenth := n / 10
	var cpuEarly, cpuLate time.Duration
	var t0 time.Duration
	for i := 0; i < n; i += 8 {
		switch i {
		case 0, n - tenth - (n-tenth)%8:
			t0 = processCPU()
		case tenth - tenth%8:
			cpuEarly = processCPU() - t0
		}
		rand.Read(keys)
		batch.Reset()
		for j := range 8 {
			k := keys[j*keyLen : (j+1)*keyLen]
			if ordered {
				binary.BigEndian.PutUint64(k, uint64(i+j))
			}
			batch.Put(k, value)
		}
		if err := db.Write(&batch, nil); err != nil {
			b.Fatal(err)
		}
	}
	cpuLate = processCPU() - t0
	stats, err := db.GetProperty("leveldb.stats")
	if err != nil {
		b.Fatal(err)
	}
	return float64(cpuEarly.Microseconds()) / float64(tenth), float64(cpuLate.Microseconds()) / float64(tenth), compactionWriteMB(stats)
}

// compactionWriteMB sums the Write(MB) column of goleveldb's
// "leveldb.stats" table (flushes count as level 0's writes).
func compactionWriteMB(stats string) float64 {
	total := 0.0
	row := regexp.MustCompile(`(?m)^\s*\d+\s*\|\s*\d+\s*\|\s*[\d.]+\s*\|\s*[\d.]+\s*\|\s*[\d.]+\s*\|\s*([\d.]+)\s*$`)
	for _, m := range row.FindAllStringSubmatch(stats, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		total += v
	}
	return total
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
