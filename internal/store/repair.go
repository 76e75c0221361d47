package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/journal"
	"github.com/syndtr/goleveldb/leveldb/storage"
)

// RepairReport says what Repair found, kept and lost.
type RepairReport struct {
	// Journals describes every journal file found, and a missing one
	// the manifest named.
	Journals []JournalReport
	// Damaged reports whether any journal was damaged or missing.
	Damaged bool
	// Saved is the directory holding copies of the journals and manifest
	// as they were before the repair; empty when nothing was damaged.
	Saved string
	// Records counts the records (plain and sequenced, not the index
	// records of sequenced ones) of each table named in Repair's tables
	// argument after the repair.
	Records map[string]int
	// Index describes, for each table named in Repair's tables argument,
	// the rebuild of its sequence index from the records present.
	Index map[string]IndexReport
}

// JournalReport is one journal file's part of a repair.
type JournalReport struct {
	File    string // e.g. 000003.log
	Missing bool   // the manifest named it but it was not there
	Damage  string // the first damage and where, "" when intact
	// Batches and Records count the write batches, and the records
	// (writes and deletions) in them, that could be read and were kept.
	Batches, Records int
	// DroppedBytes is how much of the file could not be read and was
	// dropped, in DroppedParts places. A cut-off unfinished write at the
	// end counts here too (it was never acknowledged).
	DroppedBytes int64
	DroppedParts int
}

// Lines says what the report holds, one line per entry, for a person:
// each journal (missing, damaged with what was kept and dropped, or
// intact), whether anything was lost and where the old files are, the
// sequence indexes rebuilt and the damaged records dropped (when there
// were any), and the records of each table now.
func (r *RepairReport) Lines() []string {
	var out []string
	for _, j := range r.Journals {
		switch {
		case j.Missing:
			out = append(out, fmt.Sprintf("journal %s: MISSING: the writes it held since the last flush to a table are lost; how many cannot be known", j.File))
		case j.Damage != "":
			out = append(out, fmt.Sprintf("journal %s: DAMAGED (%s): kept %d writes (%d records), dropped %d bytes in %d place(s)",
				j.File, j.Damage, j.Batches, j.Records, j.DroppedBytes, j.DroppedParts))
		case j.DroppedBytes > 0:
			out = append(out, fmt.Sprintf("journal %s: intact; kept %d writes (%d records), dropped an unfinished last write of %d bytes (never acknowledged)",
				j.File, j.Batches, j.Records, j.DroppedBytes))
		default:
			out = append(out, fmt.Sprintf("journal %s: intact; kept %d writes (%d records)", j.File, j.Batches, j.Records))
		}
	}
	if !r.Damaged {
		out = append(out, "No damage found; nothing was lost.")
	} else {
		out = append(out, fmt.Sprintf("The files as they were are kept in %s.", r.Saved),
			"The dropped writes cannot be brought back; the records below are what the store holds now.")
	}
	out = append(out, r.indexLines()...)
	names := sortedNames(r.Records)
	line := "Records now:"
	for _, name := range names {
		line += fmt.Sprintf(" %s %d", name, r.Records[name])
	}
	return append(out, line)
}

// indexLines says which sequence indexes were rebuilt and how many
// damaged records were dropped; nothing when there were none.
func (r *RepairReport) indexLines() []string {
	var rebuilt, dropped []string
	var stale, wrong int
	for _, name := range sortedNames(r.Index) {
		ix := r.Index[name]
		if ix.Records > 0 || ix.Stale > 0 {
			rebuilt = append(rebuilt, fmt.Sprintf("%s %d records of %d ids", name, ix.Records, ix.IDs))
		}
		if ix.Unreadable > 0 {
			dropped = append(dropped, fmt.Sprintf("%s %d", name, ix.Unreadable))
		}
		stale += ix.Stale
		wrong += ix.Wrong
	}
	var out []string
	if len(rebuilt) > 0 {
		line := "Sequence index rebuilt from the records present: " + strings.Join(rebuilt, ", ") + "; "
		if stale == 0 && wrong == 0 {
			line += "the old index agreed with them."
		} else {
			line += fmt.Sprintf("the old one had %d entries for records not there and %d missing or wrong.", stale, wrong)
		}
		out = append(out, line)
	}
	if len(dropped) > 0 {
		out = append(out, "Dropped damaged sequenced records that did not open: "+strings.Join(dropped, ", ")+".")
	}
	return out
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Repair makes a store that Open refuses with ErrJournalDamaged (or
// ErrCorrupt for a damaged manifest) usable again: it copies the journals
// and manifest aside (into dir/damaged-<time>), replays what can be read
// of every journal, rebuilds the manifest from the table files, rebuilds
// the sequence index of each table named in tables from the records
// present, and reports what was kept and dropped. It needs the store's
// passphrase (cfg.Passphrase), from which it derives the named tables'
// keys, and the store must not be open elsewhere (ErrLocked).
//
// A dropped write batch can leave an id's index pointing to records it
// never wrote, or missing records later batches wrote; so every link and
// head record of a named table is replaced by ones built from its data
// records (docs/protocol/store.md §11.9), and sequenced records that do
// not open are deleted and counted. A table not named cannot be rebuilt
// (its keys derive from its name): callers name every table they use.
// The rebuild runs on a healthy store too, and is marked in the store
// before it starts: if it is stopped half-way, running Repair again, or
// the table's first use after an Open, finishes it.
//
// Writes lost with a damaged or missing journal cannot be brought back;
// the report says how much of each journal was dropped.
func Repair(dir string, cfg Config, tables []string) (*RepairReport, error) {
	dbPath := filepath.Join(dir, dbDir)
	if _, err := os.Stat(dbPath); err != nil {
		return nil, fmt.Errorf("store: repair: %w", err)
	}
	stor, err := storage.OpenFile(dbPath, false)
	if err != nil {
		if isLockHeld(err) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("store: repair: %w", err)
	}
	defer stor.Close()
	kr, err := readKeyring(dir)
	if err != nil {
		return nil, err
	}
	if kr == nil {
		return nil, fmt.Errorf("%w: keyring missing", ErrCorrupt)
	}
	dek, err := loadDEK(dir, kr, cfg.Passphrase)
	if err != nil {
		return nil, err
	}
	clear(dek)

	rep := &RepairReport{}
	fds, err := stor.List(storage.TypeJournal)
	if err != nil {
		return nil, fmt.Errorf("store: repair: %w", err)
	}
	for _, fd := range fds {
		data, err := readStorageFile(stor, fd)
		if err != nil {
			return nil, fmt.Errorf("store: repair: %w", err)
		}
		jr := replayJournal(data)
		jr.File = journalName(fd.Num)
		if reason, off := checkJournal(data); reason != "" {
			jr.Damage = fmt.Sprintf("%s at byte %d of %d", reason, off, len(data))
			rep.Damaged = true
		}
		rep.Journals = append(rep.Journals, jr)
	}
	if num, ok := manifestJournal(stor); ok && num != 0 && !hasJournal(fds, num) {
		rep.Journals = append(rep.Journals, JournalReport{File: journalName(num), Missing: true})
		rep.Damaged = true
	}
	if _, err := stor.GetMeta(); err != nil {
		rep.Damaged = true // no readable CURRENT: the manifest is rebuilt
	}
	if rep.Damaged {
		if rep.Saved, err = saveDamaged(dir, dbPath); err != nil {
			return nil, err
		}
	}

	ldb, err := leveldb.Recover(stor, ldbOptions())
	if err != nil {
		return nil, fmt.Errorf("store: repair: %w", err)
	}
	if err := ldb.Close(); err != nil {
		return nil, fmt.Errorf("store: repair: %w", err)
	}
	if err := stor.Close(); err != nil {
		return nil, fmt.Errorf("store: repair: %w", err)
	}

	db, err := Open(dir, cfg)
	if err != nil {
		return rep, fmt.Errorf("store: open after repair: %w", err)
	}
	defer db.Close()
	// The handles first: a layout 1 table is rewritten, and a rebuild an
	// earlier Repair left unfinished is finished, before this one starts.
	var ts []*Table
	for _, name := range tables {
		t := db.Table(name)
		if t.err != nil {
			return rep, fmt.Errorf("store: repair: %w", t.err)
		}
		if !slices.ContainsFunc(ts, func(u *Table) bool { return u.keys == t.keys }) {
			ts = append(ts, t)
		}
	}
	if err := db.markReindex(ts); err != nil {
		return rep, err
	}
	rep.Index = make(map[string]IndexReport, len(ts))
	rep.Records = make(map[string]int, len(ts))
	for _, t := range ts {
		ix, err := db.reindexTable(t)
		if err != nil {
			return rep, err
		}
		rep.Index[t.Name()] = ix
		n, err := t.countRecords()
		if err != nil {
			return rep, fmt.Errorf("store: count after repair: %w", err)
		}
		rep.Records[t.Name()] = n
	}
	db.log.Info("store repaired", "damaged", rep.Damaged)
	return rep, nil
}

func hasJournal(fds []storage.FileDesc, num int64) bool {
	for _, fd := range fds {
		if fd.Num == num {
			return true
		}
	}
	return false
}

// replayJournal reads a journal the way goleveldb's recovery does (damaged
// chunks dropped, the reader resuming at the next block) and counts what
// it keeps and drops.
func replayJournal(data []byte) JournalReport {
	var rep JournalReport
	d := &dropCounter{rep: &rep}
	jr := journal.NewReader(bytes.NewReader(data), d, false, true)
	for {
		r, err := jr.Next()
		if err != nil {
			if err != io.EOF {
				rep.DroppedParts++
			}
			break
		}
		b, err := io.ReadAll(r)
		if err != nil || len(b) < 12 {
			continue // dropped; the dropper counted it
		}
		rep.Batches++
		rep.Records += int(binary.LittleEndian.Uint32(b[8:12]))
	}
	return rep
}

type dropCounter struct{ rep *JournalReport }

func (d *dropCounter) Drop(err error) {
	d.rep.DroppedParts++
	var c *journal.ErrCorrupted
	if errors.As(err, &c) {
		d.rep.DroppedBytes += int64(c.Size)
	}
}

// saveDamaged copies the journals, manifests and CURRENT of the database
// into a new directory beside it, so the repair destroys nothing: the
// values in them stay sealed under the store's keys.
func saveDamaged(dir, dbPath string) (string, error) {
	saved := filepath.Join(dir, "damaged-"+time.Now().UTC().Format("20060102T150405Z"))
	if err := os.Mkdir(saved, 0o700); err != nil {
		return "", fmt.Errorf("store: repair: keep damaged files: %w", err)
	}
	entries, err := os.ReadDir(dbPath)
	if err != nil {
		return "", fmt.Errorf("store: repair: keep damaged files: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if filepath.Ext(name) != ".log" && name != "CURRENT" && !bytes.HasPrefix([]byte(name), []byte("MANIFEST-")) {
			continue
		}
		if err := copyFile(filepath.Join(dbPath, name), filepath.Join(saved, name)); err != nil {
			return "", fmt.Errorf("store: repair: keep damaged files: %w", err)
		}
	}
	return saved, nil
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o600)
}
