package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/syndtr/goleveldb/leveldb"
)

// tinyKDF keeps Argon2id cheap in tests.
var tinyKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func cfg(pass string) Config {
	c := Config{KDF: tinyKDF, NoSync: true}
	if pass != "" {
		c.Passphrase = []byte(pass)
	}
	return c
}

func mustOpen(t testing.TB, dir string, c Config) *DB {
	t.Helper()
	db, err := Open(dir, c)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustGet(t testing.TB, tb *Table, id string) string {
	t.Helper()
	v, err := tb.Get([]byte(id))
	if err != nil {
		t.Fatalf("Get(%q) in %s: %v", id, tb.Name(), err)
	}
	return string(v)
}

// rawDB opens the leveldb under a closed store directly.
func rawDB(t *testing.T, dir string) *leveldb.DB {
	t.Helper()
	ldb, err := leveldb.OpenFile(filepath.Join(dir, dbDir), nil)
	if err != nil {
		t.Fatal(err)
	}
	return ldb
}

// snapshot hashes every file under dir except goleveldb's LOCK.
func snapshot(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	m := make(map[string][32]byte)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "LOCK" {
			return err
		}
		b, err := os.ReadFile(p)
		m[p] = sha256.Sum256(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRoundTripAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg("correct horse"))
	contacts, msgs := db.Table("contacts"), db.Table("messages")
	if err := contacts.Put([]byte("alice"), []byte("Alice A.")); err != nil {
		t.Fatal(err)
	}
	contacts.Put([]byte("bob"), []byte("Bob"))
	contacts.Put([]byte("bob"), []byte("Bob B."))      // overwrite
	contacts.Put([]byte(""), []byte{})                 // empty id and value are fine
	msgs.Put([]byte("alice"), []byte("not a contact")) // same id, other table
	for i := range uint64(5) {
		if err := msgs.PutSeq([]byte("alice"), i, fmt.Appendf(nil, "msg %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = mustOpen(t, dir, cfg("correct horse"))
	contacts, msgs = db.Table("contacts"), db.Table("messages")
	if got := mustGet(t, contacts, "alice"); got != "Alice A." {
		t.Fatalf("alice = %q", got)
	}
	if got := mustGet(t, contacts, "bob"); got != "Bob B." {
		t.Fatalf("bob = %q", got)
	}
	if got := mustGet(t, contacts, ""); got != "" {
		t.Fatalf("empty id = %q", got)
	}
	if got := mustGet(t, msgs, "alice"); got != "not a contact" {
		t.Fatalf("messages/alice = %q", got)
	}
	if _, err := contacts.Get([]byte("carol")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing id: %v", err)
	}
	v, err := msgs.GetSeq([]byte("alice"), 3)
	if err != nil || string(v) != "msg 3" {
		t.Fatalf("GetSeq = %q, %v", v, err)
	}
	if ok, _ := contacts.Has([]byte("bob")); !ok {
		t.Fatal("Has(bob) = false")
	}
	if err := contacts.Delete([]byte("bob")); err != nil {
		t.Fatal(err)
	}
	if _, err := contacts.Get([]byte("bob")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted id: %v", err)
	}
	if err := msgs.DeleteSeq([]byte("alice"), 3); err != nil {
		t.Fatal(err)
	}
	if _, err := msgs.GetSeq([]byte("alice"), 3); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted seq: %v", err)
	}
	// The plain record under the same id survives sequenced deletes.
	if got := mustGet(t, msgs, "alice"); got != "not a contact" {
		t.Fatalf("messages/alice = %q", got)
	}
	if !db.Protected() {
		t.Fatal("passphrase store reports Protected() = false")
	}
	if db.SchemaVersion() != 1 {
		t.Fatalf("schema %d, want 1", db.SchemaVersion())
	}
}

func TestScanSeq(t *testing.T) {
	db := mustOpen(t, t.TempDir(), cfg(""))
	tb := db.Table("log")
	id := []byte("conv")
	seqs := []uint64{0, 1, 2, 10, 255, 256, 1 << 40, math.MaxUint64}
	// Insert out of order, plus noise under another id and a plain record.
	for _, s := range slices.Backward(seqs) {
		tb.PutSeq(id, s, fmt.Appendf(nil, "v%d", s))
		tb.PutSeq([]byte("other"), s, []byte("x"))
	}
	tb.Put(id, []byte("plain"))

	collect := func(scan func(func(uint64, []byte) error) error) []uint64 {
		t.Helper()
		var got []uint64
		err := scan(func(s uint64, v []byte) error {
			if string(v) != fmt.Sprintf("v%d", s) {
				t.Fatalf("seq %d has value %q", s, v)
			}
			got = append(got, s)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	all := collect(func(fn func(uint64, []byte) error) error { return tb.ScanSeq(id, 0, math.MaxUint64, fn) })
	if !slices.Equal(all, seqs) {
		t.Fatalf("full scan %v, want %v", all, seqs)
	}
	mid := collect(func(fn func(uint64, []byte) error) error { return tb.ScanSeq(id, 2, 256, fn) })
	if !slices.Equal(mid, []uint64{2, 10, 255, 256}) {
		t.Fatalf("range scan %v", mid)
	}
	last3 := collect(func(fn func(uint64, []byte) error) error {
		return tb.ScanSeqReverse(id, 0, math.MaxUint64, 3, fn)
	})
	if !slices.Equal(last3, []uint64{math.MaxUint64, 1 << 40, 256}) {
		t.Fatalf("last 3 %v", last3)
	}
	rev := collect(func(fn func(uint64, []byte) error) error { return tb.ScanSeqReverse(id, 1, 255, 0, fn) })
	if !slices.Equal(rev, []uint64{255, 10, 2, 1}) {
		t.Fatalf("reverse range %v", rev)
	}
	if got := collect(func(fn func(uint64, []byte) error) error { return tb.ScanSeq(id, 11, 254, fn) }); len(got) != 0 {
		t.Fatalf("empty range gave %v", got)
	}
	if got := collect(func(fn func(uint64, []byte) error) error { return tb.ScanSeq(id, 5, 4, fn) }); len(got) != 0 {
		t.Fatalf("inverted range gave %v", got)
	}
	last, ok, err := tb.LastSeq(id)
	if err != nil || !ok || last != math.MaxUint64 {
		t.Fatalf("LastSeq = %d %v %v", last, ok, err)
	}
	if _, ok, _ := tb.LastSeq([]byte("nobody")); ok {
		t.Fatal("LastSeq found records for an unknown id")
	}
	stop := errors.New("stop")
	n := 0
	err = tb.ScanSeq(id, 0, math.MaxUint64, func(uint64, []byte) error {
		n++
		return stop
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("callback error: %v after %d calls", err, n)
	}

	count := map[string]int{}
	err = tb.ScanAllSeq(func(gotID []byte, _ uint64, _ []byte) error {
		count[string(gotID)]++
		return nil
	})
	if err != nil || count["conv"] != len(seqs) || count["other"] != len(seqs) || len(count) != 2 {
		t.Fatalf("ScanAllSeq counts %v, %v", count, err)
	}
}

func TestScan(t *testing.T) {
	db := mustOpen(t, t.TempDir(), cfg(""))
	a, b := db.Table("a"), db.Table("b")
	want := map[string]string{}
	for i := range 50 {
		id, v := fmt.Sprintf("id-%d", i), fmt.Sprintf("value-%d", i)
		want[id] = v
		a.Put([]byte(id), []byte(v))
		b.Put([]byte(id), []byte("other table"))
	}
	a.PutSeq([]byte("id-1"), 7, []byte("sequenced"))
	got := map[string]string{}
	if err := a.Scan(func(id, v []byte) error {
		got[string(id)] = string(v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Scan saw %d records, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("Scan %s = %q, want %q", k, got[k], v)
		}
	}
}

func TestWrongPassphrase(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg("right"))
	db.Table("t").Put([]byte("k"), []byte("v"))
	db.Close()
	before := snapshot(t, dir)

	_, err := Open(dir, cfg("wrong"))
	if !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("unclear error %q", err)
	}
	if after := snapshot(t, dir); !maps(before, after) {
		t.Fatal("a failed open changed files on disk")
	}
	db = mustOpen(t, dir, cfg("right"))
	if got := mustGet(t, db.Table("t"), "k"); got != "v" {
		t.Fatalf("data after wrong attempt: %q", got)
	}
}

func maps(a, b map[string][32]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestPassphraseModeMismatch(t *testing.T) {
	protected, plain := t.TempDir(), t.TempDir()
	mustOpen(t, protected, cfg("pw")).Close()
	mustOpen(t, plain, cfg("")).Close()
	if _, err := Open(protected, cfg("")); !errors.Is(err, ErrPassphraseRequired) {
		t.Fatalf("protected store without passphrase: %v", err)
	}
	if _, err := Open(plain, cfg("pw")); !errors.Is(err, ErrNotProtected) {
		t.Fatalf("plain store with passphrase: %v", err)
	}
}

func TestKeyFileMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	db := mustOpen(t, dir, cfg(""))
	if db.Protected() {
		t.Fatal("no-passphrase store reports Protected() = true")
	}
	db.Table("t").Put([]byte("k"), []byte("v"))
	db.Close()
	for name, want := range map[string]fs.FileMode{keyFile: 0o600, keyringFile: 0o600, "": fs.ModeDir | 0o700} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Fatalf("%q has mode %v, want %v", name, fi.Mode(), want)
		}
	}
	key, _ := os.ReadFile(filepath.Join(dir, keyFile))
	if len(key) != 32 {
		t.Fatalf("store.key is %d bytes", len(key))
	}
	db = mustOpen(t, dir, cfg(""))
	if got := mustGet(t, db.Table("t"), "k"); got != "v" {
		t.Fatalf("got %q", got)
	}
	db.Close()

	// Without the key file the store cannot open, and says why.
	os.Rename(filepath.Join(dir, keyFile), filepath.Join(dir, "moved"))
	if _, err := Open(dir, cfg("")); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), keyFile) {
		t.Fatalf("missing key file: %v", err)
	}
	// Another key file does not open it either.
	os.WriteFile(filepath.Join(dir, keyFile), make([]byte, 32), 0o600)
	if _, err := Open(dir, cfg("")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("wrong key file: %v", err)
	}

	// A passphrase store has no key file.
	pdir := t.TempDir()
	mustOpen(t, pdir, cfg("pw")).Close()
	if _, err := os.Stat(filepath.Join(pdir, keyFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("passphrase store has a key file: %v", err)
	}
}

func TestChangePassphrase(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg(""))
	db.Table("t").Put([]byte("k"), []byte("v"))
	if err := db.ChangePassphrase([]byte("x"), []byte("one")); !errors.Is(err, ErrNotProtected) {
		t.Fatalf("wrong old (none expected): %v", err)
	}
	if err := db.ChangePassphrase(nil, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if !db.Protected() {
		t.Fatal("Protected() false after setting a passphrase")
	}
	if _, err := os.Stat(filepath.Join(dir, keyFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("store.key kept after setting a passphrase")
	}
	if err := db.ChangePassphrase([]byte("nope"), []byte("two")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong old passphrase: %v", err)
	}
	if err := db.ChangePassphrase([]byte("one"), []byte("two")); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(dir, cfg("one")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("old passphrase still opens: %v", err)
	}
	db = mustOpen(t, dir, cfg("two"))
	if got := mustGet(t, db.Table("t"), "k"); got != "v" {
		t.Fatalf("got %q", got)
	}
	if err := db.ChangePassphrase([]byte("two"), nil); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, dir, cfg(""))
	if db.Protected() || mustGet(t, db.Table("t"), "k") != "v" {
		t.Fatal("back to no passphrase failed")
	}
}

func TestTamperedRecordDetected(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg(""))
	contacts, other := db.Table("contacts"), db.Table("other")
	contacts.Put([]byte("alice"), []byte("secret-a"))
	contacts.Put([]byte("bob"), []byte("secret-b"))
	contacts.PutSeq([]byte("alice"), 1, []byte("seq-1"))
	contacts.PutSeq([]byte("alice"), 2, []byte("seq-2"))
	other.Put([]byte("carol"), []byte("secret-c"))
	keyOf := func(tb *Table, id string) []byte { return tb.keys.idPrefix([]byte(id)) }
	kAlice, kBob, kCarol := keyOf(contacts, "alice"), keyOf(contacts, "bob"), keyOf(other, "carol")
	kSeq1, kSeq2 := contacts.keys.dataKey([]byte("alice"), 1), contacts.keys.dataKey([]byte("alice"), 2)
	db.Close()

	type edit func(ldb *leveldb.DB)
	get := func(ldb *leveldb.DB, k []byte) []byte {
		v, err := ldb.Get(k, nil)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		name  string
		edit  edit
		check func(db *DB) error
	}{
		{"flip a value byte", func(ldb *leveldb.DB) {
			v := get(ldb, kAlice)
			v[len(v)/2] ^= 0x01
			ldb.Put(kAlice, v, nil)
		}, func(db *DB) error { _, err := db.Table("contacts").Get([]byte("alice")); return err }},
		{"move within table", func(ldb *leveldb.DB) {
			ldb.Put(kBob, get(ldb, kAlice), nil)
		}, func(db *DB) error { _, err := db.Table("contacts").Get([]byte("bob")); return err }},
		{"move across tables", func(ldb *leveldb.DB) {
			ldb.Put(kCarol, get(ldb, kAlice), nil)
		}, func(db *DB) error { _, err := db.Table("other").Get([]byte("carol")); return err }},
		{"swap sequence numbers", func(ldb *leveldb.DB) {
			ldb.Put(kSeq1, get(ldb, kSeq2), nil)
		}, func(db *DB) error {
			return db.Table("contacts").ScanSeq([]byte("alice"), 0, 10, func(uint64, []byte) error { return nil })
		}},
		{"truncate", func(ldb *leveldb.DB) {
			ldb.Put(kAlice, get(ldb, kAlice)[:20], nil)
		}, func(db *DB) error {
			return db.Table("contacts").Scan(func(_, _ []byte) error { return nil })
		}},
		{"format byte", func(ldb *leveldb.DB) {
			v := get(ldb, kAlice)
			v[0] = 0x7F
			ldb.Put(kAlice, v, nil)
		}, func(db *DB) error { _, err := db.Table("contacts").Get([]byte("alice")); return err }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Work on a copy so the cases do not interfere.
			cdir := t.TempDir()
			copyDir(t, dir, cdir)
			ldb := rawDB(t, cdir)
			c.edit(ldb)
			ldb.Close()
			db := mustOpen(t, cdir, cfg(""))
			err := c.check(db)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, `"contacts"`) && !strings.Contains(msg, `"other"`) {
				t.Fatalf("error %q does not name the table", msg)
			}
			for _, secret := range []string{"alice", "bob", "carol", "secret"} {
				if strings.Contains(msg, secret) {
					t.Fatalf("error %q reveals %q", msg, secret)
				}
			}
		})
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		return os.WriteFile(target, b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNoPlaintextOnDisk(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg("pw"))
	markers := []string{"MARKERIDALPHA", "MARKERVALUEBRAVO", "MARKERIDCHARLIE", "MARKERVALUEDELTA", "markertable"}
	for i, table := range []string{"contacts", "messages", markers[4]} {
		tb := db.Table(table)
		if err := tb.Put([]byte(markers[0]), []byte(markers[1])); err != nil {
			t.Fatal(err)
		}
		tb.PutSeq([]byte(markers[2]), uint64(i), []byte(markers[3]))
		// Enough data to force memtable flushes into .ldb files.
		for j := range 300 {
			tb.Put(fmt.Appendf(nil, "%s-%d", markers[0], j), bytes.Repeat([]byte(markers[1]), 100))
		}
	}
	b := db.Batch()
	b.Put(db.Table("contacts"), []byte(markers[2]), []byte(markers[3]))
	b.Commit()
	db.Compact(db.Table("contacts"))
	db.Close()

	var needles [][]byte
	for _, m := range markers {
		needles = append(needles, []byte(m), []byte(hex.EncodeToString([]byte(m))), []byte(strings.ToUpper(hex.EncodeToString([]byte(m)))))
	}
	files := 0
	exts := map[string]bool{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		exts[filepath.Ext(p)] = true
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range needles {
			if bytes.Contains(data, n) {
				t.Errorf("%s contains %q", p, n)
			}
		}
		return nil
	})
	if !exts[".ldb"] || !exts[".log"] {
		t.Fatalf("test did not reach both .ldb and .log files: %v", exts)
	}
}

func TestAtomicBatch(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg(""))
	a, b := db.Table("a"), db.Table("b")
	batch := db.Batch()
	batch.Put(a, []byte("x"), []byte("1"))
	batch.PutSeq(b, []byte("y"), 9, []byte("2"))
	if batch.Len() != 2 {
		t.Fatalf("Len = %d", batch.Len())
	}
	if _, err := a.Get([]byte("x")); !errors.Is(err, ErrNotFound) {
		t.Fatal("batch visible before Commit")
	}
	if err := batch.Commit(); err != nil {
		t.Fatal(err)
	}
	if mustGet(t, a, "x") != "1" {
		t.Fatal("first write missing")
	}
	if v, err := b.GetSeq([]byte("y"), 9); err != nil || string(v) != "2" {
		t.Fatalf("second write: %q %v", v, err)
	}

	// A bad operation poisons the whole batch: nothing is written.
	batch = db.Batch()
	batch.Delete(a, []byte("x"))
	batch.Put(b, []byte("z"), []byte("3"))
	if err := batch.Put(a, make([]byte, MaxIDSize+1), nil); err == nil {
		t.Fatal("oversized id accepted")
	}
	batch.Put(b, []byte("w"), []byte("4"))
	if err := batch.Commit(); err == nil {
		t.Fatal("Commit of a poisoned batch succeeded")
	}
	if mustGet(t, a, "x") != "1" {
		t.Fatal("part of a failed batch was applied")
	}
	if _, err := b.Get([]byte("z")); !errors.Is(err, ErrNotFound) {
		t.Fatal("part of a failed batch was applied")
	}
	batch.Reset()
	if err := batch.Delete(a, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := batch.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get([]byte("x")); !errors.Is(err, ErrNotFound) {
		t.Fatal("delete in batch not applied")
	}
	other := mustOpen(t, t.TempDir(), cfg(""))
	if err := other.Batch().Put(a, []byte("x"), nil); err == nil {
		t.Fatal("batch accepted a table of another store")
	}
}

func TestSecondOpenLocked(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg(""))
	_, err := Open(dir, cfg(""))
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("unclear error %q", err)
	}
	db.Close()
	mustOpen(t, dir, cfg("")).Close()
}

func TestMigrations(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg(""))
	db.Table("t").Put([]byte("k"), []byte("v1"))
	db.Close()

	var ran []uint32
	step := func(from uint32) Migration {
		return Migration{From: from, Run: func(db *DB, b *Batch) error {
			ran = append(ran, from)
			tb := db.Table("t")
			v, err := tb.Get([]byte("k"))
			if err != nil {
				return err
			}
			return b.Put(tb, []byte("k"), fmt.Appendf(v, "+%d", from))
		}}
	}
	c := cfg("")
	c.Migrations = []Migration{step(3), step(1), step(2)} // any order
	db = mustOpen(t, dir, c)
	if !slices.Equal(ran, []uint32{1, 2, 3}) {
		t.Fatalf("ran %v, want [1 2 3]", ran)
	}
	if db.SchemaVersion() != 4 {
		t.Fatalf("schema %d, want 4", db.SchemaVersion())
	}
	if got := mustGet(t, db.Table("t"), "k"); got != "v1+1+2+3" {
		t.Fatalf("value %q", got)
	}
	db.Close()
	ran = nil
	db = mustOpen(t, dir, c)
	db.Close()
	if len(ran) != 0 {
		t.Fatalf("migrations re-ran: %v", ran)
	}

	// A failing migration leaves the store at the last good version.
	c.Migrations = append(c.Migrations, Migration{From: 4, Run: func(db *DB, b *Batch) error {
		b.Put(db.Table("t"), []byte("k"), []byte("half-done"))
		return errors.New("disk on fire")
	}}, step(5))
	if _, err := Open(dir, c); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("failing migration: %v", err)
	}
	c.Migrations = c.Migrations[:3]
	db = mustOpen(t, dir, c)
	if db.SchemaVersion() != 4 || mustGet(t, db.Table("t"), "k") != "v1+1+2+3" {
		t.Fatal("failed migration left partial state")
	}
	db.Close()

	// A gap is refused.
	c.SchemaVersion = 6
	if _, err := Open(dir, c); err == nil || !strings.Contains(err.Error(), "no migration from schema version 4") {
		t.Fatalf("gap: %v", err)
	}
	c.Migrations = []Migration{step(1), step(1)}
	c.SchemaVersion = 0
	if _, err := Open(dir, c); err == nil {
		t.Fatal("duplicate migrations accepted")
	}
}

func TestNewStoreSkipsMigrations(t *testing.T) {
	c := cfg("")
	c.Migrations = []Migration{{From: 1, Run: func(*DB, *Batch) error {
		t.Fatal("migration ran on a new store")
		return nil
	}}}
	db := mustOpen(t, t.TempDir(), c)
	if db.SchemaVersion() != 2 {
		t.Fatalf("new store at schema %d, want 2", db.SchemaVersion())
	}
}

func TestSchemaTooNew(t *testing.T) {
	dir := t.TempDir()
	c := cfg("")
	c.SchemaVersion = 5
	mustOpen(t, dir, c).Close()
	c.SchemaVersion = 4
	if _, err := Open(dir, c); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("got %v, want ErrSchemaTooNew", err)
	}
	if _, err := Open(dir, cfg("")); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("default config: %v", err)
	}
}

func TestKDFDowngradeRejected(t *testing.T) {
	dir := t.TempDir()
	c := cfg("pw")
	c.KDF = KDFParams{Time: 2, MemoryKiB: 128, Threads: 1}
	mustOpen(t, dir, c).Close()
	path := filepath.Join(dir, keyringFile)
	orig, _ := os.ReadFile(path)
	k, err := decodeKeyring(orig)
	if err != nil {
		t.Fatal(err)
	}
	if k.params != c.KDF {
		t.Fatalf("keyring params %+v, want %+v", k.params, c.KDF)
	}
	for _, p := range []KDFParams{{1, 128, 1}, {2, 64, 1}, {1, 64, 1}} {
		k2 := *k
		k2.params = p
		os.WriteFile(path, k2.encode(), 0o600)
		if _, err := Open(dir, c); !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("params %+v: %v, want ErrWrongPassphrase", p, err)
		}
	}
	os.WriteFile(path, orig, 0o600)
	mustOpen(t, dir, c).Close()

	// The parameters are bound as associated data: even with the right
	// KEK, a keyring whose parameters were edited does not open.
	dek := make([]byte, 32)
	kek := make([]byte, 32)
	kr := newKeyring(nil, kek, dek, KDFParams{})
	kr.kdf = kdfArgon2id
	kr.params = tinyKDF
	kr.wrap(kek, dek)
	if _, err := kr.unwrap(kek); err != nil {
		t.Fatal(err)
	}
	kr.params.Time++
	if _, err := kr.unwrap(kek); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatal("edited parameters unwrapped with the right KEK")
	}
}

func TestKeyringDecodeRejects(t *testing.T) {
	dir := t.TempDir()
	mustOpen(t, dir, cfg("pw")).Close()
	good, _ := os.ReadFile(filepath.Join(dir, keyringFile))
	if len(good) != keyringSize {
		t.Fatalf("keyring is %d bytes, want %d", len(good), keyringSize)
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(slices.Clone(good)) }
	bad := map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-1],
		"trailing":  append(slices.Clone(good), 0),
		"version":   mutate(func(b []byte) []byte { b[0] = 2; return b }),
		"kdf":       mutate(func(b []byte) []byte { b[1] = 9; return b }),
		"time 0":    mutate(func(b []byte) []byte { copy(b[18:22], []byte{0, 0, 0, 0}); return b }),
		"huge mem":  mutate(func(b []byte) []byte { copy(b[22:26], []byte{0xFF, 0xFF, 0xFF, 0xFF}); return b }),
		"threads 0": mutate(func(b []byte) []byte { b[26] = 0; return b }),
		"keyfile with params": mutate(func(b []byte) []byte {
			b[1] = kdfKeyFile
			return b
		}),
	}
	for name, b := range bad {
		if _, err := decodeKeyring(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	if _, err := decodeKeyring(good); err != nil {
		t.Fatal(err)
	}
}

func TestCloseIdempotentAndClosedErrors(t *testing.T) {
	db := mustOpen(t, t.TempDir(), cfg(""))
	tb := db.Table("t")
	tb.Put([]byte("k"), []byte("v"))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := tb.Get([]byte("k")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := tb.Put([]byte("k"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if err := db.Table("u").Put([]byte("k"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("new table after Close: %v", err)
	}
	if err := db.ChangePassphrase(nil, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("ChangePassphrase after Close: %v", err)
	}
}

func TestInvalidTableName(t *testing.T) {
	db := mustOpen(t, t.TempDir(), cfg(""))
	for _, name := range []string{"", "_meta", "Upper", "a/b", "with space", strings.Repeat("a", 65), "-x"} {
		tb := db.Table(name)
		if err := tb.Put([]byte("k"), nil); !errors.Is(err, ErrInvalidTable) {
			t.Errorf("%q: Put %v", name, err)
		}
		if _, err := tb.Get([]byte("k")); !errors.Is(err, ErrInvalidTable) {
			t.Errorf("%q: Get %v", name, err)
		}
	}
	for _, name := range []string{"a", "outbox", "ratchet.v2", "x_y-z", strings.Repeat("a", 64)} {
		if err := db.Table(name).Put([]byte("k"), nil); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
}

func TestLimits(t *testing.T) {
	db := mustOpen(t, t.TempDir(), cfg(""))
	tb := db.Table("t")
	if err := tb.Put(make([]byte, MaxIDSize), make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := tb.Put(make([]byte, MaxIDSize+1), nil); err == nil {
		t.Fatal("oversized id accepted")
	}
	if err := tb.Put([]byte("k"), make([]byte, MaxValueSize+1)); err == nil {
		t.Fatal("oversized value accepted")
	}
	if _, err := tb.Get(make([]byte, MaxIDSize+1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("oversized Get: %v", err)
	}
}

// After Delete and Compact, the old sealed value is gone from every file.
func TestCompactDropsDeletedValues(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg(""))
	tb := db.Table("ratchet")
	tb.Put([]byte("session"), bytes.Repeat([]byte{0x42}, 256))
	key := tb.keys.idPrefix([]byte("session"))
	viaTable, err := tb.Sealed([]byte("session"))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	ldb := rawDB(t, dir)
	sealed, err := ldb.Get(key, nil)
	ldb.Close()
	if err != nil || !bytes.Equal(sealed, viaTable) {
		t.Fatal(err, "or Sealed is not what the files hold")
	}
	onDisk := func() bool {
		found := false
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, _ := os.ReadFile(p)
				found = found || bytes.Contains(b, sealed[1:40])
			}
			return nil
		})
		return found
	}
	if !onDisk() {
		t.Fatal("sealed value not found on disk before deletion (test broken)")
	}
	db = mustOpen(t, dir, cfg(""))
	tb = db.Table("ratchet")
	tb.Delete([]byte("session"))
	if err := db.Compact(tb); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if onDisk() {
		t.Fatal("deleted value still on disk after Compact")
	}
}

func TestConfigValidation(t *testing.T) {
	c := cfg("pw")
	c.KDF = KDFParams{Time: 1, MemoryKiB: 4, Threads: 1}
	if _, err := Open(t.TempDir(), c); err == nil {
		t.Fatal("memory below 8*threads accepted")
	}
	c = cfg("")
	c.Migrations = []Migration{{From: 1}}
	if _, err := Open(t.TempDir(), c); err == nil {
		t.Fatal("migration without Run accepted")
	}
}

func TestMissingKeyringRefused(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg(""))
	db.Table("t").Put([]byte("k"), []byte("v"))
	db.Close()
	os.Remove(filepath.Join(dir, keyringFile))
	if _, err := Open(dir, cfg("")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("store without keyring: %v", err)
	}
}

func TestConcurrentUseAndClose(t *testing.T) {
	db := mustOpen(t, t.TempDir(), cfg(""))
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			tb := db.Table(fmt.Sprintf("t%d", g%2))
			for i := range 200 {
				id := fmt.Appendf(nil, "%d-%d", g, i)
				if err := tb.Put(id, id); err != nil {
					if errors.Is(err, ErrClosed) {
						return
					}
					t.Error(err)
					return
				}
				if v, err := tb.Get(id); err != nil && !errors.Is(err, ErrClosed) || err == nil && !bytes.Equal(v, id) {
					t.Errorf("Get: %q %v", v, err)
					return
				}
			}
		}()
	}
	<-done
	db.Close()
	for range 3 {
		<-done
	}
}

// A key file other users may read or write is refused, with the command
// that fixes it; after chmod 600 the store opens.
func TestKeyFileExposedRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	db := mustOpen(t, dir, cfg(""))
	db.Table("t").Put([]byte("k"), []byte("v"))
	db.Close()
	path := filepath.Join(dir, keyFile)
	for _, mode := range []fs.FileMode{0o777, 0o644, 0o640, 0o602} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Open(dir, cfg(""))
		if !errors.Is(err, ErrKeyFileExposed) || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Fatalf("key file mode %04o: %v", mode, err)
		}
	}
	os.Chmod(path, 0o600)
	db = mustOpen(t, dir, cfg(""))
	defer db.Close()
	if got := mustGet(t, db.Table("t"), "k"); got != "v" {
		t.Fatalf("got %q", got)
	}
}

// Written counts the records and batch bytes of committed batches: the
// puts, the deletes and the skip-list records a sequenced put adds; an
// empty batch and a failed commit count nothing.
func TestWrittenCounts(t *testing.T) {
	db := mustOpen(t, t.TempDir(), cfg(""))
	tb := db.Table("t")
	r0, b0 := db.Written() // what Open wrote (the schema record)
	b := db.Batch()
	b.Put(tb, []byte("a"), []byte("one"))
	b.Delete(tb, []byte("b"))
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	records, bytes := db.Written()
	if records, bytes = records-r0, bytes-b0; records != 2 || bytes < 2*keyLen+3 {
		t.Fatalf("written %d records, %d bytes", records, bytes)
	}
	if err := db.Batch().Commit(); err != nil {
		t.Fatal(err)
	}
	b = db.Batch()
	b.PutSeq(tb, []byte("c"), 1, []byte("x"))
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	r2, _ := db.Written()
	if r2-records-r0 < 2 { // the record and at least its skip-list head
		t.Fatalf("a sequenced put wrote %d records", r2-records-r0)
	}
	db.Close()
	b = db.Batch()
	b.Put(tb, []byte("d"), []byte("x"))
	if err := b.Commit(); err == nil {
		t.Fatal("commit on a closed store succeeded")
	}
	if r3, _ := db.Written(); r3 != r2 {
		t.Fatalf("a failed commit counted %d records", r3-r2)
	}
}
