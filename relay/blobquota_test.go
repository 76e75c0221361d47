package relay

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/hushnet/hush/internal/store"
)

// blobMetrics records the blob store's metrics.
type blobMetrics struct {
	NopMetrics
	mu                            sync.Mutex
	blobs, bytes, held, free      int64 // the last BlobsStored
	puts, completed, dones, reads int
	uploaded, served              int
	refused, deleted              map[string]int
	gaugeCalls                    int
}

func newBlobMetrics() *blobMetrics {
	return &blobMetrics{refused: map[string]int{}, deleted: map[string]int{}}
}

func (m *blobMetrics) BlobsStored(blobs, bytes, held, free int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blobs, m.bytes, m.held, m.free = blobs, bytes, held, free
	m.gaugeCalls++
}
func (m *blobMetrics) BlobPut()       { m.mu.Lock(); m.puts++; m.mu.Unlock() }
func (m *blobMetrics) BlobCompleted() { m.mu.Lock(); m.completed++; m.mu.Unlock() }
func (m *blobMetrics) BlobDone()      { m.mu.Lock(); m.dones++; m.mu.Unlock() }
func (m *blobMetrics) BlobUploaded(n int) {
	m.mu.Lock()
	m.uploaded += n
	m.mu.Unlock()
}
func (m *blobMetrics) BlobRead(n int) {
	m.mu.Lock()
	m.reads++
	m.served += n
	m.mu.Unlock()
}
func (m *blobMetrics) BlobRefused(reason string) {
	m.mu.Lock()
	m.refused[reason]++
	m.mu.Unlock()
}
func (m *blobMetrics) BlobDeleted(reason string) {
	m.mu.Lock()
	m.deleted[reason]++
	m.mu.Unlock()
}

// gauges is the last BlobsStored: blobs, bytes, held, free.
func (m *blobMetrics) gauges() [4]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return [4]int64{m.blobs, m.bytes, m.held, m.free}
}

func (m *blobMetrics) counts() (refused, deleted map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	refused, deleted = map[string]int{}, map[string]int{}
	for k, v := range m.refused {
		refused[k] = v
	}
	for k, v := range m.deleted {
		deleted[k] = v
	}
	return refused, deleted
}

func sameCounts(got, want map[string]int) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// TestBlobQuotaPerIP: throw-away identities from one address (the
// loopback) each stay under blob_quota_per_peer but together reach
// blob_quota_per_ip, and are refused over quota before a byte is
// stored; the count holds across a restart and is given back when a
// blob goes.
func TestBlobQuotaPerIP(t *testing.T) {
	met := newBlobMetrics()
	const peerQuota, netQuota = 3 << 20, 5 << 20
	r := startBlobRelay(t, Config{BlobQuotaPerPeer: peerQuota, BlobQuotaPerIP: netQuota, Metrics: met})
	var c Client
	ctx := ctxT(t)
	type upload struct {
		data []byte
		hash BlobHash
	}
	put := func(h host.Host, n int, receipts []BlobHash) (upload, int64, error) {
		data, hash := randomBlob(t, n)
		sent, err := c.PutBlob(ctx, h, r.info, hash, int64(n), receipts, bytes.NewReader(data))
		return upload{data, hash}, sent, err
	}
	refused := func(what string, h host.Host, n int) {
		t.Helper()
		files := len(blobFiles(t, r))
		_, sent, err := put(h, n, nil)
		if !errors.Is(err, ErrBlobOverQuota) || sent != 0 {
			t.Fatalf("%s: sent %d, %v; want over quota", what, sent, err)
		}
		if len(blobFiles(t, r)) != files {
			t.Fatalf("%s: the blob directory grew", what)
		}
	}
	quotaLeft := func(h host.Host) uint64 {
		t.Helper()
		l, err := c.BlobLimits(ctx, h, r.info)
		if err != nil {
			t.Fatal(err)
		}
		if l.QuotaPerPeer != peerQuota {
			t.Fatalf("quota_per_peer %d", l.QuotaPerPeer)
		}
		return l.QuotaLeft
	}

	var seed [32]byte
	tok := BlobToken(seed, []byte("device"))
	h1, h2, h3 := newHost(t), newHost(t), newHost(t)
	first, _, err := put(h1, 2<<20, []BlobHash{BlobTokenHash(tok)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := put(h2, 2<<20, nil); err != nil {
		t.Fatal(err)
	}
	// A fresh identity has its whole peer quota, but its network only
	// 1 MiB left: quota_left says the less.
	if left := quotaLeft(h3); left != netQuota-4<<20 {
		t.Fatalf("quota left %d, want %d", left, netQuota-4<<20)
	}
	refused("a third identity over the network's quota", h3, 2<<20)
	if _, _, err := put(h3, 1<<20, nil); err != nil { // exactly the network's quota
		t.Fatal(err)
	}
	refused("a fourth identity, the network's quota full", newHost(t), 64<<10)
	refused("a peer over its own quota", h2, 2<<20)
	got, _ := met.counts()
	if want := map[string]int{BlobReasonIPQuota: 2, BlobReasonPeerQuota: 1}; !sameCounts(got, want) {
		t.Fatalf("refusals %v, want %v", got, want)
	}

	// The network's count is stored with the blobs: a restart keeps it.
	r.restart(t)
	if left := quotaLeft(newHost(t)); left != 0 {
		t.Fatalf("quota left after a restart %d, want 0", left)
	}
	refused("a new identity after a restart", newHost(t), 64<<10)

	// A blob that goes gives its charge back to its network.
	if _, err := c.BlobDone(ctx, newHost(t), r.info, first.hash, tok); err != nil {
		t.Fatal(err)
	}
	h5 := newHost(t)
	if left := quotaLeft(h5); left != 2<<20 {
		t.Fatalf("quota left after a deletion %d, want %d", left, 2<<20)
	}
	if _, _, err := put(h5, 2<<20, nil); err != nil {
		t.Fatal(err)
	}
	refused("the network's quota full again", newHost(t), 64<<10)
	got, deleted := met.counts()
	if want := map[string]int{BlobReasonIPQuota: 4, BlobReasonPeerQuota: 1}; !sameCounts(got, want) {
		t.Fatalf("refusals %v, want %v", got, want)
	}
	if want := map[string]int{BlobReasonReceipts: 1}; !sameCounts(deleted, want) {
		t.Fatalf("deletions %v, want %v", deleted, want)
	}
}

// TestBlobRecordVersion1: a blob stored before the network quota (a
// version 1 record) loads, counts towards its peer and the total but no
// network, and is written as version 2 when it changes.
func TestBlobRecordVersion1(t *testing.T) {
	r := startBlobRelay(t, Config{BlobQuotaPerPeer: 3 << 20, BlobQuotaPerIP: 3 << 20})
	var c Client
	ctx := ctxT(t)
	h := newHost(t)
	data, hash := randomBlob(t, 2<<20)
	if _, err := c.PutBlob(ctx, h, r.info, hash, int64(len(data)), nil, newCutReader(data, 1<<20, false)); err == nil {
		t.Fatal("cut upload succeeded")
	}
	if l, _ := c.BlobLimits(ctx, newHost(t), r.info); l.QuotaLeft != 1<<20 {
		t.Fatalf("quota left %d before", l.QuotaLeft)
	}
	r.stop()
	// Rewrite the record as version 1 wrote it.
	db, err := store.Open(r.dir, StoreConfig(store.Config{}))
	if err != nil {
		t.Fatal(err)
	}
	blobs := db.Table(tableBlobs)
	v, err := blobs.Get(hash[:])
	if err != nil {
		t.Fatal(err)
	}
	if v[0] != blobRecordVersion {
		t.Fatalf("record version %d", v[0])
	}
	old := append([]byte{1}, v[1:len(v)-16]...)
	if err := blobs.Put(hash[:], old); err != nil {
		t.Fatal(err)
	}
	db.Close()

	r.start(t)
	// Its network is not known: another identity of it has the whole
	// network quota; its own peer still has 1 MiB left.
	if l, _ := c.BlobLimits(ctx, newHost(t), r.info); l.QuotaLeft != 3<<20 || l.Free != DefaultBlobStoreBytes-2<<20 {
		t.Fatalf("limits after loading a version 1 record: %+v", l)
	}
	if l, _ := c.BlobLimits(ctx, h, r.info); l.QuotaLeft != 1<<20 {
		t.Fatalf("its peer's quota left %d", l.QuotaLeft)
	}
	if sent, err := c.PutBlob(ctx, h, r.info, hash, int64(len(data)), nil, bytes.NewReader(data)); err != nil || sent != 1<<20 {
		t.Fatalf("resume: sent %d, %v", sent, err)
	}
	if got := readAll(t, &c, h, r, hash); !bytes.Equal(got, data) {
		t.Fatal("downloaded blob differs")
	}
	r.stop()
	db, err = store.Open(r.dir, StoreConfig(store.Config{}))
	if err != nil {
		t.Fatal(err)
	}
	v, err = db.Table(tableBlobs).Get(hash[:])
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseBlob(hash[:], v)
	if err != nil || v[0] != blobRecordVersion || b.net != ([16]byte{}) || !b.complete {
		t.Fatalf("record after the upload: version %d, %+v, %v", v[0], b, err)
	}
	r.start(t)
}

// TestBlobMetrics: every blob store event is counted, and the gauges
// follow the store.
func TestBlobMetrics(t *testing.T) {
	met := newBlobMetrics()
	clock := newFakeClock()
	const total = 16 << 20
	r := startBlobRelay(t, Config{Metrics: met, Now: clock.Now, BlobTTL: Duration(time.Hour),
		MaxBlob: 8 << 20, BlobQuotaPerPeer: 11 << 20, BlobStoreBytes: total})
	var c Client
	ctx := ctxT(t)
	h := newHost(t)
	gauges := func(what string, want [4]int64) {
		t.Helper()
		if got := met.gauges(); got != want {
			t.Fatalf("%s: gauges (blobs, bytes, held, free) %v, want %v", what, got, want)
		}
	}
	gauges("at start", [4]int64{0, 0, 0, total})

	var seed [32]byte
	tokA, tokB := BlobToken(seed, []byte("a")), BlobToken(seed, []byte("b"))
	data, hash := randomBlob(t, 3<<20+5)
	n := int64(len(data))
	if _, err := c.PutBlob(ctx, h, r.info, hash, n, []BlobHash{BlobTokenHash(tokA), BlobTokenHash(tokB)},
		newCutReader(data, 1<<20, false)); err == nil {
		t.Fatal("cut upload succeeded")
	}
	gauges("half uploaded", [4]int64{1, n, 1 << 20, total - n})
	if _, err := c.PutBlob(ctx, h, r.info, hash, n, nil, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	gauges("uploaded", [4]int64{1, n, n, total - n})
	tiny, tinyHash := randomBlob(t, 100)
	if _, err := c.PutBlob(ctx, h, r.info, tinyHash, 100, nil, bytes.NewReader(tiny)); err != nil {
		t.Fatal(err)
	}
	gauges("a tiny blob", [4]int64{2, n + MinBlobCharge, n + 100, total - n - MinBlobCharge})
	if got := readAll(t, &c, newHost(t), r, hash); !bytes.Equal(got, data) {
		t.Fatal("downloaded blob differs")
	}
	for _, tok := range [][32]byte{tokA, tokA, tokB} { // tokA twice: counted once
		if _, err := c.BlobDone(ctx, h, r.info, hash, tok); err != nil {
			t.Fatal(err)
		}
	}
	gauges("after the receipts", [4]int64{1, MinBlobCharge, 100, total - MinBlobCharge})

	bad, badHash := randomBlob(t, 1<<20)
	bad[0] ^= 1
	if _, err := c.PutBlob(ctx, h, r.info, badHash, int64(len(bad)), nil, bytes.NewReader(bad)); !errors.Is(err, ErrBlobHashMismatch) {
		t.Fatalf("mismatch: %v", err)
	}
	for _, p := range []struct {
		n    int64
		want error
	}{{8<<20 + 1, ErrBlobTooLarge}, {8 << 20, nil}, {4 << 20, ErrBlobOverQuota}, {2 << 20, nil}} {
		d, hh := randomBlob(t, int(p.n))
		if _, err := c.PutBlob(ctx, h, r.info, hh, p.n, nil, bytes.NewReader(d)); !errors.Is(err, p.want) {
			t.Fatalf("put of %d: %v, want %v", p.n, err, p.want)
		}
	}
	d, hh := randomBlob(t, 6<<20)
	if _, err := c.PutBlob(ctx, newHost(t), r.info, hh, int64(len(d)), nil, bytes.NewReader(d)); !errors.Is(err, ErrBlobFull) {
		t.Fatalf("put over the total: %v", err)
	}
	stored := int64(MinBlobCharge + 8<<20 + 2<<20)
	gauges("before the TTL", [4]int64{3, stored, 100 + 8<<20 + 2<<20, total - stored})
	clock.Add(time.Hour)
	r.srv.blobs.sweep(clock.Now())
	gauges("after the TTL", [4]int64{0, 0, 0, total})

	met.mu.Lock()
	defer met.mu.Unlock()
	wantUp := int(n) + 100 + 8<<20 + 2<<20 // not the mismatched write
	if met.puts != 5 || met.completed != 4 || met.dones != 2 || met.uploaded != wantUp ||
		met.reads != 4 || met.served != int(n) {
		t.Fatalf("puts %d completed %d dones %d uploaded %d (want %d) reads %d served %d",
			met.puts, met.completed, met.dones, met.uploaded, wantUp, met.reads, met.served)
	}
	if want := map[string]int{BlobReasonTooLarge: 1, BlobReasonPeerQuota: 1, BlobReasonFull: 1}; !sameCounts(met.refused, want) {
		t.Fatalf("refusals %v, want %v", met.refused, want)
	}
	if want := map[string]int{BlobReasonReceipts: 1, BlobReasonHashMismatch: 1, BlobReasonTTL: 3}; !sameCounts(met.deleted, want) {
		t.Fatalf("deletions %v, want %v", met.deleted, want)
	}
}
