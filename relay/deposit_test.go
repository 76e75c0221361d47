package relay

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/internal/wire"
)

// distinct returns n 1 KiB sealed envelopes.
func distinct(t testing.TB, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = sealed1K(t)
	}
	return out
}

func openDepositor(t testing.TB, c *Client, r *testRelay) *Depositor {
	t.Helper()
	d, err := c.OpenDepositor(context.Background(), newHost(t), r.info)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// Envelopes deposited in batches, and singles deposited concurrently on
// the same Depositor, are all stored and acknowledged, each batch's in
// order, with the message IDs the receipts named.
func TestDepositManyStoredInOrder(t *testing.T) {
	r := startRelay(t, Config{PeerRate: -1, IPRate: -1})
	c := &Client{}
	h := newHost(t)
	a, b := createMailbox(t, c, h, r), createMailbox(t, c, h, r)
	d := openDepositor(t, c, r)
	if !d.Batched() {
		t.Fatal("the relay should take DepositMany")
	}
	// 600 envelopes alternating between the two mailboxes: more than
	// one DepositMany holds (MaxDepositMany).
	envs := distinct(t, 600)
	items := make([]DepositItem, len(envs))
	for i, e := range envs {
		items[i] = DepositItem{Deposit: a.created.Deposit, Envelope: e}
		if i%2 == 1 {
			items[i].Deposit = b.created.Deposit
		}
	}
	singles := distinct(t, 100)
	singleIDs := make(map[MessageID]bool)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, e := range singles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := d.Deposit(a.created.Deposit, e)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			singleIDs[id] = true
			mu.Unlock()
		}()
	}
	res, err := d.DepositMany(items)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(singleIDs) != len(singles) {
		t.Fatalf("%d distinct single receipts, want %d", len(singleIDs), len(singles))
	}
	want := map[ID][]MessageID{}
	for i, rs := range res {
		if rs.Err() != nil {
			t.Fatalf("item %d: %v", i, rs.Err())
		}
		want[items[i].Deposit] = append(want[items[i].Deposit], rs.Message)
	}
	for _, o := range []*owner{a, b} {
		got := drain(t, c, h, r, o)
		var batch []MessageID
		nsingle := 0
		for _, m := range got {
			if singleIDs[m.Message] {
				nsingle++
			} else {
				batch = append(batch, m.Message)
			}
		}
		if fmt.Sprint(batch) != fmt.Sprint(want[o.created.Deposit]) {
			t.Fatalf("mailbox holds the batch's %d envelopes out of order or changed (want %d)", len(batch), len(want[o.created.Deposit]))
		}
		if o == a && nsingle != len(singles) || o == b && nsingle != 0 {
			t.Fatalf("%d singles in a mailbox", nsingle)
		}
	}
	if n := r.srv.storedMsgs.Load(); n != 700 {
		t.Fatalf("stored count %d, want 700", n)
	}
}

// Each item of a DepositMany is checked as a Deposit is, and a refused
// item refuses nothing else.
func TestDepositManyResultsPerItem(t *testing.T) {
	r := startRelay(t, Config{MaxMessages: 3, MaxEnvelope: 2048})
	c := &Client{}
	h := newHost(t)
	o := createMailbox(t, c, h, r)
	dep := o.created.Deposit
	d := openDepositor(t, c, r)
	items := []DepositItem{
		{dep, sealed1K(t)},
		{ID{9}, sealed1K(t)},
		{dep, bytes.Repeat([]byte{0xEE}, 1024)},
		{dep, sealed(t, 3000)},
		{dep, sealed1K(t)},
		{dep, sealed1K(t)},
		{dep, sealed1K(t)},
	}
	res, err := d.DepositMany(items)
	if err != nil {
		t.Fatal(err)
	}
	want := []ErrorCode{0, CodeNotFound, CodeBadRequest, CodeTooLarge, 0, 0, CodeQuota}
	var stored []MessageID
	for i, rs := range res {
		if rs.Code != want[i] {
			t.Fatalf("item %d: code %d, want %d", i, rs.Code, want[i])
		}
		if rs.Code == 0 {
			stored = append(stored, rs.Message)
		}
	}
	expectCode(t, res[6].Err(), ErrQuota)
	got := drain(t, c, h, r, o)
	if len(got) != 3 || got[0].Message != stored[0] || got[1].Message != stored[1] || got[2].Message != stored[2] {
		t.Fatal("the stored items are not the accepted ones in order")
	}
	// The stream goes on after refusals.
	if _, err := d.Deposit(ID{9}, sealed1K(t)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want NotFound", err)
	}
}

// A DepositMany takes one rate-limit token per envelope.
func TestDepositManyRateLimitedPerEnvelope(t *testing.T) {
	clk := newFakeClock()
	r := startRelay(t, Config{PeerRate: 1, PeerBurst: 6, IPRate: -1, Now: clk.Now})
	c := &Client{}
	h := newHost(t)
	o := createMailbox(t, c, h, r) // one token
	d, err := c.OpenDepositor(context.Background(), h, r.info)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	items := make([]DepositItem, 8)
	for i := range items {
		items[i] = DepositItem{o.created.Deposit, sealed1K(t)}
	}
	res, err := d.DepositMany(items)
	if err != nil {
		t.Fatal(err)
	}
	for i, rs := range res {
		want := ErrorCode(0)
		if i >= 5 {
			want = CodeRateLimited
		}
		if rs.Code != want {
			t.Fatalf("item %d: code %d, want %d", i, rs.Code, want)
		}
	}
}

// pipeline sends n Deposit frames on rc without reading.
func (rc *rawConn) pipeline(dep ID, n int) {
	rc.t.Helper()
	var buf []byte
	for range n {
		buf, _ = wire.AppendFrame(buf, Encode(&Deposit{Deposit: dep, Envelope: sealed1K(rc.t)}))
	}
	rc.sendRaw(buf)
}

func (rc *rawConn) expectReceipts(n int) []MessageID {
	rc.t.Helper()
	var ids []MessageID
	for range n {
		switch m := rc.recv().(type) {
		case *Receipt:
			ids = append(ids, m.Message)
		case *Receipts:
			for _, r := range m.Results {
				if r.Code != 0 {
					rc.t.Fatalf("item refused: %d", r.Code)
				}
				ids = append(ids, r.Message)
			}
		default:
			rc.t.Fatalf("got %#v, want a receipt", m)
		}
	}
	return ids
}

func (rc *rawConn) expectClosed() {
	rc.t.Helper()
	if _, err := wire.ReadFrame(rc.st, MaxFrame); err == nil {
		rc.t.Fatal("the relay answered more")
	}
}

// Frames sent without waiting are answered in order; a truncated,
// oversized or malformed frame after them gets its Error after their
// receipts, and what they acknowledged is stored (after a restart too).
func TestPipelinedFramesThenBadFrame(t *testing.T) {
	r := startRelay(t, Config{PeerRate: -1, IPRate: -1})
	c := &Client{}
	h := newHost(t)
	o := createMailbox(t, c, h, r)
	dep := o.created.Deposit
	var acked []MessageID

	// Deposits, a DepositMany, a Deposit, then a frame cut short.
	rc := openRaw(t, h, r)
	rc.pipeline(dep, 5)
	rc.send(&DepositMany{Items: []DepositItem{{dep, sealed1K(t)}, {dep, sealed1K(t)}, {dep, sealed1K(t)}}})
	rc.pipeline(dep, 1)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 2000)
	rc.sendRaw(append(hdr[:], Encode(&Deposit{Deposit: dep, Envelope: sealed1K(t)})[:100]...))
	rc.st.CloseWrite()
	acked = append(acked, rc.expectReceipts(7)...)
	rc.expectErr(CodeBadRequest)
	rc.expectClosed()

	// Over the frame cap.
	rc = openRaw(t, h, r)
	rc.pipeline(dep, 3)
	rc.sendRaw([]byte{0xff, 0xff, 0xff, 0xff})
	acked = append(acked, rc.expectReceipts(3)...)
	rc.expectErr(CodeTooLarge)
	rc.expectClosed()

	// Malformed: a DepositMany with trailing bytes.
	rc = openRaw(t, h, r)
	rc.pipeline(dep, 2)
	rc.sendRaw(frame(append(Encode(&DepositMany{Items: []DepositItem{{dep, sealed1K(t)}}}), 0)))
	acked = append(acked, rc.expectReceipts(2)...)
	rc.expectErr(CodeBadRequest)
	rc.expectClosed()

	// A DepositMany over the item cap.
	rc = openRaw(t, h, r)
	w := Encode(&DepositMany{Items: []DepositItem{{dep, sealed1K(t)}}})
	binary.BigEndian.PutUint16(w[1:], MaxDepositMany+1)
	rc.sendRaw(frame(w))
	rc.expectErr(CodeBadRequest)

	r.restart(t)
	got := drain(t, c, h, r, o)
	if len(got) != len(acked) {
		t.Fatalf("%d stored, %d acknowledged", len(got), len(acked))
	}
	for i := range got {
		if got[i].Message != acked[i] {
			t.Fatal("stored out of the acknowledged order")
		}
	}
}

// mailboxState is a mailbox's counters and what its messages add up to.
type mailboxState struct{ count, bytes, next, present, presentBytes, last int64 }

func stateOf(t testing.TB, r *testRelay, id ID) mailboxState {
	t.Helper()
	mb := r.srv.lookupMailbox(id)
	mb.mu.Lock()
	st := mailboxState{count: mb.count, bytes: mb.bytes, next: int64(mb.next), last: -1}
	mb.mu.Unlock()
	err := r.srv.t.messages.ScanSeq(id[:], 0, math.MaxUint64, func(seq uint64, v []byte) error {
		msg, err := parseMessage(v)
		if err != nil {
			return err
		}
		st.present++
		st.presentBytes += int64(len(msg.envelope))
		st.last = int64(seq)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (s mailboxState) check(t testing.TB) {
	t.Helper()
	if s.count != s.present || s.bytes != s.presentBytes || s.next <= s.last {
		t.Fatalf("counters %d messages, %d bytes, next %d; stored %d messages, %d bytes, last arrival %d",
			s.count, s.bytes, s.next, s.present, s.presentBytes, s.last)
	}
}

// The counters are right after a clean restart, with deposits and acks
// past the last checkpoint, and the quota still holds.
func TestCountersAfterRestart(t *testing.T) {
	r := startRelay(t, Config{MaxMessages: 20, ExpiryInterval: Duration(time.Hour)})
	c := &Client{}
	h := newHost(t)
	o := createMailbox(t, c, h, r)
	d := openDepositor(t, c, r)
	deposit := func(n int) {
		t.Helper()
		items := make([]DepositItem, n)
		for i := range items {
			items[i] = DepositItem{o.created.Deposit, sealed1K(t)}
		}
		res, err := d.DepositMany(items)
		if err != nil {
			t.Fatal(err)
		}
		for _, rs := range res {
			if rs.Err() != nil {
				t.Fatal(rs.Err())
			}
		}
	}
	deposit(10)
	ackSome(t, c, r, o, 3)
	deposit(5)
	before := stateOf(t, r, o.created.Mailbox)
	before.check(t)
	r.restart(t)
	after := stateOf(t, r, o.created.Mailbox)
	after.check(t)
	if after != before {
		t.Fatalf("after restart %+v, before %+v", after, before)
	}
	if r.srv.storedMsgs.Load() != 12 || r.srv.storedBytes.Load() != 12*1024 {
		t.Fatalf("relay counters %d/%d", r.srv.storedMsgs.Load(), r.srv.storedBytes.Load())
	}
	d = openDepositor(t, c, r)
	deposit(8)
	if _, err := d.Deposit(o.created.Deposit, sealed1K(t)); !errors.Is(err, ErrQuota) {
		t.Fatalf("got %v, want Quota", err)
	}
}

// ackSome acks the first n stored messages and waits until they are
// deleted.
func ackSome(t testing.TB, c *Client, r *testRelay, o *owner, n int) {
	t.Helper()
	host := newHost(t)
	sub, err := c.Subscribe(context.Background(), host, r.info, o.created.Mailbox, o.key, false)
	if err != nil {
		t.Fatal(err)
	}
	want := r.srv.storedMsgs.Load() - int64(n)
	for _, m := range recvN(t, sub, n) {
		sub.Ack(m.Message)
	}
	sub.Close()
	eventually(t, "acks committed", func() bool { return r.srv.storedMsgs.Load() == want })
}

// The crash child: a relay on HUSH_RELAY_CRASH_DIR that prints its
// address and serves until killed.
func TestDepositCrashChild(t *testing.T) {
	dir := os.Getenv("HUSH_RELAY_CRASH_DIR")
	if dir == "" {
		t.Skip("run by TestCountersAfterKill")
	}
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics(),
		libp2p.ResourceManager(&network.NullResourceManager{}))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(dir, StoreConfig(store.Config{}))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{PeerRate: -1, IPRate: -1, ExpiryInterval: Duration(time.Hour)}, h, db)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Run(context.Background())
	<-srv.Ready()
	fmt.Printf("ADDR %s/p2p/%s\n", h.Addrs()[0], h.ID())
	select {}
}

// Acknowledged deposits survive kill -9 of the relay, and the counters
// rebuilt at the next start match what is stored: the mailbox record (a
// checkpoint the killed relay never rewrote for its last deposits) plus
// the messages past it.
func TestCountersAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestDepositCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), "HUSH_RELAY_CRASH_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	var info peer.AddrInfo
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			if info, err = ParseRelayAddr(a); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if info.ID == "" {
		t.Fatal("the child printed no address")
	}
	go io.Copy(io.Discard, out)
	child := &testRelay{info: info}
	c := &Client{}
	h := newHost(t)
	boxes := []*owner{createMailbox(t, c, h, child), createMailbox(t, c, h, child)}
	d, err := c.OpenDepositor(context.Background(), h, info)
	if err != nil {
		t.Fatal(err)
	}
	acked := map[ID][]MessageID{}
	deposit := func(n int) {
		t.Helper()
		items := make([]DepositItem, n)
		for i := range items {
			items[i] = DepositItem{boxes[i%2].created.Deposit, sealed1K(t)}
		}
		res, err := d.DepositMany(items)
		if err != nil {
			t.Fatal(err)
		}
		for i, rs := range res {
			if rs.Err() != nil {
				t.Fatal(rs.Err())
			}
			acked[items[i].Deposit] = append(acked[items[i].Deposit], rs.Message)
		}
	}
	deposit(40)
	// Acks through a subscription: their batch rewrites the mailbox
	// record (a checkpoint).
	sub, err := c.Subscribe(context.Background(), newHost(t), info, boxes[0].created.Mailbox, boxes[0].key, false)
	if err != nil {
		t.Fatal(err)
	}
	gone := map[MessageID]bool{}
	for _, m := range recvN(t, sub, 5) {
		sub.Ack(m.Message)
		gone[m.Message] = true
	}
	sub.Close() // the relay commits the acks it read, then closes
	deposit(30)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true

	r := &testRelay{dir: dir, cfg: Config{PeerRate: -1, IPRate: -1}, h: newHost(t)}
	r.info = peer.AddrInfo{ID: r.h.ID(), Addrs: r.h.Addrs()}
	r.start(t)
	total := int64(0)
	for _, o := range boxes {
		st := stateOf(t, r, o.created.Mailbox)
		st.check(t)
		total += st.count
		got := drain(t, c, h, r, o)
		var want []MessageID
		for _, id := range acked[o.created.Deposit] {
			if !gone[id] {
				want = append(want, id)
			}
		}
		if fmt.Sprint(ids(got)) != fmt.Sprint(want) {
			t.Fatalf("after kill -9 the mailbox holds %d messages, want the %d acknowledged and not acked away, in order", len(got), len(want))
		}
	}
	if r.srv.storedMsgs.Load() != total || total != 65 {
		t.Fatalf("relay counts %d, mailboxes %d, want 65", r.srv.storedMsgs.Load(), total)
	}
}

func ids(ds []*Deliver) []MessageID {
	out := make([]MessageID, len(ds))
	for i, d := range ds {
		out[i] = d.Message
	}
	return out
}

// A relay before DepositMany: it answers an unknown kind with
// BadRequest and closes the stream, and serves one Deposit at a time.
func oldRelay(t testing.TB) (peer.AddrInfo, *[][]byte) {
	h := newHost(t)
	var mu sync.Mutex
	var got [][]byte
	h.SetStreamHandler(ProtocolID, func(st network.Stream) {
		defer st.Close()
		for {
			b, err := wire.ReadFrame(st, MaxFrame)
			if err != nil {
				return
			}
			m, err := Decode(b)
			d, ok := m.(*Deposit)
			if err != nil || !ok {
				wire.WriteFrame(st, Encode(&ErrorMsg{Code: CodeBadRequest, Message: "malformed request"}))
				return
			}
			mu.Lock()
			got = append(got, d.Envelope)
			mu.Unlock()
			var r Receipt
			r.Message[0] = byte(len(got))
			wire.WriteFrame(st, Encode(&r))
		}
	})
	return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}, &got
}

// With a relay before DepositMany a Depositor sends Deposit frames, in
// order.
func TestDepositorFallsBackToDeposit(t *testing.T) {
	info, got := oldRelay(t)
	c := &Client{}
	d, err := c.OpenDepositor(context.Background(), newHost(t), info)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Batched() {
		t.Fatal("an old relay cannot take DepositMany")
	}
	envs := distinct(t, 20)
	items := make([]DepositItem, len(envs))
	for i, e := range envs {
		items[i] = DepositItem{ID{1}, e}
	}
	res, err := d.DepositMany(items)
	if err != nil {
		t.Fatal(err)
	}
	for i, rs := range res {
		if rs.Err() != nil || rs.Message[0] != byte(i+1) {
			t.Fatalf("item %d: %+v", i, rs)
		}
	}
	if len(*got) != len(envs) {
		t.Fatalf("relay got %d", len(*got))
	}
	for i := range envs {
		if !bytes.Equal((*got)[i], envs[i]) {
			t.Fatal("out of order")
		}
	}
}

// A message stored by a relay before deposits in batches (with an expiry
// index entry and its mailbox record rewritten) is counted, acked and
// expired as before; its index entry goes with it.
func TestIndexedMessagesStillExpire(t *testing.T) {
	clk := newFakeClock()
	r := startRelay(t, Config{TTL: Duration(time.Hour), Now: clk.Now, ExpiryInterval: Duration(time.Hour)})
	c := &Client{Now: clk.Now}
	h := newHost(t)
	o := createMailbox(t, c, h, r)
	for range 3 {
		legacyStore(t, r, o.created.Mailbox, sealed1K(t), clk.Now())
	}
	if _, err := c.Deposit(context.Background(), h, r.info, o.created.Deposit, sealed1K(t)); err != nil {
		t.Fatal(err)
	}
	r.restart(t)
	stateOf(t, r, o.created.Mailbox).check(t)
	if r.srv.storedMsgs.Load() != 4 {
		t.Fatalf("stored %d, want 4", r.srv.storedMsgs.Load())
	}
	ackSome(t, c, r, o, 1) // the oldest, an indexed one
	if n := indexEntries(r); n != 2 {
		t.Fatalf("%d index entries after the ack, want 2", n)
	}
	clk.Add(61 * time.Minute)
	r.srv.expire()
	if r.srv.storedMsgs.Load() != 0 || indexEntries(r) != 0 {
		t.Fatalf("after expiry %d stored, %d index entries", r.srv.storedMsgs.Load(), indexEntries(r))
	}
	stateOf(t, r, o.created.Mailbox).check(t)
}

func indexEntries(r *testRelay) int {
	n := 0
	r.srv.t.expiry.ScanSeq(expiryID, 0, math.MaxUint64, func(uint64, []byte) error { n++; return nil })
	return n
}

// legacyStore stores data in the mailbox as relays before deposits in
// batches did: message, message ID, expiry index entry, mailbox record.
func legacyStore(t testing.TB, r *testRelay, id ID, data []byte, now time.Time) {
	t.Helper()
	s := r.srv
	mb := s.lookupMailbox(id)
	mb.mu.Lock()
	defer mb.mu.Unlock()
	msg := &message{storedAt: uint64(now.Unix()), expiry: uint64(now.Add(time.Duration(s.cfg.TTL)).UnixNano()) + mb.next,
		indexed: true, envelope: data}
	msg.id[0], msg.id[1] = 0xAA, byte(mb.next)
	ref := msgRef{mailbox: mb.id, msg: msg.id, arrival: mb.next, expiry: msg.expiry, size: uint32(len(data))}
	mb.next++
	mb.count++
	mb.bytes += int64(len(data))
	b := s.db.Batch()
	b.PutSeq(s.t.messages, mb.id[:], ref.arrival, msg.encode())
	b.Put(s.t.msgids, msg.id[:], ref.encode())
	b.PutSeq(s.t.expiry, expiryID, msg.expiry, ref.encode())
	b.Put(s.t.mailboxes, mb.id[:], mb.recordLocked())
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	mb.ckptNext = mb.next
	s.storedMsgs.Add(1)
	s.storedBytes.Add(int64(len(data)))
}

// An ack of a message expired since it was delivered deletes nothing
// and counts nothing twice (the message is looked up under its arrival
// number).
func TestAckAfterExpiryCountsOnce(t *testing.T) {
	clk := newFakeClock()
	r := startRelay(t, Config{TTL: Duration(time.Hour), Now: clk.Now, ExpiryInterval: Duration(time.Hour)})
	c := &Client{Now: clk.Now}
	h := newHost(t)
	o := createMailbox(t, c, h, r)
	ctx := context.Background()
	if _, err := c.Deposit(ctx, h, r.info, o.created.Deposit, sealed1K(t)); err != nil {
		t.Fatal(err)
	}
	sub, err := c.Subscribe(ctx, h, r.info, o.created.Mailbox, o.key, false)
	if err != nil {
		t.Fatal(err)
	}
	old := recvN(t, sub, 1)[0]
	clk.Add(61 * time.Minute)
	r.srv.expire()
	keep, err := c.Deposit(ctx, h, r.info, o.created.Deposit, sealed1K(t))
	if err != nil {
		t.Fatal(err)
	}
	sub.Ack(old.Message)
	sub.Ack(old.Message)
	sub.Close() // the relay commits the acks it read, then closes
	stateOf(t, r, o.created.Mailbox).check(t)
	if r.srv.storedMsgs.Load() != 1 {
		t.Fatalf("stored count %d, want 1", r.srv.storedMsgs.Load())
	}
	if got := drain(t, c, h, r, o); len(got) != 1 || got[0].Message != keep {
		t.Fatal("the young message is not the one left")
	}
}

// Deposit frames' buffers are reused once the frames are answered
// (framepool.go); a live subscription that has not read its pushes yet
// still gets every envelope as deposited, not bytes of later frames.
func TestLivePushesSurviveFrameReuse(t *testing.T) {
	r := startRelay(t, Config{PeerRate: -1, IPRate: -1, MaxMessages: 10000})
	c := &Client{}
	h := newHost(t)
	o := createMailbox(t, c, h, r)
	sub, err := c.Subscribe(context.Background(), h, r.info, o.created.Mailbox, o.key, true)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	waitDrained(t, sub)
	// The owner reads nothing until every deposit is answered: more
	// than its channel and the stream's window hold stays queued at the
	// relay while the frames' buffers go to the next frames.
	d := openDepositor(t, c, r)
	const n, per = 3000, 50
	want := make(map[MessageID][]byte, n)
	for i := 0; i < n; i += per {
		items := make([]DepositItem, per)
		for j := range items {
			items[j] = DepositItem{Deposit: o.created.Deposit, Envelope: sealed1K(t)}
		}
		res, err := d.DepositMany(items)
		if err != nil {
			t.Fatal(err)
		}
		for j, rs := range res {
			if rs.Err() != nil {
				t.Fatal(rs.Err())
			}
			want[rs.Message] = items[j].Envelope
		}
	}
	for i, m := range recvN(t, sub, n) {
		env, ok := want[m.Message]
		if !ok {
			t.Fatalf("push %d: a message not deposited", i)
		}
		if !bytes.Equal(m.Envelope, env) {
			t.Fatalf("push %d: the envelope changed after its frame was answered", i)
		}
		delete(want, m.Message)
	}
}
