package relay

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/hushnet/hush/internal/testutil"
	"github.com/hushnet/hush/internal/wire"
)

// linkCounts are the link store's metrics so far.
type linkCounts struct {
	records         int64
	puts            int
	found, unknown  int
	deleted, refuse map[string]int
}

// linkMetrics records the link store's metrics.
type linkMetrics struct {
	NopMetrics
	mu sync.Mutex
	c  linkCounts
}

func newLinkMetrics() *linkMetrics {
	return &linkMetrics{c: linkCounts{deleted: map[string]int{}, refuse: map[string]int{}}}
}

func (m *linkMetrics) LinkRecords(n int64) { m.mu.Lock(); m.c.records = n; m.mu.Unlock() }
func (m *linkMetrics) LinkPut()            { m.mu.Lock(); m.c.puts++; m.mu.Unlock() }
func (m *linkMetrics) LinkGet(found bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if found {
		m.c.found++
	} else {
		m.c.unknown++
	}
}
func (m *linkMetrics) LinkDeleted(r string) { m.mu.Lock(); m.c.deleted[r]++; m.mu.Unlock() }
func (m *linkMetrics) LinkRefused(r string) { m.mu.Lock(); m.c.refuse[r]++; m.mu.Unlock() }

func (m *linkMetrics) snapshot() linkCounts {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.c
	s.deleted, s.refuse = map[string]int{}, map[string]int{}
	for k, v := range m.c.deleted {
		s.deleted[k] = v
	}
	for k, v := range m.c.refuse {
		s.refuse[k] = v
	}
	return s
}

func newLinkID(t testing.TB) LinkID {
	t.Helper()
	var id LinkID
	rand.Read(id[:])
	return id
}

func newOwnerKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func randomRecord(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// wantLink checks that the relay serves want under id (nil: unknown).
func wantLink(t testing.TB, c *Client, h host.Host, r *testRelay, id LinkID, want []byte) {
	t.Helper()
	got, err := c.GetLink(ctxT(t), h, r.info, id)
	if want == nil {
		if !errors.Is(err, ErrLinkUnknown) {
			t.Fatalf("get: %d bytes, %v; want unknown", len(got), err)
		}
		return
	}
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("get: %d bytes, %v; want the %d bytes put", len(got), err, len(want))
	}
}

func TestLinkPutGetReplace(t *testing.T) {
	met := newLinkMetrics()
	r := startRelay(t, Config{Metrics: met})
	h := newHost(t)
	var c Client
	ctx := ctxT(t)
	id, owner := newLinkID(t), newOwnerKey(t)
	wantLink(t, &c, h, r, id, nil)
	rec1 := randomRecord(1200)
	if err := c.PutLink(ctx, h, r.info, owner, id, 1000, rec1); err != nil {
		t.Fatal(err)
	}
	// Anyone with the id reads it.
	h2 := newHost(t)
	wantLink(t, &c, h2, r, id, rec1)
	// Its owner replaces it with a higher version, from another identity.
	rec2 := randomRecord(MaxLinkRecord)
	if err := c.PutLink(ctx, h2, r.info, owner, id, 1001, rec2); err != nil {
		t.Fatal(err)
	}
	wantLink(t, &c, h, r, id, rec2)
	// An empty record is a record.
	id2 := newLinkID(t)
	if err := c.PutLink(ctx, h, r.info, owner, id2, 1, nil); err != nil {
		t.Fatal(err)
	}
	wantLink(t, &c, h, r, id2, []byte{})
	m := met.snapshot()
	if m.records != 2 || m.puts != 3 || m.found != 3 || m.unknown != 1 || len(m.refuse) != 0 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestLinkOwnerAndVersion(t *testing.T) {
	met := newLinkMetrics()
	r := startRelay(t, Config{Metrics: met})
	h := newHost(t)
	var c Client
	ctx := ctxT(t)
	id, owner, other := newLinkID(t), newOwnerKey(t), newOwnerKey(t)
	rec := randomRecord(500)
	if err := c.PutLink(ctx, h, r.info, owner, id, 50, rec); err != nil {
		t.Fatal(err)
	}
	denied := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrLinkDenied) {
			t.Fatalf("%s: %v; want denied", what, err)
		}
		wantLink(t, &c, h, r, id, rec)
	}
	denied("put by another key", c.PutLink(ctx, h, r.info, other, id, 51, randomRecord(10)))
	denied("delete by another key", c.DeleteLink(ctx, h, r.info, other, id, 51))
	denied("put again at the same version", c.PutLink(ctx, h, r.info, owner, id, 50, rec))
	denied("put of another record at the same version", c.PutLink(ctx, h, r.info, owner, id, 50, randomRecord(10)))
	denied("put at a lower version", c.PutLink(ctx, h, r.info, owner, id, 49, randomRecord(10)))
	denied("delete at the same version", c.DeleteLink(ctx, h, r.info, owner, id, 50))
	denied("delete at a lower version", c.DeleteLink(ctx, h, r.info, owner, id, 3))

	// A put whose signature does not cover what it carries (a record
	// swapped on the way): denied.
	q := &linkReq{kind: linkKindPut, id: id, version: 60, record: randomRecord(10)}
	copy(q.owner[:], owner.Public().(ed25519.PublicKey))
	copy(q.sig[:], ed25519.Sign(owner, linkPutMessage(id, 60, randomRecord(10))))
	if got := rawLinkAsk(t, h, r, q.encode()); !bytes.Equal(got, []byte{byte(LinkDenied)}) {
		t.Fatalf("put with a signature over another record: %x", got)
	}
	// A delete signed for another id.
	q = &linkReq{kind: linkKindDelete, id: id, version: 60}
	copy(q.sig[:], ed25519.Sign(owner, linkDeleteMessage(newLinkID(t), 60)))
	if got := rawLinkAsk(t, h, r, q.encode()); !bytes.Equal(got, []byte{byte(LinkDenied)}) {
		t.Fatalf("delete signed for another id: %x", got)
	}
	// A put signed as a delete (domain separation).
	q = &linkReq{kind: linkKindPut, id: id, version: 60}
	copy(q.owner[:], owner.Public().(ed25519.PublicKey))
	copy(q.sig[:], ed25519.Sign(owner, linkDeleteMessage(id, 60)))
	if got := rawLinkAsk(t, h, r, q.encode()); !bytes.Equal(got, []byte{byte(LinkDenied)}) {
		t.Fatalf("put signed as a delete: %x", got)
	}
	wantLink(t, &c, h, r, id, rec)
	if m := met.snapshot(); m.refuse[LinkReasonDenied] != 10 || m.puts != 1 {
		t.Fatalf("metrics %+v", m)
	}

	// The owner deletes it; then it is unknown, to a get and a delete.
	if err := c.DeleteLink(ctx, h, r.info, owner, id, 70); err != nil {
		t.Fatal(err)
	}
	wantLink(t, &c, h, r, id, nil)
	if err := c.DeleteLink(ctx, h, r.info, owner, id, 71); !errors.Is(err, ErrLinkUnknown) {
		t.Fatalf("delete again: %v", err)
	}
	if m := met.snapshot(); m.records != 0 || m.deleted[LinkReasonOwner] != 1 {
		t.Fatalf("metrics %+v", m)
	}
	// A delete of an id never put.
	if err := c.DeleteLink(ctx, h, r.info, owner, newLinkID(t), 1); !errors.Is(err, ErrLinkUnknown) {
		t.Fatalf("delete of an unknown id: %v", err)
	}
}

// TestLinkConcurrentPuts: the put of the highest version always wins,
// however the puts of one id interleave.
func TestLinkConcurrentPuts(t *testing.T) {
	r := startRelay(t, Config{})
	var c Client
	ctx := ctxT(t)
	id, owner := newLinkID(t), newOwnerKey(t)
	hosts := []host.Host{newHost(t), newHost(t)}
	recs := make([][]byte, 12)
	var wg sync.WaitGroup
	for i := range recs {
		recs[i] = randomRecord(100 + i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.PutLink(ctx, hosts[i%2], r.info, owner, id, uint64(i+1), recs[i])
			if err != nil && !errors.Is(err, ErrLinkDenied) {
				t.Errorf("put %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	wantLink(t, &c, hosts[0], r, id, recs[len(recs)-1])
	if n := r.srv.links.count(); n != 1 {
		t.Fatalf("%d records", n)
	}
}

func TestLinkTTL(t *testing.T) {
	clock := newFakeClock()
	met := newLinkMetrics()
	r := startRelay(t, Config{Now: clock.Now, Metrics: met, LinkRecordsPerPeer: 1})
	h := newHost(t)
	var c Client
	ctx := ctxT(t)
	owner := newOwnerKey(t)
	kept, dropped := newLinkID(t), newLinkID(t)
	h2 := newHost(t)
	if err := c.PutLink(ctx, h, r.info, owner, kept, 1, []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := c.PutLink(ctx, h2, r.info, owner, dropped, 1, []byte("dropped")); err != nil {
		t.Fatal(err)
	}
	clock.Add(DefaultLinkTTL - time.Hour)
	// Its owner puts it again: the TTL starts over.
	if err := c.PutLink(ctx, h2, r.info, owner, kept, 2, []byte("kept, again")); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Hour - time.Second)
	r.srv.links.sweep(clock.Now())
	wantLink(t, &c, h, r, dropped, []byte("dropped"))
	clock.Add(time.Second)
	r.srv.links.sweep(clock.Now())
	wantLink(t, &c, h, r, dropped, nil)
	wantLink(t, &c, h, r, kept, []byte("kept, again"))
	if m := met.snapshot(); m.records != 1 || m.deleted[LinkReasonTTL] != 1 {
		t.Fatalf("metrics %+v", m)
	}
	// The expired record's peer may put a record again; an expiry is for
	// good across a restart.
	if err := c.PutLink(ctx, h2, r.info, newOwnerKey(t), newLinkID(t), 1, []byte("new")); err != nil {
		t.Fatalf("put after the expiry gave the peer's count back: %v", err)
	}
	r.restart(t)
	wantLink(t, &c, h, r, dropped, nil)
	wantLink(t, &c, h, r, kept, []byte("kept, again"))
	clock.Add(DefaultLinkTTL)
	r.srv.links.sweep(clock.Now())
	wantLink(t, &c, h, r, kept, nil)
	if n := r.srv.links.count(); n != 0 {
		t.Fatalf("%d records after the TTL", n)
	}
}

// TestLinkQuotas: throw-away identities on one address each stay under
// link_records_per_peer and together reach link_records_per_ip; another
// network fills link_max_records. Replacements count nothing new,
// deletes give counts back, and the counts hold across a restart.
func TestLinkQuotas(t *testing.T) {
	met := newLinkMetrics()
	r := startRelay(t, Config{Metrics: met, LinkRecordsPerPeer: 2, LinkRecordsPerIP: 3, LinkMaxRecords: 5})
	var c Client
	ctx := ctxT(t)
	owner := newOwnerKey(t)
	type rec struct {
		id   LinkID
		data []byte
	}
	var stored []rec
	put := func(h host.Host) error {
		rc := rec{newLinkID(t), randomRecord(64)}
		err := c.PutLink(ctx, h, r.info, owner, rc.id, 1, rc.data)
		if err == nil {
			stored = append(stored, rc)
		} else {
			wantLink(t, &c, h, r, rc.id, nil)
		}
		return err
	}
	over := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrLinkOverQuota) {
			t.Fatalf("%s: %v; want over quota", what, err)
		}
	}
	a1, a2, a3 := newHost(t), newHost(t), newHost(t)
	for range 2 {
		if err := put(a1); err != nil {
			t.Fatal(err)
		}
	}
	over("third record of one peer", put(a1))
	if err := put(a2); err != nil {
		t.Fatal(err)
	}
	over("fourth record of one network, from a new identity", put(a2))
	over("fourth record of one network, from a third identity", put(a3))
	// A replacement is no new record.
	if err := c.PutLink(ctx, a3, r.info, owner, stored[0].id, 2, []byte("replaced")); err != nil {
		t.Fatalf("replace at the network's cap: %v", err)
	}
	stored[0].data = []byte("replaced")
	b1, b2 := newHostOn(t, "127.0.0.2"), newHostOn(t, "127.0.0.2")
	if err := put(b1); err != nil {
		t.Fatal(err)
	}
	if err := put(b2); err != nil {
		t.Fatal(err)
	}
	over("a record past link_max_records", put(newHostOn(t, "127.0.0.3")))
	if m := met.snapshot(); m.records != 5 || m.refuse[LinkReasonPeerQuota] != 1 ||
		m.refuse[LinkReasonIPQuota] != 2 || m.refuse[LinkReasonFull] != 1 {
		t.Fatalf("metrics %+v", m)
	}

	// The counts and the records hold across a restart.
	r.restart(t)
	for _, rc := range stored {
		wantLink(t, &c, a1, r, rc.id, rc.data)
	}
	over("peer after a restart", put(a1))
	if n := r.srv.links.count(); n != 5 {
		t.Fatalf("%d records after the restart", n)
	}
	// A delete gives the count back to the peer and network of the first
	// put, whoever deletes it (here a peer of another network).
	if err := c.DeleteLink(ctx, b1, r.info, owner, stored[0].id, 3); err != nil {
		t.Fatal(err)
	}
	if err := put(a3); err != nil {
		t.Fatalf("network after a delete: %v", err)
	}
	over("the network again", put(a2))
	over("the store again", put(newHostOn(t, "127.0.0.3")))
	if err := c.DeleteLink(ctx, b1, r.info, owner, stored[1].id, 2); err != nil {
		t.Fatal(err)
	}
	if err := put(a1); err != nil {
		t.Fatalf("peer after a delete of its record: %v", err)
	}
}

// rawLinkAsk sends payload on a fresh link stream and returns the
// answer, checking that the relay closes the stream after it.
func rawLinkAsk(t testing.TB, h host.Host, r *testRelay, payload []byte) []byte {
	t.Helper()
	st := openRawLink(t, h, r)
	if err := wire.WriteFrame(st, payload); err != nil {
		t.Fatal(err)
	}
	return rawLinkAnswer(t, st)
}

func openRawLink(t testing.TB, h host.Host, r *testRelay) interface {
	io.ReadWriter
	CloseWrite() error
} {
	t.Helper()
	ctx := ctxT(t)
	if err := h.Connect(ctx, r.info); err != nil {
		t.Fatal(err)
	}
	st, err := h.NewStream(ctx, r.info.ID, LinkProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Reset() })
	st.SetDeadline(time.Now().Add(30 * time.Second))
	return st
}

func rawLinkAnswer(t testing.TB, st io.Reader) []byte {
	t.Helper()
	b, err := wire.ReadFrame(st, linkMaxAnswer)
	if err != nil {
		t.Fatal(err)
	}
	if more, err := wire.ReadFrame(st, linkMaxAnswer); !errors.Is(err, io.EOF) {
		t.Fatalf("stream not closed cleanly after the answer: %x, %v", more, err)
	}
	return b
}

func signedPut(owner ed25519.PrivateKey, id LinkID, version uint64, record []byte) *linkReq {
	q := &linkReq{kind: linkKindPut, id: id, version: version, record: record}
	copy(q.owner[:], owner.Public().(ed25519.PublicKey))
	copy(q.sig[:], ed25519.Sign(owner, linkPutMessage(id, version, record)))
	return q
}

func TestLinkTooLarge(t *testing.T) {
	met := newLinkMetrics()
	r := startRelay(t, Config{Metrics: met})
	h := newHost(t)
	var c Client
	owner, id := newOwnerKey(t), newLinkID(t)
	// The client refuses it without sending.
	if err := c.PutLink(ctxT(t), h, r.info, owner, id, 1, randomRecord(MaxLinkRecord+1)); !errors.Is(err, ErrLinkTooLarge) {
		t.Fatalf("client: %v", err)
	}
	// The relay refuses a signed put of one byte too many, and of twice
	// the most, before storing anything.
	for _, n := range []int{MaxLinkRecord + 1, 2 * MaxLinkRecord} {
		if got := rawLinkAsk(t, h, r, signedPut(owner, id, 1, randomRecord(n)).encode()); !bytes.Equal(got, []byte{byte(LinkTooLarge)}) {
			t.Fatalf("%d bytes: answered %x", n, got)
		}
	}
	wantLink(t, &c, h, r, id, nil)
	if n := r.srv.links.count(); n != 0 {
		t.Fatalf("%d records", n)
	}
	if m := met.snapshot(); m.refuse[LinkReasonTooLarge] != 2 || m.puts != 0 {
		t.Fatalf("metrics %+v", m)
	}
	// Exactly the most is kept.
	rec := randomRecord(MaxLinkRecord)
	if err := c.PutLink(ctxT(t), h, r.info, owner, id, 1, rec); err != nil {
		t.Fatal(err)
	}
	wantLink(t, &c, h, r, id, rec)
}

func TestLinkMalformedFrames(t *testing.T) {
	r := startRelay(t, Config{})
	h := newHost(t)
	var c Client
	owner, id := newOwnerKey(t), newLinkID(t)
	put := signedPut(owner, id, 1, []byte("record")).encode()
	del := (&linkReq{kind: linkKindDelete, id: id, version: 2}).encode()
	bad := map[string][]byte{
		"empty":              {},
		"kind 0":             append([]byte{0}, id[:]...),
		"unknown kind":       append([]byte{4}, id[:]...),
		"short id":           {byte(linkKindGet), 1, 2, 3},
		"get trailing bytes": append(append([]byte{byte(linkKindGet)}, id[:]...), 0),
		"put trailing bytes": append(bytes.Clone(put), 0),
		"put short sig":      put[:len(put)-1],
		"put no record":      put[:1+LinkIDSize+32+8],
		"put record length lies": func() []byte {
			b := bytes.Clone(put)
			binary.BigEndian.PutUint32(b[1+LinkIDSize+32+8:], 1000)
			return b
		}(),
		"put record longer than any frame": func() []byte {
			b := bytes.Clone(put)
			binary.BigEndian.PutUint32(b[1+LinkIDSize+32+8:], linkMaxFrame+1)
			return b
		}(),
		"delete short sig":      del[:len(del)-1],
		"delete trailing bytes": append(bytes.Clone(del), 0),
	}
	for name, payload := range bad {
		if got := rawLinkAsk(t, h, r, payload); !bytes.Equal(got, []byte{byte(LinkBad)}) {
			t.Fatalf("%s: answered %x", name, got)
		}
	}
	// A frame declaring more than the largest request: refused before
	// its bytes.
	st := openRawLink(t, h, r)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], linkMaxFrame+1)
	st.Write(hdr[:])
	if got := rawLinkAnswer(t, st); !bytes.Equal(got, []byte{byte(LinkBad)}) {
		t.Fatalf("oversized frame: answered %x", got)
	}
	// A frame cut short.
	st = openRawLink(t, h, r)
	binary.BigEndian.PutUint32(hdr[:], 100)
	st.Write(append(hdr[:], byte(linkKindGet), 2, 3))
	st.CloseWrite()
	if got := rawLinkAnswer(t, st); !bytes.Equal(got, []byte{byte(LinkBad)}) {
		t.Fatalf("cut frame: answered %x", got)
	}
	// A length prefix cut short.
	st = openRawLink(t, h, r)
	st.Write(hdr[:2])
	st.CloseWrite()
	if got := rawLinkAnswer(t, st); !bytes.Equal(got, []byte{byte(LinkBad)}) {
		t.Fatalf("cut length prefix: answered %x", got)
	}
	// Nothing was stored, and the relay still serves.
	if n := r.srv.links.count(); n != 0 {
		t.Fatalf("%d records", n)
	}
	if got := rawLinkAsk(t, h, r, put); !bytes.Equal(got, []byte{byte(LinkOK)}) {
		t.Fatalf("well-formed put: answered %x", got)
	}
	wantLink(t, &c, h, r, id, []byte("record"))
}

// TestLinkRestart: records, owners, versions and counts are in the
// relay's store.
func TestLinkRestart(t *testing.T) {
	r := startRelay(t, Config{LinkRecordsPerPeer: 1})
	h := newHost(t)
	var c Client
	ctx := ctxT(t)
	owner, id := newOwnerKey(t), newLinkID(t)
	rec := randomRecord(3000)
	if err := c.PutLink(ctx, h, r.info, owner, id, 10, rec); err != nil {
		t.Fatal(err)
	}
	r.restart(t)
	wantLink(t, &c, h, r, id, rec)
	if err := c.PutLink(ctx, h, r.info, owner, id, 10, randomRecord(5)); !errors.Is(err, ErrLinkDenied) {
		t.Fatalf("replayed put after a restart: %v", err)
	}
	if err := c.PutLink(ctx, h, r.info, newOwnerKey(t), id, 11, randomRecord(5)); !errors.Is(err, ErrLinkDenied) {
		t.Fatalf("put by another key after a restart: %v", err)
	}
	if err := c.PutLink(ctx, h, r.info, owner, newLinkID(t), 1, randomRecord(5)); !errors.Is(err, ErrLinkOverQuota) {
		t.Fatalf("peer's count after a restart: %v", err)
	}
	if err := c.DeleteLink(ctx, h, r.info, owner, id, 11); err != nil {
		t.Fatal(err)
	}
	r.restart(t)
	wantLink(t, &c, h, r, id, nil)
	if err := c.PutLink(ctx, h, r.info, owner, newLinkID(t), 1, randomRecord(5)); err != nil {
		t.Fatalf("peer's count after a delete and a restart: %v", err)
	}
}

// TestLinkNothingInClear: the relay's store files show neither records
// nor ids, and its logs name no id.
func TestLinkNothingInClear(t *testing.T) {
	var logs testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clock := newFakeClock()
	r := startRelay(t, Config{Logger: log, Now: clock.Now, LinkRecordsPerPeer: 2, LinkRecordsPerIP: 2})
	h := newHost(t)
	var c Client
	ctx := ctxT(t)
	owner := newOwnerKey(t)
	marker := []byte("PLAINTEXT-MARKER-of-a-link-record-0123456789")
	var ids []LinkID
	for i := range 3 {
		id := newLinkID(t)
		ids = append(ids, id)
		rec := append(bytes.Repeat(marker, 20), byte(i))
		err := c.PutLink(ctx, h, r.info, owner, id, 1, rec)
		if i < 2 && err != nil {
			t.Fatal(err)
		}
	}
	c.PutLink(ctx, h, r.info, newOwnerKey(t), ids[0], 5, []byte("denied"))
	c.DeleteLink(ctx, h, r.info, owner, ids[1], 2)
	clock.Add(DefaultLinkTTL)
	r.srv.links.sweep(clock.Now())
	id := newLinkID(t)
	ids = append(ids, id)
	if err := c.PutLink(ctx, h, r.info, owner, id, 1, marker); err != nil {
		t.Fatal(err)
	}
	r.restart(t)
	wantLink(t, &c, h, r, id, marker)

	var needles [][]byte
	needles = append(needles, marker)
	for _, id := range ids {
		needles = append(needles, id[:], []byte(hex.EncodeToString(id[:])),
			[]byte(base64.StdEncoding.EncodeToString(id[:])[:20]))
	}
	err := filepath.WalkDir(r.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("store file %s holds %q", filepath.Base(path), n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "link put refused") {
		t.Fatalf("the quota refusal was not logged: %s", out)
	}
	for _, n := range needles {
		if bytes.Contains([]byte(out), n) {
			t.Fatalf("logs hold %q:\n%s", n, out)
		}
	}
}

func TestLinkRateLimited(t *testing.T) {
	met := newLinkMetrics()
	r := startRelay(t, Config{Metrics: met, IPRate: 0.001, IPBurst: 3})
	var c Client
	id := newLinkID(t)
	// Throw-away identities share their network's bucket.
	for i := range 4 {
		_, err := c.GetLink(ctxT(t), newHost(t), r.info, id)
		if (i < 3 && !errors.Is(err, ErrLinkUnknown)) || (i == 3 && !errors.Is(err, ErrLinkBusy)) {
			t.Fatalf("get %d: %v", i, err)
		}
	}
	if err := c.PutLink(ctxT(t), newHost(t), r.info, newOwnerKey(t), id, 1, nil); !errors.Is(err, ErrLinkBusy) {
		t.Fatalf("put when rate limited: %v", err)
	}
	if n := r.srv.links.count(); n != 0 {
		t.Fatalf("%d records", n)
	}
	if m := met.snapshot(); m.refuse[LinkReasonRateLimited] != 2 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestLinkStoreOff(t *testing.T) {
	r := startRelay(t, Config{NoLinkStore: true})
	var c Client
	if _, err := c.GetLink(ctxT(t), newHost(t), r.info, newLinkID(t)); err == nil || errors.Is(err, ErrLinkUnknown) {
		t.Fatalf("link store off: %v", err)
	}
}

func TestLinkConfig(t *testing.T) {
	var cfg Config
	js := `{"no_link_store": true, "link_ttl": "720h", "link_max_records": 5, "link_records_per_peer": 2, "link_records_per_ip": 3}`
	dec := json.NewDecoder(strings.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if !cfg.NoLinkStore || cfg.LinkTTL != Duration(720*time.Hour) || cfg.LinkMaxRecords != 5 ||
		cfg.LinkRecordsPerPeer != 2 || cfg.LinkRecordsPerIP != 3 {
		t.Fatalf("parsed %+v", cfg)
	}
	for _, bad := range []Config{{LinkTTL: -1}, {LinkMaxRecords: -1}, {LinkRecordsPerPeer: -1}, {LinkRecordsPerIP: -1},
		{LinkRecordsPerIP: DefaultLinkRecordsPerPeer - 1}, {LinkRecordsPerPeer: 300, LinkRecordsPerIP: 299}} {
		if err := bad.Check(); !errors.Is(err, ErrConfig) {
			t.Fatalf("Check(%+v) = %v", bad, err)
		}
	}
	got, err := Config{}.withDefaults()
	if err != nil || got.LinkTTL != Duration(DefaultLinkTTL) || got.LinkMaxRecords != DefaultLinkMaxRecords ||
		got.LinkRecordsPerPeer != DefaultLinkRecordsPerPeer || got.LinkRecordsPerIP != DefaultLinkRecordsPerIP {
		t.Fatalf("defaults %+v, %v", got, err)
	}
	if got, _ := (Config{LinkRecordsPerPeer: 1000}).withDefaults(); got.LinkRecordsPerIP != 1000 {
		t.Fatalf("link_records_per_ip %d with a per-peer cap of 1000", got.LinkRecordsPerIP)
	}
}

// TestLinkSignedMessages pins the signed messages of §20.3.
func TestLinkSignedMessages(t *testing.T) {
	var id LinkID
	for i := range id {
		id[i] = byte(i)
	}
	put := linkPutMessage(id, 0x0102030405060708, []byte("abc"))
	want := "hush link put v1" + string(id[:]) + "\x01\x02\x03\x04\x05\x06\x07\x08" +
		string(mustHex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
	if string(put) != want {
		t.Fatalf("put message %x", put)
	}
	del := linkDeleteMessage(id, 9)
	if string(del) != "hush link delete v1"+string(id[:])+"\x00\x00\x00\x00\x00\x00\x00\x09" {
		t.Fatalf("delete message %x", del)
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
