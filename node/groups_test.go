package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// groupOf returns the named group as node r sees it, or ok=false.
func groupOf(r *running, name string) (Group, bool) {
	gs, err := r.n.Groups()
	if err != nil {
		return Group{}, false
	}
	for _, g := range gs {
		if g.Name == name {
			return g, true
		}
	}
	return Group{}, false
}

func activeMembers(g Group) int {
	n := 0
	for _, m := range g.Members {
		if !m.Invited {
			n++
		}
	}
	return n
}

// sendGroupEventually retries while the group's keys are still arriving.
func sendGroupEventually(t testing.TB, r *running, name, text string) Message {
	t.Helper()
	var m Message
	waitFor(t, "group keys", func() bool {
		var err error
		m, err = r.n.SendGroup(context.Background(), GroupSendRequest{Group: name, Text: text})
		if errors.Is(err, ErrGroupNotReady) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		return true
	})
	return m
}

// makeGroup starts n nodes; node 0 creates a group and invites the
// others, who are its contacts but not each other's.
func makeGroup(t testing.TB, count int, name string) []*running {
	nodes := []*running{startNode(t, newHome(t, "admin"))}
	for i := 1; i < count; i++ {
		r := startNode(t, newHome(t, fmt.Sprintf("member%d", i)))
		nodes = append(nodes, r)
		sr, _ := r.n.Self()
		if _, err := nodes[0].n.AddContact(fmt.Sprintf("m%d", i), sr.Link); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nodes[0].n.CreateGroup(name); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < count; i++ {
		if _, err := nodes[0].n.InviteToGroup(name, fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < count; i++ {
		r := nodes[i]
		waitFor(t, "the invitation", func() bool { g, ok := groupOf(r, name); return ok && g.Pending })
		if _, err := r.n.AcceptGroup(name); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range nodes {
		deadline := time.Now().Add(15 * time.Second)
		for {
			g, ok := groupOf(r, name)
			if ok && activeMembers(g) == count {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d sees %+v", i, g)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nodes
}

func groupTexts(t testing.TB, r *running, name string) []string {
	ms, err := r.n.GroupMessages(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Sender+": "+m.Text)
	}
	return out
}

func TestGroupFiveMembers(t *testing.T) {
	nodes := makeGroup(t, 5, "club")
	defer func() {
		for _, r := range nodes {
			r.stop(t)
		}
	}()
	for round := range 3 {
		for i, r := range nodes {
			sendGroupEventually(t, r, "club", fmt.Sprintf("hello %d from %d", round, i))
		}
	}
	for i, r := range nodes {
		waitFor(t, fmt.Sprintf("15 messages at node %d", i), func() bool { return len(groupTexts(t, r, "club")) == 15 })
	}
	// Messages from one sender arrive in order everywhere.
	for _, r := range nodes {
		ms, _ := r.n.GroupMessages("club", 0)
		last := map[string]int{}
		for _, m := range ms {
			var round, from int
			fmt.Sscanf(m.Text, "hello %d from %d", &round, &from)
			key := fmt.Sprint(from)
			if prev, ok := last[key]; ok && round < prev {
				t.Fatalf("messages from %d out of order: %v", from, groupTexts(t, r, "club"))
			}
			last[key] = round
		}
	}
}

func TestGroupRemoveMember(t *testing.T) {
	nodes := makeGroup(t, 3, "trio")
	defer func() {
		for _, r := range nodes {
			r.stop(t)
		}
	}()
	sendGroupEventually(t, nodes[0], "trio", "before removal")
	for _, r := range nodes {
		waitFor(t, "the first message", func() bool { return len(groupTexts(t, r, "trio")) == 1 })
	}
	if _, err := nodes[0].n.RemoveFromGroup("trio", "m2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "removal seen", func() bool { g, _ := groupOf(nodes[1], "trio"); return activeMembers(g) == 2 })
	sendGroupEventually(t, nodes[1], "trio", "after removal")
	waitFor(t, "the message after removal", func() bool { return len(groupTexts(t, nodes[0], "trio")) == 2 })
	time.Sleep(500 * time.Millisecond)
	// The removed member keeps what it had and reads nothing new.
	got := groupTexts(t, nodes[2], "trio")
	if len(got) != 1 || !strings.HasSuffix(got[0], ": before removal") {
		t.Fatalf("removed member has %q", got)
	}
}

// A member offline during 50 messages gets all 50 when it returns: from
// the online members (anti-entropy) when there is no relay.
func TestGroupOfflineMemberFromPeers(t *testing.T) {
	nodes := makeGroup(t, 3, "peers")
	defer func() {
		for _, r := range nodes {
			r.stop(t)
		}
	}()
	sendGroupEventually(t, nodes[0], "peers", "warm-up")
	waitFor(t, "warm-up everywhere", func() bool { return len(groupTexts(t, nodes[2], "peers")) == 1 })
	home := nodes[2].home
	nodes[2].stop(t)
	for i := range 50 {
		sendGroupEventually(t, nodes[i%2], "peers", fmt.Sprintf("while away %02d", i))
	}
	nodes[2] = startNode(t, home)
	waitFor(t, "50 messages after coming back", func() bool { return len(groupTexts(t, nodes[2], "peers")) == 51 })
	time.Sleep(300 * time.Millisecond)
	if got := groupTexts(t, nodes[2], "peers"); len(got) != 51 {
		t.Fatalf("returning member has %d messages, want 51 (none doubled)", len(got))
	}
}

// With relays, a member offline during 50 messages gets them from its
// mailbox even when every sender is offline by the time it returns.
func TestGroupOfflineMemberFromRelay(t *testing.T) {
	addr := startRelay(t, relayCfg())
	var nodes []*running
	for i, name := range []string{"admin", "m1", "m2"} {
		r := startNodeCfg(t, Config{Home: newHome(t, name), Relays: []string{addr}})
		waitMailbox(t, r)
		nodes = append(nodes, r)
		if i > 0 {
			s, _ := r.n.Self()
			if _, err := nodes[0].n.AddContact(name, s.Link); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := nodes[0].n.CreateGroup("mailboxed"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"m1", "m2"} {
		if _, err := nodes[0].n.InviteToGroup("mailboxed", m); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range nodes[1:] {
		waitFor(t, "invitation", func() bool { g, ok := groupOf(r, "mailboxed"); return ok && g.Pending })
		if _, err := r.n.AcceptGroup("mailboxed"); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range nodes {
		waitFor(t, "members", func() bool { g, _ := groupOf(r, "mailboxed"); return activeMembers(g) == 3 })
	}
	sendGroupEventually(t, nodes[1], "mailboxed", "warm-up")
	waitFor(t, "warm-up", func() bool { return len(groupTexts(t, nodes[2], "mailboxed")) == 1 })
	home := nodes[2].home
	nodes[2].stop(t)
	for i := range 50 {
		sendGroupEventually(t, nodes[i%2], "mailboxed", fmt.Sprintf("while away %02d", i))
	}
	time.Sleep(500 * time.Millisecond) // let the deposits finish
	nodes[0].stop(t)
	nodes[1].stop(t)
	back := startNodeCfg(t, Config{Home: home, Relays: []string{addr}})
	defer back.stop(t)
	waitFor(t, "50 messages from the mailbox", func() bool { return len(groupTexts(t, back, "mailboxed")) == 51 })
}
