package relay

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	circuitclient "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"

	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/internal/wire"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics(),
		libp2p.ResourceManager(&network.NullResourceManager{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// testRelay is a running relay server.
type testRelay struct {
	srv  *Server
	h    host.Host
	db   *store.DB
	dir  string
	cfg  Config
	info peer.AddrInfo
	stop func()
}

func startRelay(t testing.TB, cfg Config) *testRelay {
	t.Helper()
	r := &testRelay{dir: t.TempDir(), cfg: cfg, h: newHost(t)}
	r.info = peer.AddrInfo{ID: r.h.ID(), Addrs: r.h.Addrs()}
	r.start(t)
	return r
}

func (r *testRelay) start(t testing.TB) {
	t.Helper()
	db, err := store.Open(r.dir, StoreConfig(store.Config{}))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(r.cfg, r.h, db)
	if err != nil {
		t.Fatal(err)
	}
	r.srv, r.db = srv, db
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background()) }()
	<-srv.Ready()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			srv.Close()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
			db.Close()
		})
	}
	t.Cleanup(r.stop)
}

// restart closes the server and the store and opens them again.
func (r *testRelay) restart(t testing.TB) {
	r.stop()
	r.start(t)
}

func sealed(t testing.TB, bodySize int) []byte {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, bodySize)
	rand.Read(body)
	env, err := envelope.Seal(k.PublicKey(), &envelope.Inner{Kind: envelope.KindMessage, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// sealed1K returns a 1 KiB envelope.
func sealed1K(t testing.TB) []byte { return sealed(t, 900) }

type owner struct {
	key     ed25519.PrivateKey
	created *Created
}

func createMailbox(t testing.TB, c *Client, h host.Host, r *testRelay) *owner {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	cr, err := c.Create(context.Background(), h, r.info, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &owner{key: key, created: cr}
}

func expectCode(t testing.TB, err error, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}

func recvN(t testing.TB, sub *Subscription, n int) []*Deliver {
	t.Helper()
	var out []*Deliver
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case d, ok := <-sub.Messages():
			if !ok {
				t.Fatalf("subscription ended after %d of %d: %v", len(out), n, sub.Err())
			}
			out = append(out, d)
		case <-timeout:
			t.Fatalf("got %d of %d deliveries", len(out), n)
		}
	}
	return out
}

func waitDrained(t testing.TB, sub *Subscription) {
	t.Helper()
	select {
	case <-sub.Drained():
	case <-time.After(10 * time.Second):
		t.Fatal("no Drained")
	}
}

// drain subscribes without live and returns every stored envelope.
func drain(t testing.TB, c *Client, h host.Host, r *testRelay, o *owner) []*Deliver {
	t.Helper()
	sub, err := c.Subscribe(context.Background(), h, r.info, o.created.Mailbox, o.key, false)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var out []*Deliver
	for {
		select {
		case d := <-sub.Messages():
			out = append(out, d)
		case <-sub.Drained():
			// The channel may still hold deliveries sent before Drained.
			for {
				select {
				case d := <-sub.Messages():
					out = append(out, d)
				default:
					return out
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no Drained")
		}
	}
}

func TestDepositSubscribeAck(t *testing.T) {
	r := startRelay(t, Config{})
	h := newHost(t)
	c := &Client{}
	o := createMailbox(t, c, h, r)
	ctx := context.Background()
	envs := [][]byte{sealed1K(t), sealed(t, 100), sealed1K(t)}
	var ids []MessageID
	for _, e := range envs {
		id, err := c.Deposit(ctx, h, r.info, o.created.Deposit, e)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	sub, err := c.Subscribe(ctx, h, r.info, o.created.Mailbox, o.key, true)
	if err != nil {
		t.Fatal(err)
	}
	got := recvN(t, sub, 3)
	for i, d := range got {
		if d.Message != ids[i] || !bytes.Equal(d.Envelope, envs[i]) {
			t.Fatalf("delivery %d is not deposit %d (oldest first)", i, i)
		}
	}
	waitDrained(t, sub)

	// Live: a new deposit is pushed at once (no polling on either side).
	live := sealed1K(t)
	start := time.Now()
	id, err := c.Deposit(ctx, h, r.info, o.created.Deposit, live)
	if err != nil {
		t.Fatal(err)
	}
	d := recvN(t, sub, 1)[0]
	if d.Message != id || !bytes.Equal(d.Envelope, live) {
		t.Fatal("live delivery differs")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("live push took %v", el)
	}
	// Ack everything, one twice, plus an unknown ID: all harmless.
	for _, id := range append(ids, id, ids[0], MessageID{1, 2, 3}) {
		if err := sub.Ack(id); err != nil {
			t.Fatal(err)
		}
	}
	sub.Close()
	if left := drain(t, c, h, r, o); len(left) != 0 {
		t.Fatalf("%d envelopes left after acks", len(left))
	}
	if n := r.srv.storedMsgs.Load(); n != 0 {
		t.Fatalf("stored count %d after acks", n)
	}
}

func TestRedeliveryOfUnacked(t *testing.T) {
	r := startRelay(t, Config{})
	h := newHost(t)
	c := &Client{}
	o := createMailbox(t, c, h, r)
	for range 3 {
		if _, err := c.Deposit(context.Background(), h, r.info, o.created.Deposit, sealed1K(t)); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := c.Subscribe(context.Background(), h, r.info, o.created.Mailbox, o.key, false)
	if err != nil {
		t.Fatal(err)
	}
	got := recvN(t, sub, 3)
	sub.Ack(got[1].Message)
	sub.Close()
	left := drain(t, c, h, r, o)
	if len(left) != 2 || left[0].Message != got[0].Message || left[1].Message != got[2].Message {
		t.Fatalf("redelivered %d, want the 2 unacked in order", len(left))
	}
}

func TestNewSubscriptionReplacesOld(t *testing.T) {
	r := startRelay(t, Config{})
	h := newHost(t)
	c := &Client{}
	o := createMailbox(t, c, h, r)
	s1, err := c.Subscribe(context.Background(), h, r.info, o.created.Mailbox, o.key, true)
	if err != nil {
		t.Fatal(err)
	}
	waitDrained(t, s1)
	s2, err := c.Subscribe(context.Background(), h, r.info, o.created.Mailbox, o.key, true)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	waitDrained(t, s2)
	select {
	case <-s1.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("old subscription still open")
	}
	if _, err := c.Deposit(context.Background(), h, r.info, o.created.Deposit, sealed1K(t)); err != nil {
		t.Fatal(err)
	}
	recvN(t, s2, 1)
}

func TestQuotaDropsNothing(t *testing.T) {
	r := startRelay(t, Config{MaxMessages: 3, MaxMailboxBytes: 10 << 10})
	h := newHost(t)
	c := &Client{}
	o := createMailbox(t, c, h, r)
	ctx := context.Background()
	for range 3 {
		if _, err := c.Deposit(ctx, h, r.info, o.created.Deposit, sealed1K(t)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.Deposit(ctx, h, r.info, o.created.Deposit, sealed1K(t))
	expectCode(t, err, ErrQuota)
	if got := drain(t, c, h, r, o); len(got) != 3 {
		t.Fatalf("%d stored after quota, want 3", len(got))
	}
	// Byte quota: a second mailbox, 8 KiB envelopes against 10 KiB.
	o2 := createMailbox(t, c, h, r)
	if _, err := c.Deposit(ctx, h, r.info, o2.created.Deposit, sealed(t, 5000)); err != nil {
		t.Fatal(err)
	}
	_, err = c.Deposit(ctx, h, r.info, o2.created.Deposit, sealed(t, 5000))
	expectCode(t, err, ErrQuota)
	if o.created.MaxMessages != 3 || o.created.MaxBytes != 10<<10 {
		t.Fatalf("created quota %+v", o.created)
	}
}

func TestGlobalCap(t *testing.T) {
	r := startRelay(t, Config{MaxStoreBytes: 2048})
	h := newHost(t)
	c := &Client{}
	o := createMailbox(t, c, h, r)
	o2 := createMailbox(t, c, h, r)
	ctx := context.Background()
	for _, dep := range []ID{o.created.Deposit, o2.created.Deposit} {
		if _, err := c.Deposit(ctx, h, r.info, dep, sealed1K(t)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.Deposit(ctx, h, r.info, o.created.Deposit, sealed1K(t))
	expectCode(t, err, ErrFull)
	// An ack frees room.
	sub, err := c.Subscribe(ctx, h, r.info, o.created.Mailbox, o.key, false)
	if err != nil {
		t.Fatal(err)
	}
	sub.Ack(recvN(t, sub, 1)[0].Message)
	sub.Close()
	if _, err := c.Deposit(ctx, h, r.info, o.created.Deposit, sealed1K(t)); err != nil {
		t.Fatalf("deposit after an ack freed room: %v", err)
	}
}

func TestRateLimitPerPeer(t *testing.T) {
	clk := newFakeClock()
	r := startRelay(t, Config{PeerRate: 1, PeerBurst: 3, Now: clk.Now})
	h := newHost(t)
	c := &Client{}
	o := createMailbox(t, c, h, r) // takes one token
	ctx := context.Background()
	env := sealed1K(t)
	for range 2 {
		if _, err := c.Deposit(ctx, h, r.info, o.created.Deposit, env); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.Deposit(ctx, h, r.info, o.created.Deposit, env)
	expectCode(t, err, ErrRateLimited)
	// Another peer is not affected.
	if _, err := c.Deposit(ctx, newHost(t), r.info, o.created.Deposit, env); err != nil {
		t.Fatalf("other peer: %v", err)
	}
	clk.Add(2 * time.Second)
	if _, err := c.Deposit(ctx, h, r.info, o.created.Deposit, env); err != nil {
		t.Fatalf("after refill: %v", err)
	}
}

func TestTTLExpiry(t *testing.T) {
	clk := newFakeClock()
	r := startRelay(t, Config{TTL: Duration(time.Hour), Now: clk.Now, ExpiryInterval: Duration(time.Hour)})
	h := newHost(t)
	c := &Client{Now: clk.Now}
	o := createMailbox(t, c, h, r)
	ctx := context.Background()
	for range 2 {
		if _, err := c.Deposit(ctx, h, r.info, o.created.Deposit, sealed1K(t)); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(30 * time.Minute)
	keep, err := c.Deposit(ctx, h, r.info, o.created.Deposit, sealed1K(t))
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(31 * time.Minute)
	r.srv.expire()
	got := drain(t, c, h, r, o)
	if len(got) != 1 || got[0].Message != keep {
		t.Fatalf("after expiry %d left, want only the young one", len(got))
	}
	if r.srv.storedMsgs.Load() != 1 || r.srv.storedBytes.Load() != 1024 {
		t.Fatalf("counters %d/%d", r.srv.storedMsgs.Load(), r.srv.storedBytes.Load())
	}
	clk.Add(time.Hour)
	r.srv.expire()
	if got := drain(t, c, h, r, o); len(got) != 0 {
		t.Fatal("expired envelope still delivered")
	}
	n := 0
	r.srv.t.expiry.ScanSeq(expiryID, 0, ^uint64(0), func(uint64, []byte) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d expiry index entries left", n)
	}
}

// rawConn is a stream for hand-made frames.
type rawConn struct {
	t  testing.TB
	st network.Stream
}

func openRaw(t testing.TB, h host.Host, r *testRelay) *rawConn {
	t.Helper()
	if err := h.Connect(context.Background(), r.info); err != nil {
		t.Fatal(err)
	}
	st, err := h.NewStream(context.Background(), r.info.ID, ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	st.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { st.Reset() })
	return &rawConn{t: t, st: st}
}

func (c *rawConn) sendRaw(b []byte) {
	c.t.Helper()
	if _, err := c.st.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawConn) send(m any) {
	c.t.Helper()
	if err := wire.WriteFrame(c.st, Encode(m)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawConn) recv() any {
	c.t.Helper()
	b, err := wire.ReadFrame(c.st, MaxFrame)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	m, err := Decode(b)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

func (c *rawConn) expectErr(code ErrorCode) {
	c.t.Helper()
	m := c.recv()
	e, ok := m.(*ErrorMsg)
	if !ok || e.Code != code {
		c.t.Fatalf("got %#v, want Error %v", m, code)
	}
}

func TestAuthFailures(t *testing.T) {
	clk := newFakeClock()
	r := startRelay(t, Config{Now: clk.Now})
	h := newHost(t)
	c := &Client{Now: clk.Now}
	o := createMailbox(t, c, h, r)
	mbox := o.created.Mailbox
	_, other, _ := ed25519.GenerateKey(rand.Reader)

	rc := openRaw(t, h, r)
	rc.send(&Hello{Mailbox: mbox})
	ch := rc.recv().(*Challenge)
	// Bad signature (another key).
	s := &Subscribe{Mailbox: mbox, Nonce: ch.Nonce}
	SignSubscribe(s, other)
	rc.send(s)
	rc.expectErr(CodeAuth)
	// The nonce was used: the right signature over it fails now.
	s = &Subscribe{Mailbox: mbox, Nonce: ch.Nonce}
	SignSubscribe(s, o.key)
	rc.send(s)
	rc.expectErr(CodeAuth)
	// Stale: a fresh challenge answered after 31 s.
	rc.send(&Hello{Mailbox: mbox})
	ch = rc.recv().(*Challenge)
	clk.Add(31 * time.Second)
	s = &Subscribe{Mailbox: mbox, Nonce: ch.Nonce}
	SignSubscribe(s, o.key)
	rc.send(s)
	rc.expectErr(CodeAuth)
	// A nonce not issued on this stream.
	s = &Subscribe{Mailbox: mbox}
	rand.Read(s.Nonce[:])
	SignSubscribe(s, o.key)
	rc.send(s)
	rc.expectErr(CodeAuth)
	// Unknown mailbox.
	rc.send(&Hello{Mailbox: ID{9}})
	rc.expectErr(CodeNotFound)
	// And the same stream still works.
	rc.send(&Hello{Mailbox: mbox})
	ch = rc.recv().(*Challenge)
	s = &Subscribe{Mailbox: mbox, Nonce: ch.Nonce}
	SignSubscribe(s, o.key)
	rc.send(s)
	if _, ok := rc.recv().(drainedMsg); !ok {
		t.Fatal("no Drained after a good subscribe")
	}
	// Signed requests with a bad key or time.
	err := c.Delete(context.Background(), h, r.info, mbox, other)
	expectCode(t, err, ErrAuth)
	late := &Client{Now: func() time.Time { return clk.Now().Add(-2 * time.Minute) }}
	err = late.PutPrekeys(context.Background(), h, r.info, mbox, o.key, []byte("lr"), nil)
	expectCode(t, err, ErrAuth)
	_, err = late.Create(context.Background(), h, r.info, other, nil)
	expectCode(t, err, ErrAuth)
}

func TestBadRequestsKeepServing(t *testing.T) {
	r := startRelay(t, Config{MaxEnvelope: 1024})
	h := newHost(t)
	c := &Client{}
	o := createMailbox(t, c, h, r)
	ctx := context.Background()
	okDeposit := func() {
		t.Helper()
		if _, err := c.Deposit(ctx, h, r.info, o.created.Deposit, sealed1K(t)); err != nil {
			t.Fatalf("relay stopped serving: %v", err)
		}
	}
	// Unknown deposit ID.
	_, err := c.Deposit(ctx, h, r.info, ID{1}, sealed1K(t))
	expectCode(t, err, ErrNotFound)
	_, _, err = c.GetPrekeys(ctx, h, r.info, ID{1})
	expectCode(t, err, ErrNotFound)
	// Oversized envelope (over the operator's cap, a valid bucket).
	_, err = c.Deposit(ctx, h, r.info, o.created.Deposit, sealed(t, 1500))
	expectCode(t, err, ErrTooLarge)
	// Not an envelope.
	_, err = c.Deposit(ctx, h, r.info, o.created.Deposit, bytes.Repeat([]byte{0xEE}, 1024))
	expectCode(t, err, ErrBadRequest)
	okDeposit()

	cases := []struct {
		name string
		raw  []byte
		code ErrorCode
	}{
		{"unknown kind", frame([]byte{99, 1, 2}), CodeBadRequest},
		{"empty payload", frame(nil), CodeBadRequest},
		{"truncated body", frame(Encode(&Hello{})[:10]), CodeBadRequest},
		{"trailing bytes", frame(append(Encode(&Hello{}), 0)), CodeBadRequest},
		{"server kind", frame(Encode(&Receipt{})), CodeBadRequest},
		{"frame over cap", []byte{0xff, 0xff, 0xff, 0xff}, CodeTooLarge},
	}
	for _, tc := range cases {
		rc := openRaw(t, h, r)
		rc.sendRaw(tc.raw)
		rc.expectErr(tc.code)
		okDeposit()
	}
	// A deposit stream is reusable after a refusal.
	rc := openRaw(t, h, r)
	rc.send(&Deposit{Deposit: ID{7}, Envelope: sealed1K(t)})
	rc.expectErr(CodeNotFound)
	rc.send(&Deposit{Deposit: o.created.Deposit, Envelope: sealed1K(t)})
	if _, ok := rc.recv().(*Receipt); !ok {
		t.Fatal("no receipt on a reused stream")
	}
	// A stream that never sends is closed by its deadline; others go on.
	okDeposit()
}

func frame(p []byte) []byte {
	b, _ := wire.AppendFrame(nil, p)
	return b
}

func TestPrekeysOneTimeOnce(t *testing.T) {
	r := startRelay(t, Config{MaxOneTime: 2})
	h := newHost(t)
	c := &Client{}
	o := createMailbox(t, c, h, r)
	ctx := context.Background()
	_, _, err := c.GetPrekeys(ctx, h, r.info, o.created.Deposit)
	expectCode(t, err, ErrNotFound)
	err = c.PutPrekeys(ctx, h, r.info, o.created.Mailbox, o.key, []byte("lr"), [][]byte{[]byte("1"), []byte("2"), []byte("3")})
	expectCode(t, err, ErrQuota)
	if err := c.PutPrekeys(ctx, h, r.info, o.created.Mailbox, o.key, []byte("lr"), [][]byte{[]byte("1"), []byte("2")}); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		b  string
		ot bool
	}{{"1", true}, {"2", true}, {"lr", false}, {"lr", false}}
	for i, w := range want {
		b, ot, err := c.GetPrekeys(ctx, newHost(t), r.info, o.created.Deposit)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != w.b || ot != w.ot {
			t.Fatalf("fetch %d: %q %v, want %q %v", i, b, ot, w.b, w.ot)
		}
	}
}

// AddPrekeys tops up: the bundles the relay still holds stay, new ones
// go after them up to the cap (the excess is dropped), the last-resort
// bundle is replaced, and the answer is the count held.
func TestAddPrekeysTopsUp(t *testing.T) {
	r := startRelay(t, Config{MaxOneTime: 3})
	h := newHost(t)
	c := &Client{}
	o := createMailbox(t, c, h, r)
	ctx := context.Background()
	add := func(lr string, ot ...string) int {
		t.Helper()
		var b [][]byte
		for _, s := range ot {
			b = append(b, []byte(s))
		}
		n, err := c.AddPrekeys(ctx, h, r.info, o.created.Mailbox, o.key, []byte(lr), b)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := add("lr1", "1", "2"); n != 2 {
		t.Fatalf("held %d after adding 2, want 2", n)
	}
	if n := add("lr2"); n != 2 {
		t.Fatalf("an empty top-up reports %d, want 2", n)
	}
	if b, ot, err := c.GetPrekeys(ctx, newHost(t), r.info, o.created.Deposit); err != nil || string(b) != "1" || !ot {
		t.Fatalf("first fetch %q %v %v", b, ot, err)
	}
	if n := add("lr3", "3", "4", "5"); n != 3 {
		t.Fatalf("held %d after topping up past the cap, want 3", n)
	}
	want := []struct {
		b  string
		ot bool
	}{{"2", true}, {"3", true}, {"4", true}, {"lr3", false}}
	for i, w := range want {
		b, ot, err := c.GetPrekeys(ctx, newHost(t), r.info, o.created.Deposit)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != w.b || ot != w.ot {
			t.Fatalf("fetch %d: %q %v, want %q %v", i, b, ot, w.b, w.ot)
		}
	}
	_, err := c.AddPrekeys(ctx, h, r.info, o.created.Mailbox, o.key, nil, nil)
	expectCode(t, err, ErrBadRequest)
}

func TestCreationModes(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	_, key, _ := ed25519.GenerateKey(rand.Reader)

	closed := startRelay(t, Config{Creation: CreationClosed})
	_, err := (&Client{}).Create(ctx, h, closed.info, key, nil)
	expectCode(t, err, ErrCreationClosed)

	inv := startRelay(t, Config{Creation: CreationInvite, InviteTokens: []string{"letmein"}})
	_, err = (&Client{}).Create(ctx, h, inv.info, key, nil)
	expectCode(t, err, ErrCreationClosed)
	_, err = (&Client{}).Create(ctx, h, inv.info, key, []byte("wrong"))
	expectCode(t, err, ErrCreationClosed)
	if _, err := (&Client{}).Create(ctx, h, inv.info, key, []byte("letmein")); err != nil {
		t.Fatal(err)
	}

	pow := startRelay(t, Config{PoWBits: 12})
	// An unsolved request meets 12 bits by chance once in 4,096: pin the
	// signed time to one whose nonce-0 hash falls short.
	now := time.Now()
	for powBits(&Create{Owner: key.Public().(ed25519.PublicKey), Time: uint64(now.Unix())}) >= 12 {
		now = now.Add(-time.Second)
	}
	_, err = (&Client{Now: func() time.Time { return now }}).Create(ctx, h, pow.info, key, nil)
	expectCode(t, err, ErrCreationClosed)
	if !strings.Contains(err.Error(), "12 bits") {
		t.Fatalf("error does not say the bits: %v", err)
	}
	if _, err := (&Client{PoWBits: 12}).Create(ctx, h, pow.info, key, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Creation: "sometimes"}, h, nil); err == nil {
		t.Fatal("bad creation mode accepted")
	}
}

func TestDeleteMailbox(t *testing.T) {
	r := startRelay(t, Config{})
	h := newHost(t)
	c := &Client{}
	o := createMailbox(t, c, h, r)
	ctx := context.Background()
	c.Deposit(ctx, h, r.info, o.created.Deposit, sealed1K(t))
	sub, err := c.Subscribe(ctx, h, r.info, o.created.Mailbox, o.key, true)
	if err != nil {
		t.Fatal(err)
	}
	recvN(t, sub, 1)
	if err := c.Delete(ctx, h, r.info, o.created.Mailbox, o.key); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("subscription survived delete")
	}
	_, err = c.Deposit(ctx, h, r.info, o.created.Deposit, sealed1K(t))
	expectCode(t, err, ErrNotFound)
	_, err = c.Subscribe(ctx, h, r.info, o.created.Mailbox, o.key, false)
	expectCode(t, err, ErrNotFound)
	if r.srv.storedMsgs.Load() != 0 || r.srv.storedBytes.Load() != 0 {
		t.Fatal("counters not zero after delete")
	}
	r.restart(t)
	if n := r.srv.mailboxCount(); n != 0 {
		t.Fatalf("%d mailboxes after delete and restart", n)
	}
}

func TestRestartPersistence(t *testing.T) {
	r := startRelay(t, Config{MaxMessages: 5})
	h := newHost(t)
	c := &Client{}
	o := createMailbox(t, c, h, r)
	ctx := context.Background()
	var ids []MessageID
	for range 5 {
		id, err := c.Deposit(ctx, h, r.info, o.created.Deposit, sealed1K(t))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	r.restart(t)
	// Counts survive: still full.
	_, err := c.Deposit(ctx, h, r.info, o.created.Deposit, sealed1K(t))
	expectCode(t, err, ErrQuota)
	got := drain(t, c, h, r, o)
	if len(got) != 5 {
		t.Fatalf("%d after restart, want 5", len(got))
	}
	for i := range got {
		if got[i].Message != ids[i] {
			t.Fatal("order or IDs changed across restart")
		}
	}
}

func TestCircuitRelayACL(t *testing.T) {
	r := startRelay(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ownerHost := newHost(t)
	c := &Client{}
	o := createMailbox(t, c, ownerHost, r)

	stranger := newHost(t)
	if _, err := circuitclient.Reserve(ctx, stranger, r.info); err == nil {
		t.Fatal("a random peer got a reservation")
	}
	// Creating a mailbox is not enough: the owner must subscribe.
	if _, err := circuitclient.Reserve(ctx, ownerHost, r.info); err == nil {
		t.Fatal("an unauthenticated peer got a reservation")
	}
	sub, err := c.Subscribe(ctx, ownerHost, r.info, o.created.Mailbox, o.key, true)
	if err != nil {
		t.Fatal(err)
	}
	waitDrained(t, sub)
	if _, err := circuitclient.Reserve(ctx, ownerHost, r.info); err != nil {
		t.Fatalf("subscribed owner refused: %v", err)
	}
	sub.Close()
	// Within the grace period after the subscription ended.
	if _, err := circuitclient.Reserve(ctx, ownerHost, r.info); err != nil {
		t.Fatalf("recent owner refused: %v", err)
	}
	if !r.srv.acl.AllowConnect(stranger.ID(), nil, ownerHost.ID()) || r.srv.acl.AllowConnect(ownerHost.ID(), nil, stranger.ID()) {
		t.Fatal("connect ACL wrong")
	}
}

func TestNoIdentifiersOnDisk(t *testing.T) {
	r := startRelay(t, Config{})
	h := newHost(t)
	c := &Client{}
	o := createMailbox(t, c, h, r)
	ctx := context.Background()
	var secrets [][]byte
	secrets = append(secrets, o.created.Mailbox[:], o.created.Deposit[:], o.key.Public().(ed25519.PublicKey))
	for range 3 {
		id, err := c.Deposit(ctx, h, r.info, o.created.Deposit, sealed1K(t))
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, id[:])
	}
	c.PutPrekeys(ctx, h, r.info, o.created.Mailbox, o.key, []byte("LAST-RESORT-BUNDLE-MARKER"), [][]byte{[]byte("ONE-TIME-BUNDLE-MARKER")})
	r.stop()
	var pats [][]byte
	for _, s := range secrets {
		pats = append(pats, s, []byte(hex.EncodeToString(s)))
	}
	pats = append(pats, []byte("BUNDLE-MARKER"))
	filepath.WalkDir(r.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, pat := range pats {
			if bytes.Contains(b, pat) {
				t.Errorf("%s holds an identifier in clear", filepath.Base(p))
			}
		}
		return nil
	})
}

func TestConfigJSON(t *testing.T) {
	in := `{"max_messages": 10, "ttl": "48h", "creation": "invite", "invite_tokens": ["a"], "peer_rate": -1, "idle_timeout": 90}`
	var cfg Config
	dec := json.NewDecoder(strings.NewReader(in))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.MaxMessages != 10 || time.Duration(cfg.TTL) != 48*time.Hour || cfg.PeerRate != -1 || time.Duration(cfg.IdleTimeout) != 90*time.Second {
		t.Fatalf("parsed %+v", cfg)
	}
	d, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if d.MaxEnvelope != envelope.MaxEnvelopeSize || d.MaxStoreBytes != DefaultMaxStoreBytes || d.peerLimiterOff() != true {
		t.Fatalf("defaults %+v", d)
	}
	out, err := json.Marshal(cfg)
	if err != nil || !strings.Contains(string(out), `"ttl":"48h0m0s"`) {
		t.Fatalf("marshal: %s %v", out, err)
	}
}

func (c Config) peerLimiterOff() bool { return newLimiter(c.PeerRate, c.PeerBurst) == nil }

// Every size, count and duration of Config is refused by New when
// negative, with an error naming the field; before, each silently became
// its default. Negative rates still mean no limit.
func TestConfigRefusesNegativeValues(t *testing.T) {
	for name, cfg := range map[string]Config{
		"max_envelope":           {MaxEnvelope: -1},
		"max_messages":           {MaxMessages: -1},
		"max_mailbox_bytes":      {MaxMailboxBytes: -1},
		"ttl":                    {TTL: Duration(-time.Hour)},
		"max_store_bytes":        {MaxStoreBytes: -1},
		"peer_burst":             {PeerBurst: -1},
		"ip_burst":               {IPBurst: -1},
		"max_one_time":           {MaxOneTime: -1},
		"request_timeout":        {RequestTimeout: Duration(-time.Second)},
		"idle_timeout":           {IdleTimeout: Duration(-time.Second)},
		"expiry_interval":        {ExpiryInterval: Duration(-time.Second)},
		"owner_grace":            {OwnerGrace: Duration(-time.Second)},
		"max_topics":             {MaxTopics: -1},
		"max_topics_per_ip":      {MaxTopicsPerIP: -1},
		"max_mailboxes_per_ip":   {MaxMailboxesPerIP: -1},
		"max_mailboxes_per_peer": {MaxMailboxesPerPeer: -1},
		"create_ip_burst":        {CreateIPBurst: -1},
		"topic_file_burst":       {TopicFileBurst: -1},
		"topic_file_ip_burst":    {TopicFileIPBurst: -1},
		"max_frame_bytes":        {MaxFrameBytes: -1},
		"max_frame_bytes_per_ip": {MaxFrameBytesPerIP: -1},
		"push.window":            {Push: PushConfig{Window: Duration(-time.Second)}},
		"pow_bits":               {PoWBits: -1},
	} {
		_, err := New(cfg, nil, nil)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), name+" ") {
			t.Errorf("%s negative: got %v, want an ErrConfig naming it", name, err)
		}
	}
	if err := (Config{PeerRate: -1, IPRate: -1, CreateIPPerHour: -1, TopicFileRate: -1, TopicFileIPRate: -1}).Check(); err != nil {
		t.Fatalf("negative rates (no limit): %v", err)
	}
}

// A stream that sends only a Ping is answered OK and closed by the relay
// at once; before, the Ping went unanswered and the relay held the stream
// until its request deadline (here an hour).
func TestLonePingAnsweredAndClosed(t *testing.T) {
	r := startRelay(t, Config{RequestTimeout: Duration(time.Hour)})
	h := newHost(t)
	if err := h.Connect(context.Background(), r.info); err != nil {
		t.Fatal(err)
	}
	st, err := h.NewStream(context.Background(), r.info.ID, ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	if err := wire.WriteFrame(st, Encode(Ping)); err != nil {
		t.Fatal(err)
	}
	st.SetReadDeadline(time.Now().Add(10 * time.Second)) // a failure bound, not a wait
	b, err := wire.ReadFrame(st, MaxFrame)
	if err != nil {
		t.Fatalf("no answer to a lone Ping: %v", err)
	}
	if m, err := Decode(b); err != nil || m != OK {
		t.Fatalf("answer %T (%v), want OK", m, err)
	}
	if _, err := wire.ReadFrame(st, MaxFrame); err != io.EOF {
		t.Fatalf("after the answer: %v, want the relay's end of stream", err)
	}
	eventually(t, "the relay releases the stream", func() bool {
		r.srv.lifeMu.Lock()
		defer r.srv.lifeMu.Unlock()
		return len(r.srv.streams) == 0
	})
}
