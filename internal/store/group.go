package store

import (
	"errors"
	"fmt"
	"sync"

	"github.com/syndtr/goleveldb/leveldb"
)

// groupCommitter merges batches committed concurrently into one write, so
// N goroutines pay for one fsync instead of N (goleveldb does about 5,000
// synced writes/s here, but about 150,000 entries/s in synced batches).
type groupCommitter struct {
	mu      sync.Mutex
	pending []*groupReq
	leading bool // a goroutine is writing; later callers queue behind it

	// merged is the batch the leader writes, kept between groups so its
	// buffers (the records, goleveldb's index of them, the sequenced
	// operations) are allocated once, not for every group; only the
	// leader touches it.
	merged Batch
}

// maxMergedKeep bounds the buffer a merged batch keeps for the next
// group: a group larger than this (rare: many large records at once)
// is written from a buffer of its own.
const maxMergedKeep = 4 << 20

type groupReq struct {
	b    *Batch
	done chan error
}

// CommitGrouped commits b together with batches other goroutines commit
// at the same time: one caller writes the merged batch (fsynced unless
// Config.NoSync) while the others wait, and every caller gets the result
// of the write that carried its batch. Batches keep their order of
// arrival; each is applied atomically, and so is the group.
func (db *DB) CommitGrouped(b *Batch) error { return db.CommitGroupedAsync(b)() }

// CommitGroupedAsync queues b for a grouped commit and returns the function
// that waits for it. The queue position is fixed when CommitGroupedAsync
// returns, so a caller can queue under its own lock (fixing the order of
// its batches) and wait after releasing it.
func (db *DB) CommitGroupedAsync(b *Batch) (wait func() error) {
	if b.err != nil {
		err := b.err
		return func() error { return err }
	}
	if b.lb.Len() == 0 {
		return func() error { return nil }
	}
	g := &db.group
	r := &groupReq{b: b, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, r)
	g.mu.Unlock()
	return func() error {
		g.mu.Lock()
		if g.leading {
			g.mu.Unlock()
			return <-r.done
		}
		g.leading = true
		for len(g.pending) > 0 {
			reqs := g.pending
			g.pending = nil
			g.mu.Unlock()
			err := db.writeGroup(reqs)
			for _, q := range reqs {
				q.done <- err
			}
			g.mu.Lock()
		}
		g.leading = false
		g.mu.Unlock()
		return <-r.done
	}
}

// writeGroup writes the batches of reqs as one, in order, in the
// committer's merged batch. The callers' batches are not changed (the
// index records Commit adds go into the merged batch).
func (db *DB) writeGroup(reqs []*groupReq) error {
	m := &db.group.merged
	// A batch's contents are its records back to back, so the merged
	// batch is the contents joined.
	size, ops := 0, 0
	for _, q := range reqs {
		size += len(q.b.lb.Dump())
		ops += len(q.b.seqOps)
	}
	// Room for the index records Commit appends (a link record or two
	// per sequenced operation), so they do not copy the group again.
	want := size + ops*256
	data := m.lb.Dump()[:0]
	if cap(data) < want {
		data = make([]byte, 0, want)
	}
	m.db, m.lazy, m.err = db, true, nil
	defer func() {
		// Keep the buffers, not what they refer to.
		clear(m.seqOps)
		m.seqOps = m.seqOps[:0]
		if cap(m.lb.Dump()) > maxMergedKeep {
			m.lb = leveldb.Batch{}
			m.seqOps = nil
		} else {
			m.lb.Reset()
		}
	}()
	for _, q := range reqs {
		m.lazy = m.lazy && q.b.lazy
		data = append(data, q.b.lb.Dump()...)
		m.seqOps = append(m.seqOps, q.b.seqOps...)
	}
	if err := m.lb.Load(data); err != nil {
		return err
	}
	return m.Commit()
}

var _ leveldb.BatchReplay = (*leveldb.Batch)(nil)

// Sync makes every write committed before it durable, lazy ones
// included: it syncs goleveldb's open journal files itself (a journal it
// left behind was synced when closed, tablewrite.go), so it writes
// nothing and does not wait behind writes in progress. It does nothing
// when the store was opened with NoSync. A caller that shows a change
// once it is written and acknowledges it once it is durable commits it
// lazily, then calls Sync.
//
// A failed Sync leaves nothing to trust: Linux may drop the pages it
// could not write and mark them clean, so a later fsync can succeed
// without them. The store then reopens goleveldb before the next Sync
// or commit (as after a failed write), and goleveldb writes what its
// journals hold into a table it syncs: a later Sync that returns nil
// has made the earlier writes durable again (PostgreSQL restarts from
// its WAL after a failed fsync for the same reason).
func (db *DB) Sync() error {
	if !db.wo.Sync {
		return nil
	}
	db.syncedWrites.Add(1)
	if db.needReopen.Load() {
		db.tryReopen()
		if db.needReopen.Load() {
			return errors.New("store: sync: not made durable: the store has not reopened since a failed write")
		}
	}
	if err := db.journals.sync(); err != nil {
		db.needReopen.Store(true)
		return fmt.Errorf("store: sync: %w", err)
	}
	return nil
}
