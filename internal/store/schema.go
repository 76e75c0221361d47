package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// planSchema validates cfg's migrations and returns the target version
// and the migrations sorted by From.
func planSchema(cfg Config) (uint32, []Migration, error) {
	ms := slices.Clone(cfg.Migrations)
	slices.SortFunc(ms, func(a, b Migration) int {
		switch {
		case a.From < b.From:
			return -1
		case a.From > b.From:
			return 1
		}
		return 0
	})
	for i, m := range ms {
		if m.Run == nil {
			return 0, nil, fmt.Errorf("store: config: migration from %d has no Run", m.From)
		}
		if m.From == 0 {
			return 0, nil, errors.New("store: config: schema versions start at 1")
		}
		if i > 0 && ms[i-1].From == m.From {
			return 0, nil, fmt.Errorf("store: config: two migrations from version %d", m.From)
		}
	}
	target := cfg.SchemaVersion
	if target == 0 {
		target = 1
		if len(ms) > 0 {
			target = ms[len(ms)-1].From + 1
		}
	}
	if len(ms) > 0 && ms[len(ms)-1].From >= target {
		return 0, nil, fmt.Errorf("store: config: migration from %d beyond schema version %d", ms[len(ms)-1].From, target)
	}
	return target, ms, nil
}

// upgrade reads the schema record, creating it for a new store, brings
// an older layout to the current one and applies migrations one version
// per batch.
func (db *DB) upgrade(target uint32, ms []Migration) error {
	meta := db.table(metaTable)
	raw, err := meta.Get(metaSchemaID)
	if errors.Is(err, ErrNotFound) {
		// A new store (or one created before its first record): it is
		// born at the current version and layout.
		if err := meta.Put(metaSchemaID, encodeSchema(target, layoutCurrent)); err != nil {
			return err
		}
		db.schema = target
		return nil
	}
	if err != nil {
		return err
	}
	v, layout, err := decodeSchema(raw)
	if err != nil {
		return err
	}
	if v > target {
		return fmt.Errorf("%w: store is at version %d, this program knows %d", ErrSchemaTooNew, v, target)
	}
	if layout > layoutCurrent {
		return fmt.Errorf("%w: store layout %d, this program knows %d", ErrSchemaTooNew, layout, layoutCurrent)
	}
	if layout < layoutCurrent {
		if err := db.upgradeLayout(v); err != nil {
			return err
		}
	}
	if err := db.loadPending(metaLegacyID, db.legacy); err != nil {
		return err
	}
	if err := db.loadPending(metaReindexID, db.reindex); err != nil {
		return err
	}
	for v < target {
		i := slices.IndexFunc(ms, func(m Migration) bool { return m.From == v })
		if i < 0 {
			return fmt.Errorf("store: no migration from schema version %d to %d", v, v+1)
		}
		b := db.Batch()
		if err := ms[i].Run(db, b); err != nil {
			return fmt.Errorf("store: migration from schema version %d: %w", v, err)
		}
		if err := b.Put(meta, metaSchemaID, encodeSchema(v+1, layoutCurrent)); err != nil {
			return err
		}
		if err := b.Commit(); err != nil {
			return fmt.Errorf("store: migration from schema version %d: %w", v, err)
		}
		v++
		db.log.Info("store migrated", "schema", v)
	}
	db.schema = v
	return nil
}

// encodeSchema returns the schema record: u32 version ‖ u32 layout.
func encodeSchema(version, layout uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, version), layout)
}

// decodeSchema parses a schema record; a 4-byte one, written before
// layouts were recorded, is layout 1.
func decodeSchema(raw []byte) (version, layout uint32, err error) {
	switch len(raw) {
	case 4:
		return binary.BigEndian.Uint32(raw), layoutLegacy, nil
	case 8:
		if layout = binary.BigEndian.Uint32(raw[4:]); layout >= layoutCurrent {
			return binary.BigEndian.Uint32(raw), layout, nil
		}
	}
	return 0, 0, fmt.Errorf("%w: schema record of %d bytes", ErrCorrupt, len(raw))
}
