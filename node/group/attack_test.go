package group

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/senderkey"
	"github.com/hushnet/hush/crypto/suite"
)

// chainOf returns a user's current sending chain ID.
func chainOf(u *user) (uint32, bool) {
	u.e.mu.Lock()
	defer u.e.mu.Unlock()
	k := u.e.own[u.e.curID]
	if k == nil {
		return 0, false
	}
	return k.sk.ChainID(), true
}

func engineBytes(t *testing.T, e *Engine) []byte {
	t.Helper()
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forgeKey builds a SenderKey for device with the given chain ID and chain
// key but the forger's own signing key.
func forgeKey(t *testing.T, id GroupID, epoch uint64, device identity.DeviceID, chainID uint32, iter uint32, ck [32]byte) *senderkey.SenderKey {
	t.Helper()
	w := codec.NewWriter(200)
	w.U8(suite.Version)
	w.U8(suite.ID)
	w.U8('S')
	w.Fixed(id[:])
	w.U64(epoch)
	w.Fixed(device[:])
	w.U32(chainID)
	w.U32(iter)
	w.Fixed(ck[:])
	seed := make([]byte, 32)
	seed[0] = 7
	w.Fixed(seed)
	sk := new(senderkey.SenderKey)
	if err := sk.UnmarshalBinary(w.Bytes()); err != nil {
		t.Fatal(err)
	}
	return sk
}

func TestAttackForgedSender(t *testing.T) {
	w := newWorld(t, "alice", "bob", "mallory")
	w.create()
	alice, bob, mal := w.users[0], w.users[1], w.users[2]
	// Mallory holds Alice's chain key (every member does) and uses it
	// with her own signing key, claiming to be Alice's device.
	d := func() *senderkey.Distribution {
		alice.e.mu.Lock()
		defer alice.e.mu.Unlock()
		return alice.e.own[alice.e.curID].sk.Distribution()
	}()
	forged := forgeKey(t, alice.e.ID(), d.Epoch, alice.dev, d.ChainID, d.Iteration, d.ChainKey)
	ct, err := forged.Encrypt([]byte("msend me your password"))
	if err != nil {
		t.Fatal(err)
	}
	wire := append([]byte{Version, kindGroupMsg}, ct...)
	before := engineBytes(t, bob.e)
	if _, err := bob.e.Open(wire); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("forged sender: %v", err)
	}
	if !bytes.Equal(before, engineBytes(t, bob.e)) {
		t.Fatal("rejected message changed state")
	}
	// (b) Mallory's own chain, but Alice's device ID in the header.
	mk := func() *senderkey.Distribution {
		mal.e.mu.Lock()
		defer mal.e.mu.Unlock()
		return mal.e.own[mal.e.curID].sk.Distribution()
	}()
	forged = forgeKey(t, alice.e.ID(), mk.Epoch, alice.dev, mk.ChainID, mk.Iteration, mk.ChainKey)
	ct, _ = forged.Encrypt([]byte("hi"))
	if _, err := bob.e.Open(append([]byte{Version, kindGroupMsg}, ct...)); err == nil {
		t.Fatal("message under another device's ID accepted")
	}
	// Alice's genuine message still opens.
	w.say(alice, "genuine")
	if len(bob.inbox) != 1 || bob.inbox[0] != "genuine" {
		t.Fatalf("bob inbox %q", bob.inbox)
	}
	// Every bit flip of a genuine message is rejected.
	wire, _, _ = alice.e.Seal([]byte("x"))
	for i := range len(wire) * 8 {
		c := bytes.Clone(wire)
		c[i/8] ^= 1 << (i % 8)
		if _, err := bob.e.Open(c); err == nil {
			t.Fatalf("bit %d flip accepted", i)
		}
	}
	if _, err := bob.e.Open(wire); err != nil {
		t.Fatalf("genuine after flips: %v", err)
	}
}

func TestAttackReplay(t *testing.T) {
	w := newWorld(t, "alice", "bob")
	w.create()
	wire := w.say(w.users[0], "once")
	bob := w.users[1]
	if _, err := bob.e.Open(wire); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	if len(bob.inbox) != 1 {
		t.Fatalf("shown %d times", len(bob.inbox))
	}
	// Still rejected after a restart.
	e, err := Unmarshal(bob.cfg, engineBytes(t, bob.e))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Open(wire); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay after restart: %v", err)
	}
	// A replayed op is ignored.
	ops := w.users[0].e.Ops()
	before := engineBytes(t, bob.e)
	for _, o := range ops {
		if _, err := bob.e.ApplyOp(o); err != nil {
			t.Fatalf("duplicate op: %v", err)
		}
	}
	if !bytes.Equal(before, engineBytes(t, bob.e)) {
		t.Fatal("duplicate op changed state")
	}
}

func TestAttackNonMember(t *testing.T) {
	w := newWorld(t, "alice", "bob")
	w.create()
	bob := w.users[1]
	eve := newUser(t, "eve", w.clk)
	id := bob.e.ID()
	st := bob.e.State()
	// Eve makes her own chain for the group's current epoch.
	sk, err := senderkey.NewSenderKey(id, st.Epoch, eve.dev)
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := sk.Encrypt([]byte("hello"))
	before := engineBytes(t, bob.e)
	if _, err := bob.e.Open(append([]byte{Version, kindGroupMsg}, ct...)); !errors.Is(err, ErrNotMember) {
		t.Fatalf("non-member message: %v", err)
	}
	// Eve pushes her distribution pairwise.
	if _, err := bob.e.HandlePairwise(eve.acct.Public(), eve.dev, mustKeyMsg(t, bob.e, sk)); err == nil || errors.Is(err, ErrParked) && bob.e.recvHas(eve.dev) {
		t.Fatalf("non-member distribution: %v", err)
	}
	// Eve signs ops of her own.
	other := newList(t, 1)
	for _, o := range []*Op{
		{Kind: OpInvite, Target: other.Account(), Devices: []identity.DeviceID{other.Devices()[0].DeviceID()}, List: other},
		{Kind: OpRename, Name: "pwned"},
		{Kind: OpLeave},
		{Kind: OpAccept, Devices: []identity.DeviceID{eve.dev}, List: eve.list},
	} {
		o.Group, o.Lamport, o.Device, o.Epoch = id, 100, eve.dev, st.Epoch
		if err := signOp(eve.acct, o); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.e.ApplyOp(o.Marshal()); !errors.Is(err, ErrNotMember) && !errors.Is(err, ErrNotInvited) {
			t.Fatalf("%s by non-member: %v", o.Kind, err)
		}
	}
	// A second create op for the same group is refused.
	o := &Op{Kind: OpCreate, Group: id, Lamport: 0, Device: eve.dev, Devices: []identity.DeviceID{eve.dev}, List: eve.list, Name: "mine"}
	if err := signOp(eve.acct, o); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.e.ApplyOp(o.Marshal()); err == nil {
		t.Fatal("second create accepted")
	}
	if !bytes.Equal(before, engineBytes(t, bob.e)) {
		t.Fatal("rejected input changed state")
	}
}

func (e *Engine) recvHas(d identity.DeviceID) bool {
	b, _ := e.recv.MarshalBinary()
	return bytes.Contains(b, d[:])
}

func mustKeyMsg(t *testing.T, e *Engine, sk *senderkey.SenderKey) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.keyMsg(e.ro.epoch(), [32]byte{}, &ownKey{sk: sk})
}

func TestAttackNonAdminChange(t *testing.T) {
	w := newWorld(t, "alice", "bob", "carol")
	w.create()
	alice, bob, carol := w.users[0], w.users[1], w.users[2]
	before := engineBytes(t, carol.e)
	if _, err := bob.e.Remove(carol.acct.Public()); !errors.Is(err, ErrNotAdmin) {
		t.Fatalf("local non-admin remove: %v", err)
	}
	st := bob.e.State()
	other := newList(t, 1)
	for _, o := range []*Op{
		{Kind: OpRemove, Target: alice.acct.Public()},
		{Kind: OpPromote, Target: carol.acct.Public()},
		{Kind: OpRename, Name: "bob's"},
		{Kind: OpInvite, Target: other.Account(), Devices: []identity.DeviceID{other.Devices()[0].DeviceID()}, List: other},
	} {
		o.Group, o.Lamport, o.Device, o.Epoch = st.ID, st.Lamport+1, bob.dev, st.Epoch
		if err := signOp(bob.acct, o); err != nil {
			t.Fatal(err)
		}
		if _, err := carol.e.ApplyOp(o.Marshal()); !errors.Is(err, ErrNotAdmin) {
			t.Fatalf("%s by non-admin: %v", o.Kind, err)
		}
	}
	// A forged signature, a wrong group.
	o := &Op{Kind: OpRename, Group: st.ID, Lamport: st.Lamport + 1, Device: alice.dev, Name: "x"}
	if err := signOp(alice.acct, o); err != nil {
		t.Fatal(err)
	}
	b := o.Marshal()
	b[len(b)-1] ^= 1
	if _, err := carol.e.ApplyOp(b); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged op: %v", err)
	}
	b = o.Marshal()
	b[5] ^= 1 // the group ID: breaks the signature too
	if _, err := carol.e.ApplyOp(b); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("op with altered group: %v", err)
	}
	o2 := &Op{Kind: OpRename, Group: GroupID{1}, Lamport: st.Lamport + 1, Device: alice.dev, Name: "x"}
	if err := signOp(alice.acct, o2); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.e.ApplyOp(o2.Marshal()); !errors.Is(err, ErrWrongGroup) {
		t.Fatalf("op for another group: %v", err)
	}
	// An op claiming the author's devices wrongly.
	o3 := &Op{Kind: OpRename, Group: st.ID, Lamport: st.Lamport + 1, Device: bob.dev, Name: "x"}
	if err := signOp(alice.acct, o3); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.e.ApplyOp(o3.Marshal()); !errors.Is(err, ErrNotMember) {
		t.Fatalf("op from a device the author lacks: %v", err)
	}
	if !bytes.Equal(before, engineBytes(t, carol.e)) {
		t.Fatal("rejected ops changed state")
	}
	// Once promoted, bob may.
	fx, err := alice.e.Promote(bob.acct.Public())
	w.must(alice, fx, err)
	fx, err = bob.e.Rename("bob's")
	w.must(bob, fx, err)
	if carol.e.State().Name != "bob's" {
		t.Fatal("rename by promoted admin not applied")
	}
}

func TestAttackStaleEpoch(t *testing.T) {
	w := newWorld(t, "alice", "bob", "carol", "dave")
	w.create()
	alice, bob, carol, dave := w.users[0], w.users[1], w.users[2], w.users[3]
	oldBob, _, _ := bob.e.Seal([]byte("old epoch, in flight"))
	oldBob2, _, _ := bob.e.Seal([]byte("old epoch, late"))
	oldDave, _, _ := dave.e.Seal([]byte("from the removed member"))
	fx, err := alice.e.Remove(dave.acct.Public())
	w.must(alice, fx, err)
	// Inside the grace window a remaining member's old-epoch message is
	// accepted; the removed member's is not.
	if _, err := carol.e.Open(oldBob); err != nil {
		t.Fatalf("old epoch within grace: %v", err)
	}
	if _, err := carol.e.Open(oldDave); !errors.Is(err, ErrNotMember) {
		t.Fatalf("removed member within grace: %v", err)
	}
	w.clk.Advance(DefaultGrace + time.Second)
	if _, err := carol.e.Open(oldBob2); !errors.Is(err, ErrEpoch) {
		t.Fatalf("old epoch after grace: %v", err)
	}
	if n := len(carol.e.Topics()); n != 1 {
		t.Fatalf("%d topics after grace", n)
	}
	// A message claiming a future epoch.
	st := carol.e.State()
	sk, _ := senderkey.NewSenderKey(st.ID, st.Epoch+1, bob.dev)
	ct, _ := sk.Encrypt([]byte("future"))
	if _, err := carol.e.Open(append([]byte{Version, kindGroupMsg}, ct...)); !errors.Is(err, ErrEpoch) {
		t.Fatalf("future epoch: %v", err)
	}
	w.say(bob, "new epoch")
	if carol.inbox[len(carol.inbox)-1] != "new epoch" {
		t.Fatal("new epoch message lost")
	}
}

func TestAttackRemovedMemberCannotRead(t *testing.T) {
	w := newWorld(t, "alice", "bob", "carol", "dave")
	w.create()
	alice, dave := w.users[0], w.users[3]
	for _, u := range w.users {
		w.say(u, "before "+u.name)
	}
	daveHad := append([]string(nil), dave.inbox...)
	if len(daveHad) != 3 {
		t.Fatalf("dave had %q", daveHad)
	}
	oldTopic := alice.e.Topic()
	oldChains := map[string]uint32{}
	for _, u := range w.users[:3] {
		oldChains[u.name], _ = chainOf(u)
	}
	nWires, nPairs := len(w.wires), len(w.pairs)
	// Dave stops receiving through the world; we feed him by hand.
	dave.offline = true
	fx, err := alice.e.Remove(dave.acct.Public())
	w.must(alice, fx, err)
	removeWire := w.wires[nWires]
	for _, u := range w.users[:3] {
		for i := range 3 {
			w.say(u, "after "+u.name+string(rune('0'+i)))
		}
	}
	// Every remaining member changed chain and topic.
	for _, u := range w.users[:3] {
		c, ok := chainOf(u)
		if !ok || c == oldChains[u.name] {
			t.Fatalf("%s kept its chain", u.name)
		}
		if u.e.Topic() == oldTopic || u.e.Topic() == "" {
			t.Fatalf("%s: topic did not change", u.name)
		}
		if u.e.State().Epoch != 1 {
			t.Fatalf("%s: epoch %d", u.name, u.e.State().Epoch)
		}
	}
	// Nothing but the removal notice was addressed to Dave.
	for _, p := range w.pairs[nPairs:] {
		if p.to.Device == dave.dev {
			if pp, err := parsePairwise(p.to.Data); err != nil || pp.kind != pwOp {
				t.Fatalf("pairwise of kind %d sent to the removed member", pp.kind)
			}
		}
	}
	// Dave, fed everything: the removal op (sealed in the old epoch)
	// applies; nothing after it decrypts.
	dave.offline = false
	if rec, err := dave.e.Open(removeWire); err != nil || rec.Op == nil || rec.OpErr != nil {
		t.Fatalf("dave on the removal op: %v %v", err, rec)
	}
	for _, p := range w.pairs[nPairs:] {
		if p.to.Device == dave.dev {
			dave.e.HandlePairwise(p.from.acct.Public(), p.from.dev, p.to.Data)
		}
	}
	for _, wire := range w.wires[nWires+1:] {
		if rec, err := dave.e.Open(wire); err == nil && rec.Plaintext != nil {
			t.Fatalf("removed member read %q", rec.Plaintext)
		}
	}
	// Even with every other member's pairwise key messages (which never
	// reached him) he would not: they were addressed to others. Check the
	// raw bytes: no plaintext appears in any wire message.
	for _, wire := range w.wires[nWires+1:] {
		if bytes.Contains(wire, []byte("after ")) {
			t.Fatal("plaintext visible on the wire")
		}
	}
	if dave.e.IsMember() || dave.e.Topic() != "" {
		t.Fatal("dave still thinks he is in")
	}
	if len(dave.inbox) != 3 || dave.inbox[0] != daveHad[0] {
		t.Fatalf("dave lost history: %q", dave.inbox)
	}
	if _, _, err := dave.e.Seal([]byte("let me in")); !errors.Is(err, ErrNotMember) {
		t.Fatalf("removed member sealed: %v", err)
	}
	// Everyone else saw everything exactly once.
	for _, u := range w.users[:3] {
		if len(u.inbox) != 3+6 {
			t.Fatalf("%s inbox %d: %q", u.name, len(u.inbox), u.inbox)
		}
	}
}

// TestConvergenceShuffle builds a log with concurrent ops, then feeds it
// in random orders to fresh engines: all reach the same state.
func TestConvergenceShuffle(t *testing.T) {
	w := newWorld(t, "alice", "bob", "carol", "dave", "erin", "frank")
	w.create()
	alice, bob, carol, dave, erin, frank := w.users[0], w.users[1], w.users[2], w.users[3], w.users[4], w.users[5]
	fx, err := alice.e.Promote(bob.acct.Public())
	w.must(alice, fx, err)
	// Concurrent: alice removes dave while bob removes erin and renames.
	fa, err := alice.e.Remove(dave.acct.Public())
	if err != nil {
		t.Fatal(err)
	}
	fb, err := bob.e.Remove(erin.acct.Public())
	if err != nil {
		t.Fatal(err)
	}
	fr, err := bob.e.Rename("concurrent")
	if err != nil {
		t.Fatal(err)
	}
	w.send(alice, fa)
	w.send(bob, fb)
	w.send(bob, fr)
	w.run()
	fx, err = frank.e.Leave()
	w.must(frank, fx, err)
	ref := w.stateBytes(alice)
	for _, u := range []*user{bob, carol} {
		if w.stateBytes(u) != ref {
			t.Fatalf("%s diverged: %+v vs %+v", u.name, u.e.State(), alice.e.State())
		}
		if u.e.Topic() != alice.e.Topic() || u.e.Topic() == "" {
			t.Fatalf("%s: topic differs", u.name)
		}
	}
	if st := alice.e.State(); st.Epoch != 3 || len(st.Members) != 3 || st.Name != "concurrent" {
		t.Fatalf("state %+v", st)
	}
	ops := alice.e.Ops()
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 1))
		shuffled := append([][]byte(nil), ops...)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		first, _ := ParseOp(ops[0])
		e, err := newEngine(carol.cfg, first.Group, first.hash)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range shuffled {
			e.ApplyOp(b) // errors: held until predecessors arrive
		}
		st := e.State()
		got, _ := st.MarshalBinary()
		if string(got) != ref {
			t.Fatalf("seed %d: state differs: %+v", seed, st)
		}
	}
	// And everyone can still talk.
	w.say(carol, "still here")
	if alice.inbox[len(alice.inbox)-1] != "still here" || bob.inbox[len(bob.inbox)-1] != "still here" {
		t.Fatal("message after concurrent removals lost")
	}
}
