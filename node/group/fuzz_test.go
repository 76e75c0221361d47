package group

import (
	"testing"

	"github.com/hushnet/hush/crypto/identity"
)

func fuzzWorld(f *testing.F) *world {
	w := newWorld(f, "alice", "bob")
	w.create()
	return w
}

func FuzzParseOp(f *testing.F) {
	w := fuzzWorld(f)
	for _, o := range w.users[0].e.Ops() {
		f.Add(o)
	}
	// A Devices op (kind 9): Alice adds a second device.
	alice := w.users[0]
	d2, err := identity.NewDevice()
	if err != nil {
		f.Fatal(err)
	}
	st := alice.e.State()
	f.Add(signed(f, alice, st.ID, st.Epoch, st.Lamport+1, &Op{Kind: OpDevices, Devices: []identity.DeviceID{alice.dev, d2.ID()},
		List: nextList(f, alice.acct, alice.list, alice.device, d2)}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseOp(b)
		if err != nil {
			return
		}
		if string(o.Marshal()) != string(b) {
			t.Fatal("accepted op does not re-encode to itself")
		}
	})
}

func FuzzOpen(f *testing.F) {
	w := fuzzWorld(f)
	alice, bob := w.users[0], w.users[1]
	wire, _, err := alice.e.Seal([]byte("seed"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(wire)
	f.Add(wire[:len(wire)-1])
	f.Add([]byte{Version, kindGroupMsg})
	_, sealed, err := alice.e.SealTopic(wire)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add([]byte{Version, kindTopicMsg})
	f.Fuzz(func(t *testing.T, b []byte) {
		if w, err := bob.e.OpenTopic(b); err == nil {
			bob.e.Open(w)
		}
		bob.e.Open(b)
		bob.e.HandlePairwise(alice.acct.Public(), alice.dev, b)
		bob.e.Missing(b)
		ParseRefs(b)
		Join(bob.cfg, [][]byte{b})
	})
}

func FuzzUnmarshal(f *testing.F) {
	w := fuzzWorld(f)
	bob := w.users[1]
	w.say(w.users[0], "hello")
	b, err := bob.e.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	st := bob.e.State()
	sb, _ := st.MarshalBinary()
	f.Add(sb)
	state, err := bob.e.MarshalState()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(state)
	log := bob.e.MarshalLog()
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, err := Unmarshal(bob.cfg, b); err == nil {
			if _, err := e.MarshalBinary(); err != nil {
				t.Fatal(err)
			}
		}
		if e, err := UnmarshalParts(bob.cfg, b, log); err == nil {
			if _, err := e.MarshalState(); err != nil {
				t.Fatal(err)
			}
		}
		UnmarshalParts(bob.cfg, state, b)
		var s State
		if s.UnmarshalBinary(b) == nil {
			back, err := s.MarshalBinary()
			if err != nil || string(back) != string(b) {
				t.Fatal("state does not re-encode to itself")
			}
		}
	})
}
