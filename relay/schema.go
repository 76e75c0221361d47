package relay

import "github.com/hushnet/hush/internal/store"

// StoreSchema is the relay store's schema version. Version 2: a deposit
// writes one record and mailbox counters are checkpoints (docs/RELAY.md
// "Deposits in batches"). A relay built before reads version 1 only, so
// it refuses a store this one has opened (store.ErrSchemaTooNew) instead
// of ignoring acks of its messages, never expiring them and trusting its
// counters.
const StoreSchema = 2

// storeMigrations bring older stores to StoreSchema. Version 1 records
// need no rewrite: their message-ID and expiry records are still read,
// and deleted as their messages go, and counters are recounted at start.
var storeMigrations = []store.Migration{{From: 1, Run: func(*store.DB, *store.Batch) error { return nil }}}

// StoreConfig returns cfg with the relay store's schema version and
// migrations: every open of a relay store goes through it.
func StoreConfig(cfg store.Config) store.Config {
	cfg.SchemaVersion, cfg.Migrations = StoreSchema, storeMigrations
	return cfg
}
