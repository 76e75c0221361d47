package store

import (
	"encoding/binary"
	"fmt"

	"github.com/syndtr/goleveldb/leveldb/util"
)

// Store layouts: how records are keyed on disk, a property of this
// package independent of the program's schema version
// (docs/protocol/store.md §11.5).
const (
	// layoutLegacy keyed a sequenced record by its id's hash and its
	// clear sequence number.
	layoutLegacy uint32 = 1
	// layoutCurrent keys it by a keyed hash of id and seq and keeps the
	// order in sealed skip-list records.
	layoutCurrent uint32 = 2
)

// metaLegacyID is the _meta record listing the tags of tables still in
// layout 1: concatenated 8-byte tags.
var metaLegacyID = []byte("layout-pending")

// Limits of one batch of a table's rewrite.
const (
	migrateBatchRecords = 1024
	migrateBatchBytes   = 4 << 20
)

// upgradeLayout brings a layout 1 store to layout 2 without knowing its
// table names: it lists the tags of the tables holding layout 1
// sequenced keys (the only records whose layout changed) and records the
// list together with the new layout. Each listed table is rewritten when
// it is first asked for (migrateTable).
func (db *DB) upgradeLayout(version uint32) error {
	ldb, err := db.readLock()
	if err != nil {
		return err
	}
	var tags [][tagSize]byte
	it := ldb.NewIterator(nil, nil)
	for it.Next() {
		key := it.Key()
		if len(key) != legacySeqKeyLen {
			continue
		}
		tag := [tagSize]byte(key[:tagSize])
		if len(tags) == 0 || tags[len(tags)-1] != tag {
			tags = append(tags, tag)
		}
		// Skip the rest of this table.
		if next := util.BytesPrefix(tag[:]).Limit; next == nil || !it.Seek(next) {
			break
		}
		it.Prev()
	}
	err = it.Error()
	it.Release()
	db.ldbMu.RUnlock()
	if err != nil {
		return fmt.Errorf("store: upgrade layout: %w", err)
	}
	meta := db.table(metaTable)
	b := db.Batch()
	if len(tags) > 0 {
		b.Put(meta, metaLegacyID, encodeTags(tags))
	}
	b.Put(meta, metaSchemaID, encodeSchema(version, layoutCurrent))
	if err := b.Commit(); err != nil {
		return fmt.Errorf("store: upgrade layout: %w", err)
	}
	db.log.Info("store layout upgraded", "layout", layoutCurrent, "tables_to_rewrite", len(tags))
	return nil
}

func encodeTags(tags [][tagSize]byte) []byte {
	out := make([]byte, 0, len(tags)*tagSize)
	for _, tag := range tags {
		out = append(out, tag[:]...)
	}
	return out
}

// migrateTable rewrites t's layout 1 sequenced records in layout 2: each
// is read in key order (by id, ascending seq), put again with PutSeq and
// its old key deleted, in batches of bounded size, so a crash in between
// leaves old records the next call moves. The tag then leaves the list.
func (db *DB) migrateTable(t *Table) error {
	db.layoutMu.Lock()
	defer db.layoutMu.Unlock()
	db.mu.Lock()
	legacy := db.legacy[t.keys.tag]
	db.mu.Unlock()
	if !legacy {
		return nil // another caller got here first
	}
	n, err := db.rewriteLegacy(t)
	if err != nil {
		return fmt.Errorf("store: rewrite table %q in layout %d: %w", t.keys.name, layoutCurrent, err)
	}

	if err := db.finishPending(metaLegacyID, db.legacy, t.keys.tag); err != nil {
		return fmt.Errorf("store: rewrite table %q in layout %d: %w", t.keys.name, layoutCurrent, err)
	}
	db.log.Info("store table rewritten", "layout", layoutCurrent, "records", n)
	return nil
}

// rewriteLegacy moves t's layout 1 sequenced records and returns how
// many it moved.
func (db *DB) rewriteLegacy(t *Table) (int, error) {
	ldb, err := db.readLock()
	if err != nil {
		return 0, err
	}
	defer db.ldbMu.RUnlock()
	// The iterator reads a snapshot: the records written meanwhile are
	// not seen again.
	it := ldb.NewIterator(util.BytesPrefix(t.keys.tag[:]), nil)
	defer it.Release()
	b, size, moved := db.Batch(), 0, 0
	for it.Next() {
		key := it.Key()
		if len(key) != legacySeqKeyLen {
			continue
		}
		id, value, err := t.keys.decodeRecord(key, it.Value())
		if err != nil {
			return moved, err
		}
		if err := b.PutSeq(t, id, binary.BigEndian.Uint64(key[keyLen:]), value); err != nil {
			return moved, err
		}
		b.lb.Delete(key)
		size += len(value)
		moved++
		if len(b.seqOps) >= migrateBatchRecords || size >= migrateBatchBytes {
			if err := b.Commit(); err != nil {
				return moved, err
			}
			b.Reset()
			size = 0
		}
	}
	if err := it.Error(); err != nil {
		return moved, db.wrapErr("rewrite", t, err)
	}
	return moved, b.Commit()
}
