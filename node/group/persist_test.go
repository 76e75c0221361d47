package group

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestPersistenceParts: an engine saved as state and op log restores to
// the same engine as from its whole encoding, and goes on working; the
// log's version moves with ops only, so a caller saving after every
// message rewrites the log only when membership changed.
func TestPersistenceParts(t *testing.T) {
	w := newWorld(t, "alice", "bob", "carol")
	w.create()
	alice, bob, carol := w.users[0], w.users[1], w.users[2]
	v0 := bob.e.LogVersion()
	w.say(alice, "one")
	w.say(bob, "two")
	if v := bob.e.LogVersion(); v != v0 {
		t.Fatalf("log version moved with messages: %d → %d", v0, v)
	}
	fx, err := alice.e.Remove(carol.acct.Public())
	w.must(alice, fx, err)
	if v := bob.e.LogVersion(); v == v0 {
		t.Fatal("log version did not move with a Remove")
	}
	w.say(alice, "three")
	for _, u := range []*user{alice, bob} {
		whole := engineBytes(t, u.e)
		state, err := u.e.MarshalState()
		if err != nil {
			t.Fatal(err)
		}
		log := u.e.MarshalLog()
		if !IsState(state) || IsState(whole) {
			t.Fatal("IsState does not tell the forms apart")
		}
		if len(state)+len(log) > len(whole)+64 || len(state) >= len(whole)-len(log)/2 {
			t.Fatalf("%s: state %d + log %d bytes against %d whole", u.name, len(state), len(log), len(whole))
		}
		e, err := UnmarshalParts(u.cfg, state, log)
		if err != nil {
			t.Fatalf("%s: %v", u.name, err)
		}
		if !bytes.Equal(engineBytes(t, e), whole) {
			t.Fatalf("%s: parts restore another engine", u.name)
		}
		u.e = e
	}
	w.say(bob, "four")
	w.say(alice, "five")
	if got := strings.Join(alice.inbox, ","); got != "two,four" {
		t.Fatalf("alice: %s", got)
	}
	if got := strings.Join(bob.inbox, ","); got != "one,three,five" {
		t.Fatalf("bob: %s", got)
	}
}

// TestPersistencePartsRefused: the parts must belong together and be
// whole; the whole form is not state, nor state a whole engine.
func TestPersistencePartsRefused(t *testing.T) {
	w := newWorld(t, "alice", "bob")
	w.create()
	alice, bob := w.users[0], w.users[1]
	w2 := newWorld(t, "dave", "erin")
	w2.create()
	state, err := bob.e.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	log := bob.e.MarshalLog()
	cases := map[string]func() error{
		"no log":    func() error { _, err := UnmarshalParts(bob.cfg, state, nil); return err },
		"empty log": func() error { _, err := UnmarshalParts(bob.cfg, state, []byte{}); return err },
		"another group's log": func() error {
			_, err := UnmarshalParts(bob.cfg, state, w2.users[1].e.MarshalLog())
			return err
		},
		"trailing bytes":          func() error { _, err := UnmarshalParts(bob.cfg, state, append(log, 0)); return err },
		"state as a whole engine": func() error { _, err := Unmarshal(bob.cfg, state); return err },
		"whole engine as state": func() error {
			_, err := UnmarshalParts(bob.cfg, engineBytes(t, bob.e), log)
			return err
		},
		"another account": func() error { _, err := UnmarshalParts(alice.cfg, state, log); return err },
	}
	for name, f := range cases {
		if err := f(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
