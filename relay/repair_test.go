package relay

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/hushnet/hush/internal/store"
)

// Repair counts the records of every table the relay opens.
func TestRepairTablesAreTheRelaysTables(t *testing.T) {
	db, err := store.Open(t.TempDir(), StoreConfig(store.Config{NoSync: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tb := openTables(db)
	all := []*store.Table{tb.mailboxes, tb.deposits, tb.messages, tb.msgids, tb.expiry, tb.prekeys, tb.watches, tb.wakes, tb.blobs, tb.blobTokens, tb.links, tb.linkData}
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

// A relay store opened by this relay refuses a relay of schema 1 (built
// before deposits in batches), which would misread its messages; a store
// of schema 1 opens here as it is.
func TestStoreSchemaRefusesOlderRelay(t *testing.T) {
	dir := t.TempDir()
	old, err := store.Open(dir, store.Config{NoSync: true}) // what a schema 1 relay makes
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	db, err := store.Open(dir, StoreConfig(store.Config{NoSync: true}))
	if err != nil {
		t.Fatalf("a schema 1 store: %v", err)
	}
	if got := db.SchemaVersion(); got != StoreSchema {
		t.Fatalf("schema %d after open, want %d", got, StoreSchema)
	}
	db.Close()
	if _, err := store.Open(dir, store.Config{NoSync: true}); !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("a schema 1 relay opened it: %v", err)
	}
}
