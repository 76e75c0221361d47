package node

import (
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/ratchet"
)

// sessionNotices returns the "secure session re-established" notices of
// a conversation.
func sessionNotices(t testing.TB, n *Node, contact string) []Message {
	t.Helper()
	msgs, err := n.Messages(contact, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []Message
	for _, m := range msgs {
		if m.Direction == dirSystem && m.Kind == KindSession {
			out = append(out, m)
		}
	}
	return out
}

// sendTo sends a text and waits until it is delivered.
func sendTo(t testing.TB, n *Node, to, text string) Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	m, err := n.Send(ctx, SendRequest{To: to, Text: text})
	if err != nil {
		t.Fatal(err)
	}
	if m, err = n.WaitState(ctx, m.ID, StateDelivered); err != nil || m.State == StateFailed {
		t.Fatalf("%q: %v (state %s, %s)", text, err, m.State, m.Error)
	}
	return m
}

// copyHome copies a stopped node's home.
func copyHome(t testing.TB, home string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	err := filepath.WalkDir(home, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(home, path)
		info, err := d.Info()
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, info.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, info.Mode().Perm()) // modes kept, as cp -a does
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// queuedEnvelopes records the prekey messages (envelope kind 1) nodes
// queue, per sending node, for the test's life.
type queuedEnvelopes struct {
	mu   sync.Mutex
	seen map[*Node][]*envelope.Inner
}

func tapPrekeyMessages(t *testing.T) *queuedEnvelopes {
	q := &queuedEnvelopes{seen: make(map[*Node][]*envelope.Inner)}
	taps.Store(&tapFuncs{queue: func(n *Node, to identity.DeviceID) {
		// Called with n.mu held, right after the entry was queued.
		p := n.queues[to].pending
		e := p[len(p)-1]
		if envelope.Kind(e.Kind) != envelope.KindPrekeyMessage {
			return
		}
		acc, dev := n.cert.Account(), n.cert.DeviceID()
		q.mu.Lock()
		q.seen[n] = append(q.seen[n], &envelope.Inner{SenderAccount: acc, SenderDevice: dev, Kind: envelope.KindPrekeyMessage, Body: slices.Clone(e.Body)})
		q.mu.Unlock()
	}})
	t.Cleanup(func() { taps.Store(nil) })
	return q
}

func (q *queuedEnvelopes) of(n *Node) []*envelope.Inner {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.seen[n])
}

// Bob's home goes back to a copy taken earlier. Alice's next text fails
// on his old ratchet; his device starts a new session by itself, alice's
// accepts it and sends the text again, and bob's reply arrives too.
// Each side shows one notice and keeps its history; a replay of bob's
// reset changes nothing.
func TestSessionRecoveryAfterRestoredHome(t *testing.T) {
	taps := tapPrekeyMessages(t)
	a, b := pair(t)
	defer func() { a.stop(t) }()
	sendTo(t, a.n, "bob", "one")
	sendTo(t, b.n, "alice", "two")
	sendTo(t, a.n, "bob", "three")

	home := b.home
	b.stop(t)
	old := copyHome(t, home)
	b = startNode(t, home)
	sendTo(t, b.n, "alice", "four") // both ratchets step on from the copy
	sendTo(t, a.n, "bob", "five")
	sendTo(t, b.n, "alice", "six")
	b.stop(t)

	b = startNode(t, old) // the old copy
	defer func() { b.stop(t) }()
	ctx := context.Background()
	m, err := a.n.Send(ctx, SendRequest{To: "bob", Text: "after restore"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's text on bob's restored device", func() bool {
		return slices.Contains(texts(t, b.n, "alice", "in"), "after restore")
	})
	waitFor(t, "the text delivered", func() bool { return find(t, a.n, "bob", m.ID).State == StateDelivered })
	sendTo(t, b.n, "alice", "reply")
	waitFor(t, "bob's reply at alice", func() bool { return slices.Contains(texts(t, a.n, "bob", "in"), "reply") })
	waitFor(t, "a notice on each side", func() bool {
		return len(sessionNotices(t, a.n, "bob")) == 1 && len(sessionNotices(t, b.n, "alice")) == 1
	})
	sendTo(t, a.n, "bob", "and on")

	if got, want := texts(t, a.n, "bob", "out"), []string{"one", "three", "five", "after restore", "and on"}; !slices.Equal(got, want) {
		t.Fatalf("alice's sent texts %q, want %q", got, want)
	}
	if got, want := texts(t, a.n, "bob", "in"), []string{"two", "four", "six", "reply"}; !slices.Equal(got, want) {
		t.Fatalf("alice's received texts %q, want %q", got, want)
	}
	// "five" reached bob's newer home only: alice's device sends it again
	// (bob's reset says the highest counter he holds).
	if got, want := texts(t, b.n, "alice", "in"), []string{"one", "three", "five", "after restore", "and on"}; !slices.Equal(got, want) {
		t.Fatalf("bob's received texts %q, want %q", got, want)
	}
	if got, want := texts(t, b.n, "alice", "out"), []string{"two", "reply"}; !slices.Equal(got, want) {
		t.Fatalf("bob's sent texts %q, want %q", got, want)
	}
	if m := find(t, a.n, "bob", m.ID); m.State != StateDelivered && m.State != StateRead {
		t.Fatalf("the text that failed first is %s (%s)", m.State, m.Error)
	}

	// A replay of bob's reset (the first prekey message his restored
	// device queued) changes nothing at alice's.
	resets := taps.of(b.n)
	if len(resets) == 0 {
		t.Fatal("bob's restored device queued no prekey message")
	}
	before, _ := a.n.Messages("bob", 0)
	if st := a.n.receive([]*envelope.Inner{resets[0]}, false); st[0] == ackRetry {
		t.Fatalf("replayed reset: status %d", st[0])
	}
	after, _ := a.n.Messages("bob", 0)
	if len(after) != len(before) || len(sessionNotices(t, a.n, "bob")) != 1 {
		t.Fatalf("a replayed reset changed alice's conversation: %d entries, then %d", len(before), len(after))
	}
	sendTo(t, a.n, "bob", "still fine")
	sendTo(t, b.n, "alice", "here too")
	if n := len(sessionNotices(t, b.n, "alice")); n != 1 {
		t.Fatalf("bob has %d notices", n)
	}
}

// forgedMessage is a ratchet message from nobody's session: a header
// with a random ratchet key and a random body.
func forgedMessage(t *testing.T) []byte {
	msg := make([]byte, ratchet.Overhead+32)
	rand.Read(msg)
	h := ratchet.Header{N: 1}
	rand.Read(h.RatchetKey[:])
	hb, _ := h.MarshalBinary()
	copy(msg, hb)
	return msg
}

// The restored device speaks first: its text reuses a message number
// alice's device already took from the copy's future, which her ratchet
// calls a duplicate. The bytes differ from the message accepted with
// that number, so her device refuses it and starts the recovery; bob's
// device accepts it and sends the text again on the new session.
func TestSessionRecoveryRestoredSendsFirst(t *testing.T) {
	a, b := pair(t)
	defer func() { a.stop(t) }()
	sendTo(t, a.n, "bob", "one")
	sendTo(t, b.n, "alice", "two")
	sendTo(t, a.n, "bob", "three")
	home := b.home
	b.stop(t)
	old := copyHome(t, home)
	b = startNode(t, home)
	sendTo(t, b.n, "alice", "four")
	sendTo(t, a.n, "bob", "five")
	sendTo(t, b.n, "alice", "six")
	b.stop(t)

	b = startNode(t, old)
	defer func() { b.stop(t) }()
	ctx := context.Background()
	m, err := b.n.Send(ctx, SendRequest{To: "alice", Text: "back again"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's text at alice", func() bool { return slices.Contains(texts(t, a.n, "bob", "in"), "back again") })
	waitFor(t, "the text delivered", func() bool { return find(t, b.n, "alice", m.ID).State == StateDelivered })
	sendTo(t, a.n, "bob", "welcome back")
	waitFor(t, "a notice on each side", func() bool {
		return len(sessionNotices(t, a.n, "bob")) == 1 && len(sessionNotices(t, b.n, "alice")) == 1
	})
	if got, want := texts(t, a.n, "bob", "in"), []string{"two", "four", "six", "back again"}; !slices.Equal(got, want) {
		t.Fatalf("alice's received texts %q, want %q", got, want)
	}
	if got, want := texts(t, b.n, "alice", "in"), []string{"one", "three", "welcome back"}; !slices.Equal(got, want) {
		t.Fatalf("bob's received texts %q, want %q", got, want)
	}
}

// Messages that claim to come from bob but that no session opens make
// alice's device send bob one reset, not more (rate limit); bob's device
// refuses it (the failed message was not his), so nobody shows a notice
// and the conversation goes on.
func TestForgedMessagesStartNoVisibleRecovery(t *testing.T) {
	taps := tapPrekeyMessages(t)
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	sendTo(t, a.n, "bob", "hello")
	sendTo(t, b.n, "alice", "hi")
	before := len(taps.of(a.n))
	bob := b.n.cert
	for range 5 {
		in := &envelope.Inner{SenderAccount: bob.Account(), SenderDevice: bob.DeviceID(), Kind: envelope.KindMessage, Body: forgedMessage(t)}
		if st := a.n.receive([]*envelope.Inner{in}, false); st[0] != ackRejected {
			t.Fatalf("forged message: status %d", st[0])
		}
	}
	if got := len(taps.of(a.n)) - before; got != 1 {
		t.Fatalf("alice's device queued %d resets for 5 forged messages, want 1", got)
	}
	a.n.mu.Lock()
	rec := a.n.recoveryLocked(bob.DeviceID())
	a.n.mu.Unlock()
	if rec.Sent == 0 || !rec.Pending {
		t.Fatalf("alice's recovery record %+v", rec)
	}
	waitFor(t, "alice's reset delivered", func() bool {
		a.n.mu.Lock()
		defer a.n.mu.Unlock()
		q := a.n.queues[bob.DeviceID()]
		return q == nil || len(q.pending) == 0
	})
	sendTo(t, b.n, "alice", "still here")
	sendTo(t, a.n, "bob", "me too")
	if len(sessionNotices(t, a.n, "bob")) != 0 || len(sessionNotices(t, b.n, "alice")) != 0 {
		t.Fatal("a forged message made a notice")
	}
	b.n.mu.Lock()
	brec := b.n.recoveryLocked(a.n.cert.DeviceID())
	b.n.mu.Unlock()
	if brec.Accepted != 0 {
		t.Fatalf("bob accepted a reset about a message that was not his: %+v", brec)
	}
}

// Recovery never hides a key change: bob comes back with a new identity
// (a new home), alice adds him under the old name, and the contact shows
// the key change and stays blocked (verified before), whatever bob's new
// device sends; no session notice appears.
func TestKeyChangeIsNotRecovered(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	sendTo(t, a.n, "bob", "hello")
	if _, err := a.n.VerifyContact("bob"); err != nil {
		t.Fatal(err)
	}
	b.stop(t)
	b2 := startNode(t, newHome(t, "bob"))
	defer b2.stop(t)
	befriend(t, a, b2)
	ctx := context.Background()
	if _, err := b2.n.Send(ctx, SendRequest{To: "alice", Text: "it's me, new key"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new key's text", func() bool {
		msgs, err := a.n.Messages("bob", 0)
		return err == nil && len(msgs) > 0
	})
	cs, err := a.n.Contacts()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Name == "bob" && !c.KeyChanged {
			t.Fatalf("bob's contact no longer shows the key change: %+v", c)
		}
	}
	if _, err := a.n.Send(ctx, SendRequest{To: "bob", Text: "x"}); !errors.Is(err, ErrKeyChanged) {
		t.Fatalf("sending to a changed verified key: %v", err)
	}
	for _, name := range []string{"bob", "bob (previous key)"} {
		if len(sessionNotices(t, a.n, name)) != 0 {
			t.Fatalf("a session notice in %q", name)
		}
	}
}
