package store

import (
	"errors"
	"fmt"
	"math"

	"github.com/syndtr/goleveldb/leveldb"
	lerrors "github.com/syndtr/goleveldb/leveldb/errors"
	"github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// Table is a named set of records in a DB. It is a cheap handle, safe for
// concurrent use. Values passed in are copied; values returned belong to
// the caller.
type Table struct {
	db   *DB
	keys *tableKeys
	err  error // set for an invalid name or a closed DB
}

// Name returns the table's name.
func (t *Table) Name() string {
	if t.keys == nil {
		return ""
	}
	return t.keys.name
}

// Put stores value under id, replacing any previous value.
func (t *Table) Put(id, value []byte) error {
	b := t.db.Batch()
	if err := b.Put(t, id, value); err != nil {
		return err
	}
	return b.Commit()
}

// Get returns the value stored under id, or ErrNotFound.
func (t *Table) Get(id []byte) ([]byte, error) {
	if t.err != nil {
		return nil, t.err
	}
	if len(id) > MaxIDSize {
		return nil, ErrNotFound
	}
	return t.get(t.keys.idPrefix(id), id, "get")
}

func (t *Table) get(key, id []byte, op string) ([]byte, error) {
	ldb, err := t.db.readLock()
	if err != nil {
		return nil, err
	}
	raw, err := ldb.Get(key, nil)
	t.db.ldbMu.RUnlock()
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, t.db.wrapErr(op, t, err)
	}
	gotID, value, err := t.keys.decodeRecord(key, raw)
	if err != nil {
		return nil, err
	}
	if string(gotID) != string(id) {
		return nil, fmt.Errorf("%w: record in table %q holds another id", ErrCorrupt, t.keys.name)
	}
	return value, nil
}

// Has reports whether a plain record exists under id.
func (t *Table) Has(id []byte) (bool, error) {
	if t.err != nil {
		return false, t.err
	}
	if len(id) > MaxIDSize {
		return false, nil
	}
	ldb, err := t.db.readLock()
	if err != nil {
		return false, err
	}
	ok, err := ldb.Has(t.keys.idPrefix(id), nil)
	t.db.ldbMu.RUnlock()
	if err != nil {
		return false, t.db.wrapErr("has", t, err)
	}
	return ok, nil
}

// Delete removes the plain record under id. Deleting a missing record is
// not an error. Sequenced records under id are not affected.
func (t *Table) Delete(id []byte) error {
	b := t.db.Batch()
	if err := b.Delete(t, id); err != nil {
		return err
	}
	return b.Commit()
}

// PutSeq stores value as record seq of id's sequence.
func (t *Table) PutSeq(id []byte, seq uint64, value []byte) error {
	b := t.db.Batch()
	if err := b.PutSeq(t, id, seq, value); err != nil {
		return err
	}
	return b.Commit()
}

// GetSeq returns record seq of id's sequence, or ErrNotFound.
func (t *Table) GetSeq(id []byte, seq uint64) ([]byte, error) {
	if t.err != nil {
		return nil, t.err
	}
	if len(id) > MaxIDSize {
		return nil, ErrNotFound
	}
	ldb, err := t.db.readLock()
	if err != nil {
		return nil, err
	}
	defer t.db.ldbMu.RUnlock()
	return t.getData(ldb, id, seq)
}

// getData reads and checks the data record of (id, seq).
func (t *Table) getData(r getter, id []byte, seq uint64) ([]byte, error) {
	key := t.keys.dataKey(id, seq)
	raw, err := r.Get(key, nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, t.db.wrapErr("get", t, err)
	}
	rec, err := t.keys.decodeSeqRecord(key, raw)
	if err != nil {
		return nil, err
	}
	if rec.kind != kindData || string(rec.id) != string(id) || rec.seq != seq {
		return nil, fmt.Errorf("%w: record in table %q holds another id or seq", ErrCorrupt, t.keys.name)
	}
	return rec.value, nil
}

// DeleteSeq removes record seq of id's sequence.
func (t *Table) DeleteSeq(id []byte, seq uint64) error {
	b := t.db.Batch()
	if err := b.DeleteSeq(t, id, seq); err != nil {
		return err
	}
	return b.Commit()
}

// ScanSeq calls fn for each record of id's sequence with from <= seq <=
// to, in ascending order. An error from fn stops the scan and is
// returned. The scan reads a snapshot: writes made meanwhile, fn's
// included, are not seen.
func (t *Table) ScanSeq(id []byte, from, to uint64, fn func(seq uint64, value []byte) error) error {
	return t.scanSeq(id, from, to, 0, false, fn)
}

// ScanSeqReverse calls fn for at most limit records of id's sequence with
// from <= seq <= to, in descending order (limit <= 0: no limit). It is
// the "last N messages" query: ScanSeqReverse(id, 0, math.MaxUint64, n, fn).
func (t *Table) ScanSeqReverse(id []byte, from, to uint64, limit int, fn func(seq uint64, value []byte) error) error {
	return t.scanSeq(id, from, to, limit, true, fn)
}

// LastSeq returns the highest sequence number stored for id, and false if
// id has no sequenced records.
func (t *Table) LastSeq(id []byte) (uint64, bool, error) {
	if t.err != nil {
		return 0, false, t.err
	}
	if len(id) > MaxIDSize {
		return 0, false, nil
	}
	ldb, err := t.db.readLock()
	if err != nil {
		return 0, false, err
	}
	defer t.db.ldbMu.RUnlock()
	sr, err := t.newSeqReader(ldb, id)
	if err != nil || sr.head == nil {
		return 0, false, err
	}
	last, ok := sr.head.prevAt(0)
	return last, ok, nil
}

func (t *Table) scanSeq(id []byte, from, to uint64, limit int, reverse bool, fn func(uint64, []byte) error) error {
	if t.err != nil {
		return t.err
	}
	if len(id) > MaxIDSize || from > to {
		return nil
	}
	snap, release, err := t.snapshot()
	if err != nil {
		return err
	}
	defer release()
	return t.walkSeq(snap, id, from, to, limit, reverse, fn)
}

// walkSeq visits id's records in [from, to] in r: it seeks the first (or,
// reverse, the last) and follows level-0 pointers. Each record visited
// costs two point reads, its link and its value.
func (t *Table) walkSeq(r getter, id []byte, from, to uint64, limit int, reverse bool, fn func(uint64, []byte) error) error {
	sr, err := t.newSeqReader(r, id)
	if err != nil {
		return err
	}
	bound := from
	if reverse {
		bound = to
	}
	seq, n, ok, err := sr.seek(bound, !reverse)
	if err != nil {
		return err
	}
	for visited := 0; ok && seq >= from && seq <= to; {
		value, err := sr.value(seq)
		if err != nil {
			return err
		}
		if err := fn(seq, value); err != nil {
			return err
		}
		if visited++; limit > 0 && visited >= limit {
			return nil
		}
		if reverse {
			seq, ok = n.prevAt(0)
		} else {
			seq, ok = n.nextAt(0)
		}
		if ok && seq >= from && seq <= to {
			if n, err = sr.link(seq); err != nil {
				return err
			}
		}
	}
	return nil
}

// Scan calls fn for every plain record of the table with its clear id, in
// no meaningful order (ids are stored as keyed hashes). An error from fn
// stops the scan and is returned.
func (t *Table) Scan(fn func(id, value []byte) error) error {
	return t.scanAll(func(key, raw []byte) error {
		if raw[0] != formatPlain {
			return nil
		}
		id, value, err := t.keys.decodeRecord(key, raw)
		if err != nil {
			return err
		}
		return fn(id, value)
	})
}

// snapshot holds the store's read lock and a snapshot for one scan;
// release gives both back.
func (t *Table) snapshot() (snap *leveldb.Snapshot, release func(), err error) {
	ldb, err := t.db.readLock()
	if err != nil {
		return nil, nil, err
	}
	if snap, err = ldb.GetSnapshot(); err != nil {
		t.db.ldbMu.RUnlock()
		return nil, nil, t.db.wrapErr("scan", t, err)
	}
	return snap, func() { snap.Release(); t.db.ldbMu.RUnlock() }, nil
}

// ScanAllSeq calls fn for every sequenced record of the table, grouped by
// id (groups in no meaningful order) and ascending by seq within a group.
// It reads a snapshot: one pass over the table finds the ids (holding
// each once in memory), then each id's records are scanned in order.
func (t *Table) ScanAllSeq(fn func(id []byte, seq uint64, value []byte) error) error {
	if t.err != nil {
		return t.err
	}
	snap, release, err := t.snapshot()
	if err != nil {
		return err
	}
	defer release()
	var ids [][]byte
	seen := make(map[string]bool)
	err = t.scanReader(snap, func(key, raw []byte) error {
		if raw[0] != formatSeq {
			return nil
		}
		rec, err := t.keys.decodeSeqRecord(key, raw)
		if err != nil {
			return err
		}
		if rec.kind == kindData && !seen[string(rec.id)] {
			seen[string(rec.id)] = true
			ids = append(ids, rec.id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		err := t.walkSeq(snap, id, 0, math.MaxUint64, 0, false, func(seq uint64, value []byte) error {
			return fn(id, seq, value)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// countRecords counts the plain and the sequenced (data) records of the
// table: the records its callers wrote.
func (t *Table) countRecords() (int, error) {
	n := 0
	err := t.scanAll(func(key, raw []byte) error {
		if raw[0] == formatPlain {
			_, _, err := t.keys.decodeRecord(key, raw)
			n++
			return err
		}
		rec, err := t.keys.decodeSeqRecord(key, raw)
		if err == nil && rec.kind == kindData {
			n++
		}
		return err
	})
	return n, err
}

// recordVisitor sees one stored record: its key and its sealed value,
// whose first byte is formatPlain or formatSeq.
type recordVisitor func(key, raw []byte) error

func (t *Table) scanAll(fn recordVisitor) error {
	if t.err != nil {
		return t.err
	}
	ldb, err := t.db.readLock()
	if err != nil {
		return err
	}
	defer t.db.ldbMu.RUnlock()
	return t.scanReader(ldb, fn)
}

// scanReader calls fn for every record of the table in r, in key order.
// Every key is keyLen bytes and every value starts with a known format.
func (t *Table) scanReader(r interface {
	NewIterator(*util.Range, *opt.ReadOptions) iterator.Iterator
}, fn recordVisitor) error {
	it := r.NewIterator(util.BytesPrefix(t.keys.tag[:]), nil)
	defer it.Release()
	for it.Next() {
		key, raw := it.Key(), it.Value()
		if len(key) != keyLen {
			return fmt.Errorf("%w: key of %d bytes in table %q", ErrCorrupt, len(key), t.keys.name)
		}
		if len(raw) == 0 || raw[0] != formatPlain && raw[0] != formatSeq {
			return fmt.Errorf("%w: record in table %q has an unknown format", ErrCorrupt, t.keys.name)
		}
		if err := fn(key, raw); err != nil {
			return err
		}
	}
	return t.iterErr(it)
}

func (t *Table) iterErr(it iterator.Iterator) error {
	if err := it.Error(); err != nil {
		return t.db.wrapErr("scan", t, err)
	}
	return nil
}

// Batch collects writes to any tables of one DB and applies them
// atomically with Commit: after a crash either all or none are visible.
// With synced writes (the default) one Commit costs one fsync however
// many records it holds, so writers of many records (outbox, mailboxes)
// should group them: goleveldb manages roughly 5,000 synced single writes
// per second but about 150,000 records per second in synced batches.
// A Batch is not safe for concurrent use.
type Batch struct {
	db   *DB
	lb   leveldb.Batch
	err  error
	lazy bool
	// seqOps are the batch's PutSeq and DeleteSeq, in order: Commit
	// links and unlinks their records in their ids' skip lists.
	seqOps []seqOp
}

// Lazy marks the batch as not needing an fsync of its own. It is written
// and applied like any other; when every batch of a group commit is lazy
// the write is not synced, and it reaches the disk with the next synced
// write or when the operating system flushes. A killed process loses
// nothing (the write is in the OS's cache); a power loss or kernel crash
// can lose it, whole (batches stay atomic). For data that can be fetched
// again, never for state whose loss could reuse a key.
func (b *Batch) Lazy() { b.lazy = true }

var lazyWrite = &opt.WriteOptions{Sync: false}

// Batch returns an empty batch.
func (db *DB) Batch() *Batch { return &Batch{db: db} }

func (b *Batch) check(t *Table, id, value []byte) error {
	if b.err != nil {
		return b.err
	}
	var err error
	switch {
	case t.err != nil:
		err = t.err
	case t.db != b.db:
		err = errors.New("store: batch and table belong to different stores")
	default:
		err = checkSizes(id, value)
	}
	b.err = err
	return err
}

// Put adds a Put of value under id in t. Errors stick: Commit fails too.
func (b *Batch) Put(t *Table, id, value []byte) error {
	if err := b.check(t, id, value); err != nil {
		return err
	}
	key := t.keys.idPrefix(id)
	b.lb.Put(key, t.keys.sealRecord(key, id, value))
	return nil
}

// PutSeq adds a PutSeq of value as record seq of id in t.
func (b *Batch) PutSeq(t *Table, id []byte, seq uint64, value []byte) error {
	return b.PutSeqParts(t, id, seq, value)
}

// PutSeqParts is PutSeq of the value parts make joined: a caller whose
// value is a header and a large body it already holds passes both, and
// the store copies them once, into the sealed record.
func (b *Batch) PutSeqParts(t *Table, id []byte, seq uint64, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if err := b.check(t, id, nil); err != nil {
		return err
	}
	if n > MaxValueSize {
		b.err = fmt.Errorf("store: value of %d bytes, limit %d", n, MaxValueSize)
		return b.err
	}
	key := t.keys.dataKey(id, seq)
	b.lb.Put(key, t.keys.sealDataParts(key, id, seq, n, parts))
	b.seqOps = append(b.seqOps, newSeqOp(t.keys, id, seq, false))
	return nil
}

// ReplaceSeq adds a replacement of the value of record seq of id, which
// the caller knows to exist: committed before this batch commits. Only
// the record is written; the skip list, which a replacement does not
// change, is not read (PutSeq of an existing seq reads the record's link
// to learn that it exists, from disk once the store's node cache has
// dropped it). A replacement of a record that does not exist stores one
// that scans do not find (GetSeq does) until a repair links it: callers
// that cannot be sure use PutSeq.
func (b *Batch) ReplaceSeq(t *Table, id []byte, seq uint64, value []byte) error {
	if err := b.check(t, id, value); err != nil {
		return err
	}
	key := t.keys.dataKey(id, seq)
	b.lb.Put(key, t.keys.sealDataParts(key, id, seq, len(value), [][]byte{value}))
	return nil
}

// Delete adds a Delete of the plain record id in t.
func (b *Batch) Delete(t *Table, id []byte) error {
	if err := b.check(t, id, nil); err != nil {
		return err
	}
	b.lb.Delete(t.keys.idPrefix(id))
	return nil
}

// DeleteSeq adds a Delete of record seq of id in t.
func (b *Batch) DeleteSeq(t *Table, id []byte, seq uint64) error {
	if err := b.check(t, id, nil); err != nil {
		return err
	}
	b.lb.Delete(t.keys.dataKey(id, seq))
	b.seqOps = append(b.seqOps, newSeqOp(t.keys, id, seq, true))
	return nil
}

// Len returns the number of operations in the batch (the index records
// Commit adds for sequenced ones not counted).
func (b *Batch) Len() int { return b.lb.Len() }

// Reset empties the batch, clearing a sticky error.
func (b *Batch) Reset() {
	b.lb.Reset()
	b.seqOps = b.seqOps[:0]
	b.err = nil
}

// Commit applies the batch in one write, fsynced unless Config.NoSync.
// An empty batch commits nothing. The batch may be reused after Reset.
func (b *Batch) Commit() error {
	if b.err != nil {
		return b.err
	}
	if b.lb.Len() == 0 {
		return nil
	}
	wo := b.db.wo
	if b.lazy {
		wo = lazyWrite
	}
	if wo.Sync {
		b.db.syncedWrites.Add(1)
	}
	if b.db.needReopen.Load() {
		b.db.tryReopen()
	}
	if len(b.seqOps) > 0 {
		// The skip lists of the ids touched are read and changed under
		// their stripe locks until the write that carries the change.
		defer b.db.lockSeqs(b.seqOps)()
	}
	ldb, err := b.db.readLock()
	if err != nil {
		return err
	}
	mark, linker, err := b.addIndex(ldb)
	if err != nil {
		b.db.ldbMu.RUnlock()
		return err
	}
	records, bytes := b.lb.Len(), len(b.lb.Dump())
	err = ldb.Write(&b.lb, wo)
	b.db.ldbMu.RUnlock()
	if mark >= 0 {
		// Drop the index records again (goleveldb holds no reference to
		// the batch after Write): the batch is the caller's as it was,
		// and a failed Commit can be retried.
		if lerr := b.lb.Load(b.lb.Dump()[:mark]); lerr != nil {
			panic("store: batch truncation: " + lerr.Error())
		}
	}
	if err != nil {
		b.db.nodes.clear()
		if errors.Is(err, leveldb.ErrClosed) {
			return ErrClosed
		}
		if !lerrors.IsCorrupted(err) {
			b.db.needReopen.Store(true)
		}
		return fmt.Errorf("store: commit batch: %w", err)
	}
	if linker != nil {
		b.db.nodes.remember(linker)
	}
	b.db.records.Add(uint64(records))
	b.db.bytes.Add(uint64(bytes))
	return nil
}

// addIndex links and unlinks the batch's sequenced records in their ids'
// skip lists and appends the changed index records to the batch. It
// returns the batch's length in bytes before them (-1 when it has no
// sequenced records) and the linker, whose nodes the cache takes once the
// write succeeds.
func (b *Batch) addIndex(ldb *leveldb.DB) (mark int, l *seqLinker, err error) {
	if len(b.seqOps) == 0 {
		return -1, nil, nil
	}
	l = newSeqLinker(ldb, &b.db.nodes)
	// An append changes its link, its predecessor and the head: room
	// for those, so a large group's map does not grow step by step.
	l.nodes = make(map[nodeKey]*linkedNode, 2*len(b.seqOps)+8)
	l.order = make([]*linkedNode, 0, 2*len(b.seqOps)+8)
	for _, op := range b.seqOps {
		if err := l.apply(op); err != nil {
			if errors.Is(err, leveldb.ErrClosed) {
				return -1, nil, ErrClosed
			}
			if !errors.Is(err, ErrCorrupt) {
				err = fmt.Errorf("store: commit batch: read index of table %q: %w", op.keys.name, err)
			}
			return -1, nil, err
		}
	}
	mark = len(b.lb.Dump())
	l.writeTo(&b.lb)
	return mark, l, nil
}

// SealedSeq returns record seq of id's sequence as the files hold it
// (sealed), or ErrNotFound: for checks that a deleted record has left
// the disk after Compact.
func (t *Table) SealedSeq(id []byte, seq uint64) ([]byte, error) {
	return t.sealed(t.keys.dataKey(id, seq))
}

// Sealed is SealedSeq for a plain record.
func (t *Table) Sealed(id []byte) ([]byte, error) {
	if len(id) > MaxIDSize {
		return nil, ErrNotFound
	}
	return t.sealed(t.keys.idPrefix(id))
}

func (t *Table) sealed(key []byte) ([]byte, error) {
	if t.err != nil {
		return nil, t.err
	}
	ldb, err := t.db.readLock()
	if err != nil {
		return nil, err
	}
	defer t.db.ldbMu.RUnlock()
	raw, err := ldb.Get(key, nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, ErrNotFound
	}
	return raw, err
}
