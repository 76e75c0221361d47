package node

import "sync"

// records is the message store's memory: records written in batches not
// yet committed (readers see them at once) and a bounded cache of recent
// records (state updates and receipts mostly touch recent messages). It
// owns its fields and its lock; the node reads and writes the store
// tables and tells records what it wrote (write, remove, committed).
type records struct {
	mu     sync.Mutex
	dirty  map[[msgIDSize]byte]*dirtyMsg
	recent map[[msgIDSize]byte]*cachedMsg
	order  [][msgIDSize]byte
	size   int // bytes the cached records hold (cachedSize)
}

// dirtyMsg is a message record written (or deleted: gone) in a batch not
// yet committed.
type dirtyMsg struct {
	rec  msgRec
	ix   indexRec
	refs int
	gone bool
	done chan struct{} // closed when the last write ends (uncommitted made it)
}

// recentMsgs and recentBytes bound the cache. A sender far ahead of its
// receipts has tens of thousands of messages waiting for "delivered"; a
// cache smaller than that reads each record back from the store when its
// receipt comes.
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

func newRecords() *records {
	return &records{dirty: make(map[[msgIDSize]byte]*dirtyMsg), recent: make(map[[msgIDSize]byte]*cachedMsg)}
}

// get returns a copy of the newest record of id that memory holds: one
// written but not committed, else a cached one. A record deleted in a
// batch not yet committed is held as nil with found true.
func (r *records) get(id [msgIDSize]byte) (m *msgRec, ix indexRec, found bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d := r.dirty[id]; d != nil {
		if d.gone {
			return nil, d.ix, true
		}
		m := d.rec
		return &m, d.ix, true
	}
	if c := r.recent[id]; c != nil {
		m := c.rec
		return &m, c.ix, true
	}
	return nil, indexRec{}, false
}

// write records m as written in an uncommitted batch; committed must
// follow once per write.
func (r *records) write(id [msgIDSize]byte, m *msgRec, ix indexRec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.dirty[id]
	if d == nil {
		d = &dirtyMsg{}
		r.dirty[id] = d
	}
	d.rec, d.ix, d.gone = *m, ix, false
	d.refs++
	r.cacheLocked(id, m, ix)
}

// remove records id as deleted in an uncommitted batch; committed must
// follow once.
func (r *records) remove(id [msgIDSize]byte, ix indexRec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.dirty[id]
	if d == nil {
		d = &dirtyMsg{}
		r.dirty[id] = d
	}
	d.rec, d.ix, d.gone = msgRec{}, ix, true
	d.refs++
	if c, ok := r.recent[id]; ok {
		r.size -= c.size
		delete(r.recent, id)
	}
}

// committed ends the writes of ids; when the batch failed, the cache
// forgets them (it may hold what was not written).
func (r *records) committed(ids [][msgIDSize]byte, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if d := r.dirty[id]; d != nil {
			if d.refs--; d.refs == 0 {
				delete(r.dirty, id)
				if d.done != nil {
					close(d.done)
				}
			}
		}
		if !ok {
			if c, found := r.recent[id]; found {
				r.size -= c.size
				delete(r.recent, id)
			}
		}
	}
}

// cache keeps a record read from the store.
func (r *records) cache(id [msgIDSize]byte, m *msgRec, ix indexRec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cacheLocked(id, m, ix)
}

func (r *records) cacheLocked(id [msgIDSize]byte, m *msgRec, ix indexRec) {
	c := &cachedMsg{rec: *m, ix: ix, size: cachedSize(m)}
	if old, ok := r.recent[id]; ok {
		r.size -= old.size
	} else {
		r.order = append(r.order, id)
	}
	r.recent[id] = c
	r.size += c.size
	for len(r.order) > recentMsgs || r.size > recentBytes {
		if old, ok := r.recent[r.order[0]]; ok {
			r.size -= old.size
			delete(r.recent, r.order[0])
		}
		r.order = r.order[1:]
	}
}

// forget empties the cache (its records may be stale).
func (r *records) forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.recent)
	r.order, r.size = nil, 0
}

// stored reports whether id's record is known to be in the store,
// committed: cached (read from the store, or written in a batch that
// committed: a failed one drops it from the cache) and written in no
// batch still pending.
func (r *records) stored(id [msgIDSize]byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, cached := r.recent[id]
	return cached && r.dirty[id] == nil
}

// uncommitted returns a channel closed once no batch that wrote id is
// pending, or nil if none is: what a batch wrote is readable before its
// commit lands, and a caller that reports it as done waits for that.
func (r *records) uncommitted(id [msgIDSize]byte) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.dirty[id]
	if d == nil {
		return nil
	}
	if d.done == nil {
		d.done = make(chan struct{})
	}
	return d.done
}
