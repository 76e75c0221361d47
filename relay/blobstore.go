package relay

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/internal/wire"
)

// Tables of the blob store (docs/RELAY.md "Storage").
const (
	tableBlobs      = "blobs"
	tableBlobTokens = "blobtokens"
)

// blobFileIDSize is the size of a blob file's random name (hex on disk):
// the files do not show the blobs' hashes, which are capabilities.
const blobFileIDSize = 16

// blobStore is the relay's blob store, /hush/blob/1
// (docs/protocol/files.md §19.5): blobs in files under Config.BlobDir,
// written in order and fsynced before a write is acknowledged; their
// metadata in the relay's store.
type blobStore struct {
	s      *Server
	on     bool
	dir    string
	blobs  *store.Table
	tokens *store.Table

	m      Metrics
	logged logLimit // of quota refusals

	// mu guards the fields below.
	mu      sync.Mutex
	byHash  map[BlobHash]*blob
	used    uint64              // charge of all live blobs
	held    uint64              // have of all live blobs: the bytes of their files
	byQuota map[[16]byte]uint64 // charge of live blobs per uploader
	byNet   map[[16]byte]uint64 // charge of live blobs per uploading network
}

// newBlobStore loads the blob records and brings the files in line with
// them: a file is cut back to what its record says was acknowledged, a
// blob whose acknowledged bytes are missing is deleted, and files of no
// blob are removed. It is off (on false) with NoBlobStore or no BlobDir.
func newBlobStore(s *Server) (*blobStore, error) {
	bs := &blobStore{s: s, dir: s.cfg.BlobDir, m: s.cfg.Metrics, byHash: make(map[BlobHash]*blob),
		byQuota: make(map[[16]byte]uint64), byNet: make(map[[16]byte]uint64)}
	if s.cfg.NoBlobStore || bs.dir == "" {
		return bs, nil
	}
	bs.on = true
	bs.blobs, bs.tokens = s.t.blobs, s.t.blobTokens
	if err := os.MkdirAll(bs.dir, 0o700); err != nil {
		return nil, fmt.Errorf("relay: blob directory: %w", err)
	}
	var lost []*blob
	err := bs.blobs.Scan(func(id, v []byte) error {
		b, err := parseBlob(id, v)
		if err != nil {
			return err
		}
		switch fi, err := os.Stat(bs.path(b)); {
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return err
		case err != nil || uint64(fi.Size()) < b.have:
			if b.have > 0 {
				lost = append(lost, b)
				return nil
			}
		case uint64(fi.Size()) > b.have:
			// Bytes of a write never acknowledged.
			if err := os.Truncate(bs.path(b), int64(b.have)); err != nil {
				return err
			}
		}
		bs.add(b)
		bs.held += b.have
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("relay: load blobs: %w", err)
	}
	batch := s.db.Batch()
	for _, b := range lost {
		s.log.Warn("blob file lost or short: blob deleted")
		batch.Delete(bs.blobs, b.hash[:])
		batch.Delete(bs.tokens, b.hash[:])
		os.Remove(bs.path(b))
		bs.m.BlobDeleted(BlobReasonLost)
	}
	err = bs.tokens.Scan(func(id, _ []byte) error {
		if len(id) != BlobHashSize || bs.byHash[BlobHash(id)] == nil {
			batch.Delete(bs.tokens, id) // of no blob
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("relay: load blob tokens: %w", err)
	}
	if err := batch.Commit(); err != nil {
		return nil, fmt.Errorf("relay: load blobs: %w", err)
	}
	bs.gaugesLocked() // nobody else has bs yet
	return bs, bs.removeStrays()
}

// removeStrays removes the files of the blob directory that belong to no
// blob (a put whose record never committed, a blob deleted by a relay
// that stopped before removing its file). Names that are not blob file
// names are left alone (the directory may be shared by mistake) and
// logged.
func (bs *blobStore) removeStrays() error {
	known := make(map[string]bool, len(bs.byHash))
	for _, b := range bs.byHash {
		known[hex.EncodeToString(b.file[:])] = true
	}
	entries, err := os.ReadDir(bs.dir)
	if err != nil {
		return fmt.Errorf("relay: blob directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if id, err := hex.DecodeString(name); err != nil || len(id) != blobFileIDSize || !e.Type().IsRegular() {
			bs.s.log.Warn("blob directory holds a file that is not a blob; left alone", "name", name)
			continue
		}
		if !known[name] {
			if err := os.Remove(filepath.Join(bs.dir, name)); err != nil {
				return fmt.Errorf("relay: blob directory: %w", err)
			}
		}
	}
	return nil
}

func (bs *blobStore) path(b *blob) string {
	return filepath.Join(bs.dir, hex.EncodeToString(b.file[:]))
}

// quotaKey is the quota key of an uploading peer: a hash of its peer ID
// (stored with its blobs, so the quota holds across restarts without
// the store holding peer IDs).
func quotaKey(peerKey string) [16]byte {
	h := sha256.Sum256([]byte("hush/v1/blob-quota\x00" + peerKey))
	return [16]byte(h[:16])
}

// netQuotaKey is the quota key of an uploading network (ipKey): a hash
// of it, stored with its blobs so the quota holds across restarts. It
// hides an address only from a glance: an IPv4 address is found again
// by trying all of them. The zero key is no network's (blobs put before
// the network quota counted towards none).
func netQuotaKey(ipKey string) [16]byte {
	h := sha256.Sum256([]byte("hush/v1/blob-ip-quota\x00" + ipKey))
	return [16]byte(h[:16])
}

// add puts b into the index and counts its charge; bs.mu must be held
// (or bs not yet shared).
func (bs *blobStore) add(b *blob) {
	bs.byHash[b.hash] = b
	bs.used += b.charge()
	bs.byQuota[b.quota] += b.charge()
	bs.byNet[b.net] += b.charge()
}

// gaugesLocked reports the store's gauges; bs.mu must be held (so that
// the last report is the newest state).
func (bs *blobStore) gaugesLocked() {
	total := uint64(bs.s.cfg.BlobStoreBytes)
	bs.m.BlobsStored(int64(len(bs.byHash)), int64(bs.used), int64(bs.held), int64(total-min(total, bs.used)))
}

func (bs *blobStore) lookup(h BlobHash) *blob {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return bs.byHash[h]
}

// forget drops b from the index and gives back its charge; b.mu is held.
func (bs *blobStore) forget(b *blob) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bs.byHash[b.hash] != b {
		return
	}
	delete(bs.byHash, b.hash)
	bs.used -= b.charge()
	bs.held -= b.have
	if bs.byQuota[b.quota] -= b.charge(); bs.byQuota[b.quota] == 0 {
		delete(bs.byQuota, b.quota)
	}
	if bs.byNet[b.net] -= b.charge(); bs.byNet[b.net] == 0 {
		delete(bs.byNet, b.net)
	}
	bs.gaugesLocked()
}

// deleteLocked deletes b, for reason (a BlobReason): its records
// (committed, synced), then its file.
func (bs *blobStore) deleteLocked(b *blob, reason string) error {
	batch := bs.s.db.Batch()
	batch.Delete(bs.blobs, b.hash[:])
	batch.Delete(bs.tokens, b.hash[:])
	if err := bs.s.db.CommitGrouped(batch); err != nil {
		bs.s.log.Error("blob delete failed", "err", err)
		return err
	}
	b.gone = true
	if err := os.Remove(bs.path(b)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// Removed as a stray at the next start.
		bs.s.log.Error("blob file not removed", "err", err)
	}
	bs.forget(b)
	bs.m.BlobDeleted(reason)
	return nil
}

// sweep deletes the blobs whose TTL has passed, uploaded or not.
func (bs *blobStore) sweep(now time.Time) {
	if !bs.on {
		return
	}
	ttl, t := time.Duration(bs.s.cfg.BlobTTL), uint64(now.UnixNano())
	bs.mu.Lock()
	var due []*blob
	for _, b := range bs.byHash {
		if b.dueAt(ttl) <= t {
			due = append(due, b)
		}
	}
	bs.mu.Unlock()
	n := 0
	for _, b := range due {
		b.mu.Lock()
		if !b.gone && bs.deleteLocked(b, BlobReasonTTL) == nil {
			n++
		}
		b.mu.Unlock()
	}
	if n > 0 {
		bs.s.log.Debug("blobs expired", "count", n)
	}
}

// handle serves one /hush/blob/1 stream: requests one at a time, each
// answered in order (a client may send several before reading).
func (bs *blobStore) handle(st network.Stream) {
	s := bs.s
	if !s.track(st) {
		st.Reset()
		return
	}
	defer s.untrack(st)
	defer st.Close()
	c := &conn{st: st, peerKey: string(st.Conn().RemotePeer()), ipKey: ipKey(st)}
	timeout := time.Duration(s.cfg.RequestTimeout)
	// At shutdown a blob stream ends at once, an answer being written
	// too: what was acknowledged is on disk, and a downloader that reads
	// slowly must not hold the relay's stop for a request deadline.
	s.lifeMu.Lock()
	ctx := s.runCtx
	s.lifeMu.Unlock()
	defer context.AfterFunc(ctx, func() { st.SetDeadline(time.Now()) })()
	badRequest := func() {
		st.SetWriteDeadline(time.Now().Add(timeout))
		wire.WriteFrame(st, []byte{byte(BlobBadRequest)})
	}
	for {
		frame := s.frames.hold(c.ipKey)
		st.SetReadDeadline(time.Now().Add(timeout))
		if ctx.Err() != nil {
			return // the deadline may have been set before this one
		}
		payload, err := frame.readMax(st, blobMaxFrame)
		if err != nil {
			frame.release()
			switch {
			case errors.Is(err, errFrameBudget):
				s.frames.refused()
				st.Reset()
			case errors.Is(err, wire.ErrFrameTooLarge), errors.Is(err, errCutFrame):
				badRequest()
			}
			return
		}
		st.SetDeadline(time.Now().Add(timeout))
		if ctx.Err() != nil {
			frame.release()
			return
		}
		q, err := decodeBlobReq(payload)
		if err != nil {
			frame.release()
			badRequest()
			return
		}
		out, err := bs.serve(c, q, frame)
		if err != nil {
			frame.release()
			s.frames.refused()
			st.Reset()
			return
		}
		_, err = st.Write(out)
		frame.release()
		if err != nil {
			return
		}
	}
}

// serve answers one request with a whole frame (length prefix
// included). An error means the frame budget had no room for the answer.
func (bs *blobStore) serve(c *conn, q *blobReq, frame *frameHold) ([]byte, error) {
	if !bs.s.allow(c) {
		switch q.kind {
		case blobKindLimits:
			return framed(encodeLimits(BlobBusy, BlobLimits{})), nil
		case blobKindRead:
			return framed([]byte{byte(BlobBusy), 0, 0, 0, 0}), nil
		case blobKindDone:
			return framed(encodeDone(BlobBusy, 0)), nil
		}
		return framed(encodeState(BlobBusy, BlobState{})), nil
	}
	switch q.kind {
	case blobKindLimits:
		return framed(encodeLimits(BlobOK, bs.limits(c))), nil
	case blobKindPut:
		return framed(encodeState(bs.put(c, q))), nil
	case blobKindWrite:
		return framed(encodeState(bs.write(q))), nil
	case blobKindStat:
		return framed(encodeState(bs.stat(q))), nil
	case blobKindRead:
		return bs.read(q, frame)
	default: // blobKindDone
		return framed(encodeDone(bs.done(q))), nil
	}
}

// framed prefixes payload with its frame length.
func framed(payload []byte) []byte {
	out := binary.BigEndian.AppendUint32(make([]byte, 0, wire.HeaderSize+len(payload)), uint32(len(payload)))
	return append(out, payload...)
}

func (bs *blobStore) limits(c *conn) BlobLimits {
	cfg := bs.s.cfg
	bs.mu.Lock()
	defer bs.mu.Unlock()
	total, quota, netQuota := uint64(cfg.BlobStoreBytes), uint64(cfg.BlobQuotaPerPeer), uint64(cfg.BlobQuotaPerIP)
	// The network's quota has no field of its own (the answer's layout
	// is fixed: files.md §19.5); quota_left is what the asking peer can
	// still put under both.
	return BlobLimits{
		MaxBlob:      uint64(cfg.MaxBlob),
		TTLSeconds:   uint64(time.Duration(cfg.BlobTTL) / time.Second),
		QuotaPerPeer: quota,
		Free:         total - min(total, bs.used),
		QuotaLeft: min(quota-min(quota, bs.byQuota[quotaKey(c.peerKey)]),
			netQuota-min(netQuota, bs.byNet[netQuotaKey(c.ipKey)])),
	}
}

// put reserves a blob: its size counts against the uploader's quota, its
// network's and the store's total from now on, before any byte. A put of
// a known hash and size changes nothing and answers as stat (so a
// resuming uploader learns where to go on, whichever its identity).
func (bs *blobStore) put(c *conn, q *blobReq) (BlobStatus, BlobState) {
	cfg := bs.s.cfg
	if q.size == 0 {
		return BlobBadRange, BlobState{}
	}
	if q.size > uint64(cfg.MaxBlob) {
		bs.m.BlobRefused(BlobReasonTooLarge)
		return BlobTooLarge, BlobState{}
	}
	key, net := quotaKey(c.peerKey), netQuotaKey(c.ipKey)
	bs.mu.Lock()
	if b := bs.byHash[q.hash]; b != nil {
		bs.mu.Unlock()
		b.mu.Lock()
		defer b.mu.Unlock()
		switch {
		case b.gone:
			return BlobUnknown, BlobState{}
		case b.size != q.size:
			return BlobBadRange, b.stateLocked()
		}
		return BlobOK, b.stateLocked()
	}
	now := uint64(bs.s.cfg.Now().UnixNano())
	b := &blob{hash: q.hash, size: q.size, created: now, expiry: now + uint64(cfg.BlobTTL),
		quota: key, net: net, receipts: len(q.receipts)}
	var refused string
	switch {
	case bs.byQuota[key]+b.charge() > uint64(cfg.BlobQuotaPerPeer):
		refused = BlobReasonPeerQuota
	case bs.byNet[net]+b.charge() > uint64(cfg.BlobQuotaPerIP):
		refused = BlobReasonIPQuota
	case bs.used+b.charge() > uint64(cfg.BlobStoreBytes):
		refused = BlobReasonFull
	}
	if refused != "" {
		bs.mu.Unlock()
		bs.m.BlobRefused(refused)
		if refused == BlobReasonFull {
			return BlobFull, BlobState{}
		}
		if bs.logged.allow() {
			bs.s.log.Warn("blob put refused: the uploading peer or its network holds its quota of live blobs",
				"reason", refused, "blob_quota_per_peer", cfg.BlobQuotaPerPeer, "blob_quota_per_ip", cfg.BlobQuotaPerIP)
		}
		return BlobOverQuota, BlobState{}
	}
	rand.Read(b.file[:])
	b.mu.Lock()
	defer b.mu.Unlock()
	bs.add(b)
	bs.gaugesLocked()
	bs.mu.Unlock()

	batch := bs.s.db.Batch()
	batch.Put(bs.blobs, b.hash[:], b.recordLocked())
	if len(q.receipts) > 0 {
		t := &blobTokens{hashes: q.receipts, presented: make([]bool, len(q.receipts))}
		batch.Put(bs.tokens, b.hash[:], t.encode())
	}
	if err := bs.s.db.CommitGrouped(batch); err != nil {
		bs.s.log.Error("blob put failed", "err", err)
		b.gone = true
		bs.forget(b)
		return BlobInternal, BlobState{}
	}
	bs.m.BlobPut()
	return BlobOK, b.stateLocked()
}

// write appends data at the blob's end: the bytes are written and
// fsynced, then the record's have (and complete) committed, then the
// write is acknowledged. The write that brings the blob to its size
// checks SHA-256 of the whole file against the hash, reading it back in
// small pieces; a mismatch deletes the blob.
func (bs *blobStore) write(q *blobReq) (BlobStatus, BlobState) {
	b := bs.lookup(q.hash)
	if b == nil {
		return BlobUnknown, BlobState{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gone {
		return BlobUnknown, BlobState{}
	}
	n := uint64(len(q.data))
	if b.complete || q.offset != b.have || n == 0 || n > b.size-b.have {
		return BlobBadRange, b.stateLocked()
	}
	path := bs.path(b)
	undo := func(what string, err error) (BlobStatus, BlobState) {
		bs.s.log.Error("blob "+what+" failed", "err", err)
		os.Truncate(path, int64(b.have))
		return BlobInternal, b.stateLocked()
	}
	if err := writeSynced(path, q.data, int64(q.offset)); err != nil {
		return undo("write", err)
	}
	if q.offset == 0 {
		if err := syncDir(bs.dir); err != nil {
			return undo("write", err)
		}
	}
	have, complete := b.have+n, false
	if have == b.size {
		sum, err := fileSHA256(path, int64(b.size))
		if err != nil {
			return undo("hash check", err)
		}
		if sum != b.hash {
			if err := bs.deleteLocked(b, BlobReasonHashMismatch); err != nil {
				return undo("delete", err)
			}
			return BlobHashMismatch, BlobState{Size: b.size}
		}
		complete = true
	}
	prevHave := b.have
	b.have, b.complete = have, complete
	batch := bs.s.db.Batch()
	batch.Put(bs.blobs, b.hash[:], b.recordLocked())
	if err := bs.s.db.CommitGrouped(batch); err != nil {
		b.have, b.complete = prevHave, false
		return undo("record", err)
	}
	bs.mu.Lock()
	bs.held += n
	bs.gaugesLocked()
	bs.mu.Unlock()
	bs.m.BlobUploaded(int(n))
	if complete {
		bs.m.BlobCompleted()
	}
	return BlobOK, b.stateLocked()
}

// writeSynced writes data at off in the file at path (created if need
// be) and fsyncs it.
func writeSynced(path string, data []byte, off int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, off); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir fsyncs a directory (so a new file's entry survives a crash).
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// fileSHA256 hashes the first size bytes of the file at path, streaming.
func fileSHA256(path string, size int64) (BlobHash, error) {
	f, err := os.Open(path)
	if err != nil {
		return BlobHash{}, err
	}
	defer f.Close()
	h := sha256.New()
	if n, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil || n != size {
		return BlobHash{}, fmt.Errorf("read %d of %d bytes: %v", n, size, err)
	}
	return BlobHash(h.Sum(nil)), nil
}

func (bs *blobStore) stat(q *blobReq) (BlobStatus, BlobState) {
	b := bs.lookup(q.hash)
	if b == nil {
		return BlobUnknown, BlobState{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gone {
		return BlobUnknown, BlobState{}
	}
	return BlobOK, b.stateLocked()
}

// read answers a read of a complete blob with up to BlobChunk bytes
// (fewer at its end), read from the file into the answer frame, which
// holds frame budget while it exists.
func (bs *blobStore) read(q *blobReq, frame *frameHold) ([]byte, error) {
	bare := func(st BlobStatus) ([]byte, error) { return framed([]byte{byte(st), 0, 0, 0, 0}), nil }
	b := bs.lookup(q.hash)
	if b == nil {
		return bare(BlobUnknown)
	}
	b.mu.Lock()
	switch {
	case b.gone:
		b.mu.Unlock()
		return bare(BlobUnknown)
	case !b.complete:
		b.mu.Unlock()
		return bare(BlobIncomplete)
	case q.length == 0 || q.length > BlobChunk || q.offset >= b.size:
		b.mu.Unlock()
		return bare(BlobBadRange)
	}
	n := min(q.length, b.size-q.offset)
	// A blob deleted from now on keeps its bytes for this open file.
	f, err := os.Open(bs.path(b))
	b.mu.Unlock()
	if err != nil {
		bs.s.log.Error("blob read failed", "err", err)
		return bare(BlobInternal)
	}
	defer f.Close()
	const head = wire.HeaderSize + 1 + 4
	if !frame.grow(head + int(n)) {
		return nil, errFrameBudget
	}
	out := make([]byte, head+n)
	binary.BigEndian.PutUint32(out, uint32(1+4+n))
	out[wire.HeaderSize] = byte(BlobOK)
	binary.BigEndian.PutUint32(out[wire.HeaderSize+1:], uint32(n))
	if _, err := f.ReadAt(out[head:], int64(q.offset)); err != nil {
		bs.s.log.Error("blob read failed", "err", err)
		return bare(BlobInternal)
	}
	bs.m.BlobRead(int(n))
	return out, nil
}

// done counts a receipt token: SHA-256(token) must be a registered hash
// not yet presented (one presented again changes nothing and is
// answered BlobOK). When the last one is in, the blob is deleted.
func (bs *blobStore) done(q *blobReq) (BlobStatus, int) {
	b := bs.lookup(q.hash)
	if b == nil {
		return BlobUnknown, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	left := b.receipts - b.presented
	switch {
	case b.gone:
		return BlobUnknown, 0
	case !b.complete:
		return BlobIncomplete, left
	case b.receipts == 0:
		return BlobBadToken, 0
	}
	v, err := bs.tokens.Get(b.hash[:])
	if err != nil {
		bs.s.log.Error("blob tokens read failed", "err", err)
		return BlobInternal, left
	}
	t, err := parseBlobTokens(v)
	if err != nil {
		bs.s.log.Error("blob tokens read failed", "err", err)
		return BlobInternal, left
	}
	th := BlobTokenHash(q.token)
	i := 0
	for i < len(t.hashes) && t.hashes[i] != th {
		i++
	}
	switch {
	case i == len(t.hashes):
		return BlobBadToken, left
	case t.presented[i]:
		return BlobOK, left
	case left == 1:
		if err := bs.deleteLocked(b, BlobReasonReceipts); err != nil {
			return BlobInternal, left
		}
		bs.m.BlobDone()
		return BlobOK, 0
	}
	t.presented[i] = true
	b.presented++
	batch := bs.s.db.Batch()
	batch.Put(bs.tokens, b.hash[:], t.encode())
	batch.Put(bs.blobs, b.hash[:], b.recordLocked())
	if err := bs.s.db.CommitGrouped(batch); err != nil {
		b.presented--
		bs.s.log.Error("blob receipt failed", "err", err)
		return BlobInternal, left
	}
	bs.m.BlobDone()
	return BlobOK, left - 1
}
