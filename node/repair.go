package node

import (
	"errors"
	"os"

	"github.com/hushnet/hush/internal/store"
)

// ErrStoreDamaged: the store's journal of recent writes is damaged or
// missing, and opening it would lose writes silently. New refuses with
// this error, which names the file and the damage; Repair (`hush repair`)
// keeps what can be read and reports what was lost.
var ErrStoreDamaged = store.ErrJournalDamaged

// RepairReport says what Repair found, kept and lost; see
// store.RepairReport. Records is keyed by table name.
type RepairReport = store.RepairReport

// repairTables are the tables whose records Repair counts: every table
// openTables opens (a test keeps the two lists equal).
var repairTables = []string{"identity", "contacts", "sessions", "messages", "msgindex", "outbox", "txns", "mailboxes", "groups", "groupwire", "peers", "counters",
	"devices", "syncheld", "linktickets", "syncstate", "files", "convprefs", "links", "blocks", "localgone", "timers", "groupreads", "groupops"}

// Repair repairs the store in home after New refused it with
// ErrStoreDamaged: it keeps a copy of the damaged files, recovers every
// write that can still be read and reports, per journal, what was kept
// and dropped, and the records of each table afterwards. The daemon must
// not be running (ErrStoreInUse); the passphrase is the store's.
func Repair(home string, passphrase []byte) (*RepairReport, error) {
	if _, err := os.Stat(storeDir(home)); errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoIdentity
	}
	return store.Repair(storeDir(home), store.Config{Passphrase: passphrase}, repairTables)
}
