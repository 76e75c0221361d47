package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/syndtr/goleveldb/leveldb/util"
)

// putLegacySeq writes a sequenced record as layout 1 did: under tag ‖
// HMAC(K_index_t, id)[:16] ‖ big-endian seq, sealed as a plain record.
func putLegacySeq(t *testing.T, tb *Table, id string, seq uint64, value string) {
	t.Helper()
	key := binary.BigEndian.AppendUint64(tb.keys.idPrefix([]byte(id)), seq)
	ldb, err := tb.db.readLock()
	if err != nil {
		t.Fatal(err)
	}
	defer tb.db.ldbMu.RUnlock()
	if err := ldb.Put(key, tb.keys.sealRecord(key, []byte(id), []byte(value)), nil); err != nil {
		t.Fatal(err)
	}
}

// legacyKeys counts the layout 1 sequenced keys of the table with tag in
// a closed store.
func legacyKeys(t *testing.T, dir string, tag [tagSize]byte) int {
	t.Helper()
	ldb := rawDB(t, dir)
	defer ldb.Close()
	it := ldb.NewIterator(util.BytesPrefix(tag[:]), nil)
	defer it.Release()
	n := 0
	for it.Next() {
		if len(it.Key()) == legacySeqKeyLen {
			n++
		}
	}
	return n
}

// A store written in layout 1 opens: each table with sequenced records is
// rewritten when first asked for, every record reads back in order, a
// schema migration can read sequenced records, and a table not asked for
// keeps its old records until it is.
func TestLayout1Rewritten(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg("pw"))
	msgs, outbox, idle := db.Table("messages"), db.Table("outbox"), db.Table("idle")
	m := model{}
	seq := uint64(0)
	for i := range 2600 { // more than two batches of the rewrite
		seq += 1 + uint64(i%3) // gaps
		id := []string{"alice", "bob", "alice", "carol", "alice"}[i%5]
		v := fmt.Sprintf("%s %d", id, seq)
		putLegacySeq(t, msgs, id, seq, v)
		m.put(id, seq, v)
	}
	for _, s := range []uint64{0, math.MaxUint64} {
		putLegacySeq(t, msgs, "alice", s, "edge")
		m.put("alice", s, "edge")
	}
	putLegacySeq(t, outbox, "device", 7, "queued")
	putLegacySeq(t, idle, "x", 1, "idle")
	msgs.Put([]byte("alice"), []byte("plain")) // plain records keep their layout
	db.Table("contacts").Put([]byte("alice"), []byte("Alice"))
	// The schema record of layout 1: version only.
	db.table(metaTable).Put(metaSchemaID, binary.BigEndian.AppendUint32(nil, 1))
	db.Close()

	c := cfg("pw")
	var sawInMigration int
	c.Migrations = []Migration{{From: 1, Run: func(db *DB, b *Batch) error {
		return db.Table("outbox").ScanSeq([]byte("device"), 0, math.MaxUint64, func(uint64, []byte) error {
			sawInMigration++
			return nil
		})
	}}}
	db = mustOpen(t, dir, c)
	if db.SchemaVersion() != 2 || sawInMigration != 1 {
		t.Fatalf("schema %d, the migration saw %d outbox records", db.SchemaVersion(), sawInMigration)
	}
	db.mu.Lock()
	legacy := len(db.legacy)
	db.mu.Unlock()
	if legacy != 2 { // messages and idle; outbox was rewritten by the migration
		t.Fatalf("%d tables left to rewrite, want 2", legacy)
	}
	msgs = db.Table("messages")
	m.verify(t, nil, msgs)
	msgsTag, idleTag := msgs.keys.tag, deriveTableKeys(db.dek, db.indexRoot, "idle").tag
	if got := mustGet(t, msgs, "alice"); got != "plain" {
		t.Fatalf("plain record %q", got)
	}
	if got := mustGet(t, db.Table("contacts"), "alice"); got != "Alice" {
		t.Fatalf("contact %q", got)
	}
	db.Close()
	if n := legacyKeys(t, dir, msgsTag); n != 0 {
		t.Fatalf("%d layout 1 keys left in messages", n)
	}
	if n := legacyKeys(t, dir, idleTag); n != 1 {
		t.Fatalf("idle has %d layout 1 keys, want its 1 until asked for", n)
	}

	db = mustOpen(t, dir, c)
	if v, err := db.Table("idle").GetSeq([]byte("x"), 1); err != nil || string(v) != "idle" {
		t.Fatalf("idle record: %q %v", v, err)
	}
	if _, err := db.table(metaTable).Get(metaLegacyID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("list of tables to rewrite still there: %v", err)
	}
	m.verify(t, nil, db.Table("messages"))
	raw, _ := db.table(metaTable).Get(metaSchemaID)
	if v, layout, err := decodeSchema(raw); v != 2 || layout != layoutCurrent || err != nil {
		t.Fatalf("schema record %x", raw)
	}
}

// A rewrite cut off by a crash, some records moved and some not, is
// finished at the next open.
func TestLayout1RewriteResumes(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg(""))
	tb := db.Table("messages")
	m := model{}
	for s := range uint64(40) {
		v := fmt.Sprint(s)
		if s%2 == 0 {
			putLegacySeq(t, tb, "alice", s, v) // not moved yet
		} else if err := tb.PutSeq([]byte("alice"), s, []byte(v)); err != nil { // moved
			t.Fatal(err)
		}
		m.put("alice", s, v)
	}
	db.table(metaTable).Put(metaLegacyID, tb.keys.tag[:])
	db.Close()

	db = mustOpen(t, dir, cfg(""))
	m.verify(t, nil, db.Table("messages"))
	db.Close()
	if n := legacyKeys(t, dir, tb.keys.tag); n != 0 {
		t.Fatalf("%d layout 1 keys left", n)
	}
}

// A store written by the layout 1 code itself (testdata/layout1, see its
// README) opens with this code and reads back every record in order.
func TestLayout1FixtureRewritten(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, filepath.Join("testdata", "layout1"), dir)
	os.Remove(filepath.Join(dir, "README.md"))
	if err := os.Chmod(filepath.Join(dir, keyFile), 0o600); err != nil {
		t.Fatal(err)
	}
	db := mustOpen(t, dir, Config{NoSync: true})
	msgs := db.Table("messages")
	m := model{}
	for seq := uint64(1); seq <= 60; seq++ {
		i := seq - 1
		id := "alice"
		switch {
		case i%10 == 3:
			id = "bob"
		case i%20 == 7:
			id = "carol"
		}
		m.put(id, seq, fmt.Sprintf("%s %d", id, seq))
	}
	m.put("alice", math.MaxUint64, "alice max")
	m.put("alice", 0, "alice 0")
	for _, s := range []uint64{2, 5, 6, 7} {
		m.del("alice", s)
	}
	m.verify(t, nil, msgs)
	got := collectSeq(t, func(fn func(uint64, []byte) error) error {
		return msgs.ScanSeqReverse([]byte("alice"), 0, math.MaxUint64, 3, fn)
	})
	if want := []seqValue{{math.MaxUint64, "alice max"}, {60, "alice 60"}, {59, "alice 59"}}; !slices.Equal(got, want) {
		t.Fatalf("last 3 of alice: %v", got)
	}
	if got := mustGet(t, msgs, "alice"); got != "plain alice" {
		t.Fatalf("plain record %q", got)
	}
	if got := mustGet(t, db.Table("contacts"), "alice"); got != "Alice A." {
		t.Fatalf("contact %q", got)
	}
	var out []seqValue
	db.Table("outbox").ScanAllSeq(func(id []byte, seq uint64, v []byte) error {
		if string(id) != "device-1" {
			t.Fatalf("outbox id %q", id)
		}
		out = append(out, seqValue{seq, string(v)})
		return nil
	})
	if len(out) != 5 || out[0] != (seqValue{100, "out 0"}) || out[4] != (seqValue{104, "out 4"}) {
		t.Fatalf("outbox %v", out)
	}
	tags := map[string][tagSize]byte{"messages": msgs.keys.tag, "outbox": db.Table("outbox").keys.tag}
	db.Close()
	for name, tag := range tags {
		if n := legacyKeys(t, dir, tag); n != 0 {
			t.Fatalf("%d layout 1 keys left in %s", n, name)
		}
	}
}

// A store whose layout is newer than this code is refused, unchanged.
func TestLayoutTooNew(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg(""))
	db.table(metaTable).Put(metaSchemaID, encodeSchema(1, layoutCurrent+1))
	db.Close()
	if _, err := Open(dir, cfg("")); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("got %v, want ErrSchemaTooNew", err)
	}
}
