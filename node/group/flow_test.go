package group

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/identity"
)

func TestInviteDecline(t *testing.T) {
	w := newWorld(t, "alice", "bob")
	w.strict = true
	alice, bob := w.users[0], w.users[1]
	e, err := Create(alice.cfg, "g")
	if err != nil {
		t.Fatal(err)
	}
	alice.e = e
	fx, err := alice.e.Invite(bob.list)
	w.must(alice, fx, err)
	if st := alice.e.State(); len(st.Invited) != 1 {
		t.Fatalf("invited %+v", st.Invited)
	}
	if _, err := alice.e.Invite(bob.list); !errors.Is(err, ErrAlreadyMember) {
		t.Fatalf("second invite: %v", err)
	}
	bob.e, err = Join(bob.cfg, bob.welcome)
	if err != nil {
		t.Fatal(err)
	}
	if bob.e.IsMember() || bob.e.State().Name != "g" {
		t.Fatal("invitee state")
	}
	fx, err = bob.e.Decline()
	w.must(bob, fx, err)
	if st := alice.e.State(); len(st.Invited) != 0 || len(st.Members) != 1 {
		t.Fatalf("after decline: %+v", st)
	}
	if _, err := bob.e.Accept(); !errors.Is(err, ErrNotInvited) {
		t.Fatalf("accept after decline: %v", err)
	}
	// An invitation can also be withdrawn with Remove, without a new epoch.
	carol := newUser(t, "carol", w.clk)
	w.users = append(w.users, carol)
	w.byDev[carol.dev] = carol
	fx, err = alice.e.Invite(carol.list)
	w.must(alice, fx, err)
	fx, err = alice.e.Remove(carol.acct.Public())
	w.must(alice, fx, err)
	if st := alice.e.State(); len(st.Invited) != 0 || st.Epoch != 0 {
		t.Fatalf("after withdrawal: %+v", st)
	}
	if _, err := Join(carol.cfg, carol.welcome[:1]); err != nil {
		t.Fatal(err) // the welcome predates the withdrawal
	}
}

func TestLeavePromoteRename(t *testing.T) {
	w := newWorld(t, "alice", "bob", "carol", "dave")
	w.create()
	alice, bob, carol, dave := w.users[0], w.users[1], w.users[2], w.users[3]
	fx, err := alice.e.Rename("renamed")
	w.must(alice, fx, err)
	if _, err := alice.e.Rename(strings.Repeat("x", MaxNameSize+1)); err == nil {
		t.Fatal("long name accepted")
	}
	fx, err = alice.e.Promote(bob.acct.Public())
	w.must(alice, fx, err)
	topic := bob.e.Topic()
	// Alice leaves; bob is still an admin.
	fx, err = alice.e.Leave()
	w.must(alice, fx, err)
	for _, u := range []*user{bob, carol, dave} {
		st := u.e.State()
		if st.Name != "renamed" || st.Epoch != 1 || len(st.Members) != 3 {
			t.Fatalf("%s: %+v", u.name, st)
		}
		if u.e.Topic() == topic || u.e.Topic() == "" {
			t.Fatalf("%s: topic after leave %q", u.name, u.e.Topic())
		}
	}
	if alice.e.IsMember() || alice.e.Topic() != "" {
		t.Fatal("alice still in")
	}
	n := len(alice.inbox)
	w.say(carol, "after alice left")
	if len(alice.inbox) != n || dave.inbox[len(dave.inbox)-1] != "after alice left" {
		t.Fatal("leave did not take effect")
	}
	// The last admin leaves: the lowest-sorted member becomes admin.
	fx, err = bob.e.Leave()
	w.must(bob, fx, err)
	st := carol.e.State()
	if len(st.Members) != 2 || (!st.Members[0].Admin) {
		t.Fatalf("after last admin left: %+v", st)
	}
	w.say(dave, "two of us")
	if carol.inbox[len(carol.inbox)-1] != "two of us" {
		t.Fatal("message after second leave lost")
	}
}

func TestMaxMembers(t *testing.T) {
	clk := newClock()
	admin := newUser(t, "admin", clk)
	e, err := Create(admin.cfg, "big")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < MaxMembers; i++ {
		if _, err := e.Invite(newList(t, 1)); err != nil {
			t.Fatalf("invite %d: %v", i, err)
		}
	}
	if _, err := e.Invite(newList(t, 1)); !errors.Is(err, ErrTooMany) {
		t.Fatalf("invite past the limit: %v", err)
	}
	st := e.State()
	if len(st.Members)+len(st.Invited) != MaxMembers {
		t.Fatalf("%d members", len(st.Members)+len(st.Invited))
	}
	b, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	// Too many devices in an op.
	many := make([]identity.DeviceID, MaxDevicesPerMember+1)
	for i := range many {
		many[i][0] = byte(i)
	}
	l := newList(t, 1)
	o := &Op{Kind: OpInvite, Group: e.ID(), Lamport: 5000, Device: admin.dev, Target: l.Account(), Devices: many, List: l}
	if err := signOp(admin.acct, o); !errors.Is(err, ErrMalformed) {
		t.Fatalf("17 devices: %v", err)
	}
	// The welcome of a 1,000-member group splits into parts that Join
	// reassembles.
	w := e.welcomeLocked()
	for _, p := range w {
		if len(p) > MaxWelcomeSize {
			t.Fatalf("welcome part of %d bytes", len(p))
		}
	}
	if len(w) < 2 {
		t.Fatalf("%d welcome parts", len(w))
	}
	// Message size.
	if _, _, err := e.Seal(make([]byte, MaxPlaintext+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize seal: %v", err)
	}
	wire, _, err := e.Seal(make([]byte, MaxPlaintext))
	if err != nil || len(wire) > MaxWireSize {
		t.Fatalf("max seal: %d %v", len(wire), err)
	}
	if _, err := e.Open(append(wire, 0)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize open: %v", err)
	}
}

func TestPersistenceMidLife(t *testing.T) {
	w := newWorld(t, "alice", "bob", "carol")
	w.create()
	alice, bob, carol := w.users[0], w.users[1], w.users[2]
	w.say(alice, "one")
	w.say(bob, "two")
	fx, err := alice.e.Remove(carol.acct.Public())
	w.must(alice, fx, err)
	w.say(alice, "three")
	for _, u := range []*user{alice, bob} {
		b := engineBytes(t, u.e)
		e, err := Unmarshal(u.cfg, b)
		if err != nil {
			t.Fatalf("%s: %v", u.name, err)
		}
		if b2 := engineBytes(t, e); !bytes.Equal(b, b2) {
			t.Fatalf("%s: round trip differs", u.name)
		}
		u.e = e
	}
	if _, err := Unmarshal(carol.cfg, engineBytes(t, alice.e)); err == nil {
		t.Fatal("state loaded for another account")
	}
	w.say(bob, "four")
	w.say(alice, "five")
	w.clk.Advance(2 * time.Minute)
	w.say(bob, "six")
	if got := strings.Join(alice.inbox, ","); got != "two,four,six" {
		t.Fatalf("alice: %s", got)
	}
	if got := strings.Join(bob.inbox, ","); got != "one,three,five" {
		t.Fatalf("bob: %s", got)
	}
	if got := strings.Join(carol.inbox, ","); got != "one,two" {
		t.Fatalf("carol: %s", got)
	}
}

func TestAntiEntropyFillsGap(t *testing.T) {
	w := newWorld(t, "alice", "bob", "carol")
	w.create()
	alice, bob, carol := w.users[0], w.users[1], w.users[2]
	w.say(alice, "a0")
	carol.offline = true
	for _, s := range []string{"a1", "a2"} {
		w.say(alice, s)
	}
	w.say(bob, "b1")
	carol.offline = false
	w.say(alice, "a3") // carol now has a gap in alice's chain
	refs, err := carol.e.Missing(bob.e.Have())
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 3 {
		t.Fatalf("%d refs missing: %+v", len(refs), refs)
	}
	req, err := MarshalRefs(carol.e.ID(), refs)
	if err != nil {
		t.Fatal(err)
	}
	id, got, err := ParseRefs(req)
	if err != nil || id != bob.e.ID() {
		t.Fatal(err)
	}
	for _, wire := range bob.e.Want(got) {
		if _, err := w.deliver(carol, wire); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(carol.inbox[2:], ","); carol.inbox[0] != "a0" || carol.inbox[1] != "a3" || (got != "a1,a2,b1" && got != "b1,a1,a2") {
		t.Fatalf("carol: %s", got)
	}
	if refs, _ := carol.e.Missing(bob.e.Have()); len(refs) != 0 {
		t.Fatalf("still missing %d", len(refs))
	}
	// Replaying the repair changes nothing and shows nothing twice.
	for _, wire := range bob.e.Want(got) {
		if _, err := carol.e.Open(wire); !errors.Is(err, ErrReplay) {
			t.Fatalf("repair replay: %v", err)
		}
	}
	if refs, _ := alice.e.Missing(carol.e.Have()); len(refs) != 0 {
		t.Fatalf("alice missing %d", len(refs))
	}
}

// TestBurst seals 1,000 messages back to back (the sender key rotates on
// the way) and delivers them in reverse: all open, once.
func TestBurst(t *testing.T) {
	w := newWorld(t, "alice", "bob")
	w.create()
	alice, bob := w.users[0], w.users[1]
	var wires [][]byte
	for range 1000 {
		wire, _, err := alice.e.Seal([]byte("burst"))
		if err != nil {
			t.Fatal(err)
		}
		wires = append(wires, wire)
	}
	w.send(alice, alice.e.Flush())
	w.run()
	for i := len(wires) - 1; i >= 0; i-- {
		if _, err := bob.e.Open(wires[i]); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if refs, _ := bob.e.Missing(alice.e.Have()); len(refs) != 0 {
		t.Fatalf("missing %d", len(refs))
	}
}

// Saving an engine does not rewrite its message store: sent and accepted
// messages leave through TakeJournal, once each, and Restore gives them
// back so they answer Want after a reload.
func TestJournalRestore(t *testing.T) {
	w := newWorld(t, "alice", "bob")
	w.create()
	alice, bob := w.users[0], w.users[1]
	alice.e.TakeJournal()
	bob.e.TakeJournal()
	size := len(engineBytes(t, alice.e))
	var sent [][]byte
	var refs []Ref
	for i := range 20 {
		wire := w.say(alice, fmt.Sprintf("m%02d", i))
		h, err := parseWireHeader(wire)
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, wire)
		refs = append(refs, Ref{Device: h.device, Epoch: h.epoch, Chain: h.chain, Iteration: h.iteration})
	}
	if grown := len(engineBytes(t, alice.e)) - size; grown > 256 {
		t.Fatalf("engine state grew by %d bytes over 20 messages", grown)
	}
	for _, u := range []*user{alice, bob} {
		j := u.e.TakeJournal()
		if len(j) != len(sent) {
			t.Fatalf("%s journal has %d messages, want %d", u.name, len(j), len(sent))
		}
		for i := range j {
			if !bytes.Equal(j[i], sent[i]) {
				t.Fatalf("%s journal entry %d differs", u.name, i)
			}
		}
		if again := u.e.TakeJournal(); len(again) != 0 {
			t.Fatalf("%s journal handed out %d messages twice", u.name, len(again))
		}
		bare, err := Unmarshal(u.cfg, engineBytes(t, u.e))
		if err != nil {
			t.Fatal(err)
		}
		if got := bare.Want(refs); len(got) != 0 {
			t.Fatalf("%s: an engine loaded without its journal answered %d wants", u.name, len(got))
		}
		bare.Restore(append(j, []byte("garbage")))
		if got := bare.Want(refs); len(got) != len(sent) {
			t.Fatalf("%s: restored engine answered %d of %d wants", u.name, len(got), len(sent))
		}
		if _, err := bare.Open(sent[3]); !errors.Is(err, ErrReplay) {
			t.Fatalf("%s: replay after restore: %v", u.name, err)
		}
		if j := bare.TakeJournal(); len(j) != 0 {
			t.Fatalf("%s: restored messages journaled again (%d)", u.name, len(j))
		}
	}
}
