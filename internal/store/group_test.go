package store

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/syndtr/goleveldb/leveldb/storage"
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

// Grouped commits reuse one merged batch: many rounds of groups of
// sequenced appends and deletes and plain puts, of varying sizes (one
// past maxMergedKeep), read back after a reopen as written, and the
// callers' batches are left as they were.
func TestCommitGroupedReusedBuffer(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg(""))
	seqs, plain := db.Table("seqs"), db.Table("plain")
	value := func(w, r, i int) []byte {
		v := fmt.Appendf(nil, "w%d r%d i%d ", w, r, i)
		for len(v) < 100*(1+(w+r+i)%7) {
			v = append(v, byte('a'+(w+r+i)%26))
		}
		if w == 0 && r == 7 && i == 0 {
			v = append(v, make([]byte, maxMergedKeep)...) // one group past the kept buffer
		}
		return v
	}
	const workers, rounds, per = 8, 40, 5
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				b := db.Batch()
				for i := range per {
					b.PutSeq(seqs, fmt.Appendf(nil, "id%d", w%3), uint64(w*rounds*per+r*per+i), value(w, r, i))
				}
				b.Put(plain, fmt.Appendf(nil, "w%d r%d", w, r), value(w, r, per))
				if r > 0 {
					// A record of the round before goes: a merged
					// batch that wrote it again would bring it back.
					b.DeleteSeq(seqs, fmt.Appendf(nil, "id%d", w%3), uint64(w*rounds*per+(r-1)*per))
				}
				n, dump := b.Len(), string(b.lb.Dump())
				if err := db.CommitGrouped(b); err != nil {
					t.Error(err)
					return
				}
				if b.Len() != n || string(b.lb.Dump()) != dump {
					t.Error("a grouped commit changed the caller's batch")
					return
				}
			}
		}()
	}
	wg.Wait()
	db.Close()
	db = mustOpen(t, dir, cfg(""))
	seqs, plain = db.Table("seqs"), db.Table("plain")
	for id := range 3 {
		var want []uint64
		for w := id; w < workers; w += 3 {
			for k := range rounds * per {
				if k%per != 0 || k/per == rounds-1 {
					want = append(want, uint64(w*rounds*per+k))
				}
			}
		}
		var got []uint64
		err := seqs.ScanSeq(fmt.Appendf(nil, "id%d", id), 0, 1<<62, func(seq uint64, v []byte) error {
			w, r, i := int(seq)/(rounds*per), int(seq)%(rounds*per)/per, int(seq)%per
			if string(v) != string(value(w, r, i)) {
				return fmt.Errorf("seq %d holds another value", seq)
			}
			got = append(got, seq)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("id%d: %d records in order %v…, want %d", id, len(got), got[:min(len(got), 5)], len(want))
		}
	}
	for w := range workers {
		for r := range rounds {
			if got := mustGet(t, plain, fmt.Sprintf("w%d r%d", w, r)); got != string(value(w, r, per)) {
				t.Fatalf("w%d r%d: another value", w, r)
			}
		}
	}
}

// Sync makes one synced write that leaves nothing a scan sees, and
// none in a store opened with NoSync; lazy writes before it read back
// after a reopen.
func TestSync(t *testing.T) {
	dir := t.TempDir()
	synced := cfg("")
	synced.NoSync = false
	db := mustOpen(t, dir, synced)
	tab := db.Table("t")
	b := db.Batch()
	b.Put(tab, []byte("lazy"), []byte("v"))
	b.Lazy()
	syncs := db.SyncedWrites()
	if err := db.CommitGrouped(b); err != nil {
		t.Fatal(err)
	}
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := db.SyncedWrites() - syncs; got != 1 {
		t.Fatalf("a lazy commit and Sync made %d synced writes, want 1", got)
	}
	db.Close()
	db = mustOpen(t, dir, synced)
	n := 0
	if err := db.Table("t").Scan(func(id, v []byte) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("the table holds %d records after Sync and a reopen (%v), want the one put", n, err)
	}
	db.Close()

	c := cfg("")
	c.NoSync = true
	db = mustOpen(t, t.TempDir(), c)
	defer db.Close()
	if err := db.Sync(); err != nil || db.SyncedWrites() != 0 {
		t.Fatalf("Sync on a NoSync store: %v, %d synced writes", err, db.SyncedWrites())
	}
}

// journalStorage records, for each journal file, the calls made on it.
type journalStorage struct {
	storage.Storage
	mu    *sync.Mutex
	calls *[]string
}

func (s journalStorage) Create(fd storage.FileDesc) (storage.Writer, error) {
	w, err := s.Storage.Create(fd)
	if err != nil || fd.Type != storage.TypeJournal {
		return w, err
	}
	return journalWriter{w, s}, nil
}

type journalWriter struct {
	storage.Writer
	s journalStorage
}

func (w journalWriter) note(call string) {
	w.s.mu.Lock()
	*w.s.calls = append(*w.s.calls, call)
	w.s.mu.Unlock()
}
func (w journalWriter) Write(p []byte) (int, error) { w.note("write"); return w.Writer.Write(p) }
func (w journalWriter) Sync() error                 { w.note("sync"); return w.Writer.Sync() }
func (w journalWriter) Close() error                { w.note("close"); return w.Writer.Close() }

// A journal is synced before it is closed, so a lazy write in a journal
// goleveldb leaves behind is durable before any later synced write
// (DB.Sync's guarantee). Without the sync the calls end "write, close".
func TestJournalSyncedOnClose(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	testWrapStorage = func(s storage.Storage) storage.Storage { return journalStorage{s, &mu, &calls} }
	t.Cleanup(func() { testWrapStorage = nil })
	db := mustOpen(t, t.TempDir(), cfg(""))
	b := db.Batch()
	b.Put(db.Table("t"), []byte("lazy"), []byte("v"))
	b.Lazy()
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	mu.Lock()
	defer mu.Unlock()
	last := strings.Join(calls[max(0, len(calls)-3):], ",")
	if last != "write,sync,close" {
		t.Fatalf("the journal's last calls were %q (all: %v), want write,sync,close", last, calls)
	}
}

// fakeJournal counts the syncs of one journal file.
type fakeJournal struct {
	storage.Writer
	syncs, closes int
}

func (f *fakeJournal) Sync() error  { f.syncs++; return nil }
func (f *fakeJournal) Close() error { f.closes++; return nil }

// Sync syncs every journal goleveldb has open, the one it is leaving
// included (a write there is not covered by a sync of the new one);
// a journal is synced once at its close and left out after it.
func TestSyncCoversOpenJournals(t *testing.T) {
	js := &journals{}
	old, cur := &fakeJournal{}, &fakeJournal{}
	fo, fc := js.add(old), js.add(cur)
	if err := js.sync(); err != nil || old.syncs != 1 || cur.syncs != 1 {
		t.Fatalf("sync with two journals open: %v, syncs %d and %d, want 1 and 1", err, old.syncs, cur.syncs)
	}
	if err := fo.Close(); err != nil || old.syncs != 2 || old.closes != 1 {
		t.Fatalf("close: %v, %d syncs, %d closes; want a sync before the close", err, old.syncs, old.closes)
	}
	if err := js.sync(); err != nil || old.syncs != 2 || cur.syncs != 2 {
		t.Fatalf("sync after the close: %v, syncs %d and %d, want 2 and 2", err, old.syncs, cur.syncs)
	}
	if err := fo.Sync(); err != nil || old.syncs != 2 {
		t.Fatalf("a closed journal's Sync: %v, %d syncs", err, old.syncs)
	}
	fc.Close()
}
