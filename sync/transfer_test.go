package sync

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hushnet/hush/crypto/identity"
)

// history builds the existing device's state: a list, settings,
// contacts, a group and n messages, some edited, reacted to and read.
func history(t testing.TB, n int) (*Replica, *identity.Account) {
	t.Helper()
	acct := fixedAccount(t, "history")
	dev := fixedDevice(t, "history laptop")
	r := NewReplica(acct.Public())
	apply := func(m Message) {
		t.Helper()
		if _, err := r.Apply(m); err != nil {
			t.Fatal(err)
		}
	}
	apply(&DeviceList{List: firstList(t, acct, dev)})
	apply(&DeviceInfo{Device: dev.ID(), Clock: clk(1, 1), Name: "laptop", Entry: []byte("entry")})
	apply(&Setting{Key: "theme", Clock: clk(2, 1), Value: []byte("dark")})
	for k := range 5 {
		apply(&ContactAdd{Account: identity.AccountID{0xc0, byte(k)}, Clock: clk(3+uint64(k), 1), Name: fmt.Sprint("contact ", k)})
	}
	apply(&GroupNotice{Group: GroupID{1}, Ops: [][]byte{[]byte("create"), []byte("invite")}})
	apply(&GroupKeys{Group: GroupID{1}, Clock: clk(9, 1), Keys: []byte("keys")})
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	for k := range n {
		c := Conversation{Kind: ConvContact, ID: identity.AccountID{0xc0, byte(k % 5)}}
		id := MessageID{byte(k >> 16), byte(k >> 8), byte(k), 0xaa}
		rec := Record{Conv: c, ID: id, TimeMS: 1_800_000_000_000 + uint64(k)*60_000, Text: fmt.Sprintf("message %d, some words to make it look like a chat", k)}
		if rng.IntN(2) == 0 {
			rec.Author = acct.Public()
			apply(&Transcript{rec})
		} else {
			rec.Author = identity.AccountID{0xc0, byte(k % 5)}
			apply(&Incoming{rec})
		}
		if rng.IntN(10) == 0 {
			apply(&Edit{Conv: c, Target: id, Actor: rec.Author, Clock: clk(10+uint64(k), 1), Text: "edited"})
		}
		if rng.IntN(10) == 0 {
			apply(&Reaction{Conv: c, Target: id, Actor: acct.Public(), Clock: clk(10+uint64(k), 1), Emoji: "👍"})
		}
		if k%50 == 0 {
			apply(&ReadMarker{Conv: c, TimeMS: rec.TimeMS, ID: id})
		}
	}
	return r, acct
}

// store models the new device's store: items applied by a consumer are
// kept in a batch and reach the replica only when committed, as in the
// node, where items and the transfer state go in one batch.
type store struct {
	committed *Replica
	batch     []Message
	state     []byte // the committed TransferState
	applied   int    // items committed, duplicates included
}

func newStore(account identity.AccountID) *store {
	return &store{committed: NewReplica(account), state: (&TransferState{}).Marshal()}
}

func (s *store) Apply(m Message) (bool, error) {
	s.batch = append(s.batch, m)
	return true, nil
}

func (s *store) commit(t testing.TB, st TransferState) {
	t.Helper()
	for _, m := range s.batch {
		if _, err := s.committed.Apply(m); err != nil {
			t.Fatal(err)
		}
	}
	s.applied += len(s.batch)
	s.batch = nil
	s.state = st.Marshal()
}

// crash drops what was not committed.
func (s *store) crash() { s.batch = nil }

// resume is a consumer from the committed state, as after a restart.
func (s *store) resume(t testing.TB) *Consumer {
	t.Helper()
	st, err := ParseTransferState(s.state)
	if err != nil {
		t.Fatal(err)
	}
	return NewConsumer(s, *st)
}

// step moves one chunk from p to c over the wire encoding and commits it.
func step(t testing.TB, p *Producer, c *Consumer, s *store, commit bool) (*Chunk, int) {
	t.Helper()
	want, err := ParseWant((&Want{After: c.Want().After, SinceMS: c.Want().SinceMS}).Marshal())
	if err != nil {
		t.Fatal(err)
	}
	ch, err := p.Next(*want)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ch.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ch, err = ParseChunk(b)
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.Apply(ch)
	if err != nil {
		t.Fatal(err)
	}
	if commit {
		s.commit(t, c.State())
	}
	return ch, n
}

func TestTransferComplete(t *testing.T) {
	src, acct := history(t, 400)
	total, _ := src.Remaining(Cursor{}, 0)
	p := NewProducer(src, ProducerConfig{MaxItems: 17, MaxBytes: 4 << 10})
	s := newStore(acct.Public())
	c := s.resume(t)
	chunks := 0
	for !c.Complete() {
		step(t, p, c, s, true)
		chunks++
		done, tot := c.Progress()
		if done > tot || tot != total {
			t.Fatalf("progress %d/%d, want total %d", done, tot, total)
		}
	}
	if done, _ := c.Progress(); done != total || uint64(s.applied) != total {
		t.Fatalf("applied %d (committed %d) of %d items", done, s.applied, total)
	}
	if s.committed.Digest() != src.Digest() {
		t.Fatal("the new device's state differs from the existing device's")
	}
	if chunks < 20 {
		t.Fatalf("only %d chunks; the test wants many boundaries", chunks)
	}
}

// TestTransferResumeAtEveryBoundary kills the new device at every chunk
// boundary, once after the commit and once between receiving a chunk and
// committing it, then resumes from what it committed: the transfer
// completes, no item is committed twice, and the state is the existing
// device's.
func TestTransferResumeAtEveryBoundary(t *testing.T) {
	src, acct := history(t, 150)
	total, _ := src.Remaining(Cursor{}, 0)
	cfg := ProducerConfig{MaxItems: 13, MaxBytes: 3 << 10}
	n := 0
	whole := newStore(acct.Public())
	for c := whole.resume(t); !c.Complete(); n++ {
		step(t, NewProducer(src, cfg), c, whole, true)
	}
	for k := range n {
		for _, beforeCommit := range []bool{false, true} {
			s := newStore(acct.Public())
			c := s.resume(t)
			p := NewProducer(src, cfg)
			for range k {
				step(t, p, c, s, true)
			}
			if beforeCommit {
				step(t, p, c, s, false) // received and applied, never committed
			}
			s.crash()
			// Restart: a new consumer from the store, a new producer (the
			// existing device may have restarted too).
			c = s.resume(t)
			p = NewProducer(src, cfg)
			for !c.Complete() {
				step(t, p, c, s, true)
			}
			if uint64(s.applied) != total {
				t.Fatalf("killed after %d chunks (before commit: %v): %d items committed, want %d", k, beforeCommit, s.applied, total)
			}
			if done, tot := c.Progress(); done != total || tot != total {
				t.Fatalf("killed after %d chunks: progress %d/%d, want %d", k, done, tot, total)
			}
			if s.committed.Digest() != src.Digest() {
				t.Fatalf("killed after %d chunks (before commit: %v): final state differs", k, beforeCommit)
			}
		}
	}
}

func TestTransferDuplicatesAndGaps(t *testing.T) {
	src, acct := history(t, 50)
	p := NewProducer(src, ProducerConfig{MaxItems: 10})
	s := newStore(acct.Public())
	c := s.resume(t)
	first, _ := step(t, p, c, s, true)
	if n, err := c.Apply(first); n != 0 || err != nil {
		t.Fatalf("a chunk applied twice: %d items, %v", n, err)
	}
	// Sent ahead: the chunk after the next one, before the next one.
	next, _ := p.Next(c.Want())
	ahead, _ := p.Next(Want{After: next.Last})
	if _, err := c.Apply(ahead); !errors.Is(err, ErrTransferGap) {
		t.Fatalf("a chunk past the cursor: %v", err)
	}
	if n, err := c.Apply(next); n != len(next.Items) || err != nil {
		t.Fatalf("the next chunk: %d items, %v", n, err)
	}
	if n, err := c.Apply(ahead); n != len(ahead.Items) || err != nil {
		t.Fatalf("the chunk sent ahead, now in turn: %d items, %v", n, err)
	}
	// An overlapping chunk (asked from an older cursor) applies only what
	// is new.
	over, _ := p.Next(Want{After: first.Last})
	before, _ := c.Progress()
	c.Apply(over)
	if after, _ := c.Progress(); after-before >= uint64(len(over.Items)) {
		t.Fatal("an overlapping chunk counted items twice")
	}
	// A stale empty end chunk does not end the transfer.
	if _, err := c.Apply(&Chunk{After: first.After, Last: first.After, End: true}); err != nil || c.Complete() {
		t.Fatalf("stale end chunk: complete=%v %v", c.Complete(), err)
	}
	// A chunk with a broken item leaves the state as it was.
	st := c.State()
	bad, _ := p.Next(c.Want())
	bad.Items[0].Message = []byte{1, 99}
	if _, err := c.Apply(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("broken item: %v", err)
	}
	if got := c.State(); !bytes.Equal(got.Marshal(), st.Marshal()) {
		t.Fatal("a failed chunk moved the cursor")
	}
}

func TestTransferWindow(t *testing.T) {
	src, acct := history(t, 100)
	since := uint64(1_800_000_000_000 + 60*60_000) // messages 60 to 99
	p := NewProducer(src, ProducerConfig{})
	s := newStore(acct.Public())
	st := TransferState{SinceMS: since}
	s.state = st.Marshal()
	c := s.resume(t)
	for !c.Complete() {
		step(t, p, c, s, true)
	}
	for k := range 100 {
		m := s.committed.Message(MessageID{0, 0, byte(k), 0xaa})
		if (m != nil) != (k >= 60) {
			t.Fatalf("message %d transferred: %v, window from message 60", k, m != nil)
		}
	}
	if s.committed.Contact(identity.AccountID{0xc0, 4}) == nil || s.committed.List() == nil {
		t.Fatal("the window left out contacts or the device list")
	}
}

// A live source: what changes behind the cursor during the transfer is
// brought by the sync messages of those changes, and the end state is the
// existing device's.
func TestTransferLiveSource(t *testing.T) {
	src, acct := history(t, 80)
	p := NewProducer(src, ProducerConfig{MaxItems: 7})
	s := newStore(acct.Public())
	c := s.resume(t)
	var live []Message
	change := func(m Message) {
		if _, err := src.Apply(m); err != nil {
			t.Fatal(err)
		}
		live = append(live, m)
	}
	for k := 0; !c.Complete(); k++ {
		step(t, p, c, s, true)
		switch k {
		case 2: // a new message, newest: before the cursor in section 7
			change(&Incoming{Record{Conv: conv(1), ID: MessageID{0xfe}, Author: identity.AccountID{7}, TimeMS: 1_900_000_000_000, Text: "late"}})
		case 5: // an edit of a message already transferred
			change(&Edit{Conv: Conversation{Kind: ConvContact, ID: identity.AccountID{0xc0, 4}}, Target: MessageID{0, 0, 79, 0xaa},
				Actor: acct.Public(), Clock: clk(1_000_000, 1), Text: "late edit"})
		case 6: // a setting, behind the cursor
			change(&Setting{Key: "theme", Clock: clk(1_000_001, 1), Value: []byte("light")})
		}
	}
	if s.committed.Digest() == src.Digest() {
		t.Fatal("the test does not change anything behind the cursor")
	}
	for _, m := range live {
		s.committed.Apply(m)
	}
	if s.committed.Digest() != src.Digest() {
		t.Fatal("transfer plus live sync messages differ from the existing device")
	}
}

func TestTransferRecords(t *testing.T) {
	st := TransferState{Cursor: Cursor{Section: SectionMessages, Key: []byte{1, 2}}, SinceMS: 5, Done: 3, Total: 9}
	got, err := ParseTransferState(st.Marshal())
	if err != nil || !bytes.Equal(got.Marshal(), st.Marshal()) {
		t.Fatalf("transfer state round trip: %v", err)
	}
	for _, b := range [][]byte{
		nil,
		append(st.Marshal(), 0),
		(&TransferState{Done: 2, Total: 1}).Marshal(),
		(&TransferState{Cursor: Cursor{Section: 9}}).Marshal(),
	} {
		if _, err := ParseTransferState(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("transfer state %x: %v", b, err)
		}
	}
	// The largest items still make a chunk under the record cap.
	big := &GroupKeys{Group: GroupID{1}, Clock: clk(1, 1), Keys: make([]byte, MaxGroupKeysSize)}
	bb, err := Marshal(big)
	if err != nil {
		t.Fatal(err)
	}
	src := sliceSource{{Cursor: Cursor{Section: SectionGroups, Key: []byte{1}}, Message: bb}, {Cursor: Cursor{Section: SectionGroups, Key: []byte{2}}, Message: bb}}
	ch, err := NewProducer(src, ProducerConfig{}).Next(Want{})
	if err != nil || len(ch.Items) != 1 || ch.Remaining != 1 {
		t.Fatalf("chunk of big items: %v", err)
	}
	if _, err := ch.Marshal(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Chunk{
		{After: Cursor{}, Last: Cursor{Section: 1}, End: true},                              // empty but moves
		{After: Cursor{Section: 2}, Last: Cursor{Section: 2}, Remaining: 1},                 // empty, not the end
		{Last: Cursor{Section: 1}, Items: []Item{{Cursor: Cursor{Section: 1}}}, End: false}, // end flag disagrees
		{Last: Cursor{Section: 2}, Items: []Item{{Cursor: Cursor{Section: 2}}, {Cursor: Cursor{Section: 1}}}, End: true},
	} {
		w := newWriter()
		w.U8(byte(RecordChunk))
		c.After.encode(w)
		c.Last.encode(w)
		w.U64(c.Remaining)
		w.Bool(c.End)
		w.U16(uint16(len(c.Items)))
		for _, it := range c.Items {
			it.Cursor.encode(w)
			w.Bytes32(it.Message)
		}
		if _, err := ParseChunk(w.Bytes()); !errors.Is(err, ErrMalformed) {
			t.Errorf("chunk %+v: %v", c, err)
		}
	}
	if _, err := ParseWant([]byte{byte(RecordWant), 0, 0, 1}); !errors.Is(err, ErrMalformed) {
		t.Errorf("zero cursor with a key: %v", err)
	}
}

// sliceSource is a Source over fixed items.
type sliceSource []Item

func (s sliceSource) Items(after Cursor, _ uint64, max int) ([]Item, error) {
	var out []Item
	for _, it := range s {
		if it.Cursor.Compare(after) > 0 && len(out) < max {
			out = append(out, it)
		}
	}
	return out, nil
}

func (s sliceSource) Remaining(after Cursor, _ uint64) (uint64, error) {
	n := uint64(0)
	for _, it := range s {
		if it.Cursor.Compare(after) > 0 {
			n++
		}
	}
	return n, nil
}

// TestLinkThenTransfer runs a whole link in memory: handshake, grant,
// enroll, welcome, then the history over the channel's records, with a
// resume half-way on a new channel from the ticket.
func TestLinkThenTransfer(t *testing.T) {
	src, acct := history(t, 300)
	w := newLinkWorld(t, "history")
	w.acct = acct
	w.list = src.List()
	w.rDev = fixedDevice(t, "history laptop")
	i, r := w.initiator(t, w.offer.Code()), w.responder(t)
	w.handshake(t, i, r)
	_, next := w.enroll(t, i, r)
	src.Apply(&DeviceList{List: next})
	ti, _ := i.Ticket()
	tr, _ := r.Ticket()

	s := newStore(acct.Public())
	transfer := func(i, r *Channel, chunks int) {
		t.Helper()
		c := s.resume(t)
		p := NewProducer(src, ProducerConfig{MaxItems: 50})
		for k := 0; !c.Complete() && k != chunks; k++ {
			want := c.Want()
			rec := pass(t, i, r, want.Marshal())
			got, err := ParseWant(rec)
			if err != nil {
				t.Fatal(err)
			}
			ch, err := p.Next(*got)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := ch.Marshal()
			ch, err = ParseChunk(pass(t, r, i, b))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Apply(ch); err != nil {
				t.Fatal(err)
			}
			s.commit(t, c.State())
		}
	}
	transfer(i, r, 3)

	// Both processes die; the new device resumes with its ticket.
	ri, _ := NewResumeInitiator(ti, InitiatorConfig{Device: w.iDev})
	rr, _ := NewResumeResponder(func(id [TicketIDSize]byte) (Ticket, bool) { return tr, id == tr.ID },
		ResponderConfig{Device: w.rDev, List: next, Now: fixedClock(w.now)})
	m1, _, _ := ri.Step(nil)
	m2, _, err := rr.Step(m1)
	if err != nil {
		t.Fatal(err)
	}
	m3, _, err := ri.Step(m2)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := rr.Step(m3); err != nil {
		t.Fatal(err)
	}
	transfer(ri, rr, -1)
	if reason, err := ParseClose(pass(t, ri, rr, MarshalClose(CloseComplete))); err != nil || reason != CloseComplete {
		t.Fatalf("close: %d %v", reason, err)
	}
	if s.committed.Digest() != src.Digest() {
		t.Fatal("the linked device's history differs")
	}
	total, _ := src.Remaining(Cursor{}, 0)
	if uint64(s.applied) != total {
		t.Fatalf("%d items committed, want %d", s.applied, total)
	}
}

func FuzzParseChunk(f *testing.F) {
	src, _ := history(f, 5)
	ch, _ := NewProducer(src, ProducerConfig{MaxItems: 3}).Next(Want{})
	b, _ := ch.Marshal()
	f.Add(b)
	f.Add((&Want{}).Marshal())
	f.Add((&TransferState{}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		if ch, err := ParseChunk(b); err == nil {
			again, err := ch.Marshal()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("accepted chunk does not re-encode to itself: %v", err)
			}
			NewConsumer(NewReplica(identity.AccountID{}), TransferState{}).Apply(ch)
		}
		if w, err := ParseWant(b); err == nil && !bytes.Equal(w.Marshal(), b) {
			t.Fatal("accepted want does not re-encode to itself")
		}
		if s, err := ParseTransferState(b); err == nil && !bytes.Equal(s.Marshal(), b) {
			t.Fatal("accepted transfer state does not re-encode to itself")
		}
	})
}

// BenchmarkHistoryTransfer moves a 10,000-message history through the
// link channel in memory: the engine's share of the issue's "under 3 s on
// loopback" target.
func BenchmarkHistoryTransfer(b *testing.B) {
	src, acct := history(b, 10_000)
	w := newLinkWorld(b, "bench")
	w.acct, w.list, w.rDev = acct, src.List(), fixedDevice(b, "history laptop")
	i, r := w.initiator(b, w.offer.Code()), w.responder(b)
	w.handshake(b, i, r)
	b.ResetTimer()
	for range b.N {
		dst := NewReplica(acct.Public())
		c := NewConsumer(dst, TransferState{})
		p := NewProducer(src, ProducerConfig{})
		for !c.Complete() {
			ch, _ := p.Next(c.Want())
			rec, _ := ch.Marshal()
			got, err := ParseChunk(pass(b, r, i, rec))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Apply(got); err != nil {
				b.Fatal(err)
			}
		}
	}
}
