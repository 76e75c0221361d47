package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/node/group"
	"github.com/hushnet/hush/relay"
)

// pubsubStranger is a stock go-libp2p peer running stock GossipSub that joins
// every topic it hears of and counts what it receives.
type pubsubStranger struct {
	ps *pubsub.PubSub

	mu       sync.Mutex
	heard    []string // topics named to it, in any RPC
	received int      // messages on any topic
	joined   map[string]bool
}

func newPubsubStranger(t *testing.T, ctx context.Context) (*pubsubStranger, func(peer.AddrInfo)) {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	s := &pubsubStranger{joined: map[string]bool{}}
	topics := make(chan string, 1024)
	inspect := func(_ peer.ID, rpc *pubsub.RPC) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, so := range rpc.GetSubscriptions() {
			s.heard = append(s.heard, so.GetTopicid())
			topics <- so.GetTopicid()
		}
		for _, m := range rpc.GetPublish() {
			s.heard = append(s.heard, m.GetTopic())
			topics <- m.GetTopic()
		}
		for _, ih := range rpc.GetControl().GetIhave() {
			s.heard = append(s.heard, ih.GetTopicID())
			topics <- ih.GetTopicID()
		}
		return nil
	}
	// Stock options, plus what it needs to parse hush's messages at all.
	s.ps, err = pubsub.NewGossipSub(ctx, h, append(group.PubSubOptions(), pubsub.WithAppSpecificRpcInspector(inspect))...)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case name := <-topics:
				s.join(ctx, name)
			}
		}
	}()
	connect := func(pi peer.AddrInfo) {
		if err := h.Connect(ctx, pi); err != nil {
			t.Fatal(err)
		}
	}
	return s, connect
}

// join subscribes to a topic and counts its messages.
func (s *pubsubStranger) join(ctx context.Context, name string) {
	s.mu.Lock()
	if s.joined[name] {
		s.mu.Unlock()
		return
	}
	s.joined[name] = true
	s.mu.Unlock()
	tp, err := s.ps.Join(name)
	if err != nil {
		return
	}
	sub, err := tp.Subscribe()
	if err != nil {
		return
	}
	go func() {
		for {
			if _, err := sub.Next(ctx); err != nil {
				return
			}
			s.mu.Lock()
			s.received++
			s.mu.Unlock()
		}
	}()
}

func (s *pubsubStranger) counts() ([]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.heard), s.received
}

// Hardening finding 7: a stock libp2p peer that connects to every member
// and to the relay keeping their group store, speaks GossipSub with all of
// them and joins every topic it hears of, hears of none and receives
// nothing; a second one that knows the topic name (a former member's
// guess, say) and connects to the members only receives nothing either.
// Meanwhile the members and the relay exchange every message.
func TestStrangerHearsNoGroupTopic(t *testing.T) {
	filed := &filedCount{}
	cfg := relayCfg()
	cfg.Metrics = filed
	rl := startRelay(t, cfg)
	nodes := makeGroupOn(t, "quiet-club", []string{rl, rl, rl}, waitFor)
	sendGroupEventually(t, nodes[0], "quiet-club", "warm-up")
	for _, r := range nodes {
		waitFor(t, "warm-up", func() bool { return len(groupTexts(t, r, "quiet-club")) == 1 })
	}
	ri, err := relay.ParseRelayAddr(rl)
	if err != nil {
		t.Fatal(err)
	}
	var topic string
	nodes[0].n.mu.Lock()
	for _, gs := range nodes[0].n.groups {
		topic = gs.eng.Topic()
	}
	nodes[0].n.mu.Unlock()
	waitFor(t, "the members see the relay on the topic", func() bool {
		for _, r := range nodes {
			r.n.mu.Lock()
			ok := slices.Contains(r.n.ps.ListPeers(topic), ri.ID)
			r.n.mu.Unlock()
			if !ok {
				return false
			}
		}
		return true
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	blind, connectBlind := newPubsubStranger(t, ctx)
	knowing, connectKnowing := newPubsubStranger(t, ctx)
	knowing.join(ctx, topic)
	var all []peer.ID
	for _, r := range nodes {
		pi := peer.AddrInfo{ID: r.n.host.ID(), Addrs: r.n.host.Addrs()}
		connectBlind(pi)
		connectKnowing(pi)
		all = append(all, pi.ID)
	}
	connectBlind(ri)
	all = append(all, ri.ID)
	// Both speak GossipSub with everyone they dialled: the protocol is
	// open, what travels on it is filtered.
	waitFor(t, "the strangers' pubsub streams", func() bool {
		peers := blind.ps.ListPeers("")
		for _, id := range all {
			if !slices.Contains(peers, id) {
				return false
			}
		}
		return len(knowing.ps.ListPeers("")) >= len(nodes)
	})

	before := filed.pushed.Load()
	const count = 5
	for i := range count {
		sendGroupEventually(t, nodes[i%len(nodes)], "quiet-club", fmt.Sprintf("secret %d", i))
	}
	for _, r := range nodes {
		waitFor(t, "every message at every member", func() bool { return len(groupTexts(t, r, "quiet-club")) == 1+count })
	}
	// The relay's live pushes to the members: it heard every message.
	waitFor(t, "the relay hears every message", func() bool { return filed.pushed.Load() >= before+count })
	// Absence has no event: give the strangers two GossipSub heartbeats
	// (gossip is emitted on heartbeats) before looking.
	time.Sleep(2500 * time.Millisecond)
	for name, s := range map[string]*pubsubStranger{"blind": blind, "knowing": knowing} {
		heard, got := s.counts()
		if len(heard) != 0 || got != 0 {
			t.Errorf("%s stranger heard of %q and received %d messages", name, heard, got)
		}
	}
	if peers := knowing.ps.ListPeers(topic); len(peers) != 0 {
		t.Errorf("the knowing stranger sees %v on the topic", peers)
	}
}

// A member that leaves tells the others on the group's topic, which its
// guard keeps open to them for the last op although the group is gone
// from its list.
func TestGroupLeaveSeenByMembers(t *testing.T) {
	nodes := makeGroup(t, 3, "leavers")
	sendGroupEventually(t, nodes[2], "leavers", "before leaving")
	for _, r := range nodes {
		waitFor(t, "the message", func() bool { return len(groupTexts(t, r, "leavers")) == 1 })
	}
	if err := nodes[2].n.LeaveGroup("leavers"); err != nil {
		t.Fatal(err)
	}
	for _, r := range nodes[:2] {
		waitFor(t, "the leave seen", func() bool { g, _ := groupOf(r, "leavers"); return activeMembers(g) == 2 })
	}
}
