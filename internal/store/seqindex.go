package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"

	"github.com/hushnet/hush/crypto/codec"
)

// The order of an id's sequenced records is a skip list of sealed records
// (docs/protocol/store.md §11.8): a link record per (id, seq) and a head
// per id. Keys are keyed hashes, so only the sealed pointers say which
// records belong together and in what order.

// maxLevel is the highest skip-list level; a node reaches each next
// level with probability 1/4, so 16 levels order 4^16 records per id
// before searches slow down.
const maxLevel = 16

// seqNode is a skip-list node. For a link record, next[i] and prev[i]
// are the neighbouring seqs at level i; a missing pointer (its bit clear
// in hasNext or hasPrev) means the head. For the head, next[i] is the
// lowest seq at level i and prev[i] the highest, h the list's height and
// count the number of records.
type seqNode struct {
	h                int
	next, prev       [maxLevel]uint64
	hasNext, hasPrev uint16
	count            uint64
}

func (n *seqNode) nextAt(i int) (uint64, bool) { return n.next[i], n.hasNext&(1<<i) != 0 }
func (n *seqNode) prevAt(i int) (uint64, bool) { return n.prev[i], n.hasPrev&(1<<i) != 0 }

func (n *seqNode) setNext(i int, seq uint64, ok bool) {
	n.next[i], n.hasNext = pointer(seq, ok), setBit(n.hasNext, i, ok)
}

func (n *seqNode) setPrev(i int, seq uint64, ok bool) {
	n.prev[i], n.hasPrev = pointer(seq, ok), setBit(n.hasPrev, i, ok)
}

func pointer(seq uint64, ok bool) uint64 {
	if !ok {
		return 0
	}
	return seq
}

func setBit(m uint16, i int, on bool) uint16 {
	if on {
		return m | 1<<i
	}
	return m &^ (1 << i)
}

// slots returns the number of pointer slots a node of height h is padded
// to: the next power of two, so node records come in five sizes.
func slots(h int) int {
	if h <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(h-1))
}

// encode returns kind ‖ h ‖ next_mask ‖ prev_mask ‖ count ‖ h × (next ‖
// prev) ‖ zero padding to slots(h) pairs.
func (n *seqNode) encode(kind byte) []byte {
	return n.appendTo(make([]byte, 0, n.size()), kind)
}

// size is the length of n's encoding.
func (n *seqNode) size() int { return 14 + 16*slots(n.h) }

// appendTo appends n's encoding to b.
func (n *seqNode) appendTo(b []byte, kind byte) []byte {
	b = append(b, kind, uint8(n.h))
	b = binary.BigEndian.AppendUint16(b, n.hasNext)
	b = binary.BigEndian.AppendUint16(b, n.hasPrev)
	b = binary.BigEndian.AppendUint64(b, n.count)
	for i := range slots(n.h) {
		b = binary.BigEndian.AppendUint64(b, n.next[i])
		b = binary.BigEndian.AppendUint64(b, n.prev[i])
	}
	return b
}

// decodeNode parses what follows the kind byte, accepting only the one
// encoding encode gives.
func decodeNode(r *codec.Reader) (*seqNode, error) {
	n := &seqNode{h: int(r.U8())}
	n.hasNext, n.hasPrev, n.count = r.U16(), r.U16(), r.U64()
	if err := r.Err(); err != nil {
		return nil, err
	}
	if n.h < 1 || n.h > maxLevel {
		return nil, fmt.Errorf("node height %d", n.h)
	}
	if (n.hasNext|n.hasPrev)>>n.h != 0 {
		return nil, errors.New("node pointer above its height")
	}
	for i := range slots(n.h) {
		n.next[i], n.prev[i] = r.U64(), r.U64()
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	for i := range slots(n.h) {
		if n.hasNext&(1<<i) == 0 && n.next[i] != 0 || n.hasPrev&(1<<i) == 0 && n.prev[i] != 0 {
			return nil, errors.New("node has a value in an empty pointer")
		}
	}
	return n, nil
}

// randomLevel draws a node height: 1, then one more with probability 1/4
// each, up to maxLevel. The levels are not secret (they only shape the
// list), so math/rand is enough.
func randomLevel() int {
	h := 1
	for r := rand.Uint64(); h < maxLevel && r&3 == 0; r >>= 2 {
		h++
	}
	return h
}

// seqOp is one PutSeq or DeleteSeq of a batch, kept for Commit to link or
// unlink its record. Its keys are computed when the operation is added
// (by the caller's goroutine), not in Commit: a grouped commit links the
// records of all its batches in one goroutine at a time.
type seqOp struct {
	keys *tableKeys
	id   []byte // the caller's id, copied
	head []byte // the key of id's head
	link []byte // the key of the link record of (id, seq)
	seq  uint64
	del  bool
}

func newSeqOp(tk *tableKeys, id []byte, seq uint64, del bool) seqOp {
	id = slices.Clone(nonNil(id))
	return seqOp{keys: tk, id: id, head: tk.headKey(id), link: tk.linkKey(id, seq), seq: seq, del: del}
}

// seqStripes is the number of locks the ids' skip lists are striped
// over.
const seqStripes = 64

// lockSeqs locks the stripes of every id ops touch, in ascending order,
// and returns the function that unlocks them.
func (db *DB) lockSeqs(ops []seqOp) (unlock func()) {
	var set uint64
	for _, op := range ops {
		set |= 1 << (op.head[len(op.head)-1] % seqStripes)
	}
	for m := set; m != 0; m &= m - 1 {
		db.seqLocks[bits.TrailingZeros64(m)].Lock()
	}
	return func() {
		for m := set; m != 0; m &= m - 1 {
			db.seqLocks[bits.TrailingZeros64(m)].Unlock()
		}
	}
}

// seqLinker applies a commit's sequenced operations to the skip lists of
// the ids they touch. It runs with those ids' stripes locked, reads
// through r (the open database) and keeps every node it reads or changes
// until writeTo adds the changed ones to the commit's write.
type seqLinker struct {
	r     getter
	cache *nodeCache
	nodes map[nodeKey]*linkedNode
	order []*linkedNode // in the order first read, for a stable write
}

// linkedNode is a link or head record as the commit sees it.
type linkedNode struct {
	keys  *tableKeys
	key   []byte
	kind  byte
	head  bool   // kind == kindHead
	seq   uint64 // a link's seq
	n     *seqNode
	dirty bool // n (nil: deleted) must be written
}

func newSeqLinker(r getter, cache *nodeCache) *seqLinker {
	return &seqLinker{r: r, cache: cache, nodes: make(map[nodeKey]*linkedNode)}
}

// nodeKey is a link or head record's key (keyLen bytes), as a map key:
// no string copied on every insert.
type nodeKey [keyLen]byte

// nodeCache keeps the decoded link and head records that commits read
// and wrote last, so an append does not read back and open the head and
// the last link the previous append just wrote. Entries are copies set
// only after the write that made them returned (under the ids' stripe
// locks), and the whole cache is dropped when a write fails or an index
// is rebuilt. Eviction is arbitrary: a miss only costs a read.
type nodeCache struct {
	mu sync.Mutex
	m  map[nodeKey]seqNode
	// reads counts the loads the cache did not answer (DB.IndexReads).
	reads atomic.Uint64
}

// nodeCacheSize bounds the cache: about 300 bytes an entry.
const nodeCacheSize = 8192

func (c *nodeCache) get(key []byte) (seqNode, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.m[nodeKey(key)]
	return n, ok
}

// remember stores what a successful commit leaves in the nodes it read
// or changed.
func (c *nodeCache) remember(l *seqLinker) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[nodeKey]seqNode)
	}
	for _, ln := range l.order {
		if ln.n == nil {
			delete(c.m, nodeKey(ln.key))
			continue
		}
		c.m[nodeKey(ln.key)] = *ln.n
	}
	if len(c.m) > nodeCacheSize {
		for k := range c.m {
			delete(c.m, k)
			if len(c.m) <= nodeCacheSize*3/4 {
				break
			}
		}
	}
}

// clear drops every entry.
func (c *nodeCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}

// load returns the node under key, reading it on first use; n is nil
// when there is none.
func (l *seqLinker) load(tk *tableKeys, key []byte, kind byte, seq uint64) (*linkedNode, error) {
	if ln, ok := l.nodes[nodeKey(key)]; ok {
		return ln, nil
	}
	ln := l.absent(tk, key, kind, seq)
	if n, ok := l.cache.get(key); ok {
		ln.n = &n
		return ln, nil
	}
	l.cache.reads.Add(1)
	raw, err := l.r.Get(key, nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		rec, err := tk.decodeSeqRecord(key, raw)
		if err != nil {
			return nil, err
		}
		if rec.kind != kind {
			return nil, fmt.Errorf("%w: record in table %q has kind 0x%02x, want 0x%02x", ErrCorrupt, tk.name, rec.kind, kind)
		}
		ln.n = rec.node
	}
	return ln, nil
}

// absent returns the node under key, known to be missing unless this
// commit made it.
func (l *seqLinker) absent(tk *tableKeys, key []byte, kind byte, seq uint64) *linkedNode {
	if ln, ok := l.nodes[nodeKey(key)]; ok {
		return ln
	}
	ln := &linkedNode{keys: tk, key: key, kind: kind, head: kind == kindHead, seq: seq}
	l.nodes[nodeKey(key)] = ln
	l.order = append(l.order, ln)
	return ln
}

func lastSeq(hd *seqNode) uint64 {
	last, _ := hd.prevAt(0)
	return last
}

// at returns the node a pointer names: the link of seq, or hd when the
// pointer is empty. The link must exist.
func (l *seqLinker) at(tk *tableKeys, id []byte, hd *linkedNode, seq uint64, ok bool) (*linkedNode, error) {
	if !ok {
		return hd, nil
	}
	ln, err := l.load(tk, tk.linkKey(id, seq), kindLink, seq)
	if err != nil {
		return nil, err
	}
	if ln.n == nil {
		return nil, fmt.Errorf("%w: table %q: index points to a missing record", ErrCorrupt, tk.name)
	}
	return ln, nil
}

// apply links (PutSeq) or unlinks (DeleteSeq) op's record.
func (l *seqLinker) apply(op seqOp) error {
	tk, id, s := op.keys, op.id, op.seq
	hd, err := l.load(tk, op.head, kindHead, 0)
	if err != nil {
		return err
	}
	var ln *linkedNode
	if !op.del && (hd.n == nil || s > lastSeq(hd.n)) {
		// Past the end: no link to read (appends, the common case).
		// The next append links to it: its key is remembered.
		tk.memo.setTail(id, s, op.link)
		ln = l.absent(tk, op.link, kindLink, s)
	} else if ln, err = l.load(tk, op.link, kindLink, s); err != nil {
		return err
	}
	if op.del == (ln.n == nil) {
		return nil // deleting what is not there, or replacing a value
	}
	if op.del {
		return l.unlink(tk, id, hd, ln)
	}
	return l.link(tk, id, hd, ln)
}

// link inserts ln's seq: the predecessors at each of its levels point to
// it and it to their old successors.
func (l *seqLinker) link(tk *tableKeys, id []byte, hd, ln *linkedNode) error {
	if hd.n == nil {
		hd.n = &seqNode{}
	}
	s := ln.seq
	n := &seqNode{h: randomLevel()}
	hd.n.h = max(hd.n.h, n.h)
	preds, err := l.preds(tk, id, hd, s, n.h)
	if err != nil {
		return err
	}
	for i, p := range preds {
		succ, ok := p.n.nextAt(i)
		if !p.head {
			n.setPrev(i, p.seq, true)
		}
		n.setNext(i, succ, ok)
		sn, err := l.at(tk, id, hd, succ, ok)
		if err != nil {
			return err
		}
		sn.n.setPrev(i, s, true)
		sn.dirty = true
		p.n.setNext(i, s, true)
		p.dirty = true
	}
	hd.n.count++
	hd.dirty = true
	ln.n, ln.dirty = n, true
	return nil
}

// preds returns, for each level below h, the node after which seq s goes:
// the last node at that level when s is past the end (appends), else
// found by descending the list from the head.
func (l *seqLinker) preds(tk *tableKeys, id []byte, hd *linkedNode, s uint64, h int) ([]*linkedNode, error) {
	preds := make([]*linkedNode, h)
	if last, ok := hd.n.prevAt(0); ok && last < s {
		for i := range preds {
			p, ok := hd.n.prevAt(i)
			var err error
			if preds[i], err = l.at(tk, id, hd, p, ok); err != nil {
				return nil, err
			}
		}
		return preds, nil
	}
	cur := hd
	for i := hd.n.h - 1; i >= 0; i-- {
		for {
			nx, ok := cur.n.nextAt(i)
			if !ok || nx >= s {
				break
			}
			next, err := l.at(tk, id, hd, nx, true)
			if err != nil {
				return nil, err
			}
			cur = next
		}
		if i < h {
			preds[i] = cur
		}
	}
	return preds, nil
}

// unlink removes ln's seq: its neighbours at each level point to each
// other. The head goes with the last record.
func (l *seqLinker) unlink(tk *tableKeys, id []byte, hd, ln *linkedNode) error {
	if hd.n == nil {
		return fmt.Errorf("%w: table %q: record without an index head", ErrCorrupt, tk.name)
	}
	n := ln.n
	for i := range n.h {
		p, pok := n.prevAt(i)
		nx, nok := n.nextAt(i)
		pn, err := l.at(tk, id, hd, p, pok)
		if err != nil {
			return err
		}
		nn, err := l.at(tk, id, hd, nx, nok)
		if err != nil {
			return err
		}
		pn.n.setNext(i, nx, nok)
		nn.n.setPrev(i, p, pok)
		pn.dirty, nn.dirty = true, true
	}
	ln.n, ln.dirty = nil, true
	hd.n.count--
	for hd.n.h > 0 {
		if _, ok := hd.n.nextAt(hd.n.h - 1); ok {
			break
		}
		hd.n.h--
	}
	if hd.n.h == 0 {
		hd.n = nil
	}
	hd.dirty = true
	return nil
}

// writeTo adds every changed node to w.
func (l *seqLinker) writeTo(w *leveldb.Batch) {
	for _, ln := range l.order {
		switch {
		case !ln.dirty:
		case ln.n == nil:
			w.Delete(ln.key)
		default:
			w.Put(ln.key, ln.keys.sealNode(ln.key, ln.kind, ln.n))
		}
	}
}

// getter reads a key: a *leveldb.DB or a *leveldb.Snapshot.
type getter interface {
	Get(key []byte, ro *opt.ReadOptions) ([]byte, error)
}

// seqReader reads one id's skip list and records from a snapshot.
type seqReader struct {
	t    *Table
	r    getter
	id   []byte
	head *seqNode // nil: the id has no records
}

func (t *Table) newSeqReader(r getter, id []byte) (*seqReader, error) {
	sr := &seqReader{t: t, r: r, id: id}
	n, err := sr.node(t.keys.headKey(id), kindHead)
	if err != nil {
		return nil, err
	}
	sr.head = n
	return sr, nil
}

// node reads the link or head under key; nil if there is none.
func (sr *seqReader) node(key []byte, kind byte) (*seqNode, error) {
	raw, err := sr.r.Get(key, nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, sr.t.db.wrapErr("scan", sr.t, err)
	}
	rec, err := sr.t.keys.decodeSeqRecord(key, raw)
	if err != nil {
		return nil, err
	}
	if rec.kind != kind {
		return nil, fmt.Errorf("%w: record in table %q has kind 0x%02x, want 0x%02x", ErrCorrupt, sr.t.keys.name, rec.kind, kind)
	}
	return rec.node, nil
}

// link reads the node of seq, which the index says exists.
func (sr *seqReader) link(seq uint64) (*seqNode, error) {
	n, err := sr.node(sr.t.keys.linkKey(sr.id, seq), kindLink)
	if err == nil && n == nil {
		err = fmt.Errorf("%w: table %q: index points to a missing record", ErrCorrupt, sr.t.keys.name)
	}
	return n, err
}

// value reads the data record of seq.
func (sr *seqReader) value(seq uint64) ([]byte, error) {
	v, err := sr.t.getData(sr.r, sr.id, seq)
	if errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("%w: table %q: index points to a missing record", ErrCorrupt, sr.t.keys.name)
	}
	return v, err
}

// seek returns the first seq >= bound (ge) or the last seq <= bound
// (!ge), with its node. The head answers when the bound is outside the
// records; otherwise the list is descended from the top level.
func (sr *seqReader) seek(bound uint64, ge bool) (uint64, *seqNode, bool, error) {
	hd := sr.head
	if hd == nil {
		return 0, nil, false, nil
	}
	first, _ := hd.nextAt(0)
	last, _ := hd.prevAt(0)
	switch {
	case ge && bound > last, !ge && bound < first:
		return 0, nil, false, nil
	case ge && bound <= first:
		n, err := sr.link(first)
		return first, n, err == nil, err
	case !ge && bound >= last:
		n, err := sr.link(last)
		return last, n, err == nil, err
	}
	// first < bound <= last (ge) or first <= bound < last (!ge): descend
	// to the last node before the bound (ge) or at or before it (!ge).
	cur, curSeq, atHead := hd, uint64(0), true
	for i := hd.h - 1; i >= 0; i-- {
		for {
			nx, ok := cur.nextAt(i)
			if !ok || ge && nx >= bound || !ge && nx > bound {
				break
			}
			n, err := sr.link(nx)
			if err != nil {
				return 0, nil, false, err
			}
			cur, curSeq, atHead = n, nx, false
		}
	}
	if !ge {
		return curSeq, cur, !atHead, nil
	}
	nx, ok := cur.nextAt(0)
	if !ok {
		return 0, nil, false, nil
	}
	n, err := sr.link(nx)
	return nx, n, err == nil, err
}
