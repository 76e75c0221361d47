package group

import (
	"slices"
	"testing"

	"github.com/hushnet/hush/crypto/identity"
)

// Accounts with several devices (Config.Devices lists them all): the
// devices of the account that creates a group, and those of an invited
// account other than the one that accepts, join from a Welcome sent by
// their own account's device.

// pairwiseKinds lists the kinds of the pairwise messages in fx to u's
// device, in order.
func pairwiseKinds(t *testing.T, fx *Effects, u *user) []byte {
	t.Helper()
	var kinds []byte
	for _, p := range fx.Pairwise {
		if p.Device != u.dev {
			continue
		}
		if p.Account != u.acct.Public() {
			t.Fatalf("pairwise to %s addressed to another account", u.name)
		}
		pp, err := parsePairwise(p.Data)
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, pp.kind)
	}
	return kinds
}

// invite has a new group's only member inviter invite u's account (its
// list as u has it); u builds its engine from the Welcome.
func (w *world) invite(inviter, u *user) {
	w.t.Helper()
	e, err := Create(inviter.cfg, "friends")
	if err != nil {
		w.t.Fatal(err)
	}
	inviter.e = e
	w.send(inviter, e.Flush())
	fx, err := e.Invite(u.list)
	w.must(inviter, fx, err)
	if u.e, err = Join(u.cfg, u.welcome); err != nil {
		w.t.Fatalf("%s: join: %v", u.name, err)
	}
	u.welcome = nil
}

// sameState checks that every engine of us has ref's state and topic.
func (w *world) sameState(ref *user, us ...*user) {
	w.t.Helper()
	want := w.stateBytes(ref)
	for _, u := range us {
		if w.stateBytes(u) != want {
			w.t.Fatalf("%s: state %+v, %s has %+v", u.name, u.e.State(), ref.name, ref.e.State())
		}
		if u.e.Topic() == "" || u.e.Topic() != ref.e.Topic() {
			w.t.Fatalf("%s: topic %q, %s has %q", u.name, u.e.Topic(), ref.name, ref.e.Topic())
		}
	}
}

// TestCreateWithSeveralDevices: Alice, with two devices on her list,
// creates a group from her first. Her second device gets a Welcome, then
// the epoch contribution and the first device's Key, joins from the
// Welcome, reads Bob's message once he has joined, and Bob reads its.
// The Welcome is owed until sent: Flush returns it right after Create,
// after a save and reload, or, if nobody flushed, the next op's Effects
// carry it.
func TestCreateWithSeveralDevices(t *testing.T) {
	for _, how := range []string{"flush", "reload", "next op"} {
		t.Run(how, func(t *testing.T) {
			w := newWorld(t, "alice1", "bob")
			w.strict = true
			a1, bob := w.users[0], w.users[1]
			a2 := w.newDevice(a1, "alice2")
			v2 := nextList(t, a1.acct, a1.list, a1.device, a2.device)
			w.setList(v2, a1, a2)
			e, err := Create(a1.cfg, "friends")
			if err != nil {
				t.Fatal(err)
			}
			a1.e = e
			st := e.State()
			if m, _ := st.Member(a1.acct.Public()); !slices.Contains(m.Devices, a2.dev) || len(m.Devices) != 2 {
				t.Fatalf("alice in the new group: %+v", m)
			}
			switch how {
			case "reload":
				if a1.e, err = Unmarshal(a1.cfg, engineBytes(t, e)); err != nil {
					t.Fatal(err)
				}
				fallthrough
			case "flush":
				fx := a1.e.Flush()
				if k := pairwiseKinds(t, fx, a2); !slices.Equal(k, []byte{pwWelcome, pwSecret, pwKey}) {
					t.Fatalf("pairwise kinds to the other device: %v", k)
				}
				w.must(a1, fx, nil)
				if a2.e == nil || !a2.e.IsMember() {
					t.Fatal("alice2 did not join from the welcome")
				}
				w.sameState(a1, a2)
				// Sent once: a second Flush, a reload and its Flush
				// owe it nothing more.
				if k := pairwiseKinds(t, a1.e.Flush(), a2); len(k) != 0 {
					t.Fatalf("sent again: %v", k)
				}
				r, err := Unmarshal(a1.cfg, engineBytes(t, a1.e))
				if err != nil {
					t.Fatal(err)
				}
				if k := pairwiseKinds(t, r.Flush(), a2); len(k) != 0 {
					t.Fatalf("sent again after a reload: %v", k)
				}
			case "next op":
				if a2.e != nil {
					t.Fatal("joined before anything was sent")
				}
			}
			w.join(a1, bob)
			if a2.e == nil || !a2.e.IsMember() {
				t.Fatal("alice2 did not join")
			}
			w.sameState(bob, a1, a2)
			w.say(bob, "hi alice")
			w.say(a2, "alice2 here")
			w.say(a1, "alice1 here")
			if !hasLine(a1.inbox, "hi alice") || !hasLine(a2.inbox, "hi alice") {
				t.Fatalf("bob's message: a1 %q a2 %q", a1.inbox, a2.inbox)
			}
			if !hasLine(bob.inbox, "alice2 here") || !hasLine(a1.inbox, "alice2 here") {
				t.Fatalf("alice2's message: bob %q a1 %q", bob.inbox, a1.inbox)
			}
			if !hasLine(bob.inbox, "alice1 here") || !hasLine(a2.inbox, "alice1 here") {
				t.Fatalf("alice1's message: bob %q a2 %q", bob.inbox, a2.inbox)
			}
		})
	}
}

// TestAcceptWithSeveralDevices: Bob, with two devices on his list, is
// invited with both and accepts from the first. His second device joins
// as a member, not an invitee, whether it built an engine from the
// invitation (and the Welcome then reaches that engine, or is dropped
// as the node does and the op that follows it applies) or missed the
// invitation; it reads Alice's and Bob's messages and they read its.
func TestAcceptWithSeveralDevices(t *testing.T) {
	for _, how := range []string{"invited", "invited, welcome dropped", "missed the invitation"} {
		t.Run(how, func(t *testing.T) {
			w := newWorld(t, "alice", "bob1")
			w.strict = true
			alice, b1 := w.users[0], w.users[1]
			b2 := w.newDevice(b1, "bob2")
			v2 := nextList(t, b1.acct, b1.list, b1.device, b2.device)
			w.setList(v2, b1, b2)
			w.nodeWelcome = how == "invited, welcome dropped"
			b2.autoJoin = how != "missed the invitation"
			e, err := Create(alice.cfg, "friends")
			if err != nil {
				t.Fatal(err)
			}
			alice.e = e
			fx, err := alice.e.Invite(b1.list)
			w.must(alice, fx, err)
			if b2.autoJoin {
				if b2.e == nil || b2.e.IsMember() || len(b2.e.State().Invited) != 1 {
					t.Fatal("bob2 has no pending invitation")
				}
			} else {
				b2.welcome, b2.autoJoin = nil, true // it never saw the invitation
			}
			if b1.e, err = Join(b1.cfg, b1.welcome); err != nil {
				t.Fatal(err)
			}
			b1.welcome = nil
			fx, err = b1.e.Accept()
			if err != nil {
				t.Fatal(err)
			}
			if k := pairwiseKinds(t, fx, b2); !slices.Equal(k, []byte{pwWelcome, pwOp}) {
				t.Fatalf("pairwise kinds to the other device: %v", k)
			}
			w.must(b1, fx, nil)
			if b2.e == nil || !b2.e.IsMember() {
				t.Fatal("bob2 is not a member")
			}
			st := b2.e.State()
			if m, _ := st.Member(b1.acct.Public()); len(st.Invited) != 0 || !slices.Contains(m.Devices, b2.dev) || !slices.Contains(m.Devices, b1.dev) {
				t.Fatalf("bob2's state: %+v", st)
			}
			w.sameState(alice, b1, b2)
			w.say(alice, "hi bob")
			w.say(b2, "bob2 here")
			w.say(b1, "bob1 here")
			if !hasLine(b1.inbox, "hi bob") || !hasLine(b2.inbox, "hi bob") {
				t.Fatalf("alice's message: b1 %q b2 %q", b1.inbox, b2.inbox)
			}
			if !hasLine(alice.inbox, "bob2 here") || !hasLine(b1.inbox, "bob2 here") {
				t.Fatalf("bob2's message: alice %q b1 %q", alice.inbox, b1.inbox)
			}
			if !hasLine(alice.inbox, "bob1 here") || !hasLine(b2.inbox, "bob1 here") {
				t.Fatalf("bob1's message: alice %q b2 %q", alice.inbox, b2.inbox)
			}
		})
	}
}

// TestAcceptLeavesDeviceOut: Bob is invited with two devices and
// accepts from the first with that one alone (Config.Devices). The
// other gets the op, not a Welcome: its pending invitation ends, it is
// not a member, and no sender key reaches it.
func TestAcceptLeavesDeviceOut(t *testing.T) {
	w := newWorld(t, "alice", "bob1")
	w.strict = true
	alice, b1 := w.users[0], w.users[1]
	b2 := w.newDevice(b1, "bob2")
	v2 := nextList(t, b1.acct, b1.list, b1.device, b2.device)
	w.setList(v2, b1, b2)
	b1.cfg.Devices = []identity.DeviceID{b1.dev}
	w.invite(alice, b1)
	if b2.e == nil || len(b2.e.State().Invited) != 1 {
		t.Fatal("bob2 has no pending invitation")
	}
	nPairs := len(w.pairs)
	fx, err := b1.e.Accept()
	if k := pairwiseKinds(t, fx, b2); !slices.Equal(k, []byte{pwOp}) {
		t.Fatalf("pairwise kinds to the device left out: %v", k)
	}
	w.must(b1, fx, err)
	for _, p := range w.pairs[nPairs:] {
		if pp, err := parsePairwise(p.to.Data); err == nil && p.to.Device == b2.dev && pp.kind != pwOp {
			t.Fatalf("pairwise of kind %d sent to the device left out", pp.kind)
		}
	}
	st := b2.e.State()
	if m, _ := st.Member(b1.acct.Public()); b2.e.IsMember() || len(st.Invited) != 0 || !slices.Equal(m.Devices, []identity.DeviceID{b1.dev}) {
		t.Fatalf("bob2's state: %+v", st)
	}
	w.say(alice, "hi bob")
	if !hasLine(b1.inbox, "hi bob") || len(b2.inbox) != 0 {
		t.Fatalf("b1 %q b2 %q", b1.inbox, b2.inbox)
	}
}

// TestDeclineEndsOtherDevicesInvitation: Bob declines from one device;
// his other device, which holds the invitation too, learns it and no
// longer shows it as pending.
func TestDeclineEndsOtherDevicesInvitation(t *testing.T) {
	w := newWorld(t, "alice", "bob1")
	w.strict = true
	alice, b1 := w.users[0], w.users[1]
	b2 := w.newDevice(b1, "bob2")
	v2 := nextList(t, b1.acct, b1.list, b1.device, b2.device)
	w.setList(v2, b1, b2)
	w.invite(alice, b1)
	if b2.e == nil || len(b2.e.State().Invited) != 1 {
		t.Fatal("bob2 has no pending invitation")
	}
	fx, err := b1.e.Decline()
	w.must(b1, fx, err)
	for _, u := range []*user{alice, b2} {
		if st := u.e.State(); len(st.Invited) != 0 || len(st.Members) != 1 {
			t.Fatalf("%s: %+v", u.name, st)
		}
	}
	if _, err := b2.e.Accept(); err == nil {
		t.Fatal("bob2 accepted a declined invitation")
	}
}
