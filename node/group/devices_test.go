package group

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/identity"
)

// nextList signs acct's list after prev (nil: version 1) naming devs.
func nextList(t testing.TB, acct *identity.Account, prev *identity.DeviceList, devs ...*identity.Device) *identity.DeviceList {
	t.Helper()
	now := time.Unix(1_800_000_000, 0)
	var certs []*identity.DeviceCert
	for _, d := range devs {
		c, err := acct.Certify(d, now)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	l, err := acct.NewDeviceList(prev, certs, now)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// newDevice makes another device of owner's account, with no engine and
// no list yet (setList gives it one); it joins from the first Welcome.
func (w *world) newDevice(owner *user, name string) *user {
	w.t.Helper()
	d, err := identity.NewDevice()
	if err != nil {
		w.t.Fatal(err)
	}
	u := &user{name: name, acct: owner.acct, device: d, dev: d.ID(), autoJoin: true}
	w.users = append(w.users, u)
	w.byDev[u.dev] = u
	return u
}

// setList gives each device us the account's new list.
func (w *world) setList(l *identity.DeviceList, us ...*user) {
	for _, u := range us {
		u.list = l
		u.cfg = Config{Account: u.acct, Device: u.dev, DeviceList: l, Now: w.clk.Now}
	}
}

// rawOp encodes and signs o without the shape and list checks signOp
// makes, as an attacker would.
func rawOp(t testing.TB, acct *identity.Account, o *Op) []byte {
	t.Helper()
	o.Author = acct.Public()
	body := o.body()
	sig, err := acct.Sign(LabelOp, body)
	if err != nil {
		t.Fatal(err)
	}
	return append(body, sig...)
}

// signed signs o as u (its device) for group id at lamport.
func signed(t testing.TB, u *user, id GroupID, epoch, lamport uint64, o *Op) []byte {
	t.Helper()
	o.Group, o.Epoch, o.Lamport, o.Device = id, epoch, lamport, u.dev
	if err := signOp(u.acct, o); err != nil {
		t.Fatal(err)
	}
	return o.Marshal()
}

// syncOps gives each engine every op the others have, as the node's
// op-log sync does, and delivers what follows.
func (w *world) syncOps(us ...*user) {
	w.t.Helper()
	for _, u := range us {
		for _, v := range us {
			if u == v {
				continue
			}
			for _, b := range u.e.Ops() {
				if fx, err := v.e.ApplyOp(b); err == nil {
					w.send(v, fx)
				}
			}
		}
	}
	w.run()
}

func hasLine(inbox []string, s string) bool { return slices.Contains(inbox, s) }

// twoDeviceAlice builds a group of Alice (devices a1, a2) and Bob, plus
// the names given: Alice created it with a1 alone (list v1) and added a2
// with SetDevices (list v2). It returns the world, a1, a2, bob.
func twoDeviceAlice(t *testing.T, names ...string) (*world, *user, *user, *user) {
	t.Helper()
	w := newWorld(t, append([]string{"alice1", "bob"}, names...)...)
	w.strict = true
	w.create()
	a1, bob := w.users[0], w.users[1]
	a2 := w.newDevice(a1, "alice2")
	v2 := nextList(t, a1.acct, a1.list, a1.device, a2.device)
	w.setList(v2, a1, a2)
	fx, err := a1.e.SetDevices(v2, nil)
	w.must(a1, fx, err)
	if a2.e == nil || !a2.e.IsMember() {
		t.Fatal("alice2 did not join from the welcome")
	}
	return w, a1, a2, bob
}

// TestDevicesAddLinkedDevice: Alice (two devices) and Bob; Alice links a
// third device and adds it from her second. The new device joins from
// the Welcome, reads Bob's next message, and Bob (and Alice's other
// devices) read its message; every engine agrees on the state.
func TestDevicesAddLinkedDevice(t *testing.T) {
	w, a1, a2, bob := twoDeviceAlice(t)
	w.say(bob, "hi alice")
	w.say(a2, "hi from alice2")
	if !hasLine(a1.inbox, "hi alice") || !hasLine(a2.inbox, "hi alice") || !hasLine(bob.inbox, "hi from alice2") || !hasLine(a1.inbox, "hi from alice2") {
		t.Fatalf("two devices: a1 %q a2 %q bob %q", a1.inbox, a2.inbox, bob.inbox)
	}
	a3 := w.newDevice(a1, "alice3")
	v3 := nextList(t, a1.acct, a2.list, a1.device, a2.device, a3.device)
	w.setList(v3, a1, a2, a3)
	epoch := bob.e.State().Epoch
	nPairs := len(w.pairs)
	fx, err := a2.e.SetDevices(v3, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The Welcome comes before the author's Key on the new device's session.
	var kinds []byte
	for _, p := range fx.Pairwise {
		if p.Device == a3.dev {
			pp, err := parsePairwise(p.Data)
			if err != nil {
				t.Fatal(err)
			}
			kinds = append(kinds, pp.kind)
		}
	}
	if len(kinds) != 2 || kinds[0] != pwWelcome || kinds[1] != pwKey {
		t.Fatalf("pairwise kinds to the added device: %v", kinds)
	}
	w.must(a2, fx, nil)
	if a3.e == nil || !a3.e.IsMember() {
		t.Fatal("alice3 did not join")
	}
	// Every member device sent its Key to the new device.
	from := map[identity.DeviceID]bool{}
	for _, p := range w.pairs[nPairs:] {
		if pp, err := parsePairwise(p.to.Data); err == nil && pp.kind == pwKey && p.to.Device == a3.dev {
			from[p.from.dev] = true
		}
	}
	if !from[a1.dev] || !from[a2.dev] || !from[bob.dev] {
		t.Fatalf("keys to the new device from %v", from)
	}
	st := bob.e.State()
	if st.Epoch != epoch {
		t.Fatalf("adding a device changed the epoch: %d → %d", epoch, st.Epoch)
	}
	if m, _ := st.Member(a1.acct.Public()); len(m.Devices) != 3 || m.ListVersion != 3 || !slices.Contains(m.Devices, a3.dev) {
		t.Fatalf("alice in bob's state: %+v", m)
	}
	ref := w.stateBytes(bob)
	for _, u := range []*user{a1, a2, a3} {
		if w.stateBytes(u) != ref {
			t.Fatalf("%s: state differs: %+v", u.name, u.e.State())
		}
		if u.e.Topic() != bob.e.Topic() || u.e.Topic() == "" {
			t.Fatalf("%s: topic differs", u.name)
		}
	}
	w.say(bob, "welcome alice3")
	w.say(a3, "alice3 here")
	for _, u := range []*user{a1, a2, a3} {
		if !hasLine(u.inbox, "welcome alice3") {
			t.Fatalf("%s did not read bob: %q", u.name, u.inbox)
		}
	}
	for _, u := range []*user{a1, a2, bob} {
		if !hasLine(u.inbox, "alice3 here") {
			t.Fatalf("%s did not read alice3: %q", u.name, u.inbox)
		}
	}
	// The new device reads nothing from before it was added.
	if hasLine(a3.inbox, "hi alice") || hasLine(a3.inbox, "hi from alice2") {
		t.Fatalf("alice3 read history: %q", a3.inbox)
	}
	// The list version is part of the replayed state: it survives a reload.
	e, err := Unmarshal(bob.cfg, engineBytes(t, bob.e))
	if err != nil {
		t.Fatal(err)
	}
	if st := e.State(); !bytes.Equal(mustState(t, st), []byte(w.stateBytes(bob))) {
		t.Fatalf("reloaded state differs: %+v", st)
	}
}

func mustState(t *testing.T, st State) []byte {
	t.Helper()
	b, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDevicesDropStartsEpoch: Alice revokes her second device; the
// Devices op without it starts a new epoch whose secret and keys never
// reach it. It reads none of Bob's or Alice's next messages, and a
// message it sealed before the drop is refused by everyone.
func TestDevicesDropStartsEpoch(t *testing.T) {
	w, a1, a2, bob := twoDeviceAlice(t, "carol")
	carol := w.users[2]
	a3 := w.newDevice(a1, "alice3")
	v3 := nextList(t, a1.acct, a1.list, a1.device, a2.device, a3.device)
	w.setList(v3, a1, a2, a3)
	fx, err := a1.e.SetDevices(v3, nil)
	w.must(a1, fx, err)
	w.say(bob, "before")
	if !hasLine(a2.inbox, "before") {
		t.Fatalf("alice2 before the drop: %q", a2.inbox)
	}
	// A message alice2 seals now, delivered only after it is dropped.
	late, _, err := a2.e.Seal([]byte("from the revoked device"))
	if err != nil {
		t.Fatal(err)
	}
	oldTopic := bob.e.Topic()
	epoch := bob.e.State().Epoch
	v4 := nextList(t, a1.acct, v3, a1.device, a3.device)
	w.setList(v4, a1, a3)
	nWires, nPairs := len(w.wires), len(w.pairs)
	a2.offline = true // fed by hand below
	fx, err = a3.e.SetDevices(v4, nil)
	w.must(a3, fx, err)
	opWire := w.wires[nWires]
	for _, u := range []*user{a1, a3, bob, carol} {
		st := u.e.State()
		if st.Epoch != epoch+1 {
			t.Fatalf("%s: epoch %d, want %d", u.name, st.Epoch, epoch+1)
		}
		if m, _ := st.Member(a1.acct.Public()); slices.Contains(m.Devices, a2.dev) || len(m.Devices) != 2 || m.ListVersion != 4 {
			t.Fatalf("%s: alice %+v", u.name, m)
		}
		if u.e.Topic() == oldTopic || u.e.Topic() == "" {
			t.Fatalf("%s: topic did not change", u.name)
		}
	}
	w.say(bob, "after bob")
	w.say(a1, "after alice1")
	w.say(carol, "after carol")
	for _, u := range []*user{a1, a3, bob, carol} {
		for _, from := range []*user{bob, a1, carol} {
			if u != from && !hasLine(u.inbox, "after "+from.name) {
				t.Fatalf("%s missed %s: %q", u.name, from.name, u.inbox)
			}
		}
	}
	// Only the op itself was addressed to the dropped device.
	for _, p := range w.pairs[nPairs:] {
		if p.to.Device == a2.dev {
			if pp, err := parsePairwise(p.to.Data); err != nil || pp.kind != pwOp {
				t.Fatalf("pairwise of kind %d sent to the dropped device", pp.kind)
			}
		}
	}
	// Fed everything: the op (sealed in the old epoch, and pairwise)
	// applies, and then nothing opens.
	a2.offline = false
	if rec, err := a2.e.Open(opWire); err != nil || rec.Op == nil || rec.Op.Kind != OpDevices || rec.OpErr != nil {
		t.Fatalf("alice2 on the devices op: %v %+v", err, rec)
	}
	for _, p := range w.pairs[nPairs:] {
		if p.to.Device == a2.dev {
			a2.e.HandlePairwise(p.from.acct.Public(), p.from.dev, p.to.Data)
		}
	}
	for _, wire := range w.wires[nWires+1:] {
		rec, err := a2.e.Open(wire)
		if err == nil {
			t.Fatalf("the dropped device opened a message after the drop: %+v", rec)
		}
		if _, err := a2.e.OpenTopic(mustSealTopic(t, bob.e, wire)); err == nil {
			t.Fatal("the dropped device removed the new epoch's topic layer")
		}
	}
	if a2.e.IsMember() || a2.e.Topic() != "" || a2.e.Topics() != nil {
		t.Fatal("alice2 still thinks it is in")
	}
	if _, _, err := a2.e.Seal([]byte("still here?")); !errors.Is(err, ErrNotMember) {
		t.Fatalf("dropped device sealed: %v", err)
	}
	for _, u := range []*user{a1, a3, bob, carol} {
		if _, err := u.e.Open(late); !errors.Is(err, ErrNotMember) {
			t.Fatalf("%s: message from the dropped device: %v", u.name, err)
		}
	}
	// A replay of an older list cannot bring the dropped device back, not
	// even from a device still in the group.
	b := signed(t, a1, bob.e.ID(), epoch+1, 99, &Op{Kind: OpDevices, Devices: []identity.DeviceID{a1.dev, a2.dev, a3.dev}, List: v3})
	before := w.stateBytes(bob)
	if _, err := bob.e.ApplyOp(b); !errors.Is(err, ErrStaleList) {
		t.Fatalf("re-adding with the older list: %v", err)
	}
	if w.stateBytes(bob) != before {
		t.Fatal("a refused op changed the state")
	}
	// A newer list may bring it back; it then gets the current epoch's
	// keys, never the contribution of the epoch that dropped it.
	v5 := nextList(t, a1.acct, v4, a1.device, a2.device, a3.device)
	w.setList(v5, a1, a2, a3)
	nPairs = len(w.pairs)
	fx, err = a1.e.SetDevices(v5, nil)
	w.must(a1, fx, err)
	for _, p := range w.pairs[nPairs:] {
		if pp, err := parsePairwise(p.to.Data); err == nil && p.to.Device == a2.dev && pp.kind == pwSecret {
			t.Fatal("a contribution went to the re-added device")
		}
	}
	w.say(bob, "back again")
	if !hasLine(a2.inbox, "back again") {
		t.Fatalf("re-added device: %q", a2.inbox)
	}
}

func mustSealTopic(t *testing.T, e *Engine, wire []byte) []byte {
	t.Helper()
	_, data, err := e.SealTopic(wire)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestDevicesRefused: Devices ops that break a rule are refused with
// their sentinel and change nothing, whether made locally (SetDevices)
// or received (ApplyOp).
func TestDevicesRefused(t *testing.T) {
	w, a1, a2, bob := twoDeviceAlice(t, "carol")
	carol := w.users[2]
	outsider := newUser(t, "dave", w.clk)
	id := bob.e.ID()
	epoch := bob.e.State().Epoch
	x, err := identity.NewDevice()
	if err != nil {
		t.Fatal(err)
	}
	v2 := a1.cfg.DeviceList                                            // the group has it
	old := nextList(t, a1.acct, nil, a1.device, a2.device, x)          // version 1
	same := nextList(t, a1.acct, old, a1.device, a2.device, x)         // version 2, a fork of the accepted one
	v3 := nextList(t, a1.acct, v2, a1.device, a2.device, x)            // version 3, valid
	grab := nextList(t, a1.acct, v2, a1.device, a2.device, bob.device) // names Bob's device
	if v2.Version() != 2 || same.Version() != 2 || old.Version() != 1 {
		t.Fatalf("versions %d %d %d", v2.Version(), same.Version(), old.Version())
	}
	dlist := nextList(t, outsider.acct, outsider.list, outsider.device, x)
	all := func(l *identity.DeviceList) []identity.DeviceID {
		var ds []identity.DeviceID
		for _, c := range l.Devices() {
			ds = append(ds, c.DeviceID())
		}
		slices.SortFunc(ds, func(a, b identity.DeviceID) int { return bytes.Compare(a[:], b[:]) })
		return ds
	}
	cases := []struct {
		name string
		op   []byte
		want error
	}{
		{"older list version", signed(t, a1, id, epoch, 50, &Op{Kind: OpDevices, Devices: all(old), List: old}), ErrStaleList},
		{"equal list version", signed(t, a1, id, epoch, 51, &Op{Kind: OpDevices, Devices: all(same), List: same}), ErrStaleList},
		{"another member's device", signed(t, a1, id, epoch, 52, &Op{Kind: OpDevices, Devices: all(grab), List: grab}), ErrDeviceTaken},
		{"not a member", signed(t, outsider, id, epoch, 53, &Op{Kind: OpDevices, Devices: all(dlist), List: dlist}), ErrNotMember},
		{"drops the device that made it", signed(t, a1, id, epoch, 54, &Op{Kind: OpDevices, Devices: []identity.DeviceID{a2.dev}, List: v3}), ErrBadOp},
		{"from a device not in the group", signed(t, &user{acct: a1.acct, dev: x.ID()}, id, epoch, 56, &Op{Kind: OpDevices, Devices: all(v3), List: v3}), ErrNotMember},
		{"another account's list", rawOp(t, a1.acct, &Op{Kind: OpDevices, Group: id, Epoch: epoch, Lamport: 57, Device: a1.dev, Devices: all(carol.list), List: carol.list}), ErrUnlistedDevice},
		{"device not on the list", rawOp(t, a1.acct, &Op{Kind: OpDevices, Group: id, Epoch: epoch, Lamport: 58, Device: a1.dev, Devices: all(v3), List: v2}), ErrUnlistedDevice},
	}
	for _, u := range []*user{bob, carol, a2} {
		before, nOps := w.stateBytes(u), len(u.e.Ops())
		for _, c := range cases {
			if _, err := u.e.ApplyOp(c.op); !errors.Is(err, c.want) {
				t.Fatalf("%s, %s: %v, want %v", u.name, c.name, err, c.want)
			}
			if w.stateBytes(u) != before || len(u.e.Ops()) != nOps {
				t.Fatalf("%s, %s: a refused op changed the state", u.name, c.name)
			}
		}
	}
	// The same through the API, on Alice's own device.
	before, nOps := w.stateBytes(a1), len(a1.e.Ops())
	for _, c := range []struct {
		name    string
		list    *identity.DeviceList
		devices []identity.DeviceID
		want    error
	}{
		{"older list version", old, nil, ErrStaleList},
		{"equal list version", same, nil, ErrStaleList},
		{"another member's device", grab, nil, ErrDeviceTaken},
		{"another account's list", carol.list, nil, ErrUnlistedDevice},
		{"device not on the list", v2, append(all(v2), x.ID()), ErrUnlistedDevice},
		{"drops itself", v3, []identity.DeviceID{a2.dev, x.ID()}, ErrBadOp},
		{"changes nothing", v3, all(v2), ErrBadOp},
		{"no list", nil, nil, ErrBadOp},
	} {
		if fx, err := a1.e.SetDevices(c.list, c.devices); !errors.Is(err, c.want) || fx != nil {
			t.Fatalf("SetDevices, %s: %v, want %v", c.name, err, c.want)
		}
		if w.stateBytes(a1) != before || len(a1.e.Ops()) != nOps {
			t.Fatalf("SetDevices, %s: changed the state", c.name)
		}
	}
	// The valid one still applies (the refusals did not poison it).
	if _, err := carol.e.ApplyOp(signed(t, a1, id, carol.e.State().Epoch, 60, &Op{Kind: OpDevices, Devices: all(v3), List: v3})); err != nil {
		t.Fatalf("valid devices op: %v", err)
	}
	// A device of an account that is no longer a member cannot.
	fx, err := bob.e.Leave()
	w.must(bob, fx, err)
	blist := nextList(t, bob.acct, bob.list, bob.device, x)
	if _, err := bob.e.SetDevices(blist, nil); !errors.Is(err, ErrNotMember) {
		t.Fatalf("SetDevices after leaving: %v", err)
	}
}

// TestDevicesShape: ParseOp checks a Devices op's fields as for the other
// kinds, and a valid one round-trips.
func TestDevicesShape(t *testing.T) {
	_, a1, a2, bob := twoDeviceAlice(t)
	id := bob.e.ID()
	v3 := nextList(t, a1.acct, a1.list, a1.device, a2.device)
	devs := []identity.DeviceID{a1.dev, a2.dev}
	slices.SortFunc(devs, func(a, b identity.DeviceID) int { return bytes.Compare(a[:], b[:]) })
	good := signed(t, a1, id, 0, 40, &Op{Kind: OpDevices, Devices: devs, List: v3})
	o, err := ParseOp(good)
	if err != nil || o.Kind != OpDevices || !slices.Equal(o.Devices, devs) || o.List.Version() != 3 || !bytes.Equal(o.Marshal(), good) {
		t.Fatalf("round trip: %v %+v", err, o)
	}
	if OpDevices != 9 || OpDevices.String() != "devices" {
		t.Fatalf("kind %d %q", OpDevices, OpDevices)
	}
	base := func() *Op {
		return &Op{Kind: OpDevices, Group: id, Lamport: 41, Device: a1.dev, Devices: slices.Clone(devs), List: v3}
	}
	for name, mod := range map[string]func(*Op){
		"no devices": func(o *Op) { o.Devices = nil },
		"no list":    func(o *Op) { o.List = nil },
		"target":     func(o *Op) { o.Target = bob.acct.Public() },
		"name":       func(o *Op) { o.Name = "x" },
		"unsorted":   func(o *Op) { o.Devices[0], o.Devices[1] = o.Devices[1], o.Devices[0] },
	} {
		o := base()
		mod(o)
		if _, err := ParseOp(rawOp(t, a1.acct, o)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// TestDevicesConcurrentRemove: Alice's device drops her other device
// while Bob (an admin) removes Alice. In either op order, every engine
// fed the ops in any order reaches the same state: if the Remove comes
// first the Devices op is inert; if the Devices op comes first it starts
// an epoch and the Remove another. Live, the remaining members converge
// and can talk.
func TestDevicesConcurrentRemove(t *testing.T) {
	w, a1, a2, bob := twoDeviceAlice(t, "carol")
	carol := w.users[2]
	fx, err := a1.e.Promote(bob.acct.Public())
	w.must(a1, fx, err)
	v3 := nextList(t, a1.acct, a1.list, a1.device)
	base := bob.e.Ops()
	first, _ := ParseOp(base[0])
	st0 := bob.e.State()
	for _, devicesFirst := range []bool{true, false} {
		ld, lr := st0.Lamport+1, st0.Lamport+2
		if !devicesFirst {
			ld, lr = lr, ld
		}
		ops := append(slices.Clone(base),
			signed(t, a1, st0.ID, st0.Epoch, ld, &Op{Kind: OpDevices, Devices: []identity.DeviceID{a1.dev}, List: v3}),
			signed(t, bob, st0.ID, st0.Epoch, lr, &Op{Kind: OpRemove, Target: a1.acct.Public()}),
		)
		var ref []byte
		for seed := range uint64(20) {
			r := rand.New(rand.NewPCG(seed, 3))
			shuffled := slices.Clone(ops)
			r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			e, err := newEngine(carol.cfg, first.Group, first.hash)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range shuffled {
				e.ApplyOp(b) // errors: held until predecessors arrive
			}
			st := e.State()
			b := mustState(t, st)
			if ref == nil {
				ref = b
				want := st0.Epoch + 1
				if devicesFirst {
					want++
				}
				if _, ok := st.Member(a1.acct.Public()); ok || st.Epoch != want || len(st.Members) != 2 {
					t.Fatalf("devices first %v: %+v", devicesFirst, st)
				}
				if _, ok := e.ro.memberOfDevice(a1.dev); ok {
					t.Fatal("a removed member's device still attributed")
				}
			} else if !bytes.Equal(b, ref) {
				t.Fatalf("devices first %v, seed %d: state differs: %+v", devicesFirst, seed, st)
			}
		}
	}
	// Live: both made at once from the same state.
	fa, err := a1.e.SetDevices(v3, nil)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := bob.e.Remove(a1.acct.Public())
	if err != nil {
		t.Fatal(err)
	}
	w.strict = false // a1's pairwise op to a2 may reach it after the Remove
	w.send(a1, fa)
	w.send(bob, fb)
	w.run()
	// A member that applied the Remove first refuses the Devices op on
	// the topic (its sender is no longer a member device); op-log sync
	// (the node's periodic ops digest) brings it, as for any op.
	w.syncOps(bob, carol)
	ref := w.stateBytes(bob)
	if w.stateBytes(carol) != ref || carol.e.Topic() != bob.e.Topic() || bob.e.Topic() == "" {
		t.Fatalf("carol diverged: %+v vs %+v", carol.e.State(), bob.e.State())
	}
	if a1.e.IsMember() || a2.e.IsMember() {
		t.Fatal("alice's devices still in")
	}
	w.say(carol, "just us")
	if !hasLine(bob.inbox, "just us") || hasLine(a1.inbox, "just us") || hasLine(a2.inbox, "just us") {
		t.Fatalf("after: bob %q a1 %q a2 %q", bob.inbox, a1.inbox, a2.inbox)
	}
}
