package store

import (
	"errors"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/syndtr/goleveldb/leveldb/storage"
)

// fullDisk wraps a store's storage: while full is set, every write to a
// file writes half its bytes and fails with ENOSPC, and every sync fails,
// as on a disk that has run out of space.
type fullDisk struct {
	storage.Storage
	full *atomic.Bool
}

func (d fullDisk) Create(fd storage.FileDesc) (storage.Writer, error) {
	w, err := d.Storage.Create(fd)
	if err != nil {
		return nil, err
	}
	return fullWriter{w, d.full}, nil
}

type fullWriter struct {
	storage.Writer
	full *atomic.Bool
}

func (w fullWriter) Write(p []byte) (int, error) {
	if w.full.Load() {
		n, _ := w.Writer.Write(p[:len(p)/2])
		return n, syscall.ENOSPC
	}
	return w.Writer.Write(p)
}

func (w fullWriter) Sync() error {
	if w.full.Load() {
		return syscall.ENOSPC
	}
	return w.Writer.Sync()
}

// withFullDisk makes the stores the test opens write through a fullDisk
// controlled by the returned flag.
func withFullDisk(t *testing.T) *atomic.Bool {
	full := new(atomic.Bool)
	testWrapStorage = func(s storage.Storage) storage.Storage { return fullDisk{s, full} }
	t.Cleanup(func() { testWrapStorage = nil })
	return full
}

// After commits fail on a full disk, commits succeed again once there is
// space, without a restart, and nothing acknowledged is lost. goleveldb
// keeps its journal writer's first error and fails every later write; the
// store reopens the database at the next commit.
func TestCommitsRecoverAfterDiskFull(t *testing.T) {
	full := withFullDisk(t)
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg(""))
	tb := db.Table("t")
	if err := tb.Put([]byte("before"), []byte("1")); err != nil {
		t.Fatal(err)
	}

	full.Store(true)
	for _, id := range []string{"full1", "full2", "full3"} {
		if err := tb.Put([]byte(id), []byte("x")); err == nil {
			t.Fatalf("Put(%s) on a full disk succeeded", id)
		}
	}
	// The reopens tried by the later commits failed too (recovery writes
	// a table): until one succeeds, reads report the failure.
	if _, err := tb.Get([]byte("before")); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Get while the store cannot reopen: %v, want the ENOSPC", err)
	}
	full.Store(false)

	if err := tb.Put([]byte("after"), []byte("2")); err != nil {
		t.Fatalf("Put once space is free again: %v", err)
	}
	if got := mustGet(t, tb, "before"); got != "1" {
		t.Errorf("before = %q", got)
	}
	if got := mustGet(t, tb, "after"); got != "2" {
		t.Errorf("after = %q", got)
	}
	for _, id := range []string{"full1", "full2", "full3"} {
		if _, err := tb.Get([]byte(id)); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%s), a failed write: %v, want ErrNotFound", id, err)
		}
	}

	// The journal the failure cut short opens cleanly.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, dir, cfg(""))
	if got := mustGet(t, db.Table("t"), "after"); got != "2" {
		t.Errorf("after reopening: %q", got)
	}
}

// Grouped commits, the node's path, recover the same way.
func TestGroupedCommitsRecoverAfterDiskFull(t *testing.T) {
	full := withFullDisk(t)
	db := mustOpen(t, t.TempDir(), cfg(""))
	tb := db.Table("t")
	put := func(id string) error {
		b := db.Batch()
		if err := b.Put(tb, []byte(id), []byte("v")); err != nil {
			t.Fatal(err)
		}
		return db.CommitGrouped(b)
	}
	full.Store(true)
	if err := put("a"); err == nil {
		t.Fatal("grouped commit on a full disk succeeded")
	}
	full.Store(false)
	if err := put("b"); err != nil {
		t.Fatalf("grouped commit once space is free: %v", err)
	}
}

// A store that reads inside a scan while a commit recovers does not
// deadlock: the reopen waits for no one and is retried by a later commit.
func TestReopenWaitsForReaders(t *testing.T) {
	full := withFullDisk(t)
	db := mustOpen(t, t.TempDir(), cfg(""))
	tb := db.Table("t")
	for _, id := range []string{"a", "b"} {
		if err := tb.Put([]byte(id), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	full.Store(true)
	if err := tb.Put([]byte("c"), []byte("v")); err == nil {
		t.Fatal("Put on a full disk succeeded")
	}
	full.Store(false)
	var inScan error
	err := tb.Scan(func(id, _ []byte) error {
		// A reader holds the database: this commit cannot reopen it, and
		// fails, but neither it nor the nested read blocks.
		if inScan == nil {
			inScan = tb.Put([]byte("d"), []byte("v"))
			mustGet(t, tb, "a")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if inScan == nil {
		t.Fatal("commit during a scan reopened the database under its reader")
	}
	if err := tb.Put([]byte("d"), []byte("v")); err != nil {
		t.Fatalf("Put after the scan: %v", err)
	}
}

// syncFaults wraps a store's storage: while failing is set, a journal's
// sync fails with EIO; it counts the syncs of table files.
type syncFaults struct {
	storage.Storage
	failing    *atomic.Bool
	tableSyncs *atomic.Int32
}

func (d syncFaults) Create(fd storage.FileDesc) (storage.Writer, error) {
	w, err := d.Storage.Create(fd)
	if err != nil {
		return nil, err
	}
	return syncFaultWriter{w, fd.Type, d}, nil
}

type syncFaultWriter struct {
	storage.Writer
	typ storage.FileType
	d   syncFaults
}

func (w syncFaultWriter) Sync() error {
	switch {
	case w.typ == storage.TypeJournal && w.d.failing.Load():
		return syscall.EIO
	case w.typ == storage.TypeTable:
		w.d.tableSyncs.Add(1)
	}
	return w.Writer.Sync()
}

// After a Sync fails, the next one does not rest on a later fsync of the
// same journal (the kernel may have dropped the pages it could not
// write and still report the next fsync as a success): it reopens the
// store, which writes what the journal holds into a table and syncs it,
// and only then reports success. The record written before reads back.
func TestSyncAfterFailedSyncReopens(t *testing.T) {
	failing := new(atomic.Bool)
	tableSyncs := new(atomic.Int32)
	testWrapStorage = func(s storage.Storage) storage.Storage { return syncFaults{s, failing, tableSyncs} }
	t.Cleanup(func() { testWrapStorage = nil })
	c := cfg("")
	c.NoSync = false
	db := mustOpen(t, t.TempDir(), c)
	tab := db.Table("t")
	b := db.Batch()
	b.Put(tab, []byte("lazy"), []byte("v"))
	b.Lazy()
	if err := db.CommitGrouped(b); err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	if err := db.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync on a failing disk: %v, want EIO", err)
	}
	failing.Store(false)
	before := tableSyncs.Load()
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	if tableSyncs.Load() == before {
		t.Fatal("the Sync after a failed one rested on the journal's fsync: no table was written and synced")
	}
	if v := mustGet(t, tab, "lazy"); v != "v" {
		t.Fatalf("read back %q", v)
	}
	if err := db.Sync(); err != nil { // and Sync is an fsync again
		t.Fatal(err)
	}
}
