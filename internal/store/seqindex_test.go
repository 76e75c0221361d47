package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// checkIndex walks id's skip list at every level and checks it against
// itself: ascending levels, symmetric pointers, each level a subsequence
// of the one below, the head's first, last, height and count. It returns
// the seqs in order.
func checkIndex(t *testing.T, tb *Table, id []byte) []uint64 {
	t.Helper()
	ldb, err := tb.db.readLock()
	if err != nil {
		t.Fatal(err)
	}
	defer tb.db.ldbMu.RUnlock()
	sr, err := tb.newSeqReader(ldb, id)
	if err != nil {
		t.Fatal(err)
	}
	if sr.head == nil {
		return nil
	}
	hd := sr.head
	var below map[uint64]bool
	var all []uint64
	for i := range hd.h {
		var seqs []uint64
		prev, hasPrev := uint64(0), false
		s, ok := hd.nextAt(i)
		if !ok {
			t.Fatalf("level %d below the height %d is empty", i, hd.h)
		}
		for ok {
			n, err := sr.link(s)
			if err != nil {
				t.Fatalf("level %d: %v", i, err)
			}
			if n.h <= i {
				t.Fatalf("seq %d of height %d on level %d", s, n.h, i)
			}
			if p, pok := n.prevAt(i); pok != hasPrev || p != prev {
				t.Fatalf("level %d: seq %d points back to %d/%v, want %d/%v", i, s, p, pok, prev, hasPrev)
			}
			if hasPrev && s <= prev {
				t.Fatalf("level %d not ascending: %d after %d", i, s, prev)
			}
			if below != nil && !below[s] {
				t.Fatalf("seq %d on level %d but not below", s, i)
			}
			seqs = append(seqs, s)
			prev, hasPrev = s, true
			s, ok = n.nextAt(i)
		}
		if last, ok := hd.prevAt(i); !ok || last != prev {
			t.Fatalf("head's last on level %d is %d/%v, want %d", i, last, ok, prev)
		}
		if i == 0 {
			all = seqs
		}
		below = make(map[uint64]bool, len(seqs))
		for _, s := range seqs {
			below[s] = true
		}
	}
	if hd.count != uint64(len(all)) {
		t.Fatalf("head counts %d records, the list holds %d", hd.count, len(all))
	}
	return all
}

// model is what a table's sequenced records should be.
type model map[string]map[uint64]string

func (m model) put(id string, seq uint64, v string) {
	if m[id] == nil {
		m[id] = make(map[uint64]string)
	}
	m[id][seq] = v
}

func (m model) del(id string, seq uint64) { delete(m[id], seq) }

func (m model) seqs(id string) []uint64 {
	return slices.Sorted(func(yield func(uint64) bool) {
		for s := range m[id] {
			if !yield(s) {
				return
			}
		}
	})
}

type seqValue struct {
	seq   uint64
	value string
}

func collectSeq(t *testing.T, scan func(func(uint64, []byte) error) error) []seqValue {
	t.Helper()
	var got []seqValue
	if err := scan(func(s uint64, v []byte) error {
		got = append(got, seqValue{s, string(v)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// want returns the model's records of id in [from, to], descending when
// reverse, at most limit of them (limit <= 0: all).
func (m model) want(id string, from, to uint64, limit int, reverse bool) []seqValue {
	var out []seqValue
	seqs := m.seqs(id)
	if reverse {
		slices.Reverse(seqs)
	}
	for _, s := range seqs {
		if s >= from && s <= to && (limit <= 0 || len(out) < limit) {
			out = append(out, seqValue{s, m[id][s]})
		}
	}
	return out
}

// verify checks every read of tb against m, with random ranges from rng
// (nil: a fixed seed).
func (m model) verify(t *testing.T, rng *rand.Rand, tb *Table) {
	t.Helper()
	if rng == nil {
		rng = rand.New(rand.NewPCG(7, 7))
	}
	for id := range m {
		bid := []byte(id)
		if got := checkIndex(t, tb, bid); !slices.Equal(got, m.seqs(id)) {
			t.Fatalf("%s: index holds %v, want %v", id, got, m.seqs(id))
		}
		got := collectSeq(t, func(fn func(uint64, []byte) error) error { return tb.ScanSeq(bid, 0, math.MaxUint64, fn) })
		if want := m.want(id, 0, math.MaxUint64, 0, false); !slices.Equal(got, want) {
			t.Fatalf("%s: ScanSeq %v, want %v", id, got, want)
		}
		for range 5 {
			from, to := rng.Uint64N(1200), rng.Uint64N(1200)
			if rng.IntN(4) == 0 {
				to = math.MaxUint64
			}
			limit := rng.IntN(8)
			got := collectSeq(t, func(fn func(uint64, []byte) error) error { return tb.ScanSeq(bid, from, to, fn) })
			if want := m.want(id, from, to, 0, false); !slices.Equal(got, want) {
				t.Fatalf("%s: ScanSeq(%d, %d) %v, want %v", id, from, to, got, want)
			}
			got = collectSeq(t, func(fn func(uint64, []byte) error) error { return tb.ScanSeqReverse(bid, from, to, limit, fn) })
			if want := m.want(id, from, to, limit, true); !slices.Equal(got, want) {
				t.Fatalf("%s: ScanSeqReverse(%d, %d, %d) %v, want %v", id, from, to, limit, got, want)
			}
		}
		last, ok, err := tb.LastSeq(bid)
		seqs := m.seqs(id)
		if err != nil || ok != (len(seqs) > 0) || ok && last != seqs[len(seqs)-1] {
			t.Fatalf("%s: LastSeq %d %v %v, want %v", id, last, ok, err, seqs)
		}
		for s, v := range m[id] {
			if got, err := tb.GetSeq(bid, s); err != nil || string(got) != v {
				t.Fatalf("%s: GetSeq(%d) = %q %v, want %q", id, s, got, err, v)
			}
		}
	}
	all := model{}
	err := tb.ScanAllSeq(func(id []byte, seq uint64, v []byte) error {
		if seqs := all.seqs(string(id)); len(seqs) > 0 && seqs[len(seqs)-1] >= seq {
			t.Fatalf("ScanAllSeq: %s seq %d after %v", id, seq, seqs)
		}
		all.put(string(id), seq, string(v))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id := range m {
		if !maps2Equal(all[id], m[id]) {
			t.Fatalf("ScanAllSeq %s: %v, want %v", id, all[id], m[id])
		}
	}
}

func maps2Equal(a, b map[uint64]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Random puts, overwrites and deletions, single and in batches (several
// to one id in one batch), across a reopen: every read agrees with a
// model and the skip lists stay well formed.
func TestSeqIndexAgainstModel(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg(""))
	tb := db.Table("log")
	rng := rand.New(rand.NewPCG(1, 2))
	m := model{}
	ids := []string{"a", "b", "c", ""}
	for round := range 40 {
		b := db.Batch()
		for range 1 + rng.IntN(40) {
			id := ids[rng.IntN(len(ids))]
			seq := rng.Uint64N(1000)
			if seqs := m.seqs(id); len(seqs) > 0 && rng.IntN(3) == 0 {
				seq = seqs[rng.IntN(len(seqs))] // an existing one
			}
			if rng.IntN(3) == 0 {
				b.DeleteSeq(tb, []byte(id), seq)
				m.del(id, seq)
			} else {
				v := fmt.Sprintf("%s/%d/r%d", id, seq, round)
				b.PutSeq(tb, []byte(id), seq, []byte(v))
				m.put(id, seq, v)
			}
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		if round == 20 {
			db.Close()
			db = mustOpen(t, dir, cfg(""))
			tb = db.Table("log")
		}
		m.verify(t, rng, tb)
	}
	// Deleting everything removes the heads too: no record is left.
	b := db.Batch()
	for id := range m {
		for _, s := range m.seqs(id) {
			b.DeleteSeq(tb, []byte(id), s)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	n := 0
	tb.scanAll(func(_, _ []byte) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d records left after deleting every sequenced record", n)
	}
}

// Several PutSeq and DeleteSeq of one id in one batch, and batches to
// one id merged by CommitGrouped, are applied in order.
func TestSeqBatchSameID(t *testing.T) {
	db := mustOpen(t, t.TempDir(), cfg(""))
	tb := db.Table("log")
	id := []byte("conv")
	b := db.Batch()
	b.PutSeq(tb, id, 5, []byte("five"))
	b.PutSeq(tb, id, 3, []byte("three"))
	b.PutSeq(tb, id, 9, []byte("nine"))
	b.DeleteSeq(tb, id, 3)
	b.PutSeq(tb, id, 5, []byte("five again"))
	b.PutSeq(tb, []byte("other"), 4, []byte("x"))
	b.DeleteSeq(tb, id, 100) // not there
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	got := collectSeq(t, func(fn func(uint64, []byte) error) error { return tb.ScanSeq(id, 0, math.MaxUint64, fn) })
	if want := []seqValue{{5, "five again"}, {9, "nine"}}; !slices.Equal(got, want) {
		t.Fatalf("ScanSeq %v, want %v", got, want)
	}
	checkIndex(t, tb, id)

	// A retried Commit of the same batch applies it again, not twice over.
	b = db.Batch()
	b.PutSeq(tb, id, 7, []byte("seven"))
	b.Commit()
	if b.Len() != 1 {
		t.Fatalf("Len after Commit = %d, want 1: the index records stay out of the batch", b.Len())
	}
	b.Commit()
	if got := checkIndex(t, tb, id); !slices.Equal(got, []uint64{5, 7, 9}) {
		t.Fatalf("after a second Commit: %v", got)
	}

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			b := db.Batch()
			for i := range 10 {
				b.PutSeq(tb, id, uint64(1000+g*10+i), []byte("g"))
			}
			b.DeleteSeq(tb, id, 5)
			if err := db.CommitGrouped(b); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	seqs := checkIndex(t, tb, id)
	if len(seqs) != 82 || seqs[0] != 7 || seqs[81] != 1079 {
		t.Fatalf("after grouped commits: %d records from %d to %d", len(seqs), seqs[0], seqs[len(seqs)-1])
	}
}

// countingGetter counts point reads.
type countingGetter struct {
	r getter
	n int
}

func (c *countingGetter) Get(key []byte, ro *opt.ReadOptions) ([]byte, error) {
	c.n++
	return c.r.Get(key, ro)
}

// reads returns the point reads a walk of id makes.
func reads(t *testing.T, tb *Table, id []byte, from, to uint64, limit int, reverse bool) (int, []uint64) {
	t.Helper()
	ldb, err := tb.db.readLock()
	if err != nil {
		t.Fatal(err)
	}
	defer tb.db.ldbMu.RUnlock()
	c := &countingGetter{r: ldb}
	var seqs []uint64
	err = tb.walkSeq(c, id, from, to, limit, reverse, func(s uint64, _ []byte) error {
		seqs = append(seqs, s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c.n, seqs
}

// A scan's reads depend on the records it returns, not on how many were
// deleted before them, how sparse the sequence numbers are or how many
// records other ids hold between them.
func TestSeqScanCostBounded(t *testing.T) {
	db := mustOpen(t, t.TempDir(), cfg(""))
	tb := db.Table("log")
	busy, quiet, sparse := []byte("busy"), []byte("quiet"), []byte("expiry")
	b := db.Batch()
	for s := range uint64(10000) {
		// One counter for all ids, as the node allocates message seqs:
		// quiet gets one in 500.
		id := busy
		if s%500 == 0 {
			id = quiet
		}
		b.PutSeq(tb, id, s, []byte("v"))
		b.PutSeq(tb, sparse, 1_700_000_000_000_000_000+s*1_000_000_007, []byte("v"))
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b = db.Batch()
	for s := range uint64(9990) {
		if s%500 != 0 {
			b.DeleteSeq(tb, busy, s)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	// Each record costs its link and its value; finding the first costs
	// the head and, inside the range, a descent (O(log n)).
	cases := []struct {
		name          string
		id            []byte
		from, to      uint64
		limit         int
		reverse       bool
		records, most int
	}{
		{"the 10 left after 9,980 deletions", busy, 0, math.MaxUint64, 0, false, 10, 1 + 2*10},
		{"last 5 of quiet among busy", quiet, 0, math.MaxUint64, 5, true, 5, 1 + 2*5},
		{"all 20 of quiet", quiet, 0, math.MaxUint64, 0, false, 20, 1 + 2*20},
		{"quiet from the middle", quiet, 5000, math.MaxUint64, 0, false, 10, 1 + 2*10 + 40},
		{"nanosecond seqs up to a time", sparse, 0, 1_700_000_000_000_000_000 + 50*1_000_000_007, 0, false, 51, 1 + 2*52},
		{"nanosecond seqs, last 50", sparse, 0, math.MaxUint64, 50, true, 50, 1 + 2*50},
	}
	for _, c := range cases {
		n, seqs := reads(t, tb, c.id, c.from, c.to, c.limit, c.reverse)
		if len(seqs) != c.records {
			t.Errorf("%s: %d records, want %d", c.name, len(seqs), c.records)
		}
		if n > c.most {
			t.Errorf("%s: %d reads, want at most %d", c.name, n, c.most)
		}
	}
}

// linkReads applies ops as one commit would and returns the point reads
// it made, without writing.
func linkReads(t *testing.T, db *DB, ops []seqOp) int {
	t.Helper()
	ldb, err := db.readLock()
	if err != nil {
		t.Fatal(err)
	}
	defer db.ldbMu.RUnlock()
	c := &countingGetter{r: ldb}
	l := newSeqLinker(c, &nodeCache{}) // cold: count what a commit reads from disk
	for _, op := range ops {
		if err := l.apply(op); err != nil {
			t.Fatal(err)
		}
	}
	return c.n
}

// An append or a deletion reads a few index records whatever the size of
// the list, the deletions before it or the spacing of seqs; an insertion
// in the middle reads O(log n).
func TestSeqWriteCostBounded(t *testing.T) {
	db := mustOpen(t, t.TempDir(), cfg(""))
	tb := db.Table("log")
	id := []byte("conv")
	b := db.Batch()
	for s := range uint64(6000) {
		b.PutSeq(tb, id, s*1_000_003, []byte("v"))
	}
	b.Commit()
	b.Reset()
	for s := range uint64(5000) {
		b.DeleteSeq(tb, id, s*1_000_003)
	}
	b.Commit()
	const trials = 200
	var appends, deletes, inserts int
	for i := range uint64(trials) {
		appends += linkReads(t, db, []seqOp{newSeqOp(tb.keys, id, 1<<62, false)})
		deletes += linkReads(t, db, []seqOp{newSeqOp(tb.keys, id, (5000+i*5)*1_000_003, true)})
		inserts += linkReads(t, db, []seqOp{newSeqOp(tb.keys, id, (5000+i*5)*1_000_003+1, false)})
	}
	t.Logf("reads per append %.2f, deletion %.2f, insertion among 1,000 %.2f",
		float64(appends)/trials, float64(deletes)/trials, float64(inserts)/trials)
	// An append reads the head and the last node of each of its levels
	// (1⅓ expected); a deletion its link, the head and both neighbours on
	// each of its levels (2⅔ expected).
	if avg := float64(appends) / trials; avg > 3 {
		t.Errorf("an append reads %.1f records on average, want at most 3", avg)
	}
	if avg := float64(deletes) / trials; avg > 6 {
		t.Errorf("a deletion reads %.1f records on average, want at most 6", avg)
	}
	// 1,000 records: a descent of about log4(1000)·(4-1) ≈ 15 nodes.
	if avg := float64(inserts) / trials; avg > 40 {
		t.Errorf("an insertion reads %.1f records on average, want at most 40", avg)
	}
}

// Writers and readers on shared ids at once (run with -race): every scan
// sees an ascending, consistent list, and the end state is every write.
func TestSeqConcurrentUse(t *testing.T) {
	db := mustOpen(t, t.TempDir(), cfg(""))
	tb := db.Table("log")
	ids := [][]byte{[]byte("x"), []byte("y"), []byte("z")}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 4 {
		wg.Go(func() {
			for i := range 150 {
				id := ids[(g+i)%len(ids)]
				seq := uint64(i*4 + g) // disjoint across writers
				b := db.Batch()
				b.PutSeq(tb, id, seq, fmt.Appendf(nil, "%d", seq))
				b.PutSeq(tb, id, seq+1_000_000, []byte("gone"))
				b.DeleteSeq(tb, id, seq+1_000_000)
				var err error
				if i%2 == 0 {
					err = b.Commit()
				} else {
					err = db.CommitGrouped(b)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := ids[r]
				prev, first := uint64(0), true
				err := tb.ScanSeq(id, 0, math.MaxUint64, func(s uint64, v []byte) error {
					if !first && s <= prev || string(v) != fmt.Sprint(s) {
						return fmt.Errorf("seq %d (%q) after %d", s, v, prev)
					}
					prev, first = s, false
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				if _, _, err := tb.LastSeq(id); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	total := 0
	for _, id := range ids {
		total += len(checkIndex(t, tb, id))
	}
	if total != 4*150 {
		t.Fatalf("%d records, want %d", total, 4*150)
	}
}

// A copy of the store shows neither which sequenced records belong to one
// id, nor their sequence numbers, nor their order: keys share nothing
// past the table tag, contain no seq, and sorted they do not follow the
// order of writing.
func TestSeqKeysHideIDsAndOrder(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg(""))
	tb := db.Table("messages")
	counts := map[string]int{"alice": 1, "bob": 7, "carol": 40, "dave": 150}
	type written struct {
		id  string
		seq uint64
	}
	var order []written
	seq := uint64(0)
	for len(order) < 198 {
		for _, id := range []string{"alice", "bob", "carol", "dave"} {
			n := 0
			for _, w := range order {
				if w.id == id {
					n++
				}
			}
			if n < counts[id] {
				seq++ // one counter across ids, as the node's
				if err := tb.PutSeq([]byte(id), seq, []byte("m")); err != nil {
					t.Fatal(err)
				}
				order = append(order, written{id, seq})
			}
		}
	}
	dataKeys := make(map[string]int) // data key → position in order
	for i, w := range order {
		dataKeys[string(tb.keys.dataKey([]byte(w.id), w.seq))] = i
	}
	tag := tb.keys.tag
	db.Close()

	ldb := rawDB(t, dir)
	var keys [][]byte
	it := ldb.NewIterator(util.BytesPrefix(tag[:]), nil)
	for it.Next() {
		keys = append(keys, slices.Clone(it.Key()))
	}
	it.Release()
	ldb.Close()
	if len(keys) < len(order) {
		t.Fatalf("%d keys in the table, %d records written", len(keys), len(order))
	}

	// No grouping: past the tag, no two keys share 4 bytes (by chance:
	// about n²/2^33, 10⁻⁵ here), and every key is one length.
	for i := 1; i < len(keys); i++ {
		a, b := keys[i-1][tagSize:], keys[i][tagSize:]
		if bytes.Equal(a[:4], b[:4]) {
			t.Fatalf("keys %x and %x share a prefix past the tag", a, b)
		}
	}
	for _, k := range keys {
		if len(k) != keyLen {
			t.Fatalf("key of %d bytes: lengths tell records apart", len(k))
		}
	}
	// No sequence number in clear.
	for _, w := range order {
		be := binary.BigEndian.AppendUint64(nil, w.seq)
		for _, k := range keys {
			if bytes.Contains(k, be) {
				t.Fatalf("key %x holds seq %d", k, w.seq)
			}
		}
	}
	// No order: sorted by key, the data records come in an order
	// unrelated to writing (about half the neighbours ascend, not all).
	var pos []int
	for _, k := range keys {
		if p, ok := dataKeys[string(k)]; ok {
			pos = append(pos, p)
		}
	}
	if len(pos) != len(order) {
		t.Fatalf("found %d of %d data records among the keys", len(pos), len(order))
	}
	ascending := 0
	for i := 1; i < len(pos); i++ {
		if pos[i] > pos[i-1] {
			ascending++
		}
	}
	if frac := float64(ascending) / float64(len(pos)-1); frac < 0.3 || frac > 0.7 {
		t.Fatalf("%.0f%% of neighbouring keys follow the writing order", 100*frac)
	}
	// Per-id runs: in key order, records of one id are not contiguous
	// any more than chance makes them.
	var runs int
	idOf := make(map[int]string)
	for i, w := range order {
		idOf[i] = w.id
	}
	for i := 1; i < len(pos); i++ {
		if idOf[pos[i]] == idOf[pos[i-1]] {
			runs++
		}
	}
	if runs > len(pos)*3/4 { // dave alone is 3/4 of the records: chance gives ~0.6
		t.Fatalf("%d of %d neighbouring records share an id", runs, len(pos)-1)
	}
}

// The skip list's reads and writes go through the store's errors: a link
// the head points to that is missing is ErrCorrupt naming the table.
func TestSeqIndexDamageIsCorrupt(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg(""))
	tb := db.Table("log")
	for s := range uint64(5) {
		tb.PutSeq([]byte("conv"), s, []byte("v"))
	}
	link := tb.keys.linkKey([]byte("conv"), 2)
	db.Close()
	ldb := rawDB(t, dir)
	ldb.Delete(link, nil)
	ldb.Close()
	db = mustOpen(t, dir, cfg(""))
	tb = db.Table("log")
	err := tb.ScanSeq([]byte("conv"), 0, math.MaxUint64, func(uint64, []byte) error { return nil })
	if !errors.Is(err, ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte(`"log"`)) {
		t.Fatalf("scan over a missing link: %v", err)
	}
	if err := tb.DeleteSeq([]byte("conv"), 1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("delete next to a missing link: %v", err)
	}
	if _, err := rawGet(db, link); !errors.Is(err, leveldb.ErrNotFound) {
		t.Fatalf("the failed commit wrote: %v", err)
	}
}

func rawGet(db *DB, key []byte) ([]byte, error) {
	ldb, err := db.readLock()
	if err != nil {
		return nil, err
	}
	defer db.ldbMu.RUnlock()
	return ldb.Get(key, nil)
}

// An append after an append to the same id reads nothing back: the head
// and the last link come from the node cache the first commit filled.
func TestSeqAppendReadsCachedNodes(t *testing.T) {
	db := mustOpen(t, t.TempDir(), cfg(""))
	tb := db.Table("log")
	id := []byte("conv")
	for s := range uint64(100) {
		if err := tb.PutSeq(id, s, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	ldb, err := db.readLock()
	if err != nil {
		t.Fatal(err)
	}
	c := &countingGetter{r: ldb}
	l := newSeqLinker(c, &db.nodes)
	if err := l.apply(newSeqOp(tb.keys, id, 100, false)); err != nil {
		t.Fatal(err)
	}
	db.ldbMu.RUnlock()
	if c.n != 0 {
		t.Fatalf("an append read %d index records, want 0 (cached)", c.n)
	}
	// The cache agrees with the disk: the list reads back whole.
	db.nodes.clear()
	var got []uint64
	tb.ScanSeq(id, 0, ^uint64(0), func(s uint64, _ []byte) error { got = append(got, s); return nil })
	if len(got) != 100 || got[99] != 99 {
		t.Fatalf("read back %d records", len(got))
	}
	if err := tb.PutSeq(id, 100, []byte("v")); err != nil {
		t.Fatal(err)
	}
}

// ReplaceSeq rewrites a record's value and nothing of the index: a scan
// shows the new value in place, the list is unchanged, and the commit has
// no index operation (so it reads nothing back). A replacement of a seq
// that does not exist stores a record scans do not find.
func TestReplaceSeq(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg(""))
	tb := db.Table("log")
	id := []byte("conv")
	b := db.Batch()
	for s := range uint64(5) {
		b.PutSeq(tb, id, s+1, fmt.Appendf(nil, "v%d", s+1))
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b = db.Batch()
	b.ReplaceSeq(tb, id, 3, []byte("three"))
	b.ReplaceSeq(tb, id, 9, []byte("nine")) // never put
	if len(b.seqOps) != 0 {
		t.Fatalf("%d index operations for two replacements, want none", len(b.seqOps))
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		if got := fmt.Sprint(checkIndex(t, tb, id)); got != "[1 2 3 4 5]" {
			t.Fatalf("the list holds %s", got)
		}
		var vals []string
		if err := tb.ScanSeq(id, 0, 100, func(s uint64, v []byte) error {
			vals = append(vals, string(v))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(vals); got != "[v1 v2 three v4 v5]" {
			t.Fatalf("scan: %s", got)
		}
		if v, err := tb.GetSeq(id, 9); err != nil || string(v) != "nine" {
			t.Fatalf("GetSeq of the record replaced without a put: %q %v", v, err)
		}
	}
	check()
	db.Close()
	db = mustOpen(t, dir, cfg(""))
	defer db.Close()
	tb = db.Table("log")
	check()
}
