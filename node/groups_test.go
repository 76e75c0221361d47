package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/node/group"
	"github.com/hushnet/hush/relay"
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
	return sendGroupReqEventually(t, r, GroupSendRequest{Group: name, Text: text})
}

// sendGroupReqEventually is sendGroupEventually for any request.
func sendGroupReqEventually(t testing.TB, r *running, req GroupSendRequest) Message {
	t.Helper()
	var m Message
	waitFor(t, "group keys", func() bool {
		var err error
		m, err = r.n.SendGroup(context.Background(), req)
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
	return makeGroupWith(t, count, name, waitFor)
}

// makeGroupWith is makeGroup waiting with wait (benchmarks with many
// members wait longer).
func makeGroupWith(t testing.TB, count int, name string, wait func(testing.TB, string, func() bool)) []*running {
	return makeGroupOn(t, name, make([]string, count), wait)
}

// makeGroupOn is makeGroupWith where node i keeps a mailbox on relay
// relays[i] ("" for none).
func makeGroupOn(t testing.TB, name string, relays []string, wait func(testing.TB, string, func() bool)) []*running {
	return makeGroupCfg(t, name, relays, func(home string) Config { return Config{Home: home} }, wait)
}

// makeGroupCfg is makeGroupOn with each node's Config made by cfg.
func makeGroupCfg(t testing.TB, name string, relays []string, mkCfg func(home string) Config, wait func(testing.TB, string, func() bool)) []*running {
	count := len(relays)
	start := func(i int, home string) *running {
		cfg := mkCfg(home)
		if relays[i] != "" {
			cfg.Relays = []string{relays[i]}
		}
		r := startNodeCfg(t, cfg)
		if relays[i] != "" {
			waitMailbox(t, r)
		}
		return r
	}
	nodes := make([]*running, 1, count)
	nodes[0] = start(0, newHome(t, "admin"))
	t.Cleanup(func() { // the nodes in the slice then, replacements included
		for _, r := range nodes {
			r.stop(t)
		}
	})
	for i := 1; i < count; i++ {
		r := start(i, newHome(t, fmt.Sprintf("member%d", i)))
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
		wait(t, "the invitation", func() bool { g, ok := groupOf(r, name); return ok && g.Pending })
		if _, err := r.n.AcceptGroup(name); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range nodes {
		wait(t, fmt.Sprintf("every member in node %d's view", i), func() bool {
			g, ok := groupOf(r, name)
			return ok && activeMembers(g) == count
		})
	}
	return nodes
}

func groupTexts(t testing.TB, r *running, name string) []string {
	return groupTextsBy(t, r, name, func(m Message) string { return m.Sender + ": " + m.Text })
}

// groupTextsOnly is groupTexts without the senders.
func groupTextsOnly(t testing.TB, r *running, name string) []string {
	return groupTextsBy(t, r, name, func(m Message) string { return m.Text })
}

func groupTextsBy(t testing.TB, r *running, name string, show func(Message) string) []string {
	ms, err := r.n.GroupMessages(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, show(m))
	}
	return out
}

func TestGroupFiveMembers(t *testing.T) {
	nodes := makeGroup(t, 5, "club")
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

// A removed member can still publish on the old topic, with keys it held
// before the removal, but nobody accepts it.
func TestGroupRemovedMemberPublishes(t *testing.T) {
	nodes := makeGroup(t, 3, "trio")
	sendGroupEventually(t, nodes[2], "trio", "from m2 while a member")
	for _, r := range nodes {
		waitFor(t, "the first message", func() bool { return len(groupTexts(t, r, "trio")) == 1 })
	}
	// m2 keeps a copy of its engine as it was while a member.
	m2 := nodes[2].n
	m2.mu.Lock()
	var saved []byte
	var oldTopic string
	for _, gs := range m2.groups {
		saved, _ = gs.eng.MarshalBinary()
		oldTopic = gs.eng.Topic()
	}
	cfg := m2.groupConfig()
	m2.mu.Unlock()
	if _, err := nodes[0].n.RemoveFromGroup("trio", "m2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "removal seen", func() bool { g, _ := groupOf(nodes[1], "trio"); return activeMembers(g) == 2 })
	stale, err := group.Unmarshal(cfg, saved)
	if err != nil {
		t.Fatal(err)
	}
	p := &payload{Type: ptText, ID: newMessageID(), TimeMS: uint64(time.Now().UnixMilli()), Text: "from m2 after its removal"}
	wire, _, err := stale.Seal(p.marshal())
	if err != nil {
		t.Fatal(err)
	}
	topic, data, err := stale.SealTopic(wire)
	if err != nil || topic != oldTopic {
		t.Fatalf("sealed for %q (%v), want the old topic", topic, err)
	}
	// The members no longer speak the old topic with m2 (their guard,
	// docs/protocol/groups.md §16.11), but a relay keeping a group store
	// for one of them files what it hears on the topic: straight in.
	for _, r := range nodes[:2] {
		r.n.onTopicData(data)
	}
	for _, r := range nodes[:2] {
		if got := groupTexts(t, r, "trio"); len(got) != 1 {
			t.Fatalf("a member accepted a message from the removed member: %q", got)
		}
	}
}

// A member offline during 50 messages gets all 50 when it returns: from
// the online members (anti-entropy) when there is no relay.
func TestGroupOfflineMemberFromPeers(t *testing.T) {
	nodes := makeGroup(t, 3, "peers")
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

// A member whose relay is down when it returns gets the 50 messages it
// missed from the members (anti-entropy).
func TestGroupOfflineMemberRelayDown(t *testing.T) {
	addr, stopRelay := startStoppableRelay(t, relayCfg())
	nodes := makeGroupOn(t, "relay down", []string{addr, addr, addr}, waitFor)
	sendGroupEventually(t, nodes[1], "relay down", "warm-up")
	waitFor(t, "warm-up", func() bool { return len(groupTexts(t, nodes[2], "relay down")) == 1 })
	home := nodes[2].home
	nodes[2].stop(t)
	for i := range 50 {
		sendGroupEventually(t, nodes[i%2], "relay down", fmt.Sprintf("while away %02d", i))
	}
	stopRelay() // what it kept for m2 is out of reach
	back := startNodeCfg(t, Config{Home: home, Relays: []string{addr}})
	defer back.stop(t)
	waitFor(t, "50 messages from the members", func() bool { return len(groupTexts(t, back, "relay down")) == 51 })
	time.Sleep(300 * time.Millisecond)
	if got := groupTexts(t, back, "relay down"); len(got) != 51 {
		t.Fatalf("returning member has %d messages, want 51 (none doubled)", len(got))
	}
}

// With relays, a member offline during 50 messages gets them from its
// mailbox even when every sender is offline by the time it returns: its
// relay, which no other member uses, kept them from the group's topic
// (the relay's group store).
func TestGroupOfflineMemberFromRelay(t *testing.T) {
	filed := &filedCount{}
	ownCfg := relayCfg()
	ownCfg.Metrics = filed
	shared, own := startRelay(t, relayCfg()), startRelay(t, ownCfg)
	nodes := makeGroupOn(t, "mailboxed", []string{shared, shared, own}, waitFor)
	sendGroupEventually(t, nodes[1], "mailboxed", "warm-up")
	waitFor(t, "warm-up", func() bool { return len(groupTexts(t, nodes[2], "mailboxed")) == 1 })
	waitFor(t, "m2's relay watches the group's topic", func() bool {
		n := nodes[2].n
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, gs := range n.groups {
			for _, w := range n.relayWatch {
				if slices.Contains(w, gs.eng.Topic()) {
					return true
				}
			}
		}
		return false
	})
	waitFor(t, "the senders see m2's relay on the group's topic", func() bool {
		ri, err := relay.ParseRelayAddr(own)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range nodes[:2] {
			if r.n.host.Network().Connectedness(ri.ID) != network.Connected {
				return false
			}
			// Connected is not enough: until a sender has the relay's
			// subscription, it publishes to the members only.
			r.n.mu.Lock()
			var topic string
			for _, gs := range r.n.groups {
				topic = gs.eng.Topic()
			}
			peers := r.n.ps.ListPeers(topic)
			r.n.mu.Unlock()
			if !slices.Contains(peers, ri.ID) {
				return false
			}
		}
		return true
	})
	// And the relay hears each sender: a probe from each reaches m2
	// through the relay's live push as well as directly.
	before := filed.pushed.Load()
	for i, r := range nodes[:2] {
		sendGroupEventually(t, r, "mailboxed", fmt.Sprintf("probe %d", i))
	}
	waitFor(t, "the relay to hear both probes", func() bool { return filed.pushed.Load() >= before+2 })
	waitFor(t, "the probes at m2", func() bool { return len(groupTexts(t, nodes[2], "mailboxed")) == 3 })
	home := nodes[2].home
	nodes[2].n.mu.Lock()
	watched := maps.Clone(nodes[2].n.relayWatch)
	nodes[2].n.mu.Unlock()
	nodes[2].stop(t)
	for i := range 50 {
		sendGroupEventually(t, nodes[i%2], "mailboxed", fmt.Sprintf("while away %02d", i))
	}
	// The senders stay until m2's relay has filed all 50 (on a loaded
	// machine GossipSub takes its time).
	defer func() {
		if !t.Failed() {
			return
		}
		t.Logf("relay: %v; m2 watched %x", filed, watched)
		ri, _ := relay.ParseRelayAddr(own)
		for i, r := range nodes[:2] {
			r.n.mu.Lock()
			var topic string
			for _, gs := range r.n.groups {
				topic = gs.eng.Topic()
			}
			t.Logf("sender %d: connectedness to the relay %v, relay among the topic's peers %v, topic %x",
				i, r.n.host.Network().Connectedness(ri.ID), slices.Contains(r.n.ps.ListPeers(topic), ri.ID), topic)
			for _, c := range r.n.host.Network().ConnsToPeer(ri.ID) {
				for _, st := range c.GetStreams() {
					t.Logf("sender %d: conn %s stream %s %v", i, c.ID(), st.Protocol(), st.Stat().Direction)
				}
			}
			r.n.mu.Unlock()
		}
	}()
	waitFor(t, "the relay to file the 50 messages", func() bool { return filed.n.Load() >= 50 })
	nodes[0].stop(t)
	nodes[1].stop(t)
	back := startNodeCfg(t, Config{Home: home, Relays: []string{own}})
	defer back.stop(t)
	waitFor(t, "50 messages from the mailbox", func() bool { return len(groupTexts(t, back, "mailboxed")) == 53 })
}

// A plain libp2p peer that knows a group's topic name (a relay lets it
// in: it cannot tell members from strangers, §16.11) sees only
// ciphertext: no message text, group name or member identity; what it
// injects (garbage, replays of captured messages) is rejected by every
// member.
func TestGroupTopicOutsider(t *testing.T) {
	rl := startRelay(t, relayCfg())
	nodes := makeGroupOn(t, "secret-club-name", []string{rl, rl, rl}, waitFor)
	sendGroupEventually(t, nodes[0], "secret-club-name", "warm-up")
	for _, r := range nodes {
		waitFor(t, "warm-up", func() bool { return len(groupTexts(t, r, "secret-club-name")) == 1 })
	}
	nodes[0].n.mu.Lock()
	var topic string
	for _, gs := range nodes[0].n.groups {
		topic = gs.eng.Topic()
	}
	nodes[0].n.mu.Unlock()

	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ps, err := pubsub.NewGossipSub(ctx, h, group.PubSubOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := ps.Join(topic)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := tp.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range nodes {
		if err := h.Connect(ctx, peer.AddrInfo{ID: r.n.host.ID(), Addrs: r.n.host.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	ri, err := relay.ParseRelayAddr(rl)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, ri); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the outsider on the relay's topic", func() bool { return slices.Contains(tp.ListPeers(), ri.ID) })
	time.Sleep(1500 * time.Millisecond) // a heartbeat, so publishers include it
	secret := "the eagle lands at noon"
	sendGroupEventually(t, nodes[1], "secret-club-name", secret)
	got, err := func() (*pubsub.Message, error) {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return sub.Next(c)
	}()
	if err != nil {
		t.Fatalf("the outsider received nothing: %v", err)
	}
	data := got.Data
	needles := []string{secret, "secret-club-name", "admin", "member1"}
	for _, r := range nodes {
		s, _ := r.n.Self()
		raw, _ := hex.DecodeString(s.Account)
		dev := r.n.cert.DeviceID()
		needles = append(needles, s.Account, string(raw), s.PeerID, string(dev[:]))
		r.n.mu.Lock()
		for id := range r.n.groups {
			needles = append(needles, string(id[:])) // the clear header of the wire inside
		}
		r.n.mu.Unlock()
	}
	for _, nd := range needles {
		if bytes.Contains(data, []byte(nd)) {
			t.Fatalf("the topic carries %q in clear", nd)
		}
	}
	if len(got.From) != 0 || len(got.Signature) != 0 || len(got.Seqno) != 0 || len(got.Key) != 0 {
		t.Fatal("pubsub messages carry an author, signature or seqno")
	}
	// Injected garbage and a replay are rejected by every member.
	for _, r := range nodes {
		waitFor(t, "the secret everywhere", func() bool { return len(groupTexts(t, r, "secret-club-name")) == 2 })
	}
	before := make([]int, len(nodes))
	for i, r := range nodes {
		before[i] = len(groupTexts(t, r, "secret-club-name"))
	}
	tp.Publish(ctx, []byte("garbage that is not a group message at all"))
	replay := append([]byte(nil), data...)
	nodes[2].n.onTopicData(replay) // straight into a member, as a relay could
	forged := append([]byte(nil), data...)
	forged[len(forged)-1] ^= 1 // a changed signature byte
	tp.Publish(ctx, forged)
	time.Sleep(time.Second)
	for i, r := range nodes {
		if n := len(groupTexts(t, r, "secret-club-name")); n != before[i] {
			t.Fatalf("member %d accepted an injected message (%d → %d)", i, before[i], n)
		}
	}
}

// A burst of messages loses nothing: every member ends with all of them.
func TestGroupBurst(t *testing.T) {
	nodes := makeGroup(t, 4, "burst")
	sendGroupEventually(t, nodes[0], "burst", "warm-up")
	burst := 1000
	if raceEnabled {
		burst = 100
	}
	for i := range burst {
		if _, err := nodes[0].n.SendGroup(context.Background(), GroupSendRequest{Group: "burst", Text: fmt.Sprintf("b%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range nodes[1:] {
		waitFor(t, fmt.Sprintf("the burst at member %d", i+1), func() bool { return len(groupTexts(t, r, "burst")) == burst+1 })
		got := groupTexts(t, r, "burst")
		for j := range burst {
			if !strings.HasSuffix(got[j+1], fmt.Sprintf(": b%03d", j)) {
				t.Fatalf("member %d: message %d is %q (order)", i+1, j, got[j+1])
			}
		}
	}
}

// Replies, edits, reactions and deletes work in groups as in 1:1; only
// the author may edit or delete.
func TestGroupMessageKinds(t *testing.T) {
	nodes := makeGroup(t, 3, "kinds")
	ctx := context.Background()
	m := sendGroupEventually(t, nodes[0], "kinds", "original")
	for _, r := range nodes {
		waitFor(t, "the message", func() bool { return len(groupTexts(t, r, "kinds")) == 1 })
	}
	if _, err := nodes[1].n.SendGroup(ctx, GroupSendRequest{Group: "kinds", Kind: KindEdit, Target: m.ID, Text: "hijacked"}); err == nil {
		t.Fatal("a member edited someone else's message")
	}
	steps := []GroupSendRequest{
		{Group: "kinds", Kind: KindReaction, Target: m.ID, Text: "🎉"},
		{Group: "kinds", Kind: KindReply, Target: m.ID, Text: "a reply"},
	}
	for _, s := range steps {
		if _, err := nodes[1].n.SendGroup(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nodes[0].n.SendGroup(ctx, GroupSendRequest{Group: "kinds", Kind: KindEdit, Target: m.ID, Text: "edited"}); err != nil {
		t.Fatal(err)
	}
	find := func(r *running, id string) Message {
		ms, _ := r.n.GroupMessages("kinds", 0)
		for _, x := range ms {
			if x.ID == id {
				return x
			}
		}
		return Message{}
	}
	waitFor(t, "edit, reaction and reply at member 2", func() bool {
		x := find(nodes[2], m.ID)
		ms, _ := nodes[2].n.GroupMessages("kinds", 0)
		return x.Edited && x.Text == "edited" && len(x.Reactions["🎉"]) == 1 && len(ms) == 2 && ms[1].ReplyTo == m.ID
	})
	if _, err := nodes[0].n.SendGroup(ctx, GroupSendRequest{Group: "kinds", Kind: KindDelete, Target: m.ID}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delete at member 1", func() bool { x := find(nodes[1], m.ID); return x.Deleted && x.Text == "" })
}

// A removed member's list shows the group as removed, not as a pending
// invitation, and accepting it says why it cannot (before: "pending",
// then "not invited").
func TestGroupRemovedIsNotPending(t *testing.T) {
	nodes := makeGroup(t, 3, "trio")
	if _, err := nodes[0].n.RemoveFromGroup("trio", "m2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removal at m2", func() bool { g, _ := groupOf(nodes[2], "trio"); return activeMembers(g) == 2 })
	g, _ := groupOf(nodes[2], "trio")
	if g.Pending || !g.Removed {
		t.Fatalf("removed member sees pending=%v removed=%v", g.Pending, g.Removed)
	}
	_, err := nodes[2].n.AcceptGroup("trio")
	if err == nil || !strings.Contains(err.Error(), "you were removed") {
		t.Fatalf("accepting a group one was removed from: %v", err)
	}
}

// A group send retried with the same client transaction ID returns the
// first message and publishes nothing more, as a 1:1 send does.
func TestGroupSendTxnID(t *testing.T) {
	nodes := makeGroup(t, 2, "pair")
	req := GroupSendRequest{Group: "pair", Text: "only once", TxnID: "client-42"}
	var first Message
	waitFor(t, "the group ready", func() bool {
		var err error
		first, err = nodes[0].n.SendGroup(context.Background(), req)
		return err == nil
	})
	again, err := nodes[0].n.SendGroup(context.Background(), req)
	if err != nil || again.ID != first.ID {
		t.Fatalf("retry: %+v %v, want message %s", again, err, first.ID)
	}
	waitFor(t, "the message at the member", func() bool { return len(groupTexts(t, nodes[1], "pair")) == 1 })
	if got := groupTexts(t, nodes[0], "pair"); len(got) != 1 {
		t.Fatalf("sender shows %q after a retried send", got)
	}
	// The same ID in another conversation is not this message.
	if _, err := nodes[0].n.Send(context.Background(), SendRequest{To: "m1", Text: "direct", TxnID: "client-42"}); err != nil {
		t.Fatal(err)
	}
}

// filedCount counts the group topic messages a relay filed, pushed live
// and dropped.
type filedCount struct {
	relay.NopMetrics
	n, pushed, dropped atomic.Int64
}

func (f *filedCount) TopicFiled(int)               { f.n.Add(1) }
func (f *filedCount) TopicPushed(int)              { f.pushed.Add(1) }
func (f *filedCount) TopicDropped(relay.ErrorCode) { f.dropped.Add(1) }

func (f *filedCount) String() string {
	return fmt.Sprintf("filed %d, pushed live %d, dropped %d", f.n.Load(), f.pushed.Load(), f.dropped.Load())
}
