package node

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// typingSeen collects the group typing events a node raises.
type typingSeen struct {
	mu   sync.Mutex
	from []string // "from/group/on"
}

func watchTyping(t *testing.T, r *running) *typingSeen {
	t.Helper()
	ts := &typingSeen{}
	evs, cancel := r.n.Subscribe(^uint64(0))
	t.Cleanup(cancel)
	go func() {
		for ev := range evs {
			if ev.Type == EventTyping && ev.Typing != nil {
				ts.mu.Lock()
				ts.from = append(ts.from, ev.From+"/"+ev.GroupID+"/"+map[bool]string{true: "on", false: "off"}[*ev.Typing])
				ts.mu.Unlock()
			}
		}
	}()
	return ts
}

func (ts *typingSeen) all() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.from)
}

func (ts *typingSeen) has(s string) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Contains(ts.from, s)
}

// wireSeqOf is how many group wire messages r's store has journaled for
// the group.
func wireSeqOf(t *testing.T, r *running, name string) uint64 {
	t.Helper()
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	gs, err := r.n.resolveGroupLocked(name)
	if err != nil {
		t.Fatal(err)
	}
	return gs.wireSeq
}

// haveOf is r's anti-entropy digest of the group.
func haveOf(t *testing.T, r *running, name string) []byte {
	t.Helper()
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	gs, err := r.n.resolveGroupLocked(name)
	if err != nil {
		t.Fatal(err)
	}
	return gs.eng.Have()
}

// Group typing: one member's indicator shows on the other two, with the
// group, and nothing of it is stored: the sender journals no wire
// message and its chain does not move (nothing to repair), no member
// shows a message.
func TestGroupTyping(t *testing.T) {
	nodes := makeGroup(t, 3, "team")
	g, _ := groupOf(nodes[0], "team")
	sendGroupEventually(t, nodes[0], "team", "keys are in place") // every sender key has arrived
	for _, r := range nodes[1:] {
		waitFor(t, "the first text", func() bool { return len(groupTexts(t, r, "team")) == 1 })
	}
	// The sender's engine: what it journaled and its digest (the admin
	// is the only one who publishes from here on). A text sent under a
	// reserved iteration is journaled with the lazy save: flushed first.
	nodes[0].n.flushGroups()
	seq, have := wireSeqOf(t, nodes[0], "team"), haveOf(t, nodes[0], "team")
	seen := []*typingSeen{watchTyping(t, nodes[1]), watchTyping(t, nodes[2])}
	self := watchTyping(t, nodes[0])
	// Member 2 knows the admin as a member, not a contact: its name is
	// the admin's card name with the account.
	names := []string{nodes[1].n.memberNameOf(t, nodes[0]), nodes[2].n.memberNameOf(t, nodes[0])}
	waitFor(t, "typing on both members", func() bool {
		// A mesh still forming may drop one: off then on passes the
		// sender's rate limit.
		if err := nodes[0].n.SetGroupTyping("team", false); err != nil {
			t.Fatal(err)
		}
		if err := nodes[0].n.SetGroupTyping("team", true); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if seen[0].has(names[0]+"/"+g.ID+"/on") && seen[1].has(names[1]+"/"+g.ID+"/on") {
				return true
			}
			time.Sleep(20 * time.Millisecond)
		}
		return false
	})
	if got := self.all(); len(got) != 0 {
		t.Fatalf("the sender shows its own typing: %q", got)
	}
	if got := wireSeqOf(t, nodes[0], "team"); got != seq {
		t.Fatalf("the sender journaled %d group messages for typing", got-seq)
	}
	if !bytes.Equal(haveOf(t, nodes[0], "team"), have) {
		t.Fatal("typing took places in the sender's chain (anti-entropy would repair it)")
	}
	for i, r := range nodes {
		if n := len(groupTexts(t, r, "team")); n != 1 {
			t.Fatalf("node %d shows %d messages", i, n)
		}
	}
	// A non-member gets an error, and so does an unknown group.
	if err := nodes[1].n.SetGroupTyping("nope", true); err == nil {
		t.Fatal("typing in an unknown group accepted")
	}
}

// memberNameOf is how n names member r in its groups.
func (n *Node) memberNameOf(t *testing.T, r *running) string {
	t.Helper()
	self, err := r.n.Self()
	if err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for acc := range n.peers {
		if acc.Hex() == self.Account {
			return n.memberNameLocked(acc)
		}
	}
	for acc := range n.contacts {
		if acc.Hex() == self.Account {
			return n.memberNameLocked(acc)
		}
	}
	t.Fatalf("%s is not known", self.Account)
	return ""
}

// readView returns message id as the sender's list shows it.
func readView(t *testing.T, r *running, group, id string) Message {
	t.Helper()
	ms, err := r.n.GroupMessages(group, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("message %s not in the list", id)
	return Message{}
}

// Group read receipts: after both members read, the sender sees "read by
// 2 of 2" with their names (list and getMessage); a member with read
// receipts off is not reported.
func TestGroupReadReceipts(t *testing.T) {
	nodes := makeGroup(t, 3, "team")
	admin, m1, m2 := nodes[0], nodes[1], nodes[2]
	first := sendGroupEventually(t, admin, "team", "read me")
	for _, r := range nodes[1:] {
		waitFor(t, "the text", func() bool { return len(groupTexts(t, r, "team")) == 1 })
	}
	if v := readView(t, admin, "team", first.ID); len(v.ReadBy) != 0 || v.ReadOf != 2 {
		t.Fatalf("before reading: %+v", v)
	}
	for _, r := range nodes[1:] {
		if err := r.n.MarkGroupRead("team"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "read by 2 of 2", func() bool { return len(readView(t, admin, "team", first.ID).ReadBy) == 2 })
	v := readView(t, admin, "team", first.ID)
	slices.Sort(v.ReadBy)
	if v.ReadOf != 2 || !slices.Equal(v.ReadBy, []string{"m1", "m2"}) {
		t.Fatalf("read view: by %q of %d", v.ReadBy, v.ReadOf)
	}
	if got, err := admin.n.GetMessage(first.ID); err != nil || len(got.ReadBy) != 2 || got.ReadOf != 2 {
		t.Fatalf("getMessage: %+v %v", got, err)
	}
	// A member's view of someone else's message carries no read counts.
	if ms, _ := m1.n.GroupMessages("team", 0); len(ms) != 1 || ms[0].ReadBy != nil || ms[0].ReadOf != 0 {
		t.Fatalf("a reader's view: %+v", ms)
	}

	// m2 turns read receipts off and reads the second text; then on, and
	// reads a third. Its receipts go in order on one session, so once the
	// third's has come, the second's would have.
	if err := m2.n.SetReadReceipts(false); err != nil {
		t.Fatal(err)
	}
	second := sendGroupEventually(t, admin, "team", "read quietly")
	for _, r := range nodes[1:] {
		waitFor(t, "the second text", func() bool { return len(groupTexts(t, r, "team")) == 2 })
		if err := r.n.MarkGroupRead("team"); err != nil {
			t.Fatal(err)
		}
	}
	if err := m2.n.SetReadReceipts(true); err != nil {
		t.Fatal(err)
	}
	third := sendGroupEventually(t, admin, "team", "read aloud")
	waitFor(t, "the third text", func() bool { return len(groupTexts(t, m2, "team")) == 3 })
	if err := m2.n.MarkGroupRead("team"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "m2's receipt for the third", func() bool { return slices.Contains(readView(t, admin, "team", third.ID).ReadBy, "m2") })
	waitFor(t, "m1's receipt for the second", func() bool { return slices.Contains(readView(t, admin, "team", second.ID).ReadBy, "m1") })
	if v := readView(t, admin, "team", second.ID); !slices.Equal(v.ReadBy, []string{"m1"}) || v.ReadOf != 2 {
		t.Fatalf("with m2's receipts off: by %q of %d", v.ReadBy, v.ReadOf)
	}
}

// grepHome reports whether any file under home holds text.
func grepHome(t *testing.T, home, text string) bool {
	t.Helper()
	found := false
	filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			found = found || bytes.Contains(b, []byte(text))
		}
		return nil
	})
	return found
}

// Group timers: a member (not the admin) sets the timer and every member
// sees it, a member invited later too; a text expires counted from
// sending on the sender and from reading on the members, including a
// member that was off when its copy expired and deletes it when it
// starts; the records leave the store files.
func TestGroupDisappearingMessages(t *testing.T) {
	clock := &testClock{}
	nodes := makeGroupCfg(t, "team", make([]string, 3), clock.cfg, waitFor)
	admin, m1, m2 := nodes[0], nodes[1], nodes[2]
	sendGroupEventually(t, m1, "team", "keys are in place")

	adminEvs, cancelEvs := admin.n.Subscribe(0)
	defer cancelEvs()
	if got, err := m1.n.SetTimer(TimerRequest{Group: "team", TTL: time.Hour}); err != nil || got != time.Hour {
		t.Fatal(got, err)
	}
	for _, r := range nodes {
		waitFor(t, "the timer everywhere", func() bool { d, _ := r.n.GroupTimer("team"); return d == time.Hour })
	}
	// The admin's client hears of it: a timer event with the group's ID.
	gs, err := admin.n.Groups()
	if err != nil || len(gs) != 1 {
		t.Fatal(gs, err)
	}
	gid := gs[0].ID
	waitEvent(t, adminEvs, "the group's timer event", func(ev Event) bool {
		return ev.Type == EventTimer && ev.Timer != nil && ev.Timer.Group == gid && ev.Timer.Seconds == 3600
	})
	if _, err := m1.n.SetTimer(TimerRequest{Group: "team", Contact: "x", TTL: time.Hour}); err == nil {
		t.Fatal("a timer for a contact and a group at once was accepted")
	}

	const secret = "this group text will vanish"
	m := sendGroupEventually(t, admin, "team", secret)
	for _, r := range nodes[1:] {
		waitFor(t, "the text", func() bool { return len(groupTexts(t, r, "team")) == 2 })
	}
	sealed := map[*running][][]byte{}
	for _, r := range nodes {
		sealed[r] = sealedOf(t, r.n, m.ID)
		if !onDisk(t, r.home, sealed[r]) {
			t.Fatal("sealed record not found on disk before expiry (test broken)")
		}
	}
	for _, r := range []*running{m1, m2} {
		if err := r.n.MarkGroupRead("team"); err != nil {
			t.Fatal(err)
		}
	}
	m2Home := m2.home
	m2.stop(t)

	// Two hours on: gone from the sender (counted from sending) and from
	// m1 (counted from reading).
	clock.advance(2 * time.Hour)
	for _, r := range []*running{admin, m1} {
		r.n.ExpireDue()
		if got := groupTexts(t, r, "team"); slices.ContainsFunc(got, func(s string) bool { return bytes.Contains([]byte(s), []byte(secret)) }) {
			t.Fatalf("%s still shows %q", r.home, got)
		}
		if leftAbout(t, r.n, m.ID) != 0 || onDisk(t, r.home, sealed[r]) || grepHome(t, r.home, secret) {
			t.Fatalf("%s's store still holds the message", r.home)
		}
	}

	// m2 was off when its copy expired: it deletes it when it starts.
	m2 = startClocked(t, clock, m2Home)
	nodes[2] = m2
	waitFor(t, "the expiry at start", func() bool { return len(groupTexts(t, m2, "team")) == 1 })
	waitFor(t, "compaction", func() bool { return !onDisk(t, m2Home, sealed[m2]) })
	if leftAbout(t, m2.n, m.ID) != 0 || grepHome(t, m2Home, secret) {
		t.Fatal("m2's store still holds the message")
	}
	if d, _ := m2.n.GroupTimer("team"); d != time.Hour {
		t.Fatalf("m2's timer after the restart: %v", d)
	}

	// An unread copy waits for reading: a text m2 has not read stays.
	kept := sendGroupEventually(t, admin, "team", "not read yet")
	waitFor(t, "the unread text", func() bool { return len(groupTexts(t, m2, "team")) == 2 })
	clock.advance(2 * time.Hour)
	m2.n.ExpireDue()
	if _, err := m2.n.GetMessage(kept.ID); err != nil {
		t.Fatalf("an unread text expired: %v", err)
	}

	// A member invited after the change learns the timer.
	late := startClocked(t, clock, newHome(t, "late"))
	defer late.stop(t)
	sr, _ := late.n.Self()
	if _, err := admin.n.AddContact("late", sr.Link); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.n.InviteToGroup("team", "late"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the invitation", func() bool { g, ok := groupOf(late, "team"); return ok && g.Pending })
	if _, err := late.n.AcceptGroup("team"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the timer at the late member", func() bool { d, _ := late.n.GroupTimer("team"); return d == time.Hour })

	// Off: the next text stays.
	if _, err := m2.n.SetTimer(TimerRequest{Group: "team"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the timer off at the admin", func() bool { d, _ := admin.n.GroupTimer("team"); return d == 0 })
	stays := sendGroupEventually(t, admin, "team", "this one stays")
	clock.advance(8 * 24 * time.Hour)
	admin.n.ExpireDue()
	if _, err := admin.n.GetMessage(stays.ID); err != nil {
		t.Fatalf("a text sent with the timer off expired: %v", err)
	}
}
