package node

import (
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
	onFail  func()        // undoes in-memory changes if the commit fails

	groupsChanged bool            // a group engine changed: resubscribe to its topics
	seqs          map[uint64]bool // group message sequence numbers taken in this batch
}

// dirtyMsg is a message record written in a batch not yet committed.
type dirtyMsg struct {
	rec  msgRec
	ix   indexRec
	refs int
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

// putMsgLocked writes a message record (and its index entry) in t and
// makes it visible to loadMsgLocked until t is finished.
func (n *Node) putMsgLocked(t *txn, id [msgIDSize]byte, ix indexRec, m *msgRec) {
	putSeqJSON(t.b, n.tabs.messages, ix.Account, ix.Seq, m)
	putJSON(t.b, n.tabs.msgIndex, id[:], &ix)
	d := n.dirty[id]
	if d == nil {
		d = &dirtyMsg{}
		n.dirty[id] = d
	}
	d.rec, d.ix = *m, ix
	d.refs++
	t.msgs = append(t.msgs, id)
	n.cacheMsgLocked(id, m, ix)
}

// recentMsgs and recentBytes bound the cache of message records (state
// updates and receipts mostly touch recent messages). A sender far ahead
// of its receipts has tens of thousands of messages waiting for
// "delivered"; a cache smaller than that reads each record back from the
// store when its receipt comes.
const (
	recentMsgs  = 32768
	recentBytes = 16 << 20
)

type cachedMsg struct {
	rec  msgRec
	ix   indexRec
	size int
}

// cachedSize estimates what a cached record holds.
func cachedSize(m *msgRec) int { return 256 + len(m.Text) + len(m.ReplyTo) + len(m.ID) }

func (n *Node) cacheMsgLocked(id [msgIDSize]byte, m *msgRec, ix indexRec) {
	c := &cachedMsg{rec: *m, ix: ix, size: cachedSize(m)}
	if old, ok := n.recent[id]; ok {
		n.recentSize -= old.size
	} else {
		n.recentOrder = append(n.recentOrder, id)
	}
	n.recent[id] = c
	n.recentSize += c.size
	for len(n.recentOrder) > recentMsgs || n.recentSize > recentBytes {
		if old, ok := n.recent[n.recentOrder[0]]; ok {
			n.recentSize -= old.size
			delete(n.recent, n.recentOrder[0])
		}
		n.recentOrder = n.recentOrder[1:]
	}
}

// forgetRecentLocked empties the cache (its records may be stale).
func (n *Node) forgetRecentLocked() {
	clear(n.recent)
	n.recentOrder, n.recentSize = nil, 0
}

// finishLocked commits t grouped with concurrent commits. It must be
// called with n.mu held; it releases the lock while waiting for the disk
// and holds it again when it returns. On success the queued entries may
// leave and the events are published; on failure nothing of t happened.
func (n *Node) finishLocked(t *txn) error {
	wait := n.db.CommitGroupedAsync(t.b)
	n.mu.Unlock()
	err := wait()
	n.mu.Lock()
	return n.afterCommitLocked(t, err)
}

// finishInBackgroundLocked queues t's commit now (fixing its order) and
// finishes it in a goroutine, for callers that must not wait.
func (n *Node) finishInBackgroundLocked(t *txn) {
	wait := n.db.CommitGroupedAsync(t.b)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		err := wait()
		n.mu.Lock()
		defer n.mu.Unlock()
		n.afterCommitLocked(t, err)
	}()
}

func (n *Node) afterCommitLocked(t *txn, err error) error {
	for _, id := range t.msgs {
		if d := n.dirty[id]; d != nil {
			if d.refs--; d.refs == 0 {
				delete(n.dirty, id)
			}
		}
	}
	if err != nil {
		if t.onFail != nil {
			t.onFail()
		}
		for _, id := range t.msgs {
			if c, ok := n.recent[id]; ok { // may hold what was not written; reload from the store
				n.recentSize -= c.size
				delete(n.recent, id)
			}
		}
		n.dropQueuedLocked(t.queued)
		n.log.Error("store commit failed", "err", err)
		return err
	}
	n.releaseQueuedLocked(t.queued)
	n.publishLocked(t.events)
	if len(t.publish) > 0 && n.runCtx != nil { // not running: anti-entropy repairs it later
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.publishAll(t.publish)
		}()
	}
	if t.groupsChanged {
		for _, gs := range n.groups {
			n.syncTopicsLocked(gs)
		}
	}
	return nil
}
