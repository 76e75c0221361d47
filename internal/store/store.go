// Package store is hush's encrypted, persistent key-value store and the
// only package that imports goleveldb.
//
// A store is a directory holding a goleveldb database (db/), a small
// keyring file and, when the user chose no passphrase, a 0600 key file.
// A random 32-byte data key (DEK) is wrapped in the keyring by a key
// derived from the passphrase with Argon2id, or by the key file. Every
// record is sealed with XChaCha20-Poly1305 under a per-table key and bound
// to its physical leveldb key; identifiers are replaced on disk by keyed
// hashes, so neither names, message IDs nor values appear in clear. A
// sequenced record's key is a keyed hash of its id and sequence number,
// and the order of an id's records is kept in sealed index records, so
// a copy of the store shows neither how many records an id holds nor
// their sequence numbers.
//
// Data lives in named tables (DB.Table). A record is either plain (one
// value per id) or sequenced (many values per id, ordered by a uint64
// sequence number: message logs, mailboxes). Writes are fsynced unless
// Config.NoSync is set; a synced write costs a disk flush, so callers that
// write many records (the outbox, relay mailboxes) should group them in a
// Batch, which commits atomically with one flush.
//
// The format is specified in docs/protocol/store.md.
package store

import (
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/syndtr/goleveldb/leveldb"
	lerrors "github.com/syndtr/goleveldb/leveldb/errors"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/storage"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/hushnet/hush/crypto/suite"
)

// Sentinel errors; callers branch on them with errors.Is.
var (
	ErrNotFound           = errors.New("store: not found")
	ErrWrongPassphrase    = errors.New("store: wrong passphrase")
	ErrPassphraseRequired = errors.New("store: store is protected by a passphrase; none given")
	ErrNotProtected       = errors.New("store: store has no passphrase; one was given")
	ErrCorrupt            = errors.New("store: corrupt store")
	ErrKeyFileExposed     = errors.New("store: key file readable by others")
	ErrLocked             = errors.New("store: store is in use by another process")
	ErrClosed             = errors.New("store: store is closed")
	ErrSchemaTooNew       = errors.New("store: store schema is newer than this program")
	ErrInvalidTable       = errors.New("store: invalid table name")
)

// Config configures Open. The zero value opens (or creates) a store with
// no passphrase, default Argon2id parameters for later passphrase changes,
// synced writes, schema version 1 and no logging.
type Config struct {
	// Passphrase unlocks the store. Empty (the default) means no
	// passphrase: the wrapping key is a random 32-byte file store.key
	// (mode 0600) next to the database, and DB.Protected reports false.
	Passphrase []byte

	// KDF holds the Argon2id parameters used when a passphrase keyring is
	// created or re-wrapped (at creation and by ChangePassphrase). Opening
	// an existing store uses the parameters recorded in its keyring. Zero
	// fields take DefaultKDF's values: t=3, m=64 MiB, p=4.
	KDF KDFParams

	// NoSync skips the fsync after each write or batch commit. Default
	// false: a write is durable when it returns.
	NoSync bool

	// SchemaVersion is the schema version this program reads and writes.
	// Default: one more than the highest Migration.From, or 1 with no
	// migrations. A new store starts at this version; an older one is
	// migrated; a newer one fails with ErrSchemaTooNew.
	SchemaVersion uint32

	// Migrations upgrade the schema one version at a time, in order of
	// From, at Open. Default none.
	Migrations []Migration

	// Logger receives open, migration and compaction events; never
	// identifiers, values or keys. Default: discarded.
	Logger *slog.Logger
}

// Migration upgrades a store from schema version From to From+1. Run
// reads through db and writes through b; b is committed together with the
// new schema version, so a migration is applied exactly once or not at
// all.
type Migration struct {
	From uint32
	Run  func(db *DB, b *Batch) error
}

// DB is an open store. It is safe for concurrent use.
type DB struct {
	dir  string
	stor storage.Storage
	wo   *opt.WriteOptions
	// journals are goleveldb's open journal files (DB.Sync).
	journals *journals
	// syncedWrites counts writes made with fsync (tests read it).
	syncedWrites atomic.Uint64
	// records and bytes count what committed batches wrote (Written).
	records, bytes atomic.Uint64
	log            *slog.Logger
	kdf            KDFParams
	schema         uint32

	group groupCommitter // CommitGrouped

	// ldbMu guards ldb, which a reopen after a failed write replaces.
	// Every use of ldb holds a read lock (an iteration for its whole
	// length); the reopen takes the write lock only with TryLock, so a
	// nested read lock (a Get inside a Scan callback) can never deadlock.
	ldbMu     sync.RWMutex
	ldb       *leveldb.DB // nil after a reopen that failed
	reopenErr error       // why the last reopen failed, while ldb is nil
	// needReopen is set when a write fails: goleveldb's journal writer
	// keeps its first write error and fails every later write, even once
	// the cause (a full disk) is gone. The next commit reopens first.
	needReopen atomic.Bool

	// seqLocks serialise, per id (striped by its head key), the commits
	// that change the id's skip list: from reading the list to the write
	// that carries the change (lockSeqs).
	seqLocks [seqStripes]sync.Mutex

	// nodes caches the skip-list nodes commits read and wrote last
	// (nodeCache).
	nodes nodeCache

	// layoutMu serialises the rewriting of layout 1 tables (migrateTable)
	// and the rebuilding of sequence indexes (reindexTable).
	layoutMu sync.Mutex

	// mu guards the fields below.
	mu        sync.Mutex
	closed    bool
	protected bool
	dek       []byte
	indexRoot []byte
	tables    map[string]*tableKeys
	// legacy holds the tags of tables still in layout 1, rewritten when
	// first asked for (docs/protocol/store.md §11.5).
	legacy map[[tagSize]byte]bool
	// reindex holds the tags of tables whose sequence index Repair
	// started to rebuild and has not finished, rebuilt when first asked
	// for (docs/protocol/store.md §11.9).
	reindex map[[tagSize]byte]bool
}

// metaTable holds the store's own records, such as the schema version.
const metaTable = "_meta"

var metaSchemaID = []byte("schema")

// Open opens the store in dir, creating it (and dir, mode 0700) if it does
// not exist. A store in use by another process gives ErrLocked; a wrong
// passphrase gives ErrWrongPassphrase and changes nothing on disk.
func Open(dir string, cfg Config) (*DB, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	kdf := cfg.KDF.withDefaults()
	if len(cfg.Passphrase) != 0 {
		if err := kdf.validate(); err != nil {
			return nil, fmt.Errorf("store: config: %v", err)
		}
	}
	target, migrations, err := planSchema(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create directory: %w", err)
	}
	dbPath := filepath.Join(dir, dbDir)
	if err := os.MkdirAll(dbPath, 0o700); err != nil {
		return nil, fmt.Errorf("store: create directory: %w", err)
	}

	// Take goleveldb's LOCK before touching the keyring, so two processes
	// never race on creating it.
	stor, err := storage.OpenFile(dbPath, false)
	if err != nil {
		if isLockHeld(err) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("store: open: %w", err)
	}
	if testWrapStorage != nil {
		stor = testWrapStorage(stor)
	}
	js := &journals{}
	stor = bufferedTables{stor, js} // tablewrite.go
	db := &DB{dir: dir, stor: stor, journals: js, log: log, kdf: kdf, tables: make(map[string]*tableKeys), legacy: make(map[[tagSize]byte]bool), reindex: make(map[[tagSize]byte]bool)}
	db.wo = &opt.WriteOptions{Sync: !cfg.NoSync}
	ok := false
	defer func() {
		if !ok {
			if db.ldb != nil {
				db.ldb.Close()
			}
			stor.Close()
		}
	}()

	kr, err := readKeyring(dir)
	if err != nil {
		return nil, err
	}
	var dek []byte
	created := false
	if kr != nil {
		if dek, err = loadDEK(dir, kr, cfg.Passphrase); err != nil {
			return nil, err
		}
		db.protected = kr.kdf != kdfKeyFile
	} else {
		if nonEmpty, err := hasFiles(dbPath); err != nil {
			return nil, fmt.Errorf("store: open: %w", err)
		} else if nonEmpty {
			return nil, fmt.Errorf("%w: database present but keyring missing", ErrCorrupt)
		}
		dek = make([]byte, dekSize)
		fillRandom(dek)
		var kek []byte
		if len(cfg.Passphrase) == 0 {
			kek = make([]byte, dekSize)
			fillRandom(kek)
		}
		if err := installKeyring(dir, newKeyring(cfg.Passphrase, kek, dek, kdf), kek); err != nil {
			return nil, err
		}
		db.protected = len(cfg.Passphrase) != 0
		created = true
	}
	db.dek = dek
	db.indexRoot = suite.HKDF(dek, nil, labelIndexRoot, suite.KeySize)

	// goleveldb drops journal chunks that fail their checksum and opens
	// without them; refuse instead (Repair is the way on).
	if damage, err := checkJournals(stor); err != nil {
		return nil, fmt.Errorf("store: check journal: %w", err)
	} else if damage != nil {
		return nil, damage.error()
	}
	db.ldb, err = leveldb.Open(stor, ldbOptions())
	if err != nil {
		if lerrors.IsCorrupted(err) {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		return nil, fmt.Errorf("store: open database: %w", err)
	}
	if err := db.upgrade(target, migrations); err != nil {
		return nil, err
	}
	ok = true
	log.Info("store opened", "created", created, "protected", db.protected, "schema", db.schema)
	return db, nil
}

// testLdbOptions, when set (tests), replaces ldbOptions.
var testLdbOptions func() *opt.Options

// ldbOptions are the goleveldb options of every open.
func ldbOptions() *opt.Options {
	if testLdbOptions != nil {
		return testLdbOptions()
	}
	return &opt.Options{
		// Sealed values do not compress.
		Compression: opt.NoCompression,
		// Keys are keyed hashes, so every table flushed from memory
		// overlaps every table of the next level, and each compaction
		// rewrites a level's whole key range. A larger memory table and
		// larger levels carry more new records per rewrite: with these,
		// a node-like load of 100,000 messages made compactions write
		// 349 MB instead of 767 MB with goleveldb's defaults (4 MiB,
		// 2 MiB tables, 10 MiB first level); docs/protocol/store.md
		// §11.6. The memory table's buffer is taken up front but only
		// touched as it fills.
		WriteBuffer:         16 << 20,
		CompactionTableSize: 8 << 20,
		CompactionTotalSize: 64 << 20,
		// Every compaction of the first level rewrites all of the next
		// (the keys overlap all of it): waiting for 8 tables instead of
		// 4 does it half as often, for a little more work on reads of
		// keys no longer in memory (§11.6).
		CompactionL0Trigger:    8,
		WriteL0SlowdownTrigger: 16,
		WriteL0PauseTrigger:    24,
		// Lookups of absent keys (dedupe checks on every received
		// message) skip tables that cannot hold the key.
		Filter: filter.NewBloomFilter(10),
	}
}

// hasFiles reports whether dir holds database files: anything besides
// the LOCK and LOG files goleveldb's storage creates on open.
func hasFiles(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		switch e.Name() {
		case "LOCK", "LOG", "LOG.old":
		default:
			return true, nil
		}
	}
	return false, nil
}

func fillRandom(b []byte) {
	if _, err := rand.Read(b); err != nil {
		panic("store: crypto/rand failed: " + err.Error())
	}
}

// Protected reports whether the store is wrapped by a passphrase (false:
// by the store.key file next to it, which any reader of the disk can use).
func (db *DB) Protected() bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.protected
}

// SchemaVersion reports the store's schema version.
func (db *DB) SchemaVersion() uint32 { return db.schema }

// SyncedWrites counts the writes made with fsync, and the Sync calls,
// since Open (tests and benchmarks read it to count what a change
// costs).
func (db *DB) SyncedWrites() uint64 { return db.syncedWrites.Load() }

// IndexReads counts the skip-list nodes commits read from the database
// (not found in the node cache) since Open, for benchmarks.
func (db *DB) IndexReads() uint64 { return db.nodes.reads.Load() }

// Written counts the goleveldb records (puts and deletes, the skip-list
// index records included) and the bytes of batch (keys, sealed values
// and goleveldb's framing) that commits wrote since Open, for
// benchmarks: what a change costs the memory table, the journal and
// later compactions.
func (db *DB) Written() (records, bytes uint64) { return db.records.Load(), db.bytes.Load() }

// Close closes the store and forgets its keys (best effort: Go cannot
// guarantee memory is wiped). Closing twice is harmless.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	db.mu.Unlock()
	// A read lock is enough: a reopen checks closed under the write lock.
	var err error
	db.ldbMu.RLock()
	if db.ldb != nil {
		err = db.ldb.Close()
	}
	db.ldbMu.RUnlock()
	if serr := db.stor.Close(); err == nil {
		err = serr
	}
	// Table handles may still be in use by other goroutines (their calls
	// now fail with ErrClosed), so only the root keys, read under mu, are
	// wiped; table keys are dropped for the garbage collector.
	db.mu.Lock()
	clear(db.dek)
	clear(db.indexRoot)
	db.tables = nil
	db.mu.Unlock()
	if err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// ChangePassphrase re-wraps the data key: oldPassphrase must unlock the
// current keyring (empty if the store has no passphrase) and
// newPassphrase becomes the passphrase (empty: switch to a store.key
// file, removed again when a passphrase is set). Records are not
// rewritten. New passphrases use Config.KDF's parameters.
func (db *DB) ChangePassphrase(oldPassphrase, newPassphrase []byte) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return ErrClosed
	}
	kr, err := readKeyring(db.dir)
	if err != nil {
		return err
	}
	if kr == nil {
		return fmt.Errorf("%w: keyring missing", ErrCorrupt)
	}
	dek, err := loadDEK(db.dir, kr, oldPassphrase)
	if err != nil {
		return err
	}
	if !hmac.Equal(dek, db.dek) {
		return fmt.Errorf("%w: keyring does not hold this store's key", ErrCorrupt)
	}
	var kek []byte
	if len(newPassphrase) == 0 {
		kek = make([]byte, dekSize)
		fillRandom(kek)
	} else if err := db.kdf.validate(); err != nil {
		return fmt.Errorf("store: config: %v", err)
	}
	if err := installKeyring(db.dir, newKeyring(newPassphrase, kek, dek, db.kdf), kek); err != nil {
		return err
	}
	db.protected = len(newPassphrase) != 0
	db.log.Info("store passphrase changed", "protected", db.protected)
	return nil
}

// Table returns the table called name. Names are 1 to 64 characters from
// [a-z0-9_.-], starting with a letter or digit; an invalid name gives a
// Table whose every method returns ErrInvalidTable. Table is cheap after
// the first call for a name. In a store written before layout 2 the first
// call for a table holding sequenced records rewrites them
// (docs/protocol/store.md §11.5), and the first call for a table whose
// index rebuild a Repair left unfinished finishes it (§11.9); if that
// fails, every method of the Table returned returns the error, and the
// next call tries again.
func (db *DB) Table(name string) *Table {
	if !validTableName(name) {
		return &Table{db: db, err: fmt.Errorf("%w: %q", ErrInvalidTable, name)}
	}
	return db.table(name)
}

func (db *DB) table(name string) *Table {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return &Table{db: db, err: ErrClosed}
	}
	tk, ok := db.tables[name]
	if !ok {
		tk = deriveTableKeys(db.dek, db.indexRoot, name)
		db.tables[name] = tk
	}
	legacy, reindex := db.legacy[tk.tag], db.reindex[tk.tag]
	db.mu.Unlock()
	t := &Table{db: db, keys: tk}
	if legacy {
		if err := db.migrateTable(t); err != nil {
			return &Table{db: db, err: err}
		}
	}
	if reindex {
		if _, err := db.reindexTable(t); err != nil {
			return &Table{db: db, err: err}
		}
	}
	return t
}

// Compact compacts the table's key range, rewriting its files so that
// deleted and overwritten values are dropped from disk. In an LSM tree a
// Delete only writes a tombstone: the old sealed value survives in .log
// and .ldb files until compaction. Callers that delete key material
// (ratchet state) call Compact afterwards.
func (db *DB) Compact(t *Table) error {
	if t.err != nil {
		return t.err
	}
	ldb, err := db.readLock()
	if err != nil {
		return err
	}
	defer db.ldbMu.RUnlock()
	if err := ldb.CompactRange(*util.BytesPrefix(t.keys.tag[:])); err != nil {
		return db.wrapErr("compact", t, err)
	}
	db.log.Debug("store table compacted")
	return nil
}

// testWrapStorage, when set by a test, wraps the storage of every Open
// (to inject write failures).
var testWrapStorage func(storage.Storage) storage.Storage

// readLock read-locks ldbMu and returns the open goleveldb; the caller
// calls db.ldbMu.RUnlock when done with it. When a reopen has failed it
// returns that error and holds no lock.
func (db *DB) readLock() (*leveldb.DB, error) {
	db.ldbMu.RLock()
	if db.ldb == nil {
		err := db.reopenErr
		db.ldbMu.RUnlock()
		if err == nil {
			return nil, ErrClosed
		}
		return nil, err
	}
	return db.ldb, nil
}

// tryReopen closes and reopens goleveldb after a failed write, which
// clears the error goleveldb's journal writer keeps. It reopens only when
// no other goroutine is using the database (TryLock; else a later commit
// tries again), and only a store whose journal is intact: a write cut off
// by the failure is dropped, as at any open, since it was never
// acknowledged. If the reopen fails (the disk is still full: recovery
// writes a table), every operation returns that error until a later
// commit's reopen succeeds.
func (db *DB) tryReopen() {
	if !db.ldbMu.TryLock() {
		return
	}
	defer db.ldbMu.Unlock()
	db.nodes.clear()
	db.mu.Lock()
	closed := db.closed
	db.mu.Unlock()
	if closed || !db.needReopen.Load() {
		return
	}
	if db.ldb != nil {
		db.ldb.Close() // its error is the write error already returned
		db.ldb = nil
	}
	if damage, err := checkJournals(db.stor); err != nil {
		db.reopenErr = fmt.Errorf("store: reopen after a failed write: check journal: %w", err)
		return
	} else if damage != nil {
		db.reopenErr = damage.error()
		return
	}
	ldb, err := leveldb.Open(db.stor, ldbOptions())
	if err != nil {
		if lerrors.IsCorrupted(err) {
			err = fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		db.reopenErr = fmt.Errorf("store: reopen after a failed write: %w", err)
		return
	}
	db.ldb, db.reopenErr = ldb, nil
	db.needReopen.Store(false)
	db.log.Info("store reopened after a failed write")
}

// wrapErr maps a goleveldb error to the store's errors, naming the table.
func (db *DB) wrapErr(op string, t *Table, err error) error {
	switch {
	case errors.Is(err, leveldb.ErrClosed):
		return ErrClosed
	case lerrors.IsCorrupted(err):
		return fmt.Errorf("%w: %s in table %q: %v", ErrCorrupt, op, t.keys.name, err)
	default:
		return fmt.Errorf("store: %s in table %q: %w", op, t.keys.name, err)
	}
}
