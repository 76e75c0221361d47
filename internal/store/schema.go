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

// upgrade reads the schema version, creating it for a new store, and
// applies migrations one version per batch.
func (db *DB) upgrade(target uint32, ms []Migration) error {
	meta := db.table(metaTable)
	raw, err := meta.Get(metaSchemaID)
	if errors.Is(err, ErrNotFound) {
		// A new store (or one created before its first record): it is
		// born at the current version.
		if err := meta.Put(metaSchemaID, binary.BigEndian.AppendUint32(nil, target)); err != nil {
			return err
		}
		db.schema = target
		return nil
	}
	if err != nil {
		return err
	}
	if len(raw) != 4 {
		return fmt.Errorf("%w: schema record of %d bytes", ErrCorrupt, len(raw))
	}
	v := binary.BigEndian.Uint32(raw)
	if v > target {
		return fmt.Errorf("%w: store is at version %d, this program knows %d", ErrSchemaTooNew, v, target)
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
		if err := b.Put(meta, metaSchemaID, binary.BigEndian.AppendUint32(nil, v+1)); err != nil {
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
