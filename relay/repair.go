package relay

import "github.com/hushnet/hush/internal/store"

// Tables lists the store tables a relay keeps (docs/RELAY.md "Storage").
var Tables = []string{tableMailboxes, tableDeposits, tableMessages, tableMsgIDs, tableExpiry, tablePrekeys, tableWatches, tableWakes}

// Repair repairs the relay store in dir after store.Open refused it with
// store.ErrJournalDamaged: it keeps a copy of the damaged files, recovers
// every write that can still be read, and reports what was kept and
// dropped and the records of each table afterwards. The relay must not be
// running (store.ErrLocked).
func Repair(dir string) (*store.RepairReport, error) {
	return store.Repair(dir, store.Config{}, Tables)
}
