package relay

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/internal/wire"
)

// Tables of the link store (docs/RELAY.md "Storage").
const (
	tableLinks    = "links"    // id → the record's metadata (linkMeta)
	tableLinkData = "linkdata" // id → the record, opaque
)

// linkMetaVersion is the first byte of a links record.
const linkMetaVersion = 1

// link is one link record's in-memory state: everything but the record's
// bytes, which are read from the linkdata table for a get. Every live
// record is kept in memory (about 150 bytes; LinkMaxRecords bounds how
// many).
type link struct {
	id    LinkID
	owner [ed25519.PublicKeySize]byte // bound by the first put
	size  int                         // bytes of the record (for the metadata only)
	peer  [16]byte                    // quota key of the peer of the first put
	net   [16]byte                    // quota key of the network of the first put
	putAt atomic.Uint64               // unix ns of the last put (read by the sweep without mu)

	// mu orders the puts and the delete of this record and guards the
	// fields below.
	mu      sync.Mutex
	version uint64
	gone    bool // deleted (or its first put failed)
}

// metaLocked encodes the links record: version ‖ owner ‖ record version
// u64 ‖ last put u64 (unix ns) ‖ peer quota key ‖ network quota key ‖
// size u32.
func (l *link) metaLocked() []byte {
	w := codec.NewWriter(1 + ed25519.PublicKeySize + 8 + 8 + 16 + 16 + 4)
	w.U8(linkMetaVersion)
	w.Fixed(l.owner[:])
	w.U64(l.version)
	w.U64(l.putAt.Load())
	w.Fixed(l.peer[:])
	w.Fixed(l.net[:])
	w.U32(uint32(l.size))
	return w.Bytes()
}

func parseLinkMeta(id, v []byte) (*link, error) {
	r := codec.NewReader(v)
	if ver := r.U8(); r.Err() == nil && ver != linkMetaVersion {
		r.Fail(fmt.Errorf("%w: version %d", codec.ErrInvalid, ver))
	}
	l := &link{}
	copy(l.owner[:], r.Fixed(ed25519.PublicKeySize))
	l.version = r.U64()
	l.putAt.Store(r.U64())
	copy(l.peer[:], r.Fixed(16))
	copy(l.net[:], r.Fixed(16))
	l.size = int(r.U32())
	if err := r.Done(); err != nil || len(id) != LinkIDSize || l.size > MaxLinkRecord {
		return nil, fmt.Errorf("relay: corrupt link record: %v", err)
	}
	copy(l.id[:], id)
	return l, nil
}

// linkQuotaKey is the quota key of a putting peer: a cut hash of its
// peer ID, kept with its records so the count holds across restarts
// without the store holding peer IDs.
func linkQuotaKey(peerKey string) [16]byte {
	h := sha256.Sum256([]byte("hush/v1/link-quota\x00" + peerKey))
	return [16]byte(h[:16])
}

// linkNetQuotaKey is the same for a putting network (ipKey). As for
// blobs (netQuotaKey) it hides an address only from a glance.
func linkNetQuotaKey(ipKey string) [16]byte {
	h := sha256.Sum256([]byte("hush/v1/link-ip-quota\x00" + ipKey))
	return [16]byte(h[:16])
}

// linkStore is the relay's link store, /hush/link/1
// (docs/protocol/addresses.md §20.3): small opaque records, each named by
// an id and owned by the Ed25519 key of its first put, kept in the
// relay's store (tables links and linkdata) until their owner deletes
// them or LinkTTL passes after their last put.
type linkStore struct {
	s    *Server
	on   bool
	meta *store.Table
	data *store.Table

	m      Metrics
	logged logLimit // of quota refusals

	// mu guards the fields below.
	mu     sync.Mutex
	byID   map[LinkID]*link
	byPeer map[[16]byte]int // live records per peer of their first put
	byNet  map[[16]byte]int // live records per network of their first put
}

// newLinkStore loads the link metadata, not the records (at most
// LinkMaxRecords of 64 KiB: read only by gets). Metadata and record are
// written and deleted together in one batch; should a repaired store
// have lost a record, its get answers LinkUnknown and its metadata goes
// with the TTL. It is off (on false) with NoLinkStore.
func newLinkStore(s *Server) (*linkStore, error) {
	ls := &linkStore{s: s, m: s.cfg.Metrics, meta: s.t.links, data: s.t.linkData,
		byID: make(map[LinkID]*link), byPeer: make(map[[16]byte]int), byNet: make(map[[16]byte]int)}
	if s.cfg.NoLinkStore {
		return ls, nil
	}
	ls.on = true
	err := ls.meta.Scan(func(id, v []byte) error {
		l, err := parseLinkMeta(id, v)
		if err != nil {
			return err
		}
		ls.add(l)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("relay: load link records: %w", err)
	}
	ls.m.LinkRecords(int64(len(ls.byID)))
	return ls, nil
}

// add puts l into the index and counts it; ls.mu must be held (or ls not
// yet shared).
func (ls *linkStore) add(l *link) {
	ls.byID[l.id] = l
	ls.byPeer[l.peer]++
	ls.byNet[l.net]++
}

// forgetLocked drops l from the index and gives back its count; ls.mu
// must be held (or ls not yet shared).
func (ls *linkStore) forgetLocked(l *link) {
	if ls.byID[l.id] != l {
		return
	}
	delete(ls.byID, l.id)
	if ls.byPeer[l.peer]--; ls.byPeer[l.peer] <= 0 {
		delete(ls.byPeer, l.peer)
	}
	if ls.byNet[l.net]--; ls.byNet[l.net] <= 0 {
		delete(ls.byNet, l.net)
	}
}

// forget is forgetLocked taking ls.mu, and reports the gauge.
func (ls *linkStore) forget(l *link) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.forgetLocked(l)
	ls.m.LinkRecords(int64(len(ls.byID)))
}

func (ls *linkStore) lookup(id LinkID) *link {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.byID[id]
}

// count is the number of live records.
func (ls *linkStore) count() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return len(ls.byID)
}

// deleteLocked deletes l (l.mu held), for reason: its metadata and record
// in one synced commit.
func (ls *linkStore) deleteLocked(l *link, reason string) error {
	batch := ls.s.db.Batch()
	batch.Delete(ls.meta, l.id[:])
	batch.Delete(ls.data, l.id[:])
	if err := ls.s.db.CommitGrouped(batch); err != nil {
		ls.s.log.Error("link delete failed", "err", err)
		return err
	}
	l.gone = true
	ls.forget(l)
	ls.m.LinkDeleted(reason)
	return nil
}

// sweep deletes the records whose last put is LinkTTL old.
func (ls *linkStore) sweep(now time.Time) {
	if !ls.on {
		return
	}
	ttl, t := uint64(time.Duration(ls.s.cfg.LinkTTL)), uint64(now.UnixNano())
	due := func(l *link) bool { return l.putAt.Load()+ttl <= t }
	ls.mu.Lock()
	var old []*link
	for _, l := range ls.byID {
		if due(l) {
			old = append(old, l)
		}
	}
	ls.mu.Unlock()
	n := 0
	for _, l := range old {
		l.mu.Lock()
		// A put since the scan renewed it.
		if !l.gone && due(l) && ls.deleteLocked(l, LinkReasonTTL) == nil {
			n++
		}
		l.mu.Unlock()
	}
	if n > 0 {
		ls.s.log.Debug("link records expired", "count", n)
	}
}

// handle serves one /hush/link/1 stream: one request, one answer, then
// the stream is closed.
func (ls *linkStore) handle(st network.Stream) {
	s := ls.s
	if !s.track(st) {
		st.Reset()
		return
	}
	defer s.untrack(st)
	defer st.Close()
	c := &conn{st: st, peerKey: string(st.Conn().RemotePeer()), ipKey: ipKey(st)}
	timeout := time.Duration(s.cfg.RequestTimeout)
	frame := s.frames.hold(c.ipKey)
	defer frame.release()
	st.SetDeadline(time.Now().Add(timeout))
	bad := func() { wire.WriteFrame(st, []byte{byte(LinkBad)}) }
	payload, err := frame.readMax(st, linkMaxFrame)
	if err != nil {
		switch {
		case errors.Is(err, errFrameBudget):
			s.frames.refused()
			st.Reset()
		case errors.Is(err, wire.ErrFrameTooLarge), errors.Is(err, errCutFrame):
			bad()
		}
		return
	}
	q, err := decodeLinkReq(payload)
	if err != nil {
		bad()
		return
	}
	out := ls.serve(c, q)
	if !frame.grow(wire.HeaderSize + len(out)) {
		s.frames.refused()
		st.Reset()
		return
	}
	wire.WriteFrame(st, out)
}

// serve answers one request.
func (ls *linkStore) serve(c *conn, q *linkReq) []byte {
	if !ls.s.allow(c) {
		ls.m.LinkRefused(LinkReasonRateLimited)
		return []byte{byte(LinkBusy)}
	}
	switch q.kind {
	case linkKindPut:
		return []byte{byte(ls.put(c, q))}
	case linkKindGet:
		return ls.get(q.id)
	default: // linkKindDelete
		return []byte{byte(ls.delete(q))}
	}
}

func (ls *linkStore) refuse(reason string, st LinkStatus) LinkStatus {
	ls.m.LinkRefused(reason)
	return st
}

// put stores a record: a new one (its owner bound, counted against the
// putting peer's, its network's and the store's caps) or a replacement
// by its owner with a higher version. Either renews its TTL.
func (ls *linkStore) put(c *conn, q *linkReq) LinkStatus {
	if len(q.record) > MaxLinkRecord {
		return ls.refuse(LinkReasonTooLarge, LinkTooLarge)
	}
	if !ed25519.Verify(q.owner[:], linkPutMessage(q.id, q.version, q.record), q.sig[:]) {
		return ls.refuse(LinkReasonDenied, LinkDenied)
	}
	for {
		ls.mu.Lock()
		l := ls.byID[q.id]
		if l == nil {
			return ls.create(c, q) // unlocks ls.mu
		}
		ls.mu.Unlock()
		l.mu.Lock()
		if l.gone {
			// Deleted meanwhile (and so out of the index): a new record.
			l.mu.Unlock()
			continue
		}
		st := ls.replaceLocked(l, q)
		l.mu.Unlock()
		return st
	}
}

// create stores a new record; ls.mu is held and create releases it.
func (ls *linkStore) create(c *conn, q *linkReq) LinkStatus {
	cfg := ls.s.cfg
	l := &link{id: q.id, owner: q.owner, size: len(q.record), version: q.version,
		peer: linkQuotaKey(c.peerKey), net: linkNetQuotaKey(c.ipKey)}
	var refused string
	switch {
	case ls.byPeer[l.peer] >= cfg.LinkRecordsPerPeer:
		refused = LinkReasonPeerQuota
	case ls.byNet[l.net] >= cfg.LinkRecordsPerIP:
		refused = LinkReasonIPQuota
	case len(ls.byID) >= cfg.LinkMaxRecords:
		refused = LinkReasonFull
	}
	if refused != "" {
		ls.mu.Unlock()
		if ls.logged.allow() {
			ls.s.log.Warn("link put refused: the putting peer, its network or the relay holds its cap of link records",
				"reason", refused, "link_records_per_peer", cfg.LinkRecordsPerPeer,
				"link_records_per_ip", cfg.LinkRecordsPerIP, "link_max_records", cfg.LinkMaxRecords)
		}
		return ls.refuse(refused, LinkOverQuota)
	}
	l.putAt.Store(uint64(cfg.Now().UnixNano()))
	// Held until committed: a put or delete of this id waits for it.
	l.mu.Lock()
	defer l.mu.Unlock()
	ls.add(l)
	ls.m.LinkRecords(int64(len(ls.byID)))
	ls.mu.Unlock()
	if err := ls.commitLocked(l, q.record); err != nil {
		l.gone = true
		ls.forget(l)
		return LinkBusy
	}
	ls.m.LinkPut()
	return LinkOK
}

// replaceLocked replaces l's record (l.mu held) if q is its owner's and
// of a higher version.
func (ls *linkStore) replaceLocked(l *link, q *linkReq) LinkStatus {
	if q.owner != l.owner || q.version <= l.version {
		return ls.refuse(LinkReasonDenied, LinkDenied)
	}
	prevVersion, prevPut, prevSize := l.version, l.putAt.Load(), l.size
	l.version, l.size = q.version, len(q.record)
	l.putAt.Store(uint64(ls.s.cfg.Now().UnixNano()))
	if err := ls.commitLocked(l, q.record); err != nil {
		l.version, l.size = prevVersion, prevSize
		l.putAt.Store(prevPut)
		return LinkBusy
	}
	ls.m.LinkPut()
	return LinkOK
}

// commitLocked writes l's metadata and record in one synced commit.
func (ls *linkStore) commitLocked(l *link, record []byte) error {
	batch := ls.s.db.Batch()
	batch.Put(ls.meta, l.id[:], l.metaLocked())
	batch.Put(ls.data, l.id[:], record)
	if err := ls.s.db.CommitGrouped(batch); err != nil {
		ls.s.log.Error("link put failed", "err", err)
		return err
	}
	return nil
}

// get answers a get: the record, or LinkUnknown. The record is read from
// the store; a record whose first put is still being committed is not
// there yet, so it is unknown until then.
func (ls *linkStore) get(id LinkID) []byte {
	if ls.lookup(id) == nil {
		ls.m.LinkGet(false)
		return []byte{byte(LinkUnknown)}
	}
	v, err := ls.data.Get(id[:])
	if errors.Is(err, store.ErrNotFound) {
		ls.m.LinkGet(false)
		return []byte{byte(LinkUnknown)}
	}
	if err != nil {
		ls.s.log.Error("link read failed", "err", err)
		return []byte{byte(LinkBusy)}
	}
	ls.m.LinkGet(true)
	return encodeLinkGot(v)
}

// delete deletes a record on its owner's signed request of a version
// above the stored one.
func (ls *linkStore) delete(q *linkReq) LinkStatus {
	l := ls.lookup(q.id)
	if l == nil {
		return LinkUnknown
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gone {
		return LinkUnknown
	}
	if q.version <= l.version || !ed25519.Verify(l.owner[:], linkDeleteMessage(q.id, q.version), q.sig[:]) {
		return ls.refuse(LinkReasonDenied, LinkDenied)
	}
	if ls.deleteLocked(l, LinkReasonOwner) != nil {
		return LinkBusy
	}
	return LinkOK
}
