package group

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/senderkey"
)

// ownIteration returns the iteration and generation of a user's current
// sender key.
func ownIteration(u *user) (uint32, uint32) {
	u.e.mu.Lock()
	defer u.e.mu.Unlock()
	k := u.e.own[u.e.curID]
	return k.sk.Iteration(), k.gen
}

// sealOnly seals text without delivering it.
func sealOnly(t *testing.T, u *user, text string) []byte {
	t.Helper()
	wire, _, err := u.e.Seal([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return wire
}

// forgeOld seals text on the sender key held by thief, a copy of a
// device's engine: a thief keeps signing on the chain it stole.
func forgeOld(t *testing.T, thief *Engine, text string) []byte {
	t.Helper()
	thief.mu.Lock()
	defer thief.mu.Unlock()
	w, err := thief.sealLocked(thief.own[thief.curID], kindAppMsg, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestSenderKeyRotatesAfterMessages: a sender key seals RotateMessages
// messages, then Seal replaces it and the new key goes pairwise to every
// member, who reads on. A copy of the sender's state taken before the
// rotation reads none of the new chain, and what it signs on the old
// chain is refused once the grace window after the new key has passed.
func TestSenderKeyRotatesAfterMessages(t *testing.T) {
	w := newWorld(t, "alice", "bob", "carol")
	w.create()
	alice, bob, carol := w.users[0], w.users[1], w.users[2]
	first, _ := chainOf(alice)
	sent := 0
	var stolen []byte
	for {
		before, gen := ownIteration(alice)
		if before == RotateMessages {
			stolen = engineBytes(t, alice.e) // a copy of Alice's device state
		}
		w.say(alice, fmt.Sprintf("m%d", sent))
		sent++
		if c, _ := chainOf(alice); c != first {
			if before != RotateMessages || gen != 0 {
				t.Fatalf("rotated at iteration %d (generation %d), want %d", before, gen, RotateMessages)
			}
			break
		}
		if sent > RotateMessages {
			t.Fatal("no rotation")
		}
	}
	if it, gen := ownIteration(alice); it != 1 || gen != 1 {
		t.Fatalf("new key at iteration %d, generation %d", it, gen)
	}
	for _, u := range []*user{bob, carol} {
		if len(u.inbox) != sent || u.inbox[sent-1] != fmt.Sprintf("m%d", sent-1) {
			t.Fatalf("%s read %d of %d", u.name, len(u.inbox), sent)
		}
	}
	// The new key went to each other member device once, pairwise.
	keys := map[string]int{}
	for _, p := range w.pairs {
		if p.from == alice {
			if q, err := parsePairwise(p.to.Data); err == nil && q.kind == pwKey && q.gen == 1 {
				keys[w.byDev[p.to.Device].name]++
			}
		}
	}
	if keys["bob"] != 1 || keys["carol"] != 1 || len(keys) != 2 {
		t.Fatalf("generation-1 keys sent: %v", keys)
	}

	thief, err := Unmarshal(alice.cfg, stolen)
	if err != nil {
		t.Fatal(err)
	}
	next := w.say(alice, "after the rotation")
	if _, err := thief.Open(next); err == nil {
		t.Fatal("a copy of the old state reads the new chain")
	}
	// Inside the grace window the old chain still opens (late messages);
	// after it, nothing on the old chain does.
	if _, err := bob.e.Open(forgeOld(t, thief, "late")); err != nil {
		t.Fatalf("old chain inside the grace window: %v", err)
	}
	w.clk.Advance(DefaultGrace)
	if _, err := bob.e.Open(forgeOld(t, thief, "forged")); !errors.Is(err, ErrEpoch) {
		t.Fatalf("old chain after the grace window: %v", err)
	}
	// And that survives a reload.
	b2, err := Unmarshal(carol.cfg, engineBytes(t, carol.e))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Open(forgeOld(t, thief, "forged again")); !errors.Is(err, ErrEpoch) {
		t.Fatalf("old chain after a reload: %v", err)
	}
}

// TestSenderKeyRotatesWeekly: a key older than RotateAfter is replaced
// at the next Seal, however few messages it sealed.
func TestSenderKeyRotatesWeekly(t *testing.T) {
	w := newWorld(t, "alice", "bob")
	w.create()
	alice, bob := w.users[0], w.users[1]
	first, _ := chainOf(alice)
	w.clk.Advance(RotateAfter - time.Second)
	w.say(alice, "six days and change")
	if c, _ := chainOf(alice); c != first {
		t.Fatal("rotated early")
	}
	w.clk.Advance(time.Second)
	w.say(alice, "a week")
	c, _ := chainOf(alice)
	if c == first {
		t.Fatal("no rotation after a week")
	}
	w.clk.Advance(RotateAfter - time.Second)
	w.say(alice, "the new key is younger")
	if c2, _ := chainOf(alice); c2 != c {
		t.Fatal("the new key's age counted from the old one")
	}
	if len(bob.inbox) != 3 {
		t.Fatalf("bob read %q", bob.inbox)
	}
}

// TestSenderKeyLateMessages: messages sealed on the old key before the
// rotation open after the new key, within the grace window; a sender
// that never calls Flush still sends the new key with its next Effects;
// anti-entropy stops asking for a closed chain.
func TestSenderKeyLateMessages(t *testing.T) {
	w := newWorld(t, "alice", "bob")
	w.create()
	alice, bob := w.users[0], w.users[1]
	early := sealOnly(t, alice, "early")
	late := sealOnly(t, alice, "late")
	hi := sealOnly(t, bob, "hi")
	w.clk.Advance(RotateAfter)
	fresh := sealOnly(t, alice, "fresh") // rotates; no Flush
	// Alice's next Effects carry the new key: here, opening Bob's message.
	rec, err := alice.e.Open(hi)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Effects.Pairwise) != 1 || rec.Effects.Pairwise[0].Device != bob.dev {
		t.Fatalf("effects after an unflushed rotation: %+v", rec.Effects)
	}
	if fx := alice.e.Flush(); len(fx.Pairwise) != 0 {
		t.Fatal("the new key sent twice")
	}
	w.send(alice, &rec.Effects)
	w.run()
	for _, m := range [][]byte{fresh, late} {
		if _, err := bob.e.Open(m); err != nil {
			t.Fatalf("inside the grace window: %v", err)
		}
	}
	w.clk.Advance(DefaultGrace)
	if _, err := bob.e.Open(early); !errors.Is(err, ErrEpoch) {
		t.Fatalf("old chain after the grace window: %v", err)
	}
	refs, err := bob.e.Missing(alice.e.Have())
	if err != nil {
		t.Fatal(err)
	}
	old, _ := parseWireHeader(early)
	for _, r := range refs {
		if r.Chain == old.chain {
			t.Fatalf("anti-entropy wants %+v of a closed chain", r)
		}
	}
}

// TestSenderKeyGenerationsOutOfOrder: two rotations whose keys arrive in
// reverse order; the newer generation stays open and the older closes.
func TestSenderKeyGenerationsOutOfOrder(t *testing.T) {
	w := newWorld(t, "alice", "bob")
	w.create()
	alice, bob := w.users[0], w.users[1]
	var msgs [][]byte
	var keys [][]byte
	for range 2 {
		w.clk.Advance(RotateAfter)
		msgs = append(msgs, sealOnly(t, alice, "x"))
		fx := alice.e.Flush()
		if len(fx.Pairwise) != 1 {
			t.Fatalf("%d keys", len(fx.Pairwise))
		}
		keys = append(keys, fx.Pairwise[0].Data)
	}
	for i := len(keys) - 1; i >= 0; i-- {
		if _, err := bob.e.HandlePairwise(alice.acct.Public(), alice.dev, keys[i]); err != nil {
			t.Fatal(err)
		}
	}
	w.clk.Advance(DefaultGrace)
	if _, err := bob.e.Open(msgs[0]); !errors.Is(err, ErrEpoch) {
		t.Fatalf("generation 1 after the grace window: %v", err)
	}
	if _, err := bob.e.Open(msgs[1]); err != nil {
		t.Fatalf("generation 2: %v", err)
	}
}

// TestSenderKeyConcurrentEpochs: concurrent removals make a device replace
// its key for an epoch number it already had a key for; the replacement
// is a newer generation, so no chain still in use is closed when the
// grace windows end.
func TestSenderKeyConcurrentEpochs(t *testing.T) {
	w := newWorld(t, "alice", "bob", "carol", "dave", "erin")
	w.create()
	alice, bob, carol := w.users[0], w.users[1], w.users[2]
	fx, err := alice.e.Promote(bob.acct.Public())
	w.must(alice, fx, err)
	fa, err := alice.e.Remove(w.users[3].acct.Public())
	if err != nil {
		t.Fatal(err)
	}
	fb, err := bob.e.Remove(w.users[4].acct.Public())
	if err != nil {
		t.Fatal(err)
	}
	w.send(alice, fa)
	w.send(bob, fb)
	w.run()
	w.clk.Advance(DefaultGrace)
	for _, u := range []*user{alice, bob, carol} {
		u.inbox = nil
	}
	for _, u := range []*user{alice, bob, carol} {
		w.say(u, "after the grace window: "+u.name)
	}
	for _, u := range []*user{alice, bob, carol} {
		if len(u.inbox) != 2 {
			t.Fatalf("%s read %q", u.name, u.inbox)
		}
	}
}

// TestSenderKeySameGeneration: two chains of one generation from one
// device (its state restored from a backup) both stay open.
func TestSenderKeySameGeneration(t *testing.T) {
	w := newWorld(t, "alice", "bob")
	w.create()
	alice, bob := w.users[0], w.users[1]
	before := sealOnly(t, alice, "before")
	st := alice.e.State()
	sk, err := senderkey.NewSenderKey(st.ID, st.Epoch, alice.dev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.e.HandlePairwise(alice.acct.Public(), alice.dev, mustKeyMsg(t, alice.e, sk)); err != nil {
		t.Fatal(err)
	}
	w.clk.Advance(DefaultGrace)
	ct, err := sk.Encrypt([]byte{kindAppMsg, 'x'})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range [][]byte{before, append([]byte{Version, kindGroupMsg}, ct...)} {
		if _, err := bob.e.Open(m); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSenderKeyRotationSurvivesReload: an engine saved between Seal and
// Flush still sends the new key, as of the message Seal made with it.
func TestSenderKeyRotationSurvivesReload(t *testing.T) {
	w := newWorld(t, "alice", "bob")
	w.create()
	alice, bob := w.users[0], w.users[1]
	w.clk.Advance(RotateAfter)
	m := sealOnly(t, alice, "rotated")
	e, err := Unmarshal(alice.cfg, engineBytes(t, alice.e))
	if err != nil {
		t.Fatal(err)
	}
	alice.e = e
	w.send(alice, alice.e.Flush())
	w.run()
	if _, err := bob.e.Open(m); err != nil {
		t.Fatal(err)
	}
	if fx := alice.e.Flush(); len(fx.Pairwise) != 0 {
		t.Fatal("the new key sent twice")
	}
}
