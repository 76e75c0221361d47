package gossip

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

type router struct {
	h  host.Host
	g  *Guard
	ps *pubsub.PubSub
}

func newRouter(t *testing.T, ctx context.Context, mode Mode) *router {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	g := NewGuard(h, mode)
	ps, err := pubsub.NewGossipSub(ctx, g, append(Options(), g.Options()...)...)
	if err != nil {
		t.Fatal(err)
	}
	return &router{h: h, g: g, ps: ps}
}

func connect(t *testing.T, a, b *router) {
	t.Helper()
	if err := a.h.Connect(context.Background(), peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// gossipStreams counts a's open GossipSub streams with b, both ways.
func gossipStreams(a, b *router) int {
	n := 0
	for _, c := range a.h.Network().ConnsToPeer(b.h.ID()) {
		for _, s := range c.GetStreams() {
			if slices.Contains(pubsub.GossipSubDefaultProtocols, s.Protocol()) {
				n++
			}
		}
	}
	return n
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Lazy peering: connected routers that share no topic keep no GossipSub
// stream; a member that lists a relay for a topic opens one, the relay
// (Echo) answers with its own, and the topic's messages reach it. A
// third router connected to both and listed by neither stays out.
func TestPeeringOnlyWithWantedPeers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	member, other, relay := newRouter(t, ctx, Members), newRouter(t, ctx, Members), newRouter(t, ctx, Echo)
	connect(t, member, relay)
	connect(t, other, relay)
	connect(t, other, member)

	// A member that wants another peer: the pair's streams are the sign
	// that identification went round, for the pairs that must have none.
	probe := newRouter(t, ctx, Members)
	connect(t, probe, member)
	probe.g.SetTopicPeers(map[string][]peer.ID{topicB: {member.h.ID()}})
	waitUntil(t, "the probe's streams with the member", func() bool { return gossipStreams(probe, member) == 2 })
	for _, pair := range [][2]*router{{member, relay}, {other, relay}, {other, member}} {
		if n := gossipStreams(pair[0], pair[1]); n != 0 {
			t.Fatalf("%d GossipSub streams between peers sharing no topic", n)
		}
	}
	if relay.g.Told(member.h.ID()) || relay.g.Told(other.h.ID()) {
		t.Fatal("the relay's router was told of a peer that opened no stream")
	}

	rt, err := relay.ps.Join(topicA)
	if err != nil {
		t.Fatal(err)
	}
	rsub, err := rt.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	member.g.SetTopicPeers(map[string][]peer.ID{topicA: {relay.h.ID()}, topicB: {probe.h.ID()}})
	mt, err := member.ps.Join(topicA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mt.Subscribe(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the member's and the relay's streams", func() bool { return gossipStreams(member, relay) == 2 })
	waitUntil(t, "the relay on the member's topic", func() bool { return slices.Contains(mt.ListPeers(), relay.h.ID()) })
	if err := mt.Publish(ctx, []byte{TagVersion, TagKind, 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	if m, err := rsub.Next(rctx); err != nil || m.Data[2] != 1 {
		t.Fatalf("the relay got %v, %v", m, err)
	}
	if n := gossipStreams(other, relay) + gossipStreams(other, member); n != 0 {
		t.Fatalf("%d GossipSub streams of the peer no one lists", n)
	}

	// A reconnection: the wanted relay is told again.
	member.h.Network().ClosePeer(relay.h.ID())
	waitUntil(t, "the member's streams with the relay gone", func() bool { return gossipStreams(member, relay) == 0 })
	connect(t, member, relay)
	waitUntil(t, "the streams after the reconnection", func() bool { return gossipStreams(member, relay) == 2 })
}
