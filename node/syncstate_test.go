package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/pqxdh"
	msync "github.com/hushnet/hush/sync"
)

// linkedHome makes a new home for a second device of src's account, as
// Init makes a first one: a new device certified by the account, on a
// device list one version above src's (which src keeps: nothing here
// needs src to know the new device).
func linkedHome(t *testing.T, src *Node) string {
	t.Helper()
	src.mu.Lock()
	acc, prev, profile := src.account, src.list, src.profile
	src.mu.Unlock()
	now := time.Now()
	device, err := identity.NewDevice()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := acc.Certify(device, now)
	if err != nil {
		t.Fatal(err)
	}
	list, err := acc.NewDeviceList(prev, append(prev.Devices(), cert), now)
	if err != nil {
		t.Fatal(err)
	}
	prekeys, err := pqxdh.NewPrekeyStore(device.SigningKey(), now)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	hostBytes, err := crypto.MarshalPrivateKey(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	accBytes, _ := acc.MarshalBinary()
	devBytes, _ := device.MarshalBinary()
	pkBytes, err := prekeys.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	db, err := openStore(home, nil, testKDF, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tabs := openTables(db)
	b := db.Batch()
	b.Put(tabs.identity, idAccount, accBytes)
	b.Put(tabs.identity, idDevice, devBytes)
	b.Put(tabs.identity, idHostKey, hostBytes)
	b.Put(tabs.identity, idCert, cert.Marshal())
	b.Put(tabs.identity, idList, list.Marshal())
	b.Put(tabs.identity, idPrekeys, pkBytes)
	putJSON(b, tabs.identity, idProfile, &profileRec{Name: profile.Name, Created: now.UTC()})
	putJSON(b, tabs.identity, idSettings, &settingsRec{})
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	return home
}

// openLinked opens (without running it) a new device of src's account.
func openLinked(t *testing.T, src *Node) *Node {
	t.Helper()
	n, err := New(Config{Home: linkedHome(t, src), KDF: testKDF, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// snapshot returns n's replica and its items in snapshot order.
func snapshot(t *testing.T, n *Node, sinceMS uint64) (*msync.Replica, []msync.Message) {
	t.Helper()
	n.mu.Lock()
	rep, err := n.snapshotLocked(sinceMS)
	n.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	items, err := rep.Items(msync.Cursor{}, sinceMS, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []msync.Message
	for _, it := range items {
		m, err := msync.Parse(it.Message)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	return rep, msgs
}

// transfer runs a history transfer from src to dst through a producer
// and a consumer, chunk by chunk (each through its wire encoding), each
// chunk committed in one transaction as the node will.
func transfer(t *testing.T, src, dst *Node, sinceMS uint64, maxItems int) {
	t.Helper()
	rep, _ := snapshot(t, src, sinceMS)
	p := msync.NewProducer(rep, msync.ProducerConfig{MaxItems: maxItems})
	target := &syncTarget{n: dst}
	c := msync.NewConsumer(target, msync.TransferState{SinceMS: sinceMS})
	for chunks := 0; !c.Complete(); chunks++ {
		if chunks > 1000 {
			t.Fatal("transfer does not end")
		}
		ch, err := p.Next(c.Want())
		if err != nil {
			t.Fatal(err)
		}
		b, err := ch.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if ch, err = msync.ParseChunk(b); err != nil {
			t.Fatal(err)
		}
		dst.mu.Lock()
		target.t, target.now = dst.newTxnLocked(), time.Now()
		if _, err := c.Apply(ch); err != nil {
			dst.mu.Unlock()
			t.Fatal(err)
		}
		err = dst.commitReleasingLock(target.t)
		dst.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// applyOne applies one sync message to n in its own committed
// transaction and returns whether it changed anything and what t queued
// for sending.
func applyOne(t *testing.T, n *Node, m msync.Message) (changed bool, queued int) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	tx := n.newTxnLocked()
	changed, err := n.applySyncLocked(tx, m, time.Now())
	if err != nil {
		t.Fatalf("apply %s: %v", m.Kind(), err)
	}
	queued = len(tx.queued)
	if err := n.commitReleasingLock(tx); err != nil {
		t.Fatal(err)
	}
	return changed, queued
}

// msgView is what a conversation shows of a message, with the
// reactors of each emoji sorted and the time in milliseconds.
type msgView struct {
	ID, Dir, Text, ReplyTo string
	State                  MessageState
	Edited, Deleted        bool
	Reactions              string
	TimeMS                 int64
}

// views returns a conversation as msgViews, in order.
func views(t *testing.T, n *Node, contact string) []msgView {
	t.Helper()
	msgs, err := n.Messages(contact, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []msgView
	for _, m := range msgs {
		var rs []string
		for emoji, who := range m.Reactions {
			w := slices.Sorted(slices.Values(who))
			rs = append(rs, emoji+":"+strings.Join(w, ","))
		}
		slices.Sort(rs)
		out = append(out, msgView{ID: m.ID, Dir: m.Direction, Text: m.Text, ReplyTo: m.ReplyTo, State: m.State,
			Edited: m.Edited, Deleted: m.Deleted, Reactions: strings.Join(rs, ";"), TimeMS: m.Time.UnixMilli()})
	}
	return out
}

// contactViews returns the address book without the local fields.
func contactViews(t *testing.T, n *Node) []string {
	t.Helper()
	cs, err := n.Contacts()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s %s verified=%v request=%v", c.Name, c.Account, c.Verified, c.Request))
	}
	return out
}

func sameViews(t *testing.T, what string, got, want []msgView) {
	t.Helper()
	if !slices.Equal(got, want) {
		var b strings.Builder
		for i := range max(len(got), len(want)) {
			var g, w msgView
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			mark := "  "
			if g != w {
				mark = "!="
			}
			fmt.Fprintf(&b, "%s got  %+v\n   want %+v\n", mark, g, w)
		}
		t.Fatalf("%s: conversation differs:\n%s", what, b.String())
	}
}

// nextMilli waits for the wall clock's millisecond to change, so that
// two sends in a row have different times (and an order by time).
func nextMilli() {
	ms := time.Now().UnixMilli()
	for time.Now().UnixMilli() == ms {
		time.Sleep(50 * time.Microsecond)
	}
}

// syncConversation gives alice (a) a conversation with bob (b) holding
// texts both ways, a reply, an edit, a recall, reactions both ways, read
// and unread incoming texts; every outgoing text is delivered.
func syncConversation(t *testing.T, a, b *running) {
	t.Helper()
	ctx := context.Background()
	send := func(from *running, to string, req SendRequest) Message {
		t.Helper()
		nextMilli()
		req.To = to
		m, err := from.n.Send(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	arrived := func(at *running, from, id string, ok func(Message) bool) {
		t.Helper()
		waitFor(t, "message "+id, func() bool {
			msgs, err := at.n.Messages(from, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				if m.ID == id {
					return ok == nil || ok(m)
				}
			}
			return false
		})
	}
	a1 := send(a, "bob", SendRequest{Text: "hello"})
	arrived(b, "alice", a1.ID, nil)
	b1 := send(b, "alice", SendRequest{Text: "hi alice"})
	arrived(a, "bob", b1.ID, nil)
	a2 := send(a, "bob", SendRequest{Text: "a reply", Target: b1.ID})
	arrived(b, "alice", a2.ID, nil)
	a3 := send(a, "bob", SendRequest{Text: "to be edited"})
	arrived(b, "alice", a3.ID, nil)
	send(a, "bob", SendRequest{Kind: KindEdit, Text: "edited", Target: a3.ID})
	arrived(b, "alice", a3.ID, func(m Message) bool { return m.Edited })
	a4 := send(a, "bob", SendRequest{Text: "to be recalled"})
	arrived(b, "alice", a4.ID, nil)
	send(a, "bob", SendRequest{Kind: KindDelete, Target: a4.ID})
	arrived(b, "alice", a4.ID, func(m Message) bool { return m.Deleted })
	b2 := send(b, "alice", SendRequest{Text: "react to this"})
	arrived(a, "bob", b2.ID, nil)
	send(a, "bob", SendRequest{Kind: KindReaction, Text: "👍", Target: b2.ID})
	send(b, "alice", SendRequest{Kind: KindReaction, Text: "❤️", Target: a1.ID})
	arrived(a, "bob", a1.ID, func(m Message) bool { return len(m.Reactions["❤️"]) == 1 })
	if err := a.n.MarkRead("bob"); err != nil {
		t.Fatal(err)
	}
	b3 := send(b, "alice", SendRequest{Text: "still unread"})
	arrived(a, "bob", b3.ID, nil)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, m := range []Message{a1, a2, a3, a4} {
		if _, err := a.n.WaitState(wctx, m.ID, StateDelivered); err != nil {
			t.Fatal(err)
		}
	}
}

// A history transfer from a device with a conversation gives the new
// device of the same account the same conversation (IDs, directions,
// texts, edits, recalls, reactions, delivery and read states, times and
// order, although the transfer sends the newest first) and the same
// address book; and the same items applied one by one in random orders
// with duplicates give the same again, each ending where the others do.
func TestSyncSnapshotTransfer(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	syncConversation(t, a, b)
	want := views(t, a.n, "bob")
	wantContacts := contactViews(t, a.n)
	if len(want) != 7 {
		t.Fatalf("alice shows %d messages, want 7", len(want))
	}
	var sawEdited, sawDeleted, sawReaction, sawRead, sawUnread, sawReply bool
	for _, v := range want {
		sawEdited = sawEdited || v.Edited
		sawDeleted = sawDeleted || v.Deleted
		sawReaction = sawReaction || v.Reactions != ""
		sawRead = sawRead || (v.Dir == "in" && v.State == StateRead)
		sawUnread = sawUnread || (v.Dir == "in" && v.State == StateReceived)
		sawReply = sawReply || v.ReplyTo != ""
	}
	if !sawEdited || !sawDeleted || !sawReaction || !sawRead || !sawUnread || !sawReply {
		t.Fatalf("the conversation lacks a case: %+v", want)
	}

	t.Run("transfer", func(t *testing.T) {
		dst := openLinked(t, a.n)
		transfer(t, a.n, dst, 0, 3)
		sameViews(t, "after the transfer", views(t, dst, "bob"), want)
		if got := contactViews(t, dst); !slices.Equal(got, wantContacts) {
			t.Fatalf("contacts %q, want %q", got, wantContacts)
		}
		// A second transfer (a resume from scratch) changes nothing.
		transfer(t, a.n, dst, 0, 1000)
		sameViews(t, "after a second transfer", views(t, dst, "bob"), want)
		// Messages made on the new device afterwards go after the
		// transferred ones.
		bob := bobAccount(t, a)
		dst.mu.Lock()
		last, _, err := dst.tabs.messages.LastSeq(bob[:])
		if err != nil || last > dst.seq {
			t.Errorf("n.seq %d below the highest transferred seq %d (%v)", dst.seq, last, err)
		}
		dst.mu.Unlock()
	})

	t.Run("since", func(t *testing.T) {
		all := views(t, a.n, "bob")
		cut := all[3].TimeMS // leaves out the three oldest
		dst := openLinked(t, a.n)
		transfer(t, a.n, dst, uint64(cut), 2)
		got := views(t, dst, "bob")
		if len(got) != len(all)-3 {
			t.Fatalf("%d messages since %d, want %d", len(got), cut, len(all)-3)
		}
		sameViews(t, "since", got, all[3:])
	})

	t.Run("random orders", func(t *testing.T) {
		_, items := snapshot(t, a.n, 0)
		rng := rand.New(rand.NewPCG(1, 2))
		for trial := range 3 {
			order := slices.Clone(items)
			for _, m := range items { // duplicates
				if rng.IntN(2) == 0 {
					order = append(order, m)
				}
			}
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			dst := openLinked(t, a.n)
			for _, m := range order {
				applyOne(t, dst, m)
			}
			sameViews(t, fmt.Sprintf("trial %d", trial), views(t, dst, "bob"), want)
			if got := contactViews(t, dst); !slices.Equal(got, wantContacts) {
				t.Fatalf("trial %d: contacts %q, want %q", trial, got, wantContacts)
			}
			for _, m := range items {
				if changed, _ := applyOne(t, dst, m); changed {
					t.Fatalf("trial %d: %s applied again changed the state", trial, m.Kind())
				}
			}
			// The new device's own snapshot holds the same objects.
			_, again := snapshot(t, dst, 0)
			if len(again) != len(items) {
				t.Fatalf("trial %d: the new device's snapshot has %d items, the old one's %d", trial, len(again), len(items))
			}
		}
	})
}

// bobAccount returns the account of a's contact "bob".
func bobAccount(t *testing.T, a *running) identity.AccountID {
	t.Helper()
	a.n.mu.Lock()
	defer a.n.mu.Unlock()
	c, err := a.n.byNameLocked("bob")
	if err != nil {
		t.Fatal(err)
	}
	return c.account()
}

// Continuous sync in any order: a transcript, an edit of it that
// arrives first, reactions, a delivery state, an incoming text and its
// recall give the same conversation whatever their order, and an edit
// by someone other than the author does not show.
func TestSyncMessagesAnyOrder(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	bob := bobAccount(t, a)
	own := a.n.cert.Account()
	conv := contactConv(bob)
	other := openLinked(t, a.n) // the device the messages come from
	otherDev := other.cert.DeviceID()
	base := uint64(time.Now().UnixMilli())
	clk := func(l uint64) msync.Clock { return msync.Clock{Lamport: base + l, Device: otherDev} }
	sent, got := msync.MessageID{1, 1}, msync.MessageID{2, 2}
	msgs := []msync.Message{
		&msync.Transcript{Record: msync.Record{Conv: conv, ID: sent, Author: own, AuthorDevice: otherDev, TimeMS: base, Text: "from my phone"}},
		&msync.Edit{Conv: conv, Target: sent, Actor: own, Clock: clk(5), Text: "from my phone (edited)"},
		&msync.Edit{Conv: conv, Target: sent, Actor: own, Clock: clk(3), Text: "an older edit"},
		&msync.Edit{Conv: conv, Target: sent, Actor: bob, Clock: clk(9), Text: "bob may not edit it"},
		&msync.Reaction{Conv: conv, Target: sent, Actor: bob, Clock: clk(4), Emoji: "🎉"},
		&msync.Reaction{Conv: conv, Target: sent, Actor: own, Clock: clk(4), Emoji: "👀"},
		&msync.Reaction{Conv: conv, Target: sent, Actor: own, Clock: clk(6), Emoji: "👀", Remove: true},
		&msync.Status{Conv: conv, Target: sent, State: msync.StateDelivered},
		&msync.Incoming{Record: msync.Record{Conv: conv, ID: got, Author: bob, TimeMS: base + 1, Text: "to my phone"}},
		&msync.Delete{Conv: conv, Target: got, Actor: bob, Clock: clk(7)},
	}
	var first []msgView
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 4 {
		dst := openLinked(t, a.n)
		transfer(t, a.n, dst, 0, 0) // knows bob
		order := slices.Clone(msgs)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		order = append(order, order[:3]...)
		for _, m := range order {
			applyOne(t, dst, m)
		}
		v := views(t, dst, "bob")
		if trial == 0 {
			first = v
			if len(v) != 2 {
				t.Fatalf("%d messages, want 2: %+v", len(v), v)
			}
			s, r := v[0], v[1]
			if s.ID != fmt.Sprintf("%x", sent) || s.Dir != "out" || s.Text != "from my phone (edited)" || !s.Edited ||
				s.State != StateDelivered || s.Reactions != "🎉:bob" {
				t.Fatalf("the transcript shows %+v", s)
			}
			if r.ID != fmt.Sprintf("%x", got) || r.Dir != "in" || !r.Deleted || r.Text != "" || r.State != StateReceived {
				t.Fatalf("the incoming text shows %+v", r)
			}
			continue
		}
		sameViews(t, fmt.Sprintf("trial %d", trial), v, first)
	}
}

// A read marker from another device marks the incoming texts it covers
// read, and not the later ones, and sends the contact no read receipt
// (the device that read them did).
func TestSyncReadMarkerSendsNoReceipt(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	ctx := context.Background()
	var ids []string
	for i := range 3 {
		nextMilli()
		m, err := b.n.Send(ctx, SendRequest{To: "alice", Text: fmt.Sprintf("b%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	waitFor(t, "three texts at alice", func() bool { return len(texts(t, a.n, "bob", "in")) == 3 })
	bobHex := bobAccount(t, a).Hex()
	outboxFor := func() int {
		a.n.mu.Lock()
		defer a.n.mu.Unlock()
		k := 0
		a.n.tabs.outbox.Scan(func(_, v []byte) error {
			var o outRec
			if decodeOutRec(v, &o) == nil && o.Account == bobHex {
				k++
			}
			return nil
		})
		return k
	}
	waitFor(t, "alice's outbox to bob empty", func() bool { return outboxFor() == 0 })
	mid := find(t, a.n, "bob", ids[1])
	id, _ := parseMsgID(mid.ID)
	marker := &msync.ReadMarker{Conv: contactConv(bobAccount(t, a)), TimeMS: uint64(mid.Time.UnixMilli()), ID: id}
	changed, queued := applyOne(t, a.n, marker)
	if !changed || queued != 0 {
		t.Fatalf("marker: changed %v, %d outbox entries queued (want a change and none)", changed, queued)
	}
	if k := outboxFor(); k != 0 {
		t.Fatalf("%d outbox entries for bob after a synced read marker", k)
	}
	for i, want := range []MessageState{StateRead, StateRead, StateReceived} {
		if got := find(t, a.n, "bob", ids[i]).State; got != want {
			t.Errorf("b%d is %s, want %s", i, got, want)
		}
	}
	if changed, _ := applyOne(t, a.n, marker); changed {
		t.Fatal("the same marker applied twice changed the state")
	}
	first, _ := parseMsgID(ids[0])
	older := &msync.ReadMarker{Conv: marker.Conv, TimeMS: marker.TimeMS - 1, ID: first}
	if changed, _ := applyOne(t, a.n, older); changed {
		t.Fatal("an older marker moved the marker back")
	}
}

// testCard makes a contact card for a fresh account, offline.
func testCard(t *testing.T, name string) *card.Card {
	t.Helper()
	now := time.Now()
	acc, err := identity.NewAccount()
	if err != nil {
		t.Fatal(err)
	}
	d, err := identity.NewDevice()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := acc.Certify(d, now)
	if err != nil {
		t.Fatal(err)
	}
	list, err := acc.NewDeviceList(nil, []*identity.DeviceCert{cert}, now)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := pqxdh.NewPrekeyStore(d.SigningKey(), now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := buildCard(acc, name, list, cert, pk, "", nil, nil, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// contactState returns n's stored sync state of a contact.
func contactState(t *testing.T, n *Node, acc identity.AccountID) *msync.ContactState {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	st, err := n.storedContactStateLocked(n.newTxnLocked(), acc)
	if err != nil || st == nil {
		t.Fatalf("no stored state for the contact: %v", err)
	}
	return st
}

// Adds and removes of a contact on two devices converge as an add-wins
// OR-set: a remove on Y that saw only an older add from X does not take
// away X's concurrent re-add, on either device; a remove that saw it
// does.
func TestSyncContactAddRemoveConverge(t *testing.T) {
	home := newHome(t, "me")
	x, err := New(Config{Home: home, KDF: testKDF, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	y := openLinked(t, x)
	carol := testCard(t, "carol")
	acc := carol.Account()
	names := func(n *Node) []string {
		var out []string
		for _, c := range contactViews(t, n) {
			out = append(out, strings.Fields(c)[0])
		}
		return out
	}

	if _, err := x.AddContact("carol", carol.Link()); err != nil {
		t.Fatal(err)
	}
	if changed, _ := applyOne(t, y, contactState(t, x, acc)); !changed || !slices.Equal(names(y), []string{"carol"}) {
		t.Fatalf("Y after X's add: changed %v, contacts %q", changed, names(y))
	}
	// Concurrently: Y removes carol (it saw X's first add), X renames
	// her, which is a new add.
	if err := y.RemoveContact("carol"); err != nil {
		t.Fatal(err)
	}
	removed := contactState(t, y, acc)
	if len(names(y)) != 0 || removed.Present() {
		t.Fatalf("Y after its remove: contacts %q, present %v", names(y), removed.Present())
	}
	if _, err := x.AddContact("caroline", carol.Link()); err != nil {
		t.Fatal(err)
	}
	readded := contactState(t, x, acc)
	// The remove as a message reaches X; X's state reaches Y.
	rm := &msync.ContactRemove{Account: acc, Clock: msync.Clock{Lamport: removed.Removed[0].Lamport + 1, Device: y.cert.DeviceID()}, Seen: removed.Removed}
	if changed, _ := applyOne(t, x, rm); !changed {
		t.Fatal("X: the remove changed nothing")
	}
	applyOne(t, y, readded)
	for _, n := range []*Node{x, y} {
		if got := names(n); !slices.Equal(got, []string{"caroline"}) {
			t.Fatalf("after the concurrent add and remove: contacts %q, want [caroline]", got)
		}
	}
	if a, b := contactState(t, x, acc), contactState(t, y, acc); !a.Present() || !b.Present() {
		t.Fatal("the states do not say present")
	}
	// Y's remove now sees the re-add: carol goes on both.
	if err := y.RemoveContact("caroline"); err != nil {
		t.Fatal(err)
	}
	applyOne(t, x, contactState(t, y, acc))
	for _, n := range []*Node{x, y} {
		if got := names(n); len(got) != 0 {
			t.Fatalf("after a remove that saw every add: contacts %q", got)
		}
	}
	// A verify after the remove does not bring her back.
	applyOne(t, x, &msync.ContactVerify{Account: acc, Clock: msync.Clock{Lamport: 1 << 50, Device: y.cert.DeviceID()}, Verified: true})
	if got := names(x); len(got) != 0 {
		t.Fatalf("a verify re-added the contact: %q", got)
	}
}

// The Lamport clock never goes below the wall clock, rises above every
// value seen, hands out distinct values to transactions in flight at
// once, and survives a restart.
func TestSyncLamportClock(t *testing.T) {
	home := newHome(t, "me")
	n, err := New(Config{Home: home, KDF: testKDF, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	n.mu.Lock()
	t1, t2 := n.newTxnLocked(), n.newTxnLocked()
	c1 := n.tickLocked(t1, now)
	c2 := n.tickLocked(t2, now) // t1 not committed yet
	if c1.Lamport < uint64(now.UnixMilli()) || c2.Lamport <= c1.Lamport || c1.Device != n.cert.DeviceID() {
		t.Fatalf("ticks %v then %v at %d", c1, c2, now.UnixMilli())
	}
	seen := msync.Clock{Lamport: c2.Lamport + 1000}
	n.observeClockLocked(t2, seen)
	c3 := n.tickLocked(t2, now)
	if c3.Lamport != seen.Lamport+1 {
		t.Fatalf("tick after seeing %d is %d", seen.Lamport, c3.Lamport)
	}
	for _, tx := range []*txn{t1, t2} {
		if err := n.commitReleasingLock(tx); err != nil {
			t.Fatal(err)
		}
	}
	n.mu.Unlock()
	n.Close()
	n, err = New(Config{Home: home, KDF: testKDF, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	n.mu.Lock()
	c4 := n.tickLocked(n.newTxnLocked(), now)
	n.mu.Unlock()
	if c4.Lamport <= c3.Lamport {
		t.Fatalf("after a restart the clock gave %d, not above %d", c4.Lamport, c3.Lamport)
	}
}

// An edit's author clock rides in its payload (extension tag 2) with or
// without a counter; an out-of-range clock is dropped, the message read.
func TestPayloadClock(t *testing.T) {
	clock := msync.Clock{Lamport: 1234567, Device: identity.DeviceID{7}}
	p := &payload{Type: ptEdit, ID: newMessageID(), TimeMS: 1, Text: "fixed", Clock: clock}
	got, err := parsePayload(p.marshal())
	if err != nil || got.Clock != clock || got.Text != "fixed" {
		t.Fatalf("clock %+v, text %q, %v", got.Clock, got.Text, err)
	}
	both := &payload{Type: ptText, ID: newMessageID(), TimeMS: 1, Text: "hi", Counter: 4, Clock: clock}
	if got, err := parsePayload(both.marshal()); err != nil || got.Clock != clock || got.Counter != 4 {
		t.Fatalf("with a counter: %+v %d, %v", got.Clock, got.Counter, err)
	}
	huge := &payload{Type: ptEdit, ID: newMessageID(), TimeMS: 1, Text: "x", Clock: msync.Clock{Lamport: msync.MaxLamport}}
	if got, err := parsePayload(huge.marshal()); err != nil || !got.Clock.IsZero() || got.Text != "x" {
		t.Fatalf("out-of-range clock: %+v, %v", got.Clock, err)
	}
}
