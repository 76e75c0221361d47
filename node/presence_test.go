package node

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hushnet/hush/relay"
)

// testHeartbeat is the presence heartbeat of these tests.
const testHeartbeat = 300 * time.Millisecond

func startPresenceNode(t *testing.T, name string, relays ...string) *running {
	t.Helper()
	return startNodeCfg(t, Config{Home: newHome(t, name), Relays: relays, PresenceHeartbeat: testHeartbeat})
}

// presencePair starts alice and bob as contacts with sessions both ways
// and a direct connection (a text each way, delivered).
func presencePair(t *testing.T, relays ...string) (a, b *running) {
	t.Helper()
	a, b = startPresenceNode(t, "alice", relays...), startPresenceNode(t, "bob", relays...)
	t.Cleanup(func() { a.stop(t); b.stop(t) })
	if len(relays) > 0 {
		waitMailbox(t, a)
		waitMailbox(t, b)
	}
	befriend(t, a, b)
	deliver(t, a, "bob", "hello bob")
	deliver(t, b, "alice", "hello alice")
	return a, b
}

// deliver sends a text and waits until it reaches state (delivered by
// default).
func deliver(t *testing.T, from *running, to, text string, state ...MessageState) Message {
	t.Helper()
	m, err := from.n.Send(context.Background(), SendRequest{To: to, Text: text})
	if err != nil {
		t.Fatal(err)
	}
	want := StateDelivered
	if len(state) > 0 {
		want = state[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	m, err = from.n.WaitState(ctx, m.ID, want)
	if err != nil {
		t.Fatalf("%q not %s: %v", text, want, err)
	}
	return m
}

// presenceOf is what r shows of contact's presence (nil: nothing), in
// listContacts and in listConversations, which must agree.
func presenceOf(t *testing.T, r *running, contact string) *Presence {
	t.Helper()
	cs, err := r.n.Contacts()
	if err != nil {
		t.Fatal(err)
	}
	var p *Presence
	for _, c := range cs {
		if c.Name == contact {
			p = c.Presence
		}
	}
	convs, err := r.n.Conversations(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, cv := range convs {
		if cv.Contact == contact && (cv.Presence == nil) != (p == nil) {
			t.Fatalf("listContacts and listConversations disagree on %s's presence", contact)
		}
	}
	return p
}

func isOnline(p *Presence) bool { return p != nil && p.Online }

// sent is every presence payload r queued.
func sent(r *running) int64 {
	ps := r.n.presence
	return ps.announces.Load() + ps.statuses.Load() + ps.optOuts.Load()
}

// waitBeats waits until each node has done three more heartbeat rounds
// (each would send what is due).
func waitBeats(t *testing.T, rs ...*running) {
	t.Helper()
	from := make([]int64, len(rs))
	for i, r := range rs {
		from[i] = r.n.presence.beats.Load()
	}
	waitFor(t, "three heartbeats", func() bool {
		for i, r := range rs {
			if r.n.presence.beats.Load() < from[i]+3 {
				return false
			}
		}
		return true
	})
}

// Both opted in: each sees the other online, with an event that the
// event log does not keep; one going down is "last seen" for the other.
func TestPresenceBothOptedIn(t *testing.T) {
	a, b := presencePair(t)
	if presenceOf(t, a, "bob") != nil || presenceOf(t, b, "alice") != nil {
		t.Fatal("presence shown before anyone turned it on")
	}
	evs, cancel := a.n.Subscribe(a.n.events.Head())
	defer cancel()
	if err := a.n.SetPresence(true); err != nil {
		t.Fatal(err)
	}
	if err := b.n.SetPresence(true); err != nil {
		t.Fatal(err)
	}
	if !a.n.Presence() || !b.n.Presence() {
		t.Fatal("the setting does not read back")
	}
	waitFor(t, "alice sees bob online", func() bool { return isOnline(presenceOf(t, a, "bob")) })
	waitFor(t, "bob sees alice online", func() bool { return isOnline(presenceOf(t, b, "alice")) })

	// The event came, and the log kept none of it.
	var seq uint64
	deadline := time.After(45 * time.Second)
	for seq == 0 {
		select {
		case ev := <-evs:
			if ev.Type == EventPresence && ev.From == "bob" && isOnline(ev.Presence) {
				seq = ev.Seq
			}
		case <-deadline:
			t.Fatal("no presence event for bob")
		}
	}
	if logged, err := a.n.evlog.Read(1, a.n.events.Head(), 1<<20); err != nil {
		t.Fatal(err)
	} else {
		for _, ev := range logged {
			if ev.Type == EventPresence {
				t.Fatalf("presence event %d kept in the event log", ev.Seq)
			}
		}
	}

	before := time.Now().Add(-time.Second)
	b.stop(t)
	waitFor(t, "alice sees bob offline", func() bool {
		p := presenceOf(t, a, "bob")
		return p != nil && !p.Online
	})
	p := presenceOf(t, a, "bob")
	if p.LastSeen.Before(before) || p.LastSeen.After(time.Now()) {
		t.Errorf("bob last seen %v, want about now", p.LastSeen)
	}
}

// One turns presence off: the other stops seeing it at once, and it
// sees nobody's; from then on it sends no status and no announce (only
// opt-outs: the one it sends on turning off, and one answering a status
// the other sent before it learnt), and the other sends it no status.
func TestPresenceTurnedOff(t *testing.T) {
	a, b := presencePair(t)
	for _, r := range []*running{a, b} {
		if err := r.n.SetPresence(true); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both online", func() bool {
		return isOnline(presenceOf(t, a, "bob")) && isOnline(presenceOf(t, b, "alice"))
	})
	bp := b.n.presence
	optOuts, told := bp.optOuts.Load(), bp.statuses.Load()+bp.announces.Load()
	if err := b.n.SetPresence(false); err != nil {
		t.Fatal(err)
	}
	if presenceOf(t, b, "alice") != nil {
		t.Error("bob, off, still sees alice's presence")
	}
	waitFor(t, "alice no longer sees bob", func() bool { return presenceOf(t, a, "bob") == nil })
	toB := a.n.presence.statuses.Load()
	waitBeats(t, a, b)
	if got := bp.statuses.Load() + bp.announces.Load() - told; got != 0 {
		t.Errorf("bob, off, sent %d statuses or announces", got)
	}
	if got := bp.optOuts.Load() - optOuts; got < 1 {
		t.Errorf("bob sent %d opt-outs, want at least 1", got)
	}
	if got := a.n.presence.statuses.Load() - toB; got != 0 {
		t.Errorf("alice sent bob, who is off, %d statuses", got)
	}
	if presenceOf(t, a, "bob") != nil || presenceOf(t, b, "alice") != nil {
		t.Error("presence shown after bob turned it off")
	}

	// On again: both see each other again.
	if err := b.n.SetPresence(true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both online again", func() bool {
		return isOnline(presenceOf(t, a, "bob")) && isOnline(presenceOf(t, b, "alice"))
	})
}

// Only one opted in: neither sees the other's presence; the one that
// opted in announces once and sends no status, the other sends nothing.
func TestPresenceOneSided(t *testing.T) {
	a, b := presencePair(t)
	if err := a.n.SetPresence(true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's announce", func() bool { return a.n.presence.announces.Load() == 1 })
	waitBeats(t, a, b)
	if got := a.n.presence.statuses.Load(); got != 0 {
		t.Errorf("alice sent %d statuses to bob, who did not opt in", got)
	}
	if got := a.n.presence.announces.Load(); got != 1 {
		t.Errorf("alice announced %d times on one connection, want 1", got)
	}
	if got := sent(b); got != 0 {
		t.Errorf("bob, off, sent %d presence payloads", got)
	}
	if presenceOf(t, a, "bob") != nil || presenceOf(t, b, "alice") != nil {
		t.Error("presence shown with only one side opted in")
	}
}

// depositCount counts the envelopes a relay stored and their bytes.
type depositCount struct {
	relay.NopMetrics
	n, bytes atomic.Int64
}

func (d *depositCount) DepositAccepted(size int) {
	d.n.Add(1)
	d.bytes.Add(int64(size))
}

// Presence never reaches a relay. With both on and bob offline, alice's
// heartbeats deposit nothing; a presence entry queued for bob (as when
// his connection drops right after it was queued) is dropped, not
// deposited, while a text queued behind it in the same situation is
// deposited (the relay path was live).
func TestPresenceNeverDeposited(t *testing.T) {
	deposits := &depositCount{}
	cfg := relayCfg()
	cfg.Metrics = deposits
	a, b := presencePair(t, startRelay(t, cfg))
	for _, r := range []*running{a, b} {
		if err := r.n.SetPresence(true); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both online", func() bool {
		return isOnline(presenceOf(t, a, "bob")) && isOnline(presenceOf(t, b, "alice"))
	})
	b.stop(t)
	waitFor(t, "alice sees bob offline", func() bool { return !isOnline(presenceOf(t, a, "bob")) })
	bob := b.n.cert.DeviceID()
	waitFor(t, "alice's queue for bob empty", func() bool {
		a.n.mu.Lock()
		defer a.n.mu.Unlock()
		q := a.n.queues[bob]
		return q == nil || len(q.pending) == 0 && len(q.redundant) == 0
	})
	d0, bytes0 := deposits.n.Load(), deposits.bytes.Load()
	waitBeats(t, a)
	if got := deposits.n.Load() - d0; got != 0 {
		t.Fatalf("the relay took %d deposits (%d bytes) while bob was offline and presence on", got, deposits.bytes.Load()-bytes0)
	}

	// A status queued for bob with no direct connection left.
	dropped := a.n.presence.dropped.Load()
	a.n.mu.Lock()
	tx := a.n.newTxnLocked()
	tx.directOnly = true
	c := a.n.contacts[b.n.cert.Account()]
	if !a.n.presenceToLocked(tx, presenceSend{c: c, dev: bob, flags: presOptIn | presStatus | presOnline}, time.Now()) {
		a.n.mu.Unlock()
		t.Fatal("presence not queued")
	}
	if err := a.n.commitReleasingLock(tx); err != nil {
		a.n.mu.Unlock()
		t.Fatal(err)
	}
	a.n.mu.Unlock()
	deliver(t, a, "bob", "through the relay", StateSent)
	if got := deposits.n.Load() - d0; got != 1 {
		t.Errorf("the relay took %d deposits, want 1 (the text, not the presence)", got)
	}
	if a.n.presence.dropped.Load() == dropped {
		t.Error("the presence entry was not dropped")
	}
	t.Logf("deposited while presence was on and bob offline: %d envelope(s), %d bytes (the text)", deposits.n.Load()-d0, deposits.bytes.Load()-bytes0)
}

// The setting is the account's: it syncs to the account's other devices,
// on and off.
func TestPresenceSettingSyncs(t *testing.T) {
	laptop, bob := pair(t)
	defer laptop.stop(t)
	defer bob.stop(t)
	phone := startNode(t, linkDevice(t, laptop, "phone"))
	defer phone.stop(t)
	waitEntry(t, laptop, phone)
	if phone.n.Presence() {
		t.Fatal("presence on by default")
	}
	if err := laptop.n.SetPresence(true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "presence on on the phone", phone.n.Presence)
	if err := phone.n.SetPresence(false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "presence off on the laptop", func() bool { return !laptop.n.Presence() })
}
