package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// storeHolds lists the tables of n's store that hold marker in a record
// (the store's files are encrypted: noMarker alone would not see a
// plaintext kept there).
func storeHolds(t *testing.T, n *Node, marker string) []string {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	var found []string
	for _, name := range repairTables { // every table (TestRepairTablesAreTheNodesTables)
		tab := n.db.Table(name)
		hit := false
		look := func(v []byte) error {
			if bytes.Contains(v, []byte(marker)) {
				hit = true
			}
			return nil
		}
		tab.Scan(func(_, v []byte) error { return look(v) })
		tab.ScanAllSeq(func(_ []byte, _ uint64, v []byte) error { return look(v) })
		if hit {
			found = append(found, tab.Name())
		}
	}
	return found
}

func contactNamed(t *testing.T, n *Node, name string) Contact {
	t.Helper()
	cs, err := n.Contacts()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no contact %q in %+v", name, cs)
	return Contact{}
}

// Bob blocks Alice: her messages are taken off the wire (acknowledged,
// the session advancing) and dropped: nothing is stored, shown or
// answered; Bob can send her nothing. The block survives a restart. After
// the unblock, messages flow both ways on the same sessions.
func TestBlockDropsEverything(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer func() { b.stop(t) }()
	ctx := context.Background()
	wait := func(id string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if m, err := a.n.WaitState(wctx, id, StateDelivered); err != nil || m.State != StateDelivered {
			t.Fatalf("WaitState %s: %v %v", id, m.State, err)
		}
	}
	control := fmt.Sprintf("CONTROL-%d", time.Now().UnixNano())
	cm, err := a.n.Send(ctx, SendRequest{To: "bob", Text: control})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the control message at bob", func() bool { return len(texts(t, b.n, "alice", "in")) == 1 })
	if len(storeHolds(t, b.n, control)) == 0 {
		t.Fatal("the store scan does not find a stored message's text: the checks below would prove nothing")
	}

	c, err := b.n.BlockContact("alice")
	if err != nil || !c.Blocked {
		t.Fatalf("BlockContact: %+v %v", c, err)
	}
	if !contactNamed(t, b.n, "alice").Blocked {
		t.Fatal("Contacts does not show the block")
	}
	if _, err := b.n.Send(ctx, SendRequest{To: "alice", Text: "hi"}); !errors.Is(err, ErrBlocked) {
		t.Fatalf("Send to a blocked contact: %v", err)
	}
	if err := b.n.SetTyping("alice", true); !errors.Is(err, ErrBlocked) {
		t.Fatalf("SetTyping to a blocked contact: %v", err)
	}
	evs, cancel := b.n.Subscribe(0)
	defer cancel()

	marker := fmt.Sprintf("BLOCKED-%d", time.Now().UnixNano())
	var sent []string
	for i := range 100 {
		m, err := a.n.Send(ctx, SendRequest{To: "bob", Text: fmt.Sprintf("%s-%d", marker, i)})
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m.ID)
	}
	if err := a.n.SetTyping("bob", true); err != nil {
		t.Fatal(err)
	}
	for _, id := range sent {
		wait(id) // bob acknowledged it, after his commit
	}
	if err := b.n.MarkRead("alice"); err != nil { // the control message: read here, no receipt goes
		t.Fatal(err)
	}
	if got := texts(t, b.n, "alice", "in"); len(got) != 1 || got[0] != control {
		t.Fatalf("bob shows %q", got)
	}
	if where := storeHolds(t, b.n, marker); len(where) > 0 {
		t.Fatalf("bob's store holds a blocked message in %v", where)
	}
	noMarker(t, b.home, marker)
	for done := false; !done; {
		select {
		case ev := <-evs:
			if ev.Type == EventMessage || ev.Type == EventTyping || (ev.Message != nil && strings.Contains(ev.Message.Text, marker)) {
				t.Fatalf("an event about a blocked message: %+v", ev)
			}
		default:
			done = true
		}
	}

	// The block survives a restart.
	b.stop(t)
	b = startNode(t, b.home)
	if !contactNamed(t, b.n, "alice").Blocked {
		t.Fatal("the block did not survive a restart")
	}
	m, err := a.n.Send(ctx, SendRequest{To: "bob", Text: marker + "-after-restart"})
	if err != nil {
		t.Fatal(err)
	}
	wait(m.ID)
	if got := texts(t, b.n, "alice", "in"); len(got) != 1 {
		t.Fatalf("bob shows %q after a restart", got)
	}
	if where := storeHolds(t, b.n, marker); len(where) > 0 {
		t.Fatalf("bob's store holds a blocked message in %v", where)
	}

	// Unblocked: messages flow both ways, on the sessions that advanced.
	if err := b.n.UnblockContact("alice"); err != nil {
		t.Fatal(err)
	}
	if contactNamed(t, b.n, "alice").Blocked {
		t.Fatal("still shown blocked")
	}
	m, err = a.n.Send(ctx, SendRequest{To: "bob", Text: "after the unblock"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a message after the unblock", func() bool { return len(texts(t, b.n, "alice", "in")) == 2 })
	if _, err := b.n.Send(ctx, SendRequest{To: "alice", Text: "back"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's message at alice", func() bool { return len(texts(t, a.n, "bob", "in")) == 1 })
	// Bob's queue to alice is in order: a read receipt queued while she
	// was blocked would have come before "back".
	for _, id := range append(sent, cm.ID) {
		if st := find(t, a.n, "bob", id).State; st != StateDelivered {
			t.Fatalf("alice's message %s is %s: bob answered while she was blocked", id, st)
		}
	}
}

// A block is by account: removing the contact keeps it, adding the
// account again (under any name) finds it blocked, and an account that
// is no contact is unblocked by its ID.
func TestBlockSurvivesRemoveAndReadd(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	sa, err := a.n.Self()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.n.BlockContact("alice"); err != nil {
		t.Fatal(err)
	}
	if err := b.n.RemoveContact("alice"); err != nil {
		t.Fatal(err)
	}
	list, err := b.n.BlockedAccounts()
	if err != nil || len(list) != 1 || list[0].Name != "alice" || list[0].Contact || list[0].Account != sa.Account {
		t.Fatalf("BlockedAccounts after remove: %+v %v", list, err)
	}
	c, err := b.n.AddContact("al", sa.Link)
	if err != nil || !c.Blocked {
		t.Fatalf("re-added: %+v %v", c, err)
	}
	if _, err := b.n.Send(context.Background(), SendRequest{To: "al", Text: "x"}); !errors.Is(err, ErrBlocked) {
		t.Fatalf("Send to a re-added blocked account: %v", err)
	}
	if err := b.n.RemoveContact("al"); err != nil {
		t.Fatal(err)
	}
	if err := b.n.UnblockContact("alice"); !errors.Is(err, ErrUnknownContact) {
		t.Fatalf("unblock by a name no contact has: %v", err)
	}
	if err := b.n.UnblockContact(strings.ToUpper(sa.Account)); err != nil {
		t.Fatal(err)
	}
	if list, _ := b.n.BlockedAccounts(); len(list) != 0 {
		t.Fatalf("still blocked: %+v", list)
	}
	if err := b.n.UnblockContact(sa.Account); err == nil {
		t.Fatal("unblocking an account that is not blocked")
	}
	c, err = b.n.AddContact("alice", sa.Link)
	if err != nil || c.Blocked {
		t.Fatalf("added after the unblock: %+v %v", c, err)
	}
}
