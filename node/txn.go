package node

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"time"

	"github.com/hushnet/hush/internal/store"
)

// txn collects one change: the store batch, message records written
// through it (visible to readers before the commit lands), outbox entries
// to release once durable and events to publish after.
type txn struct {
	b       *store.Batch
	msgs    [][msgIDSize]byte
	queued  []*outEntry
	events  []Event
	publish []publication // group topic messages, sent after the commit
	// publishEarly: publish holds one group message under a reserved
	// sender-key iteration, which goes before the commit
	// (releaseEarlyLocked).
	publishEarly bool
	// wake are the delivery loops releaseEarlyLocked let entries go to,
	// woken once the node's lock is released (a loop woken under it
	// would only wait for it): wakeEarly.
	wake   []*peerQueue
	onFail func() // undoes in-memory changes if the commit fails
	// committed run once the commit is durable: before the events go
	// out, or after them for a txn that is shown before it is durable
	// (syncLater).
	committed []func()
	// done is closed when the commit finished, either way (durable, or
	// failed); entries released before it (releaseEarlyLocked) wait on
	// it to settle.
	done chan struct{}
	// syncLater: the batch is written lazily and its effects shown (its
	// events published, its records read) once written; the caller
	// then makes it durable (DB.Sync) and calls afterDurableLocked, which
	// confirms reservations and lets its entries leave. receive uses it:
	// a message is shown once written and acknowledged once durable
	// (messaging.md "Shown once written, acknowledged once durable").
	syncLater bool

	groupsChanged bool                       // a group engine changed: resubscribe to its topics
	seqs          map[uint64]bool            // group message sequence numbers taken in this batch
	syncRecs      map[string][]byte          // syncstate records written in this batch (syncstate.go)
	fetch         []string                   // messages whose files start downloading after the commit
	linksChanged  bool                       // wake the links loop after the commit (links.go)
	searchOps     []searchOp                 // message records written or deleted, for the search index (searching.go)
	ttls          map[[msgIDSize]byte]uint32 // new messages' time to live as their payload carried it (timers.go)
	timersChanged bool                       // a countdown started: wake the expiry loop (timers.go)
	convs         []string                   // conversations whose messages changed: their cached tails go (convtails.go)
	directOnly    bool                       // the entries it queues go only on a live direct connection (presence.go)
	viaMailbox    bool                       // it takes messages that came through a relay mailbox (receive)
	sessions      []savedSession             // session state received messages wrote, put back if the commit fails (saveSessionLocked)
	read          []readMsg                  // messages the session layer read in t, kept if the commit fails (unwritten.go)
	opened        []openedGroup              // groups whose engines opened messages in t, read back if the commit fails (reopenGroupsLocked)
}

// openedGroup is a group whose engine opened a message in a txn, with its
// change count once the txn is queued for its commit.
type openedGroup struct {
	gs      *groupState
	changes uint64
}

// openedWith notes that gs's engine opened a message in t.
func (t *txn) openedWith(gs *groupState) {
	if !slices.ContainsFunc(t.opened, func(o openedGroup) bool { return o.gs == gs }) {
		t.opened = append(t.opened, openedGroup{gs: gs})
	}
}

// noteGroupChanges records, as t is queued for its commit, how far the
// engines it opened messages with have changed.
func (t *txn) noteGroupChanges() {
	for i := range t.opened {
		t.opened[i].changes = t.opened[i].gs.changes
	}
}

func (n *Node) newTxnLocked() *txn { return &txn{b: n.db.Batch()} }

// undo adds f to what a failed commit undoes; later changes are undone
// first.
func (t *txn) undo(f func()) {
	prev := t.onFail
	t.onFail = func() {
		f()
		if prev != nil {
			prev()
		}
	}
}

// putMsgLocked writes a new message record and its index entry in t and
// makes it visible to loadMsgLocked until t is finished.
func (n *Node) putMsgLocked(t *txn, id [msgIDSize]byte, ix indexRec, m *msgRec) {
	t.b.Put(n.tabs.msgIndex, id[:], ix.marshal())
	n.noteExpiryLocked(t, id, ix, m, t.ttls[id])
	t.b.PutSeq(n.tabs.messages, ix.Account, ix.Seq, m.marshal())
	n.writeMsgLocked(t, id, ix, m)
}

// updateMsgLocked rewrites a stored message record (a new state, an
// edit, a reaction); its index entry, which never changes, stays. A
// record known to be committed is replaced without the store reading
// its place in the conversation's index (store.Batch.ReplaceSeq): a
// sender far ahead of its receipts would read it back from disk for
// each "delivered".
func (n *Node) updateMsgLocked(t *txn, id [msgIDSize]byte, ix indexRec, m *msgRec) {
	if n.records.stored(id) {
		t.b.ReplaceSeq(n.tabs.messages, ix.Account, ix.Seq, m.marshal())
	} else {
		t.b.PutSeq(n.tabs.messages, ix.Account, ix.Seq, m.marshal())
	}
	n.writeMsgLocked(t, id, ix, m)
}

// putMsgLocked's and updateMsgLocked's common part: the record in
// memory, the conversation's tail, search and expiry.
func (n *Node) writeMsgLocked(t *txn, id [msgIDSize]byte, ix indexRec, m *msgRec) {
	n.tailChangedLocked(t, ix.Account)
	n.records.write(id, m, ix)
	t.msgs = append(t.msgs, id)
	t.searchPut(id, ix, m)
	n.startExpiryLocked(t, id, m)
}

// commitReleasingLock commits t grouped with concurrent commits. It must
// be called with n.mu held; as its name says, it releases the lock while
// the disk works and holds it again when it returns, so state read before
// it may have changed after it. On success the queued entries may leave
// and the events are published; on failure nothing of t happened and the
// error is the caller's to report (once: the API logs internal errors).
func (n *Node) commitReleasingLock(t *txn) error {
	n.numberEventsLocked(t)
	t.noteGroupChanges()
	if err := n.writeSessionsLocked(t); err != nil {
		return n.afterCommitLocked(t, err)
	}
	if tap := taps.Load(); tap != nil && tap.hold != nil && tap.hold(n, t) {
		// A test's crash before the write: what may leave early goes,
		// the batch never reaches the store, and the caller waits until
		// the process is killed.
		n.releaseEarlyLocked(t)
		n.mu.Unlock()
		t.wakeEarly(false)
		select {}
	}
	if tap := taps.Load(); tap != nil && tap.failCommit != nil && tap.failCommit(n, t) {
		return n.afterCommitLocked(t, errTestCommit)
	}
	wait := n.db.CommitGroupedAsync(t.b)
	n.releaseEarlyLocked(t)
	n.mu.Unlock()
	t.wakeEarly(true)
	if tap := taps.Load(); tap != nil && tap.commitWait != nil {
		tap.commitWait(n, t)
	}
	err := wait()
	n.mu.Lock()
	return n.afterCommitLocked(t, err)
}

// errTestCommit is the failure a test's failCommit tap gives.
var errTestCommit = errors.New("node: commit failed by a test")

// commitForJobReleasingLock is commitReleasingLock for the node's own
// jobs (timers, anti-entropy), which have no caller to report to: a
// failure is logged here, once.
func (n *Node) commitForJobReleasingLock(t *txn, job string) {
	if err := n.commitReleasingLock(t); err != nil {
		n.logStoreError("store commit failed", err, "job", job)
	}
}

// finishInBackgroundLocked queues t's commit now (fixing its order) and
// finishes it in a goroutine, for callers that must not wait.
func (n *Node) finishInBackgroundLocked(t *txn) {
	n.numberEventsLocked(t)
	t.noteGroupChanges()
	finish := func(err error) {
		if err := n.afterCommitLocked(t, err); err != nil {
			// Nobody waits for this commit: this is the one report. The
			// entries stay in the store and go again after a restart.
			n.logStoreError("store commit failed", err)
		}
	}
	if err := n.writeSessionsLocked(t); err != nil {
		finish(err)
		return
	}
	wait := n.db.CommitGroupedAsync(t.b)
	n.releaseEarlyLocked(t)
	t.wakeEarly(false) // the caller keeps the lock
	if !n.loops.Go(func(context.Context) {
		// The disk works without the node's lock (a commit waited for
		// under it held up every other change for a whole fsync).
		err := wait()
		n.mu.Lock()
		defer n.mu.Unlock()
		finish(err)
	}) {
		finish(wait()) // not running: nobody else would finish it
	}
}

// releaseEarlyLocked lets t's entries whose session state was stored
// before (a reservation: messaging.md "Sending before the commit") leave
// while t's commit, already queued, runs. Their acknowledgements are
// recorded only after it (settle waits on t.done).
func (n *Node) releaseEarlyLocked(t *txn) {
	if t.publishEarly && len(t.publish) > 0 {
		pubs := t.publish
		t.publish = nil // not again after the commit
		n.loops.Go(func(ctx context.Context) { n.publishAll(ctx, pubs) })
	}
	for _, e := range t.queued {
		if !e.early {
			continue
		}
		if t.done == nil {
			t.done = make(chan struct{})
		}
		e.commitDone = t.done
		if q := n.queues[e.device]; q != nil && !slices.Contains(t.wake, q) {
			n.startLoopLocked(q)
			t.wake = append(t.wake, q)
		}
	}
}

// wakeEarly wakes the delivery loops of the entries releaseEarlyLocked
// let go, and, when yield is set (the caller has released the node's
// lock and is about to wait for its commit's fsync), lets them run at
// once. A goroutine this one wakes waits in this processor's queue, and
// a processor blocked in a system call is handed on only after tens of
// microseconds: in BenchmarkNodeMessageLatency256/fsync-idle the woken
// loop took the lock 70 µs after the wake-up without the yield and 5 µs
// with it.
func (t *txn) wakeEarly(yield bool) {
	for _, q := range t.wake {
		q.kick()
	}
	if yield && len(t.wake) > 0 {
		runtime.Gosched()
	}
	t.wake = nil
}

func (n *Node) afterCommitLocked(t *txn, err error) error {
	n.records.committed(t.msgs, err == nil)
	for _, k := range t.convs {
		delete(n.tails, k)
	}
	n.storeHealth.commitDone(err, time.Now()) // a failure is logged by whoever reports it (logStoreError)
	if err != nil {
		if t.done != nil {
			close(t.done)
		}
		if t.onFail != nil {
			t.onFail()
		}
		n.unsaveSessionsLocked(t)
		n.unwritten.keep(t.read)
		n.reopenGroupsLocked(t)
		n.dropQueuedLocked(t.queued)
		n.events.Settle(t.events, false) // their numbers are given up
		return err
	}
	if !t.syncLater {
		n.afterDurableLocked(t)
	}
	n.search.apply(t.searchOps)
	if t.timersChanged {
		n.kickExpiry()
	}
	n.events.Settle(t.events, true) // subscribers get them in order; WaitState callers are released

	for _, id := range t.fetch {
		n.autoFetchLocked(id)
	}
	if t.linksChanged {
		n.kickLinks()
	}
	if t.groupsChanged {
		n.guardBatchLocked(func() {
			for _, gs := range n.groups {
				n.syncTopicsLocked(gs)
			}
		})
	}
	return nil
}

// afterDurableLocked does what waits until t's commit is durable: it
// confirms the reservations t stored (a message under them may then
// leave before its own commit), lets t's outbox entries and group
// publications leave, and releases what waits on t.done.
// afterCommitLocked calls it, unless t.syncLater; then the caller does,
// after DB.Sync (or, if that failed, failSyncLocked).
func (n *Node) afterDurableLocked(t *txn) {
	if t.done != nil {
		close(t.done)
	}
	for _, f := range t.committed {
		f()
	}
	n.releaseQueuedLocked(t.queued)
	if len(t.publish) > 0 { // when not running, anti-entropy repairs it later
		n.loops.Go(func(ctx context.Context) { n.publishAll(ctx, t.publish) })
	}
}

// failSyncLocked ends a syncLater txn written but not made durable: its
// entries do not leave now (they are in the store, and go after a
// restart) and nothing it reserved is confirmed (the next change writes
// the reservations again).
func (n *Node) failSyncLocked(t *txn) {
	if t.done != nil {
		close(t.done)
	}
	n.dropQueuedLocked(t.queued)
}
