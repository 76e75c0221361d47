package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fillStore writes n records of about size bytes each to table "t", one
// commit each, and closes the store: the records are then in the
// journal only (goleveldb flushes them to a table at the next open).
func fillStore(t *testing.T, dir string, n, size int) {
	t.Helper()
	db := mustOpen(t, dir, cfg(""))
	tb := db.Table("t")
	for i := range n {
		if err := tb.Put(fmt.Appendf(nil, "id%03d", i), []byte(strings.Repeat("v", size))); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// journalPath returns the store's one journal file.
func journalPath(t *testing.T, dir string) string {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(dir, dbDir, "*.log"))
	if err != nil || len(logs) != 1 {
		t.Fatalf("journals: %v %v", logs, err)
	}
	return logs[0]
}

func editFile(t *testing.T, path string, edit func([]byte) []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, edit(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func countRecords(t *testing.T, db *DB, table string) int {
	t.Helper()
	n := 0
	if err := db.Table(table).Scan(func(_, _ []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// A flipped bit anywhere in the journal's written records makes Open
// fail with ErrJournalDamaged naming the file, instead of goleveldb
// opening without the records it drops.
func TestJournalBitFlipRefused(t *testing.T) {
	for _, at := range []string{"first header", "first payload", "middle", "last byte"} {
		t.Run(at, func(t *testing.T) {
			dir := t.TempDir()
			fillStore(t, dir, 40, 100)
			jp := journalPath(t, dir)
			editFile(t, jp, func(b []byte) []byte {
				i := map[string]int{"first header": 2, "first payload": 10, "middle": len(b) / 2, "last byte": len(b) - 1}[at]
				b[i] ^= 0x10
				return b
			})
			_, err := Open(dir, cfg(""))
			if !errors.Is(err, ErrJournalDamaged) {
				t.Fatalf("Open of a store with a flipped journal bit: %v, want ErrJournalDamaged", err)
			}
			if !strings.Contains(err.Error(), filepath.Base(jp)) {
				t.Errorf("error %q does not name the journal", err)
			}
		})
	}
}

// A deleted journal is detected: the manifest names the journal it
// expects, and a missing one is refused rather than read as empty.
func TestJournalDeletedRefused(t *testing.T) {
	dir := t.TempDir()
	fillStore(t, dir, 10, 100)
	jp := journalPath(t, dir)
	if err := os.Remove(jp); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, cfg(""))
	if !errors.Is(err, ErrJournalDamaged) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Open without its journal: %v, want ErrJournalDamaged (missing)", err)
	}
	rep, err := Repair(dir, cfg(""), []string{"t"})
	if err != nil {
		t.Fatalf("Repair: %v", err)
	}
	if !rep.Damaged || len(rep.Journals) != 1 || !rep.Journals[0].Missing {
		t.Fatalf("report %+v, want the missing journal", rep)
	}
	db := mustOpen(t, dir, cfg(""))
	if n := countRecords(t, db, "t"); n != 0 {
		t.Errorf("%d records after repair, want 0 (they were all in the journal)", n)
	}
}

// A write cut off by a crash or a full disk is not damage: it was never
// acknowledged, and the store opens without it.
func TestJournalUnfinishedTailAccepted(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func([]byte) []byte
		want int // records readable after open
	}{
		{"cut in last record", func(b []byte) []byte { return b[:len(b)-20] }, 39},
		{"cut in last header", func(b []byte) []byte {
			return append(b, 1, 2, 3) // the start of a header
		}, 40},
		{"zero-filled tail", func(b []byte) []byte { return append(b, make([]byte, 4096)...) }, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fillStore(t, dir, 40, 100)
			editFile(t, journalPath(t, dir), tc.edit)
			db, err := Open(dir, cfg(""))
			if err != nil {
				t.Fatalf("Open after an unfinished write: %v", err)
			}
			defer db.Close()
			if n := countRecords(t, db, "t"); n != tc.want {
				t.Errorf("%d records, want %d", n, tc.want)
			}
		})
	}
}

// A large record spans journal blocks; a crash between the writes of its
// blocks leaves its first part alone at the end of the file. That is an
// unfinished write too.
func TestJournalRecordCutAtBlockAccepted(t *testing.T) {
	dir := t.TempDir()
	fillStore(t, dir, 1, 100)
	db := mustOpen(t, dir, cfg(""))
	if err := db.Table("t").Put([]byte("big"), make([]byte, 100_000)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	editFile(t, journalPath(t, dir), func(b []byte) []byte { return b[:2*journalBlockSize] })
	db, err := Open(dir, cfg(""))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	if n := countRecords(t, db, "t"); n != 1 {
		t.Errorf("%d records, want 1", n)
	}
}

// Repair makes a store with a damaged journal open again, keeps every
// record it can read, saves the damaged files aside and says what it
// dropped.
func TestRepairDamagedJournal(t *testing.T) {
	dir := t.TempDir()
	fillStore(t, dir, 400, 200) // about 100 KiB: four blocks
	jp := journalPath(t, dir)
	editFile(t, jp, func(b []byte) []byte {
		b[journalBlockSize+100] ^= 1 // in the second block
		return b
	})
	if _, err := Open(dir, cfg("")); !errors.Is(err, ErrJournalDamaged) {
		t.Fatalf("Open: %v, want ErrJournalDamaged", err)
	}
	if _, err := Repair(dir, cfg("wrong"), nil); !errors.Is(err, ErrNotProtected) {
		t.Fatalf("Repair with a passphrase the store does not have: %v", err)
	}
	rep, err := Repair(dir, cfg(""), []string{"t", "other"})
	if err != nil {
		t.Fatalf("Repair: %v", err)
	}
	if !rep.Damaged || len(rep.Journals) != 1 {
		t.Fatalf("report %+v", rep)
	}
	j := rep.Journals[0]
	if !strings.Contains(j.Damage, "checksum mismatch") || j.DroppedBytes == 0 || j.DroppedParts == 0 {
		t.Errorf("journal report %+v, want the checksum mismatch and dropped bytes", j)
	}
	kept := rep.Records["t"]
	if kept == 0 || kept >= 400 || rep.Records["other"] != 0 {
		t.Errorf("records after repair %v, want some but not all 400 in t", rep.Records)
	}
	// The schema record is one more batch in the journal.
	if j.Records != kept+1 {
		t.Errorf("journal report kept %d records, the table holds %d (+1 schema record)", j.Records, kept)
	}
	if _, err := os.Stat(filepath.Join(rep.Saved, filepath.Base(jp))); err != nil {
		t.Errorf("damaged journal not saved: %v", err)
	}
	db := mustOpen(t, dir, cfg(""))
	if n := countRecords(t, db, "t"); n != kept {
		t.Errorf("%d records after reopening, the report said %d", n, kept)
	}
	if err := db.Table("t").Put([]byte("new"), []byte("x")); err != nil {
		t.Fatal(err)
	}
}

// Repair of a healthy store changes nothing and says so.
func TestRepairHealthyStore(t *testing.T) {
	dir := t.TempDir()
	fillStore(t, dir, 10, 100)
	rep, err := Repair(dir, cfg(""), []string{"t"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Damaged || rep.Saved != "" || rep.Records["t"] != 10 {
		t.Fatalf("report %+v, want no damage and 10 records", rep)
	}
}
