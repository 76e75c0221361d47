package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

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
	return t.get(t.keys.seqKey(id, seq), id, "get")
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
// returned.
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
	var last uint64
	found := false
	err := t.scanSeq(id, 0, math.MaxUint64, 1, true, func(seq uint64, _ []byte) error {
		last, found = seq, true
		return nil
	})
	return last, found, err
}

func (t *Table) scanSeq(id []byte, from, to uint64, limit int, reverse bool, fn func(uint64, []byte) error) error {
	if t.err != nil {
		return t.err
	}
	if len(id) > MaxIDSize || from > to {
		return nil
	}
	prefix := t.keys.idPrefix(id)
	rng := util.Range{Start: binary.BigEndian.AppendUint64(slices.Clip(prefix), from)}
	if to == math.MaxUint64 {
		rng.Limit = util.BytesPrefix(prefix).Limit
	} else {
		rng.Limit = binary.BigEndian.AppendUint64(slices.Clip(prefix), to+1)
	}
	ldb, err := t.db.readLock()
	if err != nil {
		return err
	}
	defer t.db.ldbMu.RUnlock()
	it := ldb.NewIterator(&rng, nil)
	defer it.Release()
	n := 0
	step := it.Next
	if reverse {
		if !it.Last() {
			return t.iterErr(it)
		}
		step = it.Prev
		if err := t.visitSeq(it, id, fn); err != nil {
			return err
		}
		n++
	}
	for (limit <= 0 || n < limit) && step() {
		if err := t.visitSeq(it, id, fn); err != nil {
			return err
		}
		n++
	}
	return t.iterErr(it)
}

func (t *Table) visitSeq(it iterator.Iterator, id []byte, fn func(uint64, []byte) error) error {
	key := it.Key()
	if len(key) != seqKeyLen {
		return fmt.Errorf("%w: key of %d bytes in table %q", ErrCorrupt, len(key), t.keys.name)
	}
	gotID, value, err := t.keys.decodeRecord(key, it.Value())
	if err != nil {
		return err
	}
	if string(gotID) != string(id) {
		return fmt.Errorf("%w: record in table %q holds another id", ErrCorrupt, t.keys.name)
	}
	return fn(binary.BigEndian.Uint64(key[plainKeyLen:]), value)
}

func (t *Table) iterErr(it iterator.Iterator) error {
	if err := it.Error(); err != nil {
		return t.db.wrapErr("scan", t, err)
	}
	return nil
}

// Scan calls fn for every plain record of the table with its clear id, in
// no meaningful order (ids are stored as keyed hashes). An error from fn
// stops the scan and is returned.
func (t *Table) Scan(fn func(id, value []byte) error) error {
	return t.scanAll(func(key, id, value []byte) error {
		if len(key) != plainKeyLen {
			return nil
		}
		return fn(id, value)
	})
}

// ScanAllSeq calls fn for every sequenced record of the table, grouped by
// id (groups in no meaningful order) and ascending by seq within a group.
func (t *Table) ScanAllSeq(fn func(id []byte, seq uint64, value []byte) error) error {
	return t.scanAll(func(key, id, value []byte) error {
		if len(key) != seqKeyLen {
			return nil
		}
		return fn(id, binary.BigEndian.Uint64(key[plainKeyLen:]), value)
	})
}

func (t *Table) scanAll(fn func(key, id, value []byte) error) error {
	if t.err != nil {
		return t.err
	}
	ldb, err := t.db.readLock()
	if err != nil {
		return err
	}
	defer t.db.ldbMu.RUnlock()
	it := ldb.NewIterator(util.BytesPrefix(t.keys.tag[:]), nil)
	defer it.Release()
	for it.Next() {
		key := it.Key()
		if len(key) != plainKeyLen && len(key) != seqKeyLen {
			return fmt.Errorf("%w: key of %d bytes in table %q", ErrCorrupt, len(key), t.keys.name)
		}
		id, value, err := t.keys.decodeRecord(key, it.Value())
		if err != nil {
			return err
		}
		if err := fn(key, id, value); err != nil {
			return err
		}
	}
	return t.iterErr(it)
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
	if err := b.check(t, id, value); err != nil {
		return err
	}
	key := t.keys.seqKey(id, seq)
	b.lb.Put(key, t.keys.sealRecord(key, id, value))
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
	b.lb.Delete(t.keys.seqKey(id, seq))
	return nil
}

// Len returns the number of operations in the batch.
func (b *Batch) Len() int { return b.lb.Len() }

// Reset empties the batch, clearing a sticky error.
func (b *Batch) Reset() {
	b.lb.Reset()
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
	ldb, err := b.db.readLock()
	if err != nil {
		return err
	}
	err = ldb.Write(&b.lb, wo)
	b.db.ldbMu.RUnlock()
	if err != nil {
		if errors.Is(err, leveldb.ErrClosed) {
			return ErrClosed
		}
		if !lerrors.IsCorrupted(err) {
			b.db.needReopen.Store(true)
		}
		return fmt.Errorf("store: commit batch: %w", err)
	}
	return nil
}
