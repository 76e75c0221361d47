package group

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/hushnet/hush/crypto/identity"
)

// signUnchecked signs o as signOp does but without its checks, as an
// attacker's own code would.
func signUnchecked(t *testing.T, acct *identity.Account, o *Op) []byte {
	t.Helper()
	o.Author = acct.Public()
	slices.SortFunc(o.Devices, func(a, b identity.DeviceID) int { return bytes.Compare(a[:], b[:]) })
	body := o.body()
	sig, err := acct.Sign(LabelOp, body)
	if err != nil {
		t.Fatal(err)
	}
	o.enc = append(body, sig...)
	o.hash = sha256.Sum256(o.enc)
	return o.Marshal()
}

// holdersOK checks that no device is held by two accounts in e's state
// and that each device's messages are attributed to its holder.
func holdersOK(t *testing.T, who string, e *Engine) {
	t.Helper()
	st := e.State()
	seen := map[identity.DeviceID]identity.AccountID{}
	for _, list := range [][]Member{st.Members, st.Invited} {
		for _, m := range list {
			for _, d := range m.Devices {
				if a, ok := seen[d]; ok {
					t.Fatalf("%s: device %s held by %s and %s", who, d, a, m.Account)
				}
				seen[d] = m.Account
			}
		}
	}
}

// TestAttackClaimOthersDevice: Mallory certifies Bob's device under her
// own account (its public keys are in Bob's card, and a certificate
// proves no possession) and claims it in the group, so that Bob's
// messages are attributed to her. Before the fix her Accept applied and
// the device-to-member lookup walked a map: 4 of 40 of Bob's messages
// were shown as hers.
func TestAttackClaimOthersDevice(t *testing.T) {
	w := newWorld(t, "alice", "bob", "mallory")
	w.strict = true
	alice, bob, mal := w.users[0], w.users[1], w.users[2]
	var err error
	if alice.e, err = Create(alice.cfg, "g"); err != nil {
		t.Fatal(err)
	}
	w.join(alice, bob)
	evil := signList(t, mal.acct, mal.device, bob.device)

	// An invitation naming Bob's device for Mallory is refused.
	before := engineBytes(t, alice.e)
	if _, err := alice.e.Invite(evil); !errors.Is(err, ErrDeviceTaken) {
		t.Fatalf("invite claiming a member's device: %v", err)
	}
	if !bytes.Equal(before, engineBytes(t, alice.e)) {
		t.Fatal("refused invite changed state")
	}

	// Invited with her own list, she accepts claiming Bob's device too:
	// an Accept may claim only devices its invitation holds.
	fx, err := alice.e.Invite(mal.list)
	w.must(alice, fx, err)
	if mal.e, err = Join(mal.cfg, mal.welcome); err != nil {
		t.Fatal(err)
	}
	st := mal.e.State()
	claim := &Op{Kind: OpAccept, Group: st.ID, Epoch: st.Epoch, Lamport: st.Lamport + 1, Device: mal.dev,
		Devices: []identity.DeviceID{mal.dev, bob.dev}, List: evil}
	if err := signOp(mal.acct, claim); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*user{alice, bob} {
		before := engineBytes(t, u.e)
		if _, err := u.e.HandlePairwise(mal.acct.Public(), mal.dev, pairwiseOp(st.ID, claim)); !errors.Is(err, ErrNotInvited) {
			t.Fatalf("%s: accept claiming a member's device: %v", u.name, err)
		}
		if !bytes.Equal(before, engineBytes(t, u.e)) {
			t.Fatalf("%s: refused accept changed state", u.name)
		}
	}

	// Claims the carried list does not back are refused by ParseOp.
	bobs := bob.device
	for name, o := range map[string]*Op{
		"device not on her list": {Devices: []identity.DeviceID{mal.dev, bobs.ID()}, List: mal.list},
		"another account's list": {Devices: []identity.DeviceID{bobs.ID()}, List: bob.list},
	} {
		o.Kind, o.Group, o.Epoch, o.Lamport, o.Device = OpAccept, st.ID, st.Epoch, st.Lamport+1, mal.dev
		b := signUnchecked(t, mal.acct, o)
		if _, err := ParseOp(b); !errors.Is(err, ErrUnlistedDevice) {
			t.Fatalf("%s: ParseOp: %v", name, err)
		}
		if _, err := alice.e.ApplyOp(b); !errors.Is(err, ErrUnlistedDevice) {
			t.Fatalf("%s: ApplyOp: %v", name, err)
		}
	}
	// And the engine will not make them.
	bad := mal.cfg
	bad.Devices = []identity.DeviceID{mal.dev, bob.dev}
	if _, err := Create(bad, "x"); !errors.Is(err, ErrUnlistedDevice) {
		t.Fatalf("config with an unlisted device: %v", err)
	}
	bad = mal.cfg
	bad.DeviceList = bob.list
	if _, err := Create(bad, "x"); err == nil {
		t.Fatal("config with another account's list accepted")
	}

	// Her honest Accept still goes through.
	mal.welcome = nil
	fx, err = mal.e.Accept()
	w.must(mal, fx, err)
	for _, u := range w.users {
		if len(u.e.State().Members) != 3 {
			t.Fatalf("%s: %d members", u.name, len(u.e.State().Members))
		}
		holdersOK(t, u.name, u.e)
	}

	// Every message is attributed to its sender's account, every time.
	for i := range 40 {
		for _, s := range []*user{bob, mal} {
			wire, _, err := s.e.Seal([]byte{byte(i)})
			if err != nil {
				t.Fatal(err)
			}
			rec, err := alice.e.Open(wire)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Account != s.acct.Public() || rec.Device != s.dev {
				t.Fatalf("message %d of %s attributed to %s", i, s.name, rec.Account)
			}
		}
	}
}

// TestDeviceClaimFirstWins: two invitations claim the same device (the
// admin invited Mallory, whose signed list names Bob's device, and Bob).
// The first in op order holds it and the other is refused, on every
// engine whatever order the ops arrive in.
func TestDeviceClaimFirstWins(t *testing.T) {
	clk := newClock()
	alice, bob, mal, carol := newUser(t, "alice", clk), newUser(t, "bob", clk), newUser(t, "mallory", clk), newUser(t, "carol", clk)
	evil := signList(t, mal.acct, mal.device, bob.device)
	for _, malFirst := range []bool{false, true} {
		e, err := Create(alice.cfg, "g")
		if err != nil {
			t.Fatal(err)
		}
		st := e.State()
		sign := func(u *user, lamport uint64, o *Op) []byte {
			o.Group, o.Lamport, o.Device = st.ID, lamport, u.dev
			if err := signOp(u.acct, o); err != nil {
				t.Fatal(err)
			}
			return o.Marshal()
		}
		lb, lm := uint64(2), uint64(3)
		if malFirst {
			lb, lm = 3, 2
		}
		ops := [][]byte{
			e.Ops()[0],
			sign(alice, lb, &Op{Kind: OpInvite, Target: bob.acct.Public(), Devices: []identity.DeviceID{bob.dev}, List: bob.list}),
			sign(alice, lm, &Op{Kind: OpInvite, Target: mal.acct.Public(), Devices: []identity.DeviceID{mal.dev, bob.dev}, List: evil}),
			sign(bob, 4, &Op{Kind: OpAccept, Devices: []identity.DeviceID{bob.dev}, List: bob.list}),
			sign(mal, 4, &Op{Kind: OpAccept, Devices: []identity.DeviceID{mal.dev, bob.dev}, List: evil}),
		}
		holder := bob.acct.Public()
		if malFirst {
			holder = mal.acct.Public()
		}
		var ref []byte
		for seed := range uint64(20) {
			r := rand.New(rand.NewPCG(seed, 2))
			shuffled := append([][]byte(nil), ops[1:]...)
			r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			first, _ := ParseOp(ops[0])
			e, err := newEngine(carol.cfg, first.Group, first.hash)
			if err != nil {
				t.Fatal(err)
			}
			e.ApplyOp(ops[0])
			for _, b := range shuffled {
				e.ApplyOp(b) // errors: held until predecessors arrive
			}
			holdersOK(t, "carol", e)
			got := e.State()
			b, _ := got.MarshalBinary()
			if ref == nil {
				ref = b
			} else if !bytes.Equal(b, ref) {
				t.Fatalf("mallory first %v, seed %d: state differs: %+v", malFirst, seed, got)
			}
			if len(got.Members) != 2 {
				t.Fatalf("mallory first %v: %d members", malFirst, len(got.Members))
			}
			if m, ok := got.Member(holder); !ok || len(m.Devices) == 0 {
				t.Fatalf("mallory first %v: the first claimant is not a member", malFirst)
			}
			if a, ok := e.ro.memberOfDevice(bob.dev); !ok || a != holder {
				t.Fatalf("mallory first %v: bob's device held by %s", malFirst, a)
			}
			if !malFirst || seed > 0 {
				continue
			}
			// Once the squatter is removed, Bob can be invited.
			for _, b := range [][]byte{
				sign(alice, 5, &Op{Kind: OpRemove, Target: mal.acct.Public()}),
				sign(alice, 6, &Op{Kind: OpInvite, Target: bob.acct.Public(), Devices: []identity.DeviceID{bob.dev}, List: bob.list}),
			} {
				if _, err := e.ApplyOp(b); err != nil {
					t.Fatal(err)
				}
			}
			if st := e.State(); len(st.Invited) != 1 || st.Invited[0].Account != bob.acct.Public() {
				t.Fatalf("after the squatter's removal: %+v", st)
			}
		}
	}
}
