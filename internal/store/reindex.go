package store

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"

	"github.com/syndtr/goleveldb/leveldb/util"
)

// Repair rebuilds the sequence index of the tables it is given
// (docs/protocol/store.md §11.9): a write batch dropped from a damaged
// journal can leave an id's skip list pointing to records that were
// never written, or missing records that were. Every link and head
// record of the table is replaced by ones built from the data records
// present.

// metaReindexID is the _meta record listing the tags of the tables whose
// index rebuild Repair started and has not finished: concatenated 8-byte
// tags. Each is rebuilt again the first time it is asked for.
var metaReindexID = []byte("reindex-pending")

// IndexReport is one table's part of Repair's rebuild of the sequence
// index.
type IndexReport struct {
	// IDs and Records count the ids holding sequenced records and those
	// records, each now linked in its id's order.
	IDs, Records int
	// Stale counts the index records (links and heads) removed because
	// they belonged to no record present: their records were in a
	// dropped write. Wrong counts the links of records present and the
	// heads of ids that were missing or disagreed with the records
	// present (compared at the bottom level: a link's neighbours, a
	// head's first and last record and its count). Both are 0 when the
	// old index agreed with the records.
	Stale, Wrong int
	// Unreadable counts the sequenced records that did not open (damaged)
	// and were deleted. What they held cannot be known.
	Unreadable int
}

var (
	// reindexBatchRecords bounds the records of one write of a rebuild.
	reindexBatchRecords = migrateBatchRecords
	// testReindexBatch, when set by a test, runs after each write of a
	// rebuild; an error stops the rebuild there, as a kill would.
	testReindexBatch func() error
)

// seqList is one id's records as a rebuild sees them.
type seqList struct {
	id     []byte
	seqs   []uint64  // ascending once sorted
	levels []uint8   // the height drawn for each record
	at     [][]int32 // at[i]: the positions of the records on level i, ascending
}

// indexWrite is one record a rebuild writes or deletes.
type indexWrite struct {
	key  [keyLen]byte
	list int32 // the id's seqList; -1: delete the record
	pos  int32 // the record's position in the list; -1: the id's head
	old  bool  // a readable link or head is there now
	// bottom is a hash of what the old record says at level 0.
	bottom uint64
}

// bottom returns a hash of what n says at level 0: a link's neighbours,
// or a head's first and last record and its count.
func (n *seqNode) bottom(seed maphash.Seed) uint64 {
	return maphash.Comparable(seed, [4]uint64{n.next[0], n.prev[0], uint64(n.hasNext&1 | n.hasPrev&1<<1), n.count})
}

// node returns the link of the record at pos, or the head for pos -1.
func (l *seqList) node(pos int) *seqNode {
	n := &seqNode{}
	if pos < 0 {
		n.h, n.count = len(l.at), uint64(len(l.seqs))
		for i, at := range l.at {
			n.setNext(i, l.seqs[at[0]], true)
			n.setPrev(i, l.seqs[at[len(at)-1]], true)
		}
		return n
	}
	n.h = int(l.levels[pos])
	for i := range n.h {
		at := l.at[i]
		k, _ := slices.BinarySearch(at, int32(pos))
		if k > 0 {
			n.setPrev(i, l.seqs[at[k-1]], true)
		}
		if k+1 < len(at) {
			n.setNext(i, l.seqs[at[k+1]], true)
		}
	}
	return n
}

// markReindex records that the index of every table in ts is to be
// rebuilt, before any of it is changed: a rebuild stopped half-way is
// then finished before the table's next use.
func (db *DB) markReindex(ts []*Table) error {
	db.layoutMu.Lock()
	defer db.layoutMu.Unlock()
	db.mu.Lock()
	set := make(map[[tagSize]byte]bool, len(db.reindex)+len(ts))
	for tag := range db.reindex {
		set[tag] = true
	}
	for _, t := range ts {
		set[t.keys.tag] = true
	}
	db.mu.Unlock()
	if err := db.writePending(metaReindexID, set); err != nil {
		return fmt.Errorf("store: mark tables for an index rebuild: %w", err)
	}
	db.mu.Lock()
	for _, t := range ts {
		db.reindex[t.keys.tag] = true
	}
	db.mu.Unlock()
	return nil
}

// reindexTable rebuilds t's sequence index if it is marked for a
// rebuild, then clears the mark.
func (db *DB) reindexTable(t *Table) (IndexReport, error) {
	db.layoutMu.Lock()
	defer db.layoutMu.Unlock()
	db.mu.Lock()
	pending := db.reindex[t.keys.tag]
	db.mu.Unlock()
	if !pending {
		return IndexReport{}, nil // another caller got here first
	}
	rep, err := db.rebuildIndex(t)
	if err == nil {
		err = db.finishPending(metaReindexID, db.reindex, t.keys.tag)
	}
	if err != nil {
		return rep, fmt.Errorf("store: rebuild the index of table %q: %w", t.keys.name, err)
	}
	db.log.Info("store index rebuilt", "records", rep.Records, "stale", rep.Stale,
		"wrong", rep.Wrong, "unreadable", rep.Unreadable)
	return rep, nil
}

// rebuildIndex replaces every link and head record of t by ones built
// from its data records, and deletes the sequenced records that do not
// open. It reads the table once, holding per record its seq, height and
// key (about 50 bytes), then writes in key order, in batches of at most
// reindexBatchRecords: keys are keyed hashes, so neither the batches nor
// goleveldb's sequence numbers group the records of one id. Stopped
// half-way, it leaves a mix of old and new index records that the next
// run replaces whole.
func (db *DB) rebuildIndex(t *Table) (IndexReport, error) {
	db.nodes.clear()
	defer db.nodes.clear()
	var rep IndexReport
	var lists []*seqList
	var writes []indexWrite
	byID := make(map[string]int32)
	seed := maphash.MakeSeed()
	ldb, err := db.readLock()
	if err != nil {
		return rep, err
	}
	it := ldb.NewIterator(util.BytesPrefix(t.keys.tag[:]), nil)
	for it.Next() {
		key, raw := it.Key(), it.Value()
		if len(key) != keyLen || len(raw) == 0 || raw[0] != formatSeq {
			continue // plain records, and what Scan reports as corrupt
		}
		w := indexWrite{key: [keyLen]byte(key), list: -1}
		rec, err := t.keys.decodeSeqRecord(key, raw)
		switch {
		case err != nil:
			rep.Unreadable++
		case rec.kind == kindData:
			i, ok := byID[string(rec.id)]
			if !ok {
				i = int32(len(lists))
				byID[string(rec.id)] = i
				lists = append(lists, &seqList{id: rec.id})
			}
			lists[i].seqs = append(lists[i].seqs, rec.seq)
			continue
		default:
			w.old, w.bottom = true, rec.node.bottom(seed)
		}
		writes = append(writes, w)
	}
	it.Release()
	err = it.Error()
	db.ldbMu.RUnlock()
	if err != nil {
		return rep, db.wrapErr("rebuild index", t, err)
	}

	for i, l := range lists {
		slices.Sort(l.seqs)
		l.levels = make([]uint8, len(l.seqs))
		for pos := range l.seqs {
			h := randomLevel()
			l.levels[pos] = uint8(h)
			for len(l.at) < h {
				l.at = append(l.at, nil)
			}
			for lv := range h {
				l.at[lv] = append(l.at[lv], int32(pos))
			}
			writes = append(writes, indexWrite{key: [keyLen]byte(t.keys.linkKey(l.id, l.seqs[pos])), list: int32(i), pos: int32(pos)})
		}
		writes = append(writes, indexWrite{key: [keyLen]byte(t.keys.headKey(l.id)), list: int32(i), pos: -1})
		rep.IDs++
		rep.Records += len(l.seqs)
	}
	// In key order, a write before a delete of the same key.
	slices.SortFunc(writes, func(a, b indexWrite) int {
		return cmp.Or(bytes.Compare(a.key[:], b.key[:]), cmp.Compare(b.list, a.list))
	})

	b := db.Batch()
	flush := func() error {
		if err := b.Commit(); err != nil {
			return err
		}
		b.Reset()
		if testReindexBatch != nil {
			return testReindexBatch()
		}
		return nil
	}
	for i := 0; i < len(writes); {
		w, old := writes[i], indexWrite{}
		for ; i < len(writes) && writes[i].key == w.key; i++ {
			if writes[i].old {
				old = writes[i]
			}
		}
		switch {
		case w.list >= 0:
			n := lists[w.list].node(int(w.pos))
			if !old.old || old.bottom != n.bottom(seed) {
				rep.Wrong++
			}
			kind := kindLink
			if w.pos < 0 {
				kind = kindHead
			}
			b.lb.Put(w.key[:], t.keys.sealNode(w.key[:], kind, n))
		case old.old:
			rep.Stale++
			b.lb.Delete(w.key[:])
		default: // a record that does not open, counted above
			b.lb.Delete(w.key[:])
		}
		if b.Len() >= reindexBatchRecords {
			if err := flush(); err != nil {
				return rep, err
			}
		}
	}
	if b.Len() > 0 {
		if err := flush(); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// The lists of pending work in _meta (tables to rewrite in layout 2,
// tables whose index is to be rebuilt): concatenated 8-byte tags.

// loadPending reads the tags listed under id into set.
func (db *DB) loadPending(id []byte, set map[[tagSize]byte]bool) error {
	raw, err := db.table(metaTable).Get(id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(raw)%tagSize != 0 {
		return fmt.Errorf("%w: list %q of %d bytes", ErrCorrupt, id, len(raw))
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	for i := 0; i < len(raw); i += tagSize {
		set[[tagSize]byte(raw[i:])] = true
	}
	return nil
}

// writePending writes set as the list under id, deleting the list when
// set is empty.
func (db *DB) writePending(id []byte, set map[[tagSize]byte]bool) error {
	tags := make([][tagSize]byte, 0, len(set))
	for tag := range set {
		tags = append(tags, tag)
	}
	meta, b := db.table(metaTable), db.Batch()
	if len(tags) == 0 {
		b.Delete(meta, id)
	} else {
		b.Put(meta, id, encodeTags(tags))
	}
	return b.Commit()
}

// finishPending takes tag off the list under id and out of set, which
// mirrors it.
func (db *DB) finishPending(id []byte, set map[[tagSize]byte]bool, tag [tagSize]byte) error {
	db.mu.Lock()
	rest := make(map[[tagSize]byte]bool, len(set))
	for t := range set {
		if t != tag {
			rest[t] = true
		}
	}
	db.mu.Unlock()
	if err := db.writePending(id, rest); err != nil {
		return err
	}
	db.mu.Lock()
	delete(set, tag)
	db.mu.Unlock()
	return nil
}
