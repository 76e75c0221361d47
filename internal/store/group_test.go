package store

import (
	"fmt"
	"sync"
	"testing"
)

func TestCommitGrouped(t *testing.T) {
	db, err := Open(t.TempDir(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tab := db.Table("grouped")
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := db.Batch()
			b.Put(tab, []byte(fmt.Sprintf("a%d", i)), []byte("x"))
			b.Put(tab, []byte(fmt.Sprintf("b%d", i)), []byte("y"))
			if err := db.CommitGrouped(b); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	n := 0
	if err := tab.Scan(func(id, v []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 128 {
		t.Fatalf("%d records after 64 grouped batches of 2, want 128", n)
	}
	// A batch with a sticky error fails alone.
	bad := db.Batch()
	bad.Put(db.Table("Bad Name!"), []byte("k"), []byte("v"))
	if err := db.CommitGrouped(bad); err == nil {
		t.Fatal("a batch with an error committed")
	}
}

func BenchmarkCommitGroupedParallel(b *testing.B) {
	db, err := Open(b.TempDir(), Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	tab := db.Table("bench")
	val := make([]byte, 256)
	b.SetParallelism(16)
	var i int64
	var mu sync.Mutex
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			i++
			id := []byte(fmt.Sprint(i))
			mu.Unlock()
			batch := db.Batch()
			batch.Put(tab, id, val)
			if err := db.CommitGrouped(batch); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A lazy batch is written and applied without an fsync; a group that
// holds any ordinary batch is synced.
func TestLazyBatches(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	tab := db.Table("lazy")
	put := func(id string, lazy bool) *Batch {
		b := db.Batch()
		b.Put(tab, []byte(id), []byte("v"))
		if lazy {
			b.Lazy()
		}
		return b
	}
	syncs := db.syncedWrites.Load()
	if err := db.CommitGrouped(put("lazy", true)); err != nil {
		t.Fatal(err)
	}
	if got := db.syncedWrites.Load() - syncs; got != 0 {
		t.Fatalf("a lazy batch made %d synced writes", got)
	}
	if err := db.writeGroup([]*groupReq{{b: put("l1", true)}, {b: put("l2", true)}}); err != nil {
		t.Fatal(err)
	}
	if got := db.syncedWrites.Load() - syncs; got != 0 {
		t.Fatalf("a group of lazy batches made %d synced writes", got)
	}
	if err := db.writeGroup([]*groupReq{{b: put("l3", true)}, {b: put("durable", false)}}); err != nil {
		t.Fatal(err)
	}
	if got := db.syncedWrites.Load() - syncs; got != 1 {
		t.Fatalf("a mixed group made %d synced writes, want 1", got)
	}
	db.Close()
	db, err = Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, id := range []string{"lazy", "l1", "l2", "l3", "durable"} {
		if ok, err := db.Table("lazy").Has([]byte(id)); err != nil || !ok {
			t.Fatalf("%s after reopen: %v %v", id, ok, err)
		}
	}
}
