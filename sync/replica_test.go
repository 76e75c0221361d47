package sync

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/identity"
)

var (
	propSeed   = flag.Uint64("sync.seed", 0, "seed of TestReplicasConverge (0: from the clock)")
	propRounds = flag.Int("sync.rounds", 150, "rounds of TestReplicasConverge")
)

// world is an account with three devices, four contacts and a group, and
// the sync messages its devices produced concurrently.
type world struct {
	rng      *rand.Rand
	acct     *identity.Account
	own      identity.AccountID
	devs     []identity.DeviceID
	lists    []*identity.DeviceList
	contacts []identity.AccountID
	convs    []Conversation
	lamport  map[identity.DeviceID]uint64
	high     uint64 // the highest clock value made so far
	msgs     []Message
	ids      []MessageID
	authors  map[MessageID]identity.AccountID
	adds     map[identity.AccountID][]Clock
}

func newWorld(t testing.TB, rng *rand.Rand) *world {
	w := &world{rng: rng, acct: fixedAccount(t, "prop"), lamport: map[identity.DeviceID]uint64{},
		authors: map[MessageID]identity.AccountID{}, adds: map[identity.AccountID][]Clock{}}
	w.own = w.acct.Public()
	var devices []*identity.Device
	for k := range 3 {
		d := fixedDevice(t, fmt.Sprint("prop ", k))
		devices = append(devices, d)
		w.devs = append(w.devs, d.ID())
	}
	// v1 {d0}, v2 {d0, d1}, v3 {d0, d1, d2}, and a fork of v2: {d0, d2}.
	v1 := firstList(t, w.acct, devices[0])
	v2, _ := w.acct.NewDeviceList(v1, []*identity.DeviceCert{certify(t, w.acct, devices[0]), certify(t, w.acct, devices[1])}, t0)
	v3, _ := w.acct.NewDeviceList(v2, []*identity.DeviceCert{certify(t, w.acct, devices[0]), certify(t, w.acct, devices[1]), certify(t, w.acct, devices[2])}, t0)
	fork, _ := w.acct.NewDeviceList(v1, []*identity.DeviceCert{certify(t, w.acct, devices[0]), certify(t, w.acct, devices[2])}, t0)
	w.lists = []*identity.DeviceList{v1, v2, v3, fork}
	for k := range 4 {
		c := identity.AccountID{0xc0, byte(k)}
		w.contacts = append(w.contacts, c)
		w.convs = append(w.convs, Conversation{Kind: ConvContact, ID: c})
	}
	w.convs = append(w.convs, Conversation{Kind: ConvGroup, ID: [32]byte{0x99}})
	return w
}

// tick makes a clock on device d: above d's last value, and, half the
// time, above everything made so far (d has heard of it). Clocks of
// different devices often tie, and then the device ID decides.
func (w *world) tick(d identity.DeviceID) Clock {
	l := w.lamport[d] + 1 + uint64(w.rng.IntN(3))
	if w.rng.IntN(2) == 0 {
		l = max(l, w.high+1)
	}
	w.lamport[d] = l
	w.high = max(w.high, l)
	return Clock{Lamport: l, Device: d}
}

func (w *world) dev() identity.DeviceID { return w.devs[w.rng.IntN(len(w.devs))] }

func (w *world) emit(m Message) { w.msgs = append(w.msgs, m) }

func (w *world) newMessage() {
	id := MessageID{}
	for i := range id {
		id[i] = byte(w.rng.IntN(256))
	}
	cv := w.convs[w.rng.IntN(len(w.convs))]
	r := Record{Conv: cv, ID: id, TimeMS: 1_800_000_000_000 + uint64(w.rng.IntN(1_000_000)), Text: fmt.Sprint("text ", len(w.ids))}
	if len(w.ids) > 0 && w.rng.IntN(3) == 0 {
		r.ReplyTo = w.ids[w.rng.IntN(len(w.ids))]
	}
	if w.rng.IntN(2) == 0 {
		r.Author, r.AuthorDevice = w.own, w.dev()
		w.emit(&Transcript{r})
	} else {
		r.Author = w.contacts[w.rng.IntN(len(w.contacts))]
		w.emit(&Incoming{r})
	}
	w.ids = append(w.ids, id)
	w.authors[id] = r.Author
}

func (w *world) pickMessage() (MessageID, Conversation, identity.AccountID) {
	id := w.ids[w.rng.IntN(len(w.ids))]
	for _, m := range w.msgs {
		switch m := m.(type) {
		case *Transcript:
			if m.ID == id {
				return id, m.Conv, m.Author
			}
		case *Incoming:
			if m.ID == id {
				return id, m.Conv, m.Author
			}
		}
	}
	panic("message not found")
}

func (w *world) actor(author identity.AccountID) identity.AccountID {
	switch w.rng.IntN(6) {
	case 0:
		return w.contacts[w.rng.IntN(len(w.contacts))] // not the author, mostly
	case 1:
		return w.own
	}
	return author
}

func (w *world) randomOp() {
	switch w.rng.IntN(14) {
	case 0, 1, 2:
		w.newMessage()
	case 3:
		id, cv, author := w.pickMessage()
		w.emit(&Edit{Conv: cv, Target: id, Actor: w.actor(author), Clock: w.tick(w.dev()), Text: fmt.Sprint("edit ", w.rng.IntN(100))})
	case 4:
		id, cv, author := w.pickMessage()
		w.emit(&Delete{Conv: cv, Target: id, Actor: w.actor(author), Clock: w.tick(w.dev())})
	case 5:
		id, cv, author := w.pickMessage()
		w.emit(&Reaction{Conv: cv, Target: id, Actor: w.actor(author), Clock: w.tick(w.dev()),
			Emoji: []string{"👍", "❤", "😂"}[w.rng.IntN(3)], Remove: w.rng.IntN(3) == 0})
	case 6:
		id, cv, _ := w.pickMessage()
		w.emit(&Status{Conv: cv, Target: id, State: DeliveryState(1 + w.rng.IntN(3))})
	case 7:
		id, cv, _ := w.pickMessage()
		w.emit(&ReadMarker{Conv: cv, TimeMS: uint64(w.rng.IntN(1000)), ID: id})
	case 8:
		c := w.contacts[w.rng.IntN(len(w.contacts))]
		clk := w.tick(w.dev())
		w.adds[c] = append(w.adds[c], clk)
		w.emit(&ContactAdd{Account: c, Clock: clk, Name: fmt.Sprint("name ", w.rng.IntN(5)), Card: []byte{byte(w.rng.IntN(4))}})
	case 9:
		// A remove that saw a random part of the adds so far.
		c := w.contacts[w.rng.IntN(len(w.contacts))]
		var seen VersionVector
		for _, a := range w.adds[c] {
			if w.rng.IntN(3) > 0 {
				seen, _ = seen.join(VersionVector{{Device: a.Device, Lamport: a.Lamport}})
			}
		}
		w.emit(&ContactRemove{Account: c, Clock: w.tick(w.dev()), Seen: seen})
	case 10:
		w.emit(&ContactVerify{Account: w.contacts[w.rng.IntN(len(w.contacts))], Clock: w.tick(w.dev()), Verified: w.rng.IntN(2) == 0})
	case 11:
		var v []byte
		if w.rng.IntN(4) > 0 {
			v = []byte{byte(w.rng.IntN(3))}
		}
		w.emit(&Setting{Key: []string{"theme", "read-receipts", "notify/sound"}[w.rng.IntN(3)], Clock: w.tick(w.dev()), Value: v})
	case 12:
		g := GroupID{byte(w.rng.IntN(2))}
		if w.rng.IntN(4) == 0 {
			w.emit(&GroupKeys{Group: g, Clock: w.tick(w.dev()), Keys: []byte{byte(w.rng.IntN(9)), 1}})
		} else {
			w.emit(&GroupNotice{Group: g, Ops: [][]byte{{byte(w.rng.IntN(20))}, {byte(w.rng.IntN(20)), 2}}})
		}
	case 13:
		if w.rng.IntN(2) == 0 {
			w.emit(&DeviceList{List: w.lists[w.rng.IntN(len(w.lists))]})
		} else {
			d := w.dev()
			w.emit(&DeviceInfo{Device: d, Clock: w.tick(d), Name: fmt.Sprint("dev ", w.rng.IntN(3)), Entry: []byte{byte(w.rng.IntN(3))}})
		}
	}
}

// stateMessages are what a history transfer or a repair sends: the states
// of a replica that has seen part of the messages.
func (w *world) stateMessages(t testing.TB) {
	part := NewReplica(w.own)
	for _, m := range w.msgs {
		if w.rng.IntN(2) == 0 {
			if _, err := part.Apply(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	items, err := part.Items(Cursor{}, 0, MaxChunkItems)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if w.rng.IntN(3) == 0 {
			m, err := Parse(it.Message)
			if err != nil {
				t.Fatal(err)
			}
			w.emit(m)
		}
	}
}

// The concurrent cases the merge rules must settle, with their expected
// outcomes (checked on every replica).
type scenario struct {
	msg     MessageID
	contact identity.AccountID
	winner  []byte // the setting value that must win
}

func (w *world) scenario() scenario {
	d0, d1, d2 := w.devs[0], w.devs[1], w.devs[2]
	s := scenario{msg: MessageID{0xee}, contact: identity.AccountID{0xcc}}
	cv := w.convs[0]
	base := w.high + 10
	// One own message edited on d0, recalled on d1 and reacted to on d2,
	// all concurrently; the edit has the highest clock.
	w.emit(&Transcript{Record{Conv: cv, ID: s.msg, Author: w.own, AuthorDevice: d0, TimeMS: 1_800_000_000_000, Text: "original"}})
	w.emit(&Edit{Conv: cv, Target: s.msg, Actor: w.own, Clock: Clock{base + 2, d0}, Text: "edited"})
	w.emit(&Delete{Conv: cv, Target: s.msg, Actor: w.own, Clock: Clock{base + 1, d1}})
	w.emit(&Reaction{Conv: cv, Target: s.msg, Actor: w.own, Clock: Clock{base + 2, d2}, Emoji: "👍"})
	// A contact added on d0, then removed on d1 (which saw the add) while
	// d2, concurrently, verified it.
	add := Clock{base + 3, d0}
	w.adds[s.contact] = append(w.adds[s.contact], add)
	w.emit(&ContactAdd{Account: s.contact, Clock: add, Name: "Carol"})
	w.emit(&ContactRemove{Account: s.contact, Clock: Clock{base + 5, d1}, Seen: VersionVector{{d0, add.Lamport}}})
	w.emit(&ContactVerify{Account: s.contact, Clock: Clock{base + 5, d2}, Verified: true})
	// One setting written on two devices with the same Lamport value: the
	// higher device ID wins.
	a, b := Clock{base + 6, d0}, Clock{base + 6, d1}
	w.emit(&Setting{Key: "language", Clock: a, Value: []byte("en")})
	w.emit(&Setting{Key: "language", Clock: b, Value: []byte("fr")})
	s.winner = []byte("en")
	if b.Compare(a) > 0 {
		s.winner = []byte("fr")
	}
	w.high = base + 6
	return s
}

func (s scenario) check(t *testing.T, r *Replica) {
	t.Helper()
	m := r.Message(s.msg)
	if m == nil || !m.Deleted() {
		t.Fatal("the recall did not win over the concurrent edit")
	}
	if text, _ := m.Text(); text != "" || m.ShownReactions() != nil {
		t.Fatal("a recalled message still shows text or reactions")
	}
	if len(m.Edits) != 1 || m.Edits[0].Text != "edited" {
		t.Fatal("the edit register lost the edit")
	}
	c := r.Contact(s.contact)
	if c == nil || c.Present() || !c.Verified {
		t.Fatalf("contact removed on one device and verified on another: present=%v verified=%v", c.Present(), c.Verified)
	}
	if v, _ := r.Setting("language"); !bytes.Equal(v, s.winner) {
		t.Fatalf("setting written on two devices: %q, want %q", v, s.winner)
	}
}

// TestReplicasConverge is the property test of the merge rules: the same
// set of sync messages, applied in random orders and with duplicates, on
// 5 replicas, gives byte-identical snapshots.
func TestReplicasConverge(t *testing.T) {
	seed := *propSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -sync.seed=%d)", seed, seed)
	rounds := *propRounds
	if testing.Short() {
		rounds = 20
	}
	for round := range rounds {
		rng := rand.New(rand.NewPCG(seed, uint64(round)))
		w := newWorld(t, rng)
		w.newMessage()
		s := w.scenario()
		for range 80 + rng.IntN(200) {
			w.randomOp()
		}
		if round%10 == 3 {
			w.crowd()
		}
		w.stateMessages(t)

		var first []byte
		for k := range 5 {
			seq := w.shuffled(k > 0)
			r := NewReplica(w.own)
			for _, m := range seq {
				if _, err := r.Apply(m); err != nil {
					t.Fatalf("round %d: %s: %v", round, m.Kind(), err)
				}
			}
			snap := r.Snapshot()
			if k == 0 {
				first = snap
				s.check(t, r)
				// Everything again changes nothing.
				for _, m := range seq {
					if changed, _ := r.Apply(m); changed {
						t.Fatalf("round %d: %s applied twice changed the state", round, m.Kind())
					}
				}
				if !bytes.Equal(r.Snapshot(), snap) {
					t.Fatalf("round %d: reapplying changed the snapshot", round)
				}
				continue
			}
			if !bytes.Equal(snap, first) {
				t.Fatalf("round %d (seed %d): replica %d diverged from replica 0 after %d messages", round, seed, k, len(seq))
			}
		}
	}
}

// shuffled returns the world's messages in a random order, each once or,
// with dups, up to three times.
func (w *world) shuffled(dups bool) []Message {
	var seq []Message
	for _, m := range w.msgs {
		n := 1
		if dups {
			n += w.rng.IntN(3) * w.rng.IntN(2)
		}
		for range n {
			seq = append(seq, m)
		}
	}
	w.rng.Shuffle(len(seq), func(i, j int) { seq[i], seq[j] = seq[j], seq[i] })
	return seq
}

// crowd goes over the caps: more edit actors and reactions on one message
// than a state keeps, and more than MaxSeen devices in a remove.
func (w *world) crowd() {
	id, cv, _ := w.pickMessage()
	for k := range MaxEditActors + 3 {
		w.emit(&Edit{Conv: cv, Target: id, Actor: identity.AccountID{byte(k * 37)}, Clock: w.tick(w.dev()), Text: "crowd"})
	}
	for k := range MaxReactions + 40 {
		w.emit(&Reaction{Conv: cv, Target: id, Actor: identity.AccountID{byte(k), byte(k >> 8)}, Clock: w.tick(w.dev()), Emoji: "x"})
	}
	c := w.contacts[0]
	for k := range MaxSeen + 10 {
		d := identity.DeviceID{0xd0, byte(k)}
		clk := Clock{Lamport: w.high + 1 + uint64(k), Device: d}
		w.emit(&ContactAdd{Account: c, Clock: clk, Name: "many"})
	}
}

func TestReplicaRefuses(t *testing.T) {
	acct := fixedAccount(t, "refuse")
	r := NewReplica(acct.Public())
	if _, err := r.Apply(&Transcript{Record{Conv: conv(1), Author: identity.AccountID{9}}}); !errors.Is(err, ErrWrongAccount) {
		t.Errorf("transcript by another account: %v", err)
	}
	other := fixedAccount(t, "other")
	if _, err := r.Apply(&DeviceList{List: firstList(t, other, fixedDevice(t, "x"))}); !errors.Is(err, ErrWrongAccount) {
		t.Errorf("another account's list: %v", err)
	}
	if _, err := r.Apply(&Edit{Conv: conv(1)}); !errors.Is(err, ErrMalformed) {
		t.Errorf("invalid message: %v", err)
	}
	if len(r.Snapshot()) != 2+32 {
		t.Error("a refused message changed the state")
	}
}

func TestReplicaDeviceList(t *testing.T) {
	w := newWorld(t, rand.New(rand.NewPCG(1, 2)))
	v1, v2, v3, fork := w.lists[0], w.lists[1], w.lists[2], w.lists[3]
	r := NewReplica(w.own)
	for _, l := range []*identity.DeviceList{v2, v1, v3, v2} {
		r.Apply(&DeviceList{List: l})
	}
	if r.List().Version() != 3 {
		t.Fatal("the highest version did not win")
	}
	if a, _ := r.Fork(); a != nil {
		t.Fatal("a fork reported without one")
	}
	r2 := NewReplica(w.own)
	r2.Apply(&DeviceList{List: v2})
	r2.Apply(&DeviceList{List: fork})
	a, b := r2.Fork()
	if a == nil || b == nil || a.Version() != 2 || b.Version() != 2 {
		t.Fatal("a fork of version 2 went unnoticed")
	}
	low := v2
	if h, g := fork.Hash(), v2.Hash(); bytes.Compare(h[:], g[:]) < 0 {
		low = fork
	}
	if r2.List().Hash() != low.Hash() {
		t.Fatal("of two lists of one version, the lower hash must win")
	}
}

func TestResolveFork(t *testing.T) {
	acct := fixedAccount(t, "fork")
	d0, d1, d2, d3 := fixedDevice(t, "f0"), fixedDevice(t, "f1"), fixedDevice(t, "f2"), fixedDevice(t, "f3")
	base := firstList(t, acct, d0, d1)
	// a adds d2; b revokes d1 and adds d3, at another time.
	a, _ := acct.NewDeviceList(base, []*identity.DeviceCert{certify(t, acct, d0), certify(t, acct, d1), certify(t, acct, d2)}, t0)
	b, _ := acct.NewDeviceList(base, []*identity.DeviceCert{certify(t, acct, d0), certify(t, acct, d3)}, t0.Add(time.Hour))
	x, err := ResolveFork(acct, base, a, b)
	if err != nil {
		t.Fatal(err)
	}
	y, err := ResolveFork(acct, base, b, a)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x.Marshal(), y.Marshal()) {
		t.Fatal("two devices repairing one fork signed different lists")
	}
	if x.Version() != 4 || !x.IssuedAt().Equal(t0.Add(time.Hour)) {
		t.Fatalf("repair is version %d issued %v", x.Version(), x.IssuedAt())
	}
	for _, c := range []struct {
		d    *identity.Device
		want bool
	}{{d0, true}, {d1, false}, {d2, true}, {d3, true}} {
		if x.Contains(c.d.ID()) != c.want {
			t.Errorf("device %v on the repaired list: %v, want %v", c.d.ID(), !c.want, c.want)
		}
	}
	for _, held := range []*identity.DeviceList{base, a, b} {
		if err := x.Follows(held); err != nil {
			t.Errorf("a peer holding version %d refuses the repair: %v", held.Version(), err)
		}
	}
	if _, err := ResolveFork(acct, base, a, a); !errors.Is(err, ErrMalformed) {
		t.Errorf("no fork: %v", err)
	}
	if _, err := ResolveFork(fixedAccount(t, "mallory"), base, a, b); !errors.Is(err, ErrWrongAccount) {
		t.Errorf("another account: %v", err)
	}
}
