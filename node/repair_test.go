package node

import (
	"reflect"
	"slices"
	"testing"

	"github.com/hushnet/hush/internal/store"
)

// Repair counts the records of every table the node uses.
func TestRepairTablesAreTheNodesTables(t *testing.T) {
	db, err := store.Open(t.TempDir(), store.Config{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tb := openTables(db)
	all := []*store.Table{tb.identity, tb.contacts, tb.sessions, tb.messages, tb.msgIndex, tb.outbox, tb.txns, tb.mailboxes, tb.groups, tb.groupWire, tb.peers, tb.counters,
		tb.devices, tb.syncHeld, tb.linkTickets, tb.syncState, tb.files, tb.convPrefs, tb.links, tb.blocks, tb.localGone, tb.timers, tb.groupReads, tb.groupOps}
	if n := reflect.TypeOf(tb).NumField(); n != len(all) {
		t.Fatalf("tables has %d fields; this test lists %d", n, len(all))
	}
	var names []string
	for _, x := range all {
		names = append(names, x.Name())
	}
	slices.Sort(names)
	want := slices.Sorted(slices.Values(repairTables))
	if !slices.Equal(names, want) {
		t.Fatalf("openTables opens %v, repairTables lists %v", names, want)
	}
}
