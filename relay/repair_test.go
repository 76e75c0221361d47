package relay

import (
	"reflect"
	"slices"
	"testing"

	"github.com/hushnet/hush/internal/store"
)

// Repair counts the records of every table the relay opens.
func TestRepairTablesAreTheRelaysTables(t *testing.T) {
	db, err := store.Open(t.TempDir(), store.Config{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tb := openTables(db)
	all := []*store.Table{tb.mailboxes, tb.deposits, tb.messages, tb.msgids, tb.expiry, tb.prekeys, tb.watches, tb.wakes}
	if n := reflect.TypeOf(tb).NumField(); n != len(all) {
		t.Fatalf("tables has %d fields; this test lists %d", n, len(all))
	}
	var names []string
	for _, x := range all {
		names = append(names, x.Name())
	}
	slices.Sort(names)
	if want := slices.Sorted(slices.Values(Tables)); !slices.Equal(names, want) {
		t.Fatalf("openTables opens %v, Tables lists %v", names, want)
	}
}
