package node

import (
	"context"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/crypto/session"
)

// A text is stored once per message ID, whatever the number of paths:
// the same payload arriving again in another ratchet message (a resend
// on a new session after a restart, or the relay and the direct path
// both delivering) is acknowledged and not shown twice. The ratchet's
// own replay check cannot catch this: the two ciphertexts differ.
func TestSameMessageIDStoredOnce(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	bCard := cardOf(t, b)
	p := &payload{Type: ptText, ID: newMessageID(), Text: "only once", TimeMS: 1}
	for i := range 2 {
		set := session.NewSet(bCard.List.Device(bCard.Devices[0].ID))
		if err := set.Start(a.n.local, bCard.Devices[0].Bundle); err != nil {
			t.Fatal(err)
		}
		kind, body, err := set.Encrypt(a.n.local, p.marshal())
		if err != nil {
			t.Fatal(err)
		}
		in := &envelope.Inner{SenderAccount: a.n.cert.Account(), SenderDevice: a.n.cert.DeviceID(), Kind: kind, Body: body}
		if st := b.n.receive([]*envelope.Inner{in}, false); st[0] != ackOK {
			t.Fatalf("path %d: status %d, want ok", i, st[0])
		}
	}
	if got := texts(t, b.n, "alice", "in"); len(got) != 1 {
		t.Fatalf("bob shows %q, want the message once", got)
	}
}

// A device that dies between a message's ratchet encryption and its
// commit sent nothing of it: after the restart its ratchet is where the
// store left it, so the next message takes the same message key, and a
// ciphertext that had left before the commit would make the recipient
// drop that next message as a replay (attack class 14). The entry stays
// unsendable until its batch is queued for its commit (and then goes
// before the commit only under a reserved index: TestSendEarlyKilledBeforeCommit);
// the message after the restart arrives.
func TestCrashBetweenEncryptAndCommit(t *testing.T) {
	a, b := pair(t)
	defer b.stop(t)
	ctx := context.Background()
	if _, err := a.n.Send(ctx, SendRequest{To: "bob", Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "hello at bob", func() bool { return len(texts(t, b.n, "alice", "in")) == 1 })

	// Encrypted and queued, never committed: the process dies here.
	a.n.mu.Lock()
	c, err := a.n.byNameLocked("bob")
	if err != nil {
		t.Fatal(err)
	}
	acc := c.account()
	tx := a.n.newTxnLocked()
	if _, err := a.n.sendLocked(tx, conversation{key: acc[:], contact: c}, outgoing{Text: "lost in the crash"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, e := range tx.queued {
		a.n.kickLocked(a.n.queues[e.device])
	}
	a.n.mu.Unlock()
	// Room for a delivery loop that sent entries before their commit to
	// do so (correct code sends nothing, whatever the wait).
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline) && len(texts(t, b.n, "alice", "in")) == 1; {
		time.Sleep(10 * time.Millisecond)
	}
	home := a.home
	a.stop(t)
	a = startNode(t, home)
	defer a.stop(t)
	if _, err := a.n.Send(ctx, SendRequest{To: "bob", Text: "after the restart"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message after the restart", func() bool { return len(texts(t, b.n, "alice", "in")) >= 2 })
	if got := texts(t, b.n, "alice", "in"); len(got) != 2 || got[1] != "after the restart" {
		t.Fatalf("bob has %q, want hello and the message after the restart", got)
	}
}

// A stored group this version cannot read (an older op format, or a
// damaged record) does not stop the node: it starts, warns, and keeps the
// record as it was.
func TestUnreadableStoredGroupKept(t *testing.T) {
	home := newHome(t, "old-groups")
	r := startNode(t, home)
	r.stop(t)
	db, err := openStore(home, nil, KDFParams{}, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	tabs := openTables(db)
	old := []byte("a group record in a format this version does not know")
	if err := tabs.groups.Put([]byte("0123456789abcdef"), old); err != nil {
		t.Fatal(err)
	}
	db.Close()
	r = startNode(t, home)
	defer r.stop(t)
	if gs, err := r.n.Groups(); err != nil || len(gs) != 0 {
		t.Fatalf("groups %v, %v; want none shown", gs, err)
	}
	if got, err := r.n.tabs.groups.Get([]byte("0123456789abcdef")); err != nil || string(got) != string(old) {
		t.Fatalf("the unreadable record was not kept: %q, %v", got, err)
	}
}
