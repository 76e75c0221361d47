package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"
)

func convNamed(t testing.TB, n *Node, archived bool, name string) (Conversation, bool) {
	t.Helper()
	cs, err := n.Conversations(archived)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Name == name {
			return c, true
		}
	}
	return Conversation{}, false
}

func sendText(t testing.TB, r *running, to, text string) Message {
	t.Helper()
	m, err := r.n.Send(context.Background(), SendRequest{To: to, Text: text})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func waitArrived(t testing.TB, r *running, from, id string) {
	t.Helper()
	waitFor(t, "message "+id, func() bool { // in the list: committed
		ms, err := r.n.Messages(from, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.ID == id {
				return true
			}
		}
		return false
	})
}

// The conversation list as bob sees it while alice writes: unread
// counts, read, archive (a new message brings it back unless muted),
// pin order with a group, and the settings surviving a restart.
func TestConversationList(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	m1 := sendText(t, a, "bob", "hi bob")
	m2 := sendText(t, a, "bob", "are you there?")
	waitArrived(t, b, "alice", m1.ID)
	waitArrived(t, b, "alice", m2.ID)

	c, ok := convNamed(t, b.n, false, "alice")
	if !ok || c.Unread != 2 || c.Last == nil || c.Last.ID != m2.ID || c.Last.Preview != "are you there?" || c.Last.Direction != "in" || c.Contact != "alice" {
		t.Fatalf("bob's list: %+v (last %+v)", c, c.Last)
	}
	if c, _ := convNamed(t, a.n, false, "bob"); c.Unread != 0 || c.Last == nil || c.Last.Direction != "out" {
		t.Fatalf("alice's list: %+v", c)
	}
	if err := b.n.MarkRead("alice"); err != nil {
		t.Fatal(err)
	}
	if c, _ := convNamed(t, b.n, false, "alice"); c.Unread != 0 {
		t.Fatalf("after read: %+v", c)
	}

	// Archive; a new message brings the conversation back.
	yes, no := true, false
	if c, err := b.n.SetConversation(ConversationSettings{Contact: "alice", Archived: &yes}); err != nil || !c.Archived {
		t.Fatalf("archive: %+v %v", c, err)
	}
	if _, ok := convNamed(t, b.n, false, "alice"); ok {
		t.Fatal("an archived conversation is in the list")
	}
	if _, ok := convNamed(t, b.n, true, "alice"); !ok {
		t.Fatal("not in the archived list")
	}
	m3 := sendText(t, a, "bob", "wake up")
	waitArrived(t, b, "alice", m3.ID)
	if c, ok := convNamed(t, b.n, false, "alice"); !ok || c.Archived || c.Unread != 1 {
		t.Fatalf("a new message did not unarchive: %+v %v", c, ok)
	}
	// Muted and archived: it stays archived.
	if _, err := b.n.SetConversation(ConversationSettings{Contact: "alice", Muted: &yes, Archived: &yes}); err != nil {
		t.Fatal(err)
	}
	m4 := sendText(t, a, "bob", "still there?")
	waitArrived(t, b, "alice", m4.ID)
	if c, ok := convNamed(t, b.n, true, "alice"); !ok || !c.Muted || c.Unread != 2 {
		t.Fatalf("muted conversation left the archive: %+v %v", c, ok)
	}
	if _, err := b.n.SetConversation(ConversationSettings{Contact: "alice", Archived: &no}); err != nil {
		t.Fatal(err)
	}

	// A group, created with a txnId twice: one group. Its message is the
	// newest, so it comes first until alice is pinned.
	g1, err := b.n.CreateGroupTxn("club", "t-club")
	if err != nil {
		t.Fatal(err)
	}
	g2, err := b.n.CreateGroupTxn("club", "t-club")
	if err != nil || g2.ID != g1.ID {
		t.Fatalf("createGroup retried: %v %v, %v", g1.ID, g2.ID, err)
	}
	if gs, _ := b.n.Groups(); len(gs) != 1 {
		t.Fatalf("groups: %+v", gs)
	}
	if _, err := b.n.SendGroup(context.Background(), GroupSendRequest{Group: "club", Text: "first!"}); err != nil {
		t.Fatal(err)
	}
	order := func() []string {
		cs, err := b.n.Conversations(false)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	if got := fmt.Sprint(order()); got != "[club alice]" {
		t.Fatalf("order: %s", got)
	}
	if _, err := b.n.SetConversation(ConversationSettings{Contact: "alice", Pinned: &yes}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(order()); got != "[alice club]" {
		t.Fatalf("order with alice pinned: %s", got)
	}

	// Settings are this device's, in the store: they survive a restart.
	b.stop(t)
	b = startNode(t, b.home)
	defer b.stop(t)
	if c, ok := convNamed(t, b.n, false, "alice"); !ok || !c.Pinned || !c.Muted {
		t.Fatalf("after restart: %+v", c)
	}
	if g3, err := b.n.CreateGroupTxn("club", "t-club"); err != nil || g3.ID != g1.ID {
		t.Fatalf("createGroup retried after restart: %v %v", g3.ID, err)
	}
}

// Paging a conversation with cursors, and getMessage.
func TestMessagePaging(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	var ids []string
	for i := range 6 {
		ids = append(ids, sendText(t, a, "bob", fmt.Sprintf("m%d", i)).ID)
	}
	page := func(q MessageQuery) string {
		t.Helper()
		q.Contact = "bob"
		ms, err := a.n.MessagePage(q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range ms {
			out = append(out, m.Text)
		}
		return fmt.Sprint(out)
	}
	for _, tc := range []struct {
		q    MessageQuery
		want string
	}{
		{MessageQuery{Limit: 2}, "[m4 m5]"},
		{MessageQuery{Before: ids[3], Limit: 2}, "[m1 m2]"},
		{MessageQuery{Before: ids[1], Limit: 5}, "[m0]"},
		{MessageQuery{Before: ids[0]}, "[]"},
		{MessageQuery{After: ids[2], Limit: 2}, "[m3 m4]"},
		{MessageQuery{After: ids[4]}, "[m5]"},
		{MessageQuery{After: ids[0], Before: ids[4], Limit: 2}, "[m2 m3]"},
		{MessageQuery{After: ids[0], Before: ids[4]}, "[m1 m2 m3]"},
	} {
		if got := page(tc.q); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.q, got, tc.want)
		}
	}
	if m, err := a.n.GetMessage(ids[2]); err != nil || m.Text != "m2" || m.Contact != "bob" {
		t.Errorf("getMessage: %+v %v", m, err)
	}
	if _, err := a.n.GetMessage(hex.EncodeToString(make([]byte, msgIDSize))); !errors.Is(err, ErrUnknownMessage) {
		t.Errorf("getMessage unknown: %v", err)
	}
	// A cursor from another conversation is refused.
	waitArrived(t, b, "alice", ids[5])
	m := sendText(t, b, "alice", "other way")
	if _, err := a.n.MessagePage(MessageQuery{Contact: "bob", Before: "zz"}); !errors.Is(err, ErrUnknownMessage) {
		t.Errorf("bad cursor: %v", err)
	}
	if _, err := b.n.MessagePage(MessageQuery{Contact: "alice", Before: m.ID}); err != nil {
		t.Errorf("own cursor: %v", err)
	}
}

// Delete for me: the message and its file leave this device's store
// only; a conversation cleared keeps its contact; a copy arriving again
// is not stored.
func TestDeleteLocalAndClear(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	path, _ := writeFile(t, 64<<10, "LOCAL-DELETE-MARKER")
	fm, err := a.n.SendFile(context.Background(), SendFileRequest{To: "bob", Path: path, Caption: "doc", TxnID: "f1"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := a.n.SendFile(context.Background(), SendFileRequest{To: "bob", Path: path, Caption: "doc", TxnID: "f1"})
	if err != nil || again.ID != fm.ID {
		t.Fatalf("sendFile retried: %s %s %v", fm.ID, again.ID, err)
	}
	hash, _ := hex.DecodeString(fm.File.Hash)
	blob := a.n.blobPath([32]byte(hash), ".blob")
	if _, err := os.Stat(blob); err != nil {
		t.Fatalf("no blob before: %v", err)
	}
	keep := sendText(t, a, "bob", "keep me")
	waitArrived(t, b, "alice", keep.ID)
	waitArrived(t, b, "alice", fm.ID)

	if err := a.n.DeleteLocal("bob", "", fm.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.n.GetMessage(fm.ID); !errors.Is(err, ErrUnknownMessage) {
		t.Errorf("deleted message still there: %v", err)
	}
	if _, err := os.Stat(blob); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("blob still there: %v", err)
	}
	if got := texts(t, a.n, "bob", "out"); fmt.Sprint(got) != "[keep me]" {
		t.Errorf("alice's messages: %q", got)
	}
	if _, err := b.n.GetMessage(fm.ID); err != nil {
		t.Errorf("bob lost the message alice deleted for herself: %v", err)
	}
	// The same message arriving again (another path) stays deleted.
	id, _ := parseMsgID(fm.ID)
	a.n.mu.Lock()
	gone := a.n.goneLocallyLocked(id)
	a.n.mu.Unlock()
	if !gone {
		t.Error("no tombstone")
	}
	if err := a.n.DeleteLocal("bob", "", fm.ID); !errors.Is(err, ErrUnknownMessage) {
		t.Errorf("deleted twice: %v", err)
	}

	// Clear: bob's conversation with alice empties, alice stays a contact
	// and her next message shows.
	if err := b.n.ClearConversation("alice", ""); err != nil {
		t.Fatal(err)
	}
	if ms, _ := b.n.Messages("alice", 0); len(ms) != 0 {
		t.Errorf("after clear: %d messages", len(ms))
	}
	if c, ok := convNamed(t, b.n, false, "alice"); !ok || c.Last != nil || c.Unread != 0 {
		t.Errorf("cleared conversation: %+v %v", c, ok)
	}
	next := sendText(t, a, "bob", "after the clear")
	waitArrived(t, b, "alice", next.ID)
	if got := texts(t, b.n, "alice", "in"); fmt.Sprint(got) != "[after the clear]" {
		t.Errorf("after clear, bob has %q", got)
	}
}

// Recall for everyone works within the window and is refused after it
// with a clear error; a received recall beyond window + skew is ignored.
func TestRecallWindow(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	m := sendText(t, a, "bob", "oops")
	waitArrived(t, b, "alice", m.ID)
	id, _ := parseMsgID(m.ID)
	a.n.mu.Lock()
	err := a.n.recallAllowedLocked(id, time.Now().Add(25*time.Hour))
	a.n.mu.Unlock()
	if !errors.Is(err, ErrRecallWindow) {
		t.Fatalf("a day later: %v", err)
	}
	if _, err := a.n.Send(context.Background(), SendRequest{To: "bob", Kind: KindDelete, Target: m.ID}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "recall", func() bool {
		got, err := b.n.GetMessage(m.ID)
		return err == nil && got.Deleted
	})

	rec := &msgRec{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	at := func(d time.Duration) uint64 { return uint64(rec.Time.Add(d).UnixMilli()) }
	b.n.mu.Lock()
	defer b.n.mu.Unlock()
	if !b.n.recallAcceptedLocked(rec, at(DefaultRecallWindow+RecallSkew)) || b.n.recallAcceptedLocked(rec, at(DefaultRecallWindow+RecallSkew+time.Second)) {
		t.Error("received recall window wrong")
	}
}

// The list's cached tails (convtails.go) stay right while lists run
// during the commits of arriving messages: a list reading the store
// while a commit is in flight must not keep what it read.
func TestConversationListWhileMessagesArrive(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := b.n.Conversations(false); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	const count = 40
	var sent []Message
	for i := range count {
		sent = append(sent, sendText(t, a, "bob", fmt.Sprintf("message %d", i)))
	}
	for _, m := range sent {
		waitArrived(t, b, "alice", m.ID)
	}
	last := sent[count-1]
	close(stop)
	<-done
	c, ok := convNamed(t, b.n, false, "alice")
	if !ok || c.Unread != count || c.Last == nil || c.Last.ID != last.ID {
		t.Fatalf("bob's list after %d messages: %+v (last %+v, want %s)", count, c, c.Last, last.ID)
	}
}
