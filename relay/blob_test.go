package relay

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/hushnet/hush/internal/wire"
)

// startBlobRelay starts a relay with a blob store in a temporary
// directory of its own.
func startBlobRelay(t testing.TB, cfg Config) *testRelay {
	t.Helper()
	if cfg.BlobDir == "" {
		cfg.BlobDir = filepath.Join(t.TempDir(), "blobs")
	}
	return startRelay(t, cfg)
}

// randomBlob is n random bytes and their SHA-256.
func randomBlob(t testing.TB, n int) ([]byte, BlobHash) {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b, sha256.Sum256(b)
}

// blobFiles lists the blob directory: name → contents' size.
func blobFiles(t testing.TB, r *testRelay) map[string]int64 {
	t.Helper()
	entries, err := os.ReadDir(r.cfg.BlobDir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fi.Size()
	}
	return out
}

func blobDirBytes(t testing.TB, r *testRelay) int64 {
	var n int64
	for _, s := range blobFiles(t, r) {
		n += s
	}
	return n
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// readAll downloads the whole blob with OpenBlob.
func readAll(t testing.TB, c *Client, h host.Host, r *testRelay, hash BlobHash) []byte {
	t.Helper()
	br, err := c.OpenBlob(ctxT(t), h, r.info, hash, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	got, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestBlobUploadDownload(t *testing.T) {
	r := startBlobRelay(t, Config{})
	h := newHost(t)
	var c Client
	ctx := ctxT(t)
	l, err := c.BlobLimits(ctx, h, r.info)
	if err != nil {
		t.Fatal(err)
	}
	want := BlobLimits{MaxBlob: DefaultMaxBlob, TTLSeconds: uint64(DefaultBlobTTL / time.Second),
		QuotaPerPeer: DefaultBlobQuotaPerPeer, Free: DefaultBlobStoreBytes, QuotaLeft: DefaultBlobQuotaPerPeer}
	if l != want {
		t.Fatalf("limits %+v, want %+v", l, want)
	}

	data, hash := randomBlob(t, 5<<20+12345)
	sent, err := c.PutBlob(ctx, h, r.info, hash, int64(len(data)), nil, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if sent != int64(len(data)) {
		t.Fatalf("sent %d of %d", sent, len(data))
	}
	st, err := c.BlobStat(ctx, h, r.info, hash)
	if err != nil || st != (BlobState{Size: uint64(len(data)), Have: uint64(len(data)), Complete: true}) {
		t.Fatalf("stat %+v, %v", st, err)
	}
	// Another peer downloads it (the hash is the capability).
	h2 := newHost(t)
	got := readAll(t, &c, h2, r, hash)
	if sha256.Sum256(got) != hash || !bytes.Equal(got, data) {
		t.Fatal("downloaded blob differs")
	}
	part, err := c.ReadBlob(ctx, h2, r.info, hash, 3<<20-7, 2<<20)
	if err != nil || !bytes.Equal(part, data[3<<20-7:5<<20-7]) {
		t.Fatalf("ReadBlob: %d bytes, %v", len(part), err)
	}
	tail, err := c.ReadBlob(ctx, h2, r.info, hash, int64(len(data))-10, 1000)
	if err != nil || !bytes.Equal(tail, data[len(data)-10:]) {
		t.Fatalf("ReadBlob at the end: %d bytes, %v", len(tail), err)
	}
	// A put again changes nothing and sends nothing.
	if sent, err := c.PutBlob(ctx, h, r.info, hash, int64(len(data)), nil, bytes.NewReader(data)); err != nil || sent != 0 {
		t.Fatalf("put again: sent %d, %v", sent, err)
	}
	l, _ = c.BlobLimits(ctx, h, r.info)
	if l.QuotaLeft != DefaultBlobQuotaPerPeer-uint64(len(data)) || l.Free != DefaultBlobStoreBytes-uint64(len(data)) {
		t.Fatalf("limits after the upload %+v", l)
	}

	// The directory holds one file: the bytes uploaded, nothing else.
	files := blobFiles(t, r)
	if len(files) != 1 {
		t.Fatalf("blob directory holds %v", files)
	}
	for name := range files {
		b, err := os.ReadFile(filepath.Join(r.cfg.BlobDir, name))
		if err != nil || !bytes.Equal(b, data) {
			t.Fatal("blob file is not the uploaded bytes")
		}
		if strings.Contains(name, hex.EncodeToString(hash[:])) {
			t.Fatal("blob file named by its hash")
		}
	}
}

// cutReader serves src up to limit bytes, then fails; with gate set, a
// read past limit waits for the gate to close first.
type cutReader struct {
	src   []byte
	limit int64
	gate  chan struct{}
	once  sync.Once
	cut   chan struct{} // closed when a read first passed limit
}

func newCutReader(src []byte, limit int64, gated bool) *cutReader {
	r := &cutReader{src: src, limit: limit, cut: make(chan struct{})}
	if gated {
		r.gate = make(chan struct{})
	}
	return r
}

func (r *cutReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > r.limit {
		r.once.Do(func() { close(r.cut) })
		if r.gate != nil {
			<-r.gate
		}
		return 0, errors.New("source cut")
	}
	return copy(p, r.src[off:]), nil
}

func TestBlobResume(t *testing.T) {
	r := startBlobRelay(t, Config{})
	h := newHost(t)
	var c Client
	ctx := ctxT(t)
	data, hash := randomBlob(t, 6<<20+100)
	sent1, err := c.PutBlob(ctx, h, r.info, hash, int64(len(data)), nil, newCutReader(data, 3<<20, false))
	if err == nil {
		t.Fatal("upload from a cut source succeeded")
	}
	st, err := c.BlobStat(ctx, h, r.info, hash)
	if err != nil || st.Have != 3<<20 || st.Complete || sent1 != 3<<20 {
		t.Fatalf("after the cut: stat %+v, %v; sent %d", st, err, sent1)
	}
	if _, err := c.OpenBlob(ctx, h, r.info, hash, 0); !errors.Is(err, ErrBlobIncomplete) {
		t.Fatalf("read of an incomplete blob: %v", err)
	}
	sent2, err := c.PutBlob(ctx, h, r.info, hash, int64(len(data)), nil, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if sent2 != int64(len(data))-3<<20 {
		t.Fatalf("resume sent %d bytes, want %d", sent2, len(data)-3<<20)
	}
	if got := readAll(t, &c, h, r, hash); !bytes.Equal(got, data) {
		t.Fatal("downloaded blob differs")
	}
}

func TestBlobRelayRestartMidUpload(t *testing.T) {
	r := startBlobRelay(t, Config{})
	h := newHost(t)
	var c Client
	ctx := ctxT(t)
	data, hash := randomBlob(t, 8<<20)
	src := newCutReader(data, 4<<20, true)
	done := make(chan error, 1)
	var sent1 int64
	go func() {
		var err error
		sent1, err = c.PutBlob(ctx, h, r.info, hash, int64(len(data)), nil, src)
		done <- err
	}()
	<-src.cut
	eventually(t, "half acknowledged", func() bool {
		b := r.srv.blobs.lookup(hash)
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.have == 4<<20
	})
	r.restart(t) // while the upload's stream is open
	close(src.gate)
	if err := <-done; err == nil {
		t.Fatal("upload across a restart succeeded")
	}
	st, err := c.BlobStat(ctx, h, r.info, hash)
	if err != nil || st.Have != 4<<20 {
		t.Fatalf("after the restart: %+v, %v", st, err)
	}
	sent2, err := c.PutBlob(ctx, h, r.info, hash, int64(len(data)), nil, bytes.NewReader(data))
	if err != nil || sent2 != 4<<20 || sent1 != 4<<20 {
		t.Fatalf("resume: sent %d then %d, %v", sent1, sent2, err)
	}
	if got := readAll(t, &c, h, r, hash); !bytes.Equal(got, data) {
		t.Fatal("downloaded blob differs")
	}
}

func TestBlobRelayRestartMidDownload(t *testing.T) {
	r := startBlobRelay(t, Config{})
	h := newHost(t)
	var c Client
	ctx := ctxT(t)
	data, hash := randomBlob(t, 9<<20+3)
	if _, err := c.PutBlob(ctx, h, r.info, hash, int64(len(data)), nil, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	br, err := c.OpenBlob(ctx, h, r.info, hash, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2<<20+17)
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatal(err)
	}
	r.restart(t)
	// What was in flight may still come; then the stream fails.
	rest, err := io.ReadAll(br)
	if err == nil {
		t.Fatal("download across a restart did not fail")
	}
	got = append(got, rest...)
	br.Close()
	if br.Offset() != int64(len(got)) || len(got) >= len(data) {
		t.Fatalf("offset %d, got %d", br.Offset(), len(got))
	}
	br, err = c.OpenBlob(ctx, h, r.info, hash, int64(len(got)))
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	rest, err = io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if got = append(got, rest...); !bytes.Equal(got, data) {
		t.Fatal("resumed download differs")
	}
}

func TestBlobHashMismatch(t *testing.T) {
	r := startBlobRelay(t, Config{})
	h := newHost(t)
	var c Client
	ctx := ctxT(t)
	_, hash := randomBlob(t, 3<<20)
	other, _ := randomBlob(t, 3<<20)
	_, err := c.PutBlob(ctx, h, r.info, hash, int64(len(other)), nil, bytes.NewReader(other))
	if !errors.Is(err, ErrBlobHashMismatch) {
		t.Fatalf("upload of the wrong bytes: %v", err)
	}
	if _, err := c.BlobStat(ctx, h, r.info, hash); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("stat after a mismatch: %v", err)
	}
	if files := blobFiles(t, r); len(files) != 0 {
		t.Fatalf("blob directory holds %v", files)
	}
	if l, _ := c.BlobLimits(ctx, h, r.info); l.QuotaLeft != DefaultBlobQuotaPerPeer || l.Free != DefaultBlobStoreBytes {
		t.Fatalf("charge not given back: %+v", l)
	}
}

func TestBlobLimitsRefuseBeforeStoring(t *testing.T) {
	r := startBlobRelay(t, Config{MaxBlob: 4 << 20, BlobQuotaPerPeer: 6 << 20, BlobStoreBytes: 10 << 20})
	var c Client
	ctx := ctxT(t)
	h1, h2, h3 := newHost(t), newHost(t), newHost(t)
	put := func(h host.Host, n int) (int64, error) {
		data, hash := randomBlob(t, n)
		return c.PutBlob(ctx, h, r.info, hash, int64(n), nil, bytes.NewReader(data))
	}
	refused := func(what string, h host.Host, n int, want error) {
		t.Helper()
		before := blobDirBytes(t, r)
		files := len(blobFiles(t, r))
		sent, err := put(h, n)
		if !errors.Is(err, want) || sent != 0 {
			t.Fatalf("%s: sent %d, %v; want %v", what, sent, err, want)
		}
		if blobDirBytes(t, r) != before || len(blobFiles(t, r)) != files {
			t.Fatalf("%s: the blob directory grew", what)
		}
	}
	refused("over max_blob", h1, 4<<20+1, ErrBlobTooLarge)
	if _, err := put(h1, 4<<20); err != nil {
		t.Fatal(err)
	}
	refused("over quota", h1, 3<<20, ErrBlobOverQuota)
	if _, err := put(h1, 2<<20); err != nil { // exactly the quota
		t.Fatal(err)
	}
	if _, err := put(h2, 3<<20); err != nil {
		t.Fatal(err)
	}
	refused("over the total", h3, 2<<20, ErrBlobFull)
	// A put reserves its whole size: a second one over the total is
	// refused while the first has no bytes yet.
	data, hash := randomBlob(t, 1<<20)
	l, _ := c.BlobLimits(ctx, h3, r.info)
	if l.Free != 1<<20 {
		t.Fatalf("free %d", l.Free)
	}
	if _, err := c.PutBlob(ctx, h3, r.info, hash, int64(len(data)), nil, newCutReader(data, 0, false)); err == nil {
		t.Fatal("cut upload succeeded")
	}
	refused("over the total, reserved", h3, 64<<10, ErrBlobFull)
	if l, _ := c.BlobLimits(ctx, h3, r.info); l.QuotaLeft != 6<<20-1<<20 || l.Free != 0 {
		t.Fatalf("limits %+v", l)
	}
}

func TestBlobTTLSweep(t *testing.T) {
	clock := newFakeClock()
	r := startBlobRelay(t, Config{Now: clock.Now, BlobTTL: Duration(time.Hour)})
	h := newHost(t)
	var c Client
	ctx := ctxT(t)
	data, hash := randomBlob(t, 2<<20)
	if _, err := c.PutBlob(ctx, h, r.info, hash, int64(len(data)), nil, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	half, halfHash := randomBlob(t, 3<<20)
	c.PutBlob(ctx, h, r.info, halfHash, int64(len(half)), nil, newCutReader(half, 1<<20, false))
	if st, err := c.BlobStat(ctx, h, r.info, halfHash); err != nil || st.Have != 1<<20 {
		t.Fatalf("half upload: %+v, %v", st, err)
	}
	clock.Add(time.Hour - time.Second)
	r.srv.blobs.sweep(clock.Now())
	if len(blobFiles(t, r)) != 2 {
		t.Fatal("sweep removed blobs before their TTL")
	}
	clock.Add(time.Second)
	r.srv.blobs.sweep(clock.Now())
	for _, hh := range []BlobHash{hash, halfHash} {
		if _, err := c.BlobStat(ctx, h, r.info, hh); !errors.Is(err, ErrBlobUnknown) {
			t.Fatalf("stat after the TTL: %v", err)
		}
	}
	if files := blobFiles(t, r); len(files) != 0 {
		t.Fatalf("blob directory holds %v", files)
	}
	r.restart(t)
	if _, err := c.BlobStat(ctx, h, r.info, hash); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("stat after a restart: %v", err)
	}
	if l, _ := c.BlobLimits(ctx, h, r.info); l.QuotaLeft != DefaultBlobQuotaPerPeer {
		t.Fatalf("quota after the sweep: %+v", l)
	}
}

func TestBlobReceiptsDelete(t *testing.T) {
	r := startBlobRelay(t, Config{})
	h := newHost(t)
	var c Client
	ctx := ctxT(t)
	var seed [32]byte
	rand.Read(seed[:])
	var tokens [][32]byte
	var hashes []BlobHash
	for _, dev := range []string{"device-a", "device-b", "device-c"} {
		tok := BlobToken(seed, []byte(dev))
		tokens = append(tokens, tok)
		hashes = append(hashes, BlobTokenHash(tok))
	}
	data, hash := randomBlob(t, 1<<20+5)
	c.PutBlob(ctx, h, r.info, hash, int64(len(data)), hashes, newCutReader(data, 1<<20, false))
	if _, err := c.BlobDone(ctx, h, r.info, hash, tokens[0]); !errors.Is(err, ErrBlobIncomplete) {
		t.Fatalf("done before complete: %v", err)
	}
	if _, err := c.PutBlob(ctx, h, r.info, hash, int64(len(data)), hashes, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	wrong := BlobToken(seed, []byte("device-d"))
	if left, err := c.BlobDone(ctx, h, r.info, hash, wrong); !errors.Is(err, ErrBlobBadToken) || left != 3 {
		t.Fatalf("wrong token: %d, %v", left, err)
	}
	steps := []struct {
		tok  int
		left int
	}{{0, 2}, {0, 2}, {2, 1}}
	for _, s := range steps {
		left, err := c.BlobDone(ctx, h, r.info, hash, tokens[s.tok])
		if err != nil || left != s.left {
			t.Fatalf("done %d: %d left, %v; want %d", s.tok, left, err, s.left)
		}
	}
	// The count survives a restart.
	r.restart(t)
	if got := readAll(t, &c, h, r, hash); !bytes.Equal(got, data) {
		t.Fatal("blob changed before its last receipt")
	}
	if left, err := c.BlobDone(ctx, h, r.info, hash, tokens[1]); err != nil || left != 0 {
		t.Fatalf("last token: %d, %v", left, err)
	}
	if _, err := c.BlobStat(ctx, h, r.info, hash); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("stat after the last receipt: %v", err)
	}
	if files := blobFiles(t, r); len(files) != 0 {
		t.Fatalf("blob directory holds %v", files)
	}
	// A blob with no receipts takes no token.
	data2, hash2 := randomBlob(t, 100)
	if _, err := c.PutBlob(ctx, h, r.info, hash2, int64(len(data2)), nil, bytes.NewReader(data2)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.BlobDone(ctx, h, r.info, hash2, tokens[0]); !errors.Is(err, ErrBlobBadToken) {
		t.Fatalf("token for a blob with none: %v", err)
	}
	// A tiny blob counts as MinBlobCharge.
	if l, _ := c.BlobLimits(ctx, h, r.info); l.QuotaLeft != DefaultBlobQuotaPerPeer-MinBlobCharge {
		t.Fatalf("quota left %d after a tiny blob", l.QuotaLeft)
	}
}

// rawBlob is a blob stream driven by hand.
type rawBlob struct {
	t  testing.TB
	st interface {
		io.ReadWriter
		SetDeadline(time.Time) error
	}
}

func openRawBlob(t testing.TB, h host.Host, r *testRelay) *rawBlob {
	t.Helper()
	ctx := ctxT(t)
	if err := h.Connect(ctx, r.info); err != nil {
		t.Fatal(err)
	}
	st, err := h.NewStream(ctx, r.info.ID, BlobProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Reset() })
	st.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawBlob{t: t, st: st}
}

func (rb *rawBlob) ask(payload []byte) []byte {
	rb.t.Helper()
	if err := wire.WriteFrame(rb.st, payload); err != nil {
		rb.t.Fatal(err)
	}
	return rb.answer()
}

func (rb *rawBlob) answer() []byte {
	rb.t.Helper()
	b, err := wire.ReadFrame(rb.st, blobMaxAnswer)
	if err != nil {
		rb.t.Fatal(err)
	}
	return b
}

func (rb *rawBlob) expectClosed() {
	rb.t.Helper()
	if b, err := wire.ReadFrame(rb.st, blobMaxAnswer); err == nil {
		rb.t.Fatalf("stream still open: %x", b)
	}
}

func TestBlobMalformedFrames(t *testing.T) {
	r := startBlobRelay(t, Config{})
	h := newHost(t)
	_, hash := randomBlob(t, 10)
	put := (&blobReq{kind: blobKindPut, hash: hash, size: 10}).encode()
	bad := map[string][]byte{
		"empty":           {},
		"unknown kind":    {7},
		"kind 0":          {0},
		"short hash":      {byte(blobKindStat), 1, 2, 3},
		"trailing bytes":  append(bytes.Clone(put), 0),
		"limits trailing": {byte(blobKindLimits), 0},
		"too many receipts": func() []byte {
			q := &blobReq{kind: blobKindPut, hash: hash, size: 10, receipts: make([]BlobHash, MaxBlobReceipts+1)}
			return q.encode()
		}(),
		"receipt count lies": func() []byte {
			b := bytes.Clone(put)
			binary.BigEndian.PutUint16(b[len(b)-2:], 3)
			return b
		}(),
		"write over a chunk": func() []byte {
			b := (&blobReq{kind: blobKindWrite, hash: hash, data: make([]byte, 10)}).encode()
			binary.BigEndian.PutUint32(b[1+BlobHashSize+8:], BlobChunk+1)
			return b
		}(),
		"write length lies": func() []byte {
			b := (&blobReq{kind: blobKindWrite, hash: hash, data: make([]byte, 10)}).encode()
			return b[:len(b)-1]
		}(),
	}
	for name, payload := range bad {
		rb := openRawBlob(t, h, r)
		if got := rb.ask(payload); !bytes.Equal(got, []byte{byte(BlobBadRequest)}) {
			t.Fatalf("%s: answered %x", name, got)
		}
		rb.expectClosed()
	}
	// A frame declaring more than the largest request: refused before
	// its bytes.
	rb := openRawBlob(t, h, r)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], blobMaxFrame+1)
	rb.st.Write(hdr[:])
	if got := rb.answer(); !bytes.Equal(got, []byte{byte(BlobBadRequest)}) {
		t.Fatalf("oversized frame: answered %x", got)
	}
	rb.expectClosed()
	// A frame cut short.
	rb = openRawBlob(t, h, r)
	binary.BigEndian.PutUint32(hdr[:], 100)
	rb.st.Write(append(hdr[:], 1, 2, 3))
	rb.st.(interface{ CloseWrite() error }).CloseWrite()
	if got := rb.answer(); !bytes.Equal(got, []byte{byte(BlobBadRequest)}) {
		t.Fatalf("cut frame: answered %x", got)
	}

	// Well-formed requests the relay refuses keep the stream.
	rb = openRawBlob(t, h, r)
	state := func(st BlobStatus, s BlobState) []byte { return encodeState(st, s) }
	checks := []struct {
		name string
		req  *blobReq
		want []byte
	}{
		{"put size 0", &blobReq{kind: blobKindPut, hash: hash}, state(BlobBadRange, BlobState{})},
		{"write unknown", &blobReq{kind: blobKindWrite, hash: hash, data: []byte{1}}, state(BlobUnknown, BlobState{})},
		{"put", &blobReq{kind: blobKindPut, hash: hash, size: 10}, state(BlobOK, BlobState{Size: 10})},
		{"put another size", &blobReq{kind: blobKindPut, hash: hash, size: 11}, state(BlobBadRange, BlobState{Size: 10})},
		{"write a gap", &blobReq{kind: blobKindWrite, hash: hash, offset: 1, data: []byte{1}}, state(BlobBadRange, BlobState{Size: 10})},
		{"write empty", &blobReq{kind: blobKindWrite, hash: hash}, state(BlobBadRange, BlobState{Size: 10})},
		{"write past the size", &blobReq{kind: blobKindWrite, hash: hash, data: make([]byte, 11)}, state(BlobBadRange, BlobState{Size: 10})},
		{"write 4", &blobReq{kind: blobKindWrite, hash: hash, data: make([]byte, 4)}, state(BlobOK, BlobState{Size: 10, Have: 4})},
		{"write an overlap", &blobReq{kind: blobKindWrite, hash: hash, offset: 2, data: make([]byte, 4)}, state(BlobBadRange, BlobState{Size: 10, Have: 4})},
		{"read incomplete", &blobReq{kind: blobKindRead, hash: hash, length: 1}, []byte{byte(BlobIncomplete), 0, 0, 0, 0}},
		{"stat", &blobReq{kind: blobKindStat, hash: hash}, state(BlobOK, BlobState{Size: 10, Have: 4})},
	}
	for _, c := range checks {
		if got := rb.ask(c.req.encode()); !bytes.Equal(got, c.want) {
			t.Fatalf("%s: answered %x, want %x", c.name, got, c.want)
		}
	}
	data, full := randomBlob(t, 10)
	rb.ask((&blobReq{kind: blobKindPut, hash: full, size: 10}).encode())
	rb.ask((&blobReq{kind: blobKindWrite, hash: full, data: data}).encode())
	for _, c := range []struct {
		name string
		req  *blobReq
		st   BlobStatus
	}{
		{"read length 0", &blobReq{kind: blobKindRead, hash: full}, BlobBadRange},
		{"read over a chunk", &blobReq{kind: blobKindRead, hash: full, length: BlobChunk + 1}, BlobBadRange},
		{"read at the end", &blobReq{kind: blobKindRead, hash: full, offset: 10, length: 1}, BlobBadRange},
		{"read unknown", &blobReq{kind: blobKindRead, hash: hash2(full), length: 1}, BlobUnknown},
	} {
		if got := rb.ask(c.req.encode()); !bytes.Equal(got, []byte{byte(c.st), 0, 0, 0, 0}) {
			t.Fatalf("%s: answered %x", c.name, got)
		}
	}
}

func hash2(h BlobHash) BlobHash { h[0] ^= 1; return h }

func TestBlobRateLimited(t *testing.T) {
	r := startBlobRelay(t, Config{PeerRate: 0.001, PeerBurst: 3})
	h := newHost(t)
	rb := openRawBlob(t, h, r)
	for i := range 4 {
		got := rb.ask([]byte{byte(blobKindLimits)})
		if st := BlobStatus(got[0]); (i < 3) != (st == BlobOK) || (i == 3 && st != BlobBusy) {
			t.Fatalf("request %d: status %d", i, st)
		}
	}
}

func TestBlobStoreOff(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no_blob_store": {NoBlobStore: true, BlobDir: filepath.Join(t.TempDir(), "blobs")},
		"no blob_dir":   {},
	} {
		r := startRelay(t, cfg)
		var c Client
		if _, err := c.BlobLimits(ctxT(t), newHost(t), r.info); err == nil {
			t.Fatalf("%s: blob store answered", name)
		}
		if cfg.BlobDir != "" {
			if _, err := os.Stat(cfg.BlobDir); err == nil {
				t.Fatalf("%s: blob directory made", name)
			}
		}
	}
}

// TestBlobStartCleansUp: at start the relay cuts a file back to what its
// record acknowledged, deletes a blob whose acknowledged bytes are gone,
// removes files of no blob and leaves alone what is not a blob file.
func TestBlobStartCleansUp(t *testing.T) {
	r := startBlobRelay(t, Config{})
	h := newHost(t)
	var c Client
	ctx := ctxT(t)
	data, hash := randomBlob(t, 3<<20)
	c.PutBlob(ctx, h, r.info, hash, int64(len(data)), nil, newCutReader(data, 2<<20, false))
	lost, lostHash := randomBlob(t, 2<<20)
	c.PutBlob(ctx, h, r.info, lostHash, int64(len(lost)), nil, newCutReader(lost, 1<<20, false))
	r.stop()
	var name, lostName string
	for _, hh := range []BlobHash{hash, lostHash} {
		b := r.srv.blobs.byHash[hh]
		if hh == hash {
			name = filepath.Base(r.srv.blobs.path(b))
		} else {
			lostName = filepath.Base(r.srv.blobs.path(b))
		}
	}
	dir := r.cfg.BlobDir
	// Bytes of a write never acknowledged.
	f, _ := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("unacknowledged"))
	f.Close()
	os.Truncate(filepath.Join(dir, lostName), 100)
	stray := "00112233445566778899aabbccddeeff"
	os.WriteFile(filepath.Join(dir, stray), []byte("stray"), 0o600)
	os.WriteFile(filepath.Join(dir, "README"), []byte("not a blob"), 0o600)

	r.start(t)
	files := blobFiles(t, r)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{name, "README"}
	sort.Strings(want)
	if len(names) != 2 || names[0] != want[0] || names[1] != want[1] || files[name] != 2<<20 {
		t.Fatalf("blob directory after start: %v", files)
	}
	if _, err := c.BlobStat(ctx, h, r.info, lostHash); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("blob with lost bytes: %v", err)
	}
	if sent, err := c.PutBlob(ctx, h, r.info, hash, int64(len(data)), nil, bytes.NewReader(data)); err != nil || sent != 1<<20 {
		t.Fatalf("resume after start: sent %d, %v", sent, err)
	}
	if got := readAll(t, &c, h, r, hash); !bytes.Equal(got, data) {
		t.Fatal("downloaded blob differs")
	}
}

func TestBlobConfig(t *testing.T) {
	var cfg Config
	js := `{"no_blob_store": true, "blob_dir": "/x", "max_blob": 5, "blob_ttl": "1h", "blob_quota_per_peer": 6, "blob_quota_per_ip": 8, "blob_store_bytes": 7}`
	dec := json.NewDecoder(strings.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if !cfg.NoBlobStore || cfg.BlobDir != "/x" || cfg.MaxBlob != 5 || cfg.BlobTTL != Duration(time.Hour) ||
		cfg.BlobQuotaPerPeer != 6 || cfg.BlobQuotaPerIP != 8 || cfg.BlobStoreBytes != 7 {
		t.Fatalf("parsed %+v", cfg)
	}
	for _, bad := range []Config{{MaxBlob: -1}, {BlobTTL: -1}, {BlobQuotaPerPeer: -1}, {BlobStoreBytes: -1},
		{BlobQuotaPerIP: -1}, {BlobQuotaPerIP: DefaultBlobQuotaPerPeer - 1},
		{BlobQuotaPerPeer: 8 << 30, BlobQuotaPerIP: 6 << 30}} {
		if err := bad.Check(); !errors.Is(err, ErrConfig) {
			t.Fatalf("Check(%+v) = %v", bad, err)
		}
	}
	// The network's quota defaults to 4 GiB, or the peer's if that is
	// more; it may equal the peer's.
	for _, c := range []struct{ peer, ip, want int64 }{
		{0, 0, DefaultBlobQuotaPerIP}, {8 << 30, 0, 8 << 30}, {1 << 30, 0, DefaultBlobQuotaPerIP},
		{0, DefaultBlobQuotaPerPeer, DefaultBlobQuotaPerPeer}, {3 << 30, 3 << 30, 3 << 30},
	} {
		got, err := Config{BlobQuotaPerPeer: c.peer, BlobQuotaPerIP: c.ip}.withDefaults()
		if err != nil || got.BlobQuotaPerIP != c.want {
			t.Fatalf("peer %d, ip %d: blob_quota_per_ip %d, %v; want %d", c.peer, c.ip, got.BlobQuotaPerIP, err, c.want)
		}
	}
}
