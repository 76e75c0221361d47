package relay

import (
	"fmt"

	"github.com/hushnet/hush/internal/store"
)

// Tables lists the store tables a relay keeps (docs/RELAY.md "Storage").
var Tables = []string{tableMailboxes, tableDeposits, tableMessages, tableMsgIDs, tableExpiry, tablePrekeys, tableWatches, tableWakes, tableBlobs, tableBlobTokens, tableLinks, tableLinkData}

// Repair repairs the relay store in dir after store.Open refused it with
// store.ErrJournalDamaged: it keeps a copy of the damaged files, recovers
// every write that can still be read, and reports what was kept and
// dropped and the records of each table afterwards. It then counts every
// mailbox's messages again and rewrites the mailbox records that
// disagree (their counters are checkpoints, and a dropped write may have
// held a checkpoint or messages it counted). The relay must not be
// running (store.ErrLocked).
func Repair(dir string) (*store.RepairReport, error) {
	rep, err := store.Repair(dir, StoreConfig(store.Config{}), Tables)
	if err != nil {
		return rep, err
	}
	db, err := store.Open(dir, StoreConfig(store.Config{}))
	if err != nil {
		return rep, fmt.Errorf("relay: repair: recount mailboxes: %w", err)
	}
	defer db.Close()
	if _, err := recount(db); err != nil {
		return rep, fmt.Errorf("relay: repair: recount mailboxes: %w", err)
	}
	return rep, nil
}
