package gossip

import (
	"context"
	"sync"
	"sync/atomic"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Mode says how a Guard decides which peers may hear of a topic.
type Mode int

const (
	// Members allows the peers SetTopicPeers lists for each topic (a
	// group member's node: the group's member devices and their relays).
	Members Mode = iota
	// Echo allows a peer to hear of a topic once it announced the topic
	// itself (a relay, which cannot tell members from strangers; topic
	// names are secrets of the epoch).
	Echo
)

// MaxHeardTopics caps the topics an Echo guard remembers per peer; a
// peer announcing more is not told of the rest.
const MaxHeardTopics = 1024

// Guard is the host GossipSub is given (docs/protocol/groups.md §16.11).
// It wraps each stream the router opens and removes, from every RPC frame
// written to it, the entries that name a topic the remote peer may not
// hear of: subscriptions, messages, IHAVE, GRAFT, PRUNE and partial
// messages. When a connected peer becomes allowed (or stops being), it
// writes the subscriptions the router meant to announce to it (or their
// withdrawal) itself. Options gives the router the matching peer filter.
type Guard struct {
	host.Host
	mode Mode

	// topicPeers is the Members table: topic → allowed peers.
	topicPeers atomic.Pointer[map[string]map[peer.ID]struct{}]

	// wanted is every peer the Members table lists (peering.go).
	wanted atomic.Pointer[map[peer.ID]struct{}]

	// mu guards streams, heard, told and subs.
	mu      sync.Mutex
	streams map[peer.ID]*guardedStream  // the router's current stream per peer
	heard   map[peer.ID]map[string]bool // Echo: topics each peer announced
	told    map[peer.ID]bool            // peers the router was told of (peering.go)
	subs    map[*peerSub]struct{}       // the router's filtered event subscriptions
}

// NewGuard wraps h for GossipSub in the given mode. It does no I/O; it
// forgets what a peer announced when the peer's last connection closes.
func NewGuard(h host.Host, mode Mode) *Guard {
	g := newGuard(h, mode)
	h.Network().Notify(&network.NotifyBundle{DisconnectedF: func(nw network.Network, c network.Conn) {
		p := c.RemotePeer()
		if nw.Connectedness(p) == network.Connected {
			return
		}
		g.mu.Lock()
		delete(g.heard, p)
		delete(g.told, p) // told again when it is wanted or opens a stream
		g.mu.Unlock()
	}})
	return g
}

func newGuard(h host.Host, mode Mode) *Guard {
	g := &Guard{Host: h, mode: mode, streams: map[peer.ID]*guardedStream{}, heard: map[peer.ID]map[string]bool{},
		told: map[peer.ID]bool{}, subs: map[*peerSub]struct{}{}}
	empty := map[string]map[peer.ID]struct{}{}
	g.topicPeers.Store(&empty)
	none := map[peer.ID]struct{}{}
	g.wanted.Store(&none)
	return g
}

// Options returns the pubsub options that go with the guard: the peer
// filter (no GRAFT or gossip with a peer that may not hear of the topic)
// and the subscription hook an Echo guard learns from.
func (g *Guard) Options() []pubsub.Option {
	return []pubsub.Option{pubsub.WithPeerFilter(g.Allowed), pubsub.WithSubscriptionFilter(g)}
}

// Allowed reports whether peer p may hear of topic.
func (g *Guard) Allowed(p peer.ID, topic string) bool {
	if g.mode == Echo {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.heard[p][topic]
	}
	_, ok := (*g.topicPeers.Load())[topic][p]
	return ok
}

// allowed is Allowed for a topic read from a frame, without a copy of it.
func (g *Guard) allowed(p peer.ID, topic []byte) bool {
	if g.mode == Echo {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.heard[p][string(topic)]
	}
	_, ok := (*g.topicPeers.Load())[string(topic)][p]
	return ok
}

// SetTopicPeers replaces the Members table: for each topic, the peers
// that may hear of it. Connected peers whose rights changed are told (or
// untold) at once, on a goroutine of their own.
func (g *Guard) SetTopicPeers(table map[string][]peer.ID) {
	m := make(map[string]map[peer.ID]struct{}, len(table))
	for t, ps := range table {
		set := make(map[peer.ID]struct{}, len(ps))
		for _, p := range ps {
			set[p] = struct{}{}
		}
		m[t] = set
	}
	g.topicPeers.Store(&m)
	g.setWanted(m)
	g.mu.Lock()
	streams := make([]*guardedStream, 0, len(g.streams))
	for _, s := range g.streams {
		streams = append(streams, s)
	}
	g.mu.Unlock()
	for _, s := range streams {
		s.refreshLater()
	}
}

// CanSubscribe is part of pubsub.SubscriptionFilter: this node may join
// any topic.
func (g *Guard) CanSubscribe(string) bool { return true }

// FilterIncomingSubscriptions is part of pubsub.SubscriptionFilter. It
// keeps every subscription (the wire filter, not the router's view,
// decides what a peer hears); an Echo guard learns from it which topics
// the peer knows, and tells the peer of its own subscriptions to them.
func (g *Guard) FilterIncomingSubscriptions(p peer.ID, subs []*pb.RPC_SubOpts) ([]*pb.RPC_SubOpts, error) {
	if g.mode != Echo {
		return subs, nil
	}
	changed := false
	g.mu.Lock()
	h := g.heard[p]
	for _, so := range subs {
		t := so.GetTopicid()
		switch {
		case so.GetSubscribe() && !h[t] && len(h) < MaxHeardTopics:
			if h == nil {
				h = map[string]bool{}
				g.heard[p] = h
			}
			h[t], changed = true, true
		case !so.GetSubscribe() && h[t]:
			delete(h, t)
			changed = true
		}
	}
	s := g.streams[p]
	g.mu.Unlock()
	if changed && s != nil {
		s.refreshLater()
	}
	return subs, nil
}

// NewStream opens a stream as the host does and wraps it.
func (g *Guard) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := g.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	gs := &guardedStream{Stream: s, g: g, peer: p, meant: map[string]bool{}, told: map[string]bool{}}
	g.mu.Lock()
	g.streams[p] = gs
	g.mu.Unlock()
	return gs, nil
}

// drop forgets s if it is still p's current stream.
func (g *Guard) drop(s *guardedStream) {
	g.mu.Lock()
	if g.streams[s.peer] == s {
		delete(g.streams, s.peer)
	}
	g.mu.Unlock()
}

// guardedStream is one outbound router stream with its frame filter.
type guardedStream struct {
	network.Stream
	g       *Guard
	peer    peer.ID
	pending atomic.Bool // a refresh is scheduled

	// mu guards the fields below and serialises writes to the stream.
	mu    sync.Mutex
	buf   []byte          // the start of a frame not yet complete
	meant map[string]bool // topics the router announced to the peer
	told  map[string]bool // of those, the ones the peer was told of
}

// Write filters the RPC frames in b and writes what is left. Frames may
// arrive split across calls; the router writes whole ones.
func (s *guardedStream) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data := b
	if len(s.buf) > 0 {
		s.buf = append(s.buf, b...)
		data = s.buf
	}
	// out is nil while every frame so far goes out as it came: then the
	// frames are written from data itself, without a copy (the usual
	// case: one whole frame per call, for a peer allowed its topic).
	var out []byte
	whole := data
	for len(data) > 0 {
		size, n := consumeUvarint(data)
		if n == 0 || uint64(len(data)-n) < size {
			break // an incomplete frame: wait for the rest
		}
		frame := data[:n+int(size)]
		kept, same := filterRPC(frame[n:], s.allowEntryLocked)
		if !same && out == nil {
			out = append(make([]byte, 0, len(whole)), whole[:len(whole)-len(data)]...)
		}
		switch {
		case same && out != nil:
			out = append(out, frame...)
		case !same && len(kept) > 0:
			out = appendUvarint(out, uint64(len(kept)))
			out = append(out, kept...)
		}
		data = data[len(frame):]
	}
	if out == nil {
		out = whole[:len(whole)-len(data)]
	}
	if len(out) > 0 {
		if _, err := s.Stream.Write(out); err != nil {
			return 0, err
		}
	}
	// Only now: out and data may both lie in s.buf.
	s.buf = append(s.buf[:0], data...)
	return len(b), nil
}

// allowEntryLocked decides one topic entry of a frame to the peer and
// keeps the bookkeeping of announced subscriptions.
func (s *guardedStream) allowEntryLocked(kind entryKind, topic []byte) bool {
	switch kind {
	case entrySubscribe:
		s.meant[string(topic)] = true
		if s.g.allowed(s.peer, topic) {
			s.told[string(topic)] = true
			return true
		}
		return false
	case entryUnsubscribe:
		delete(s.meant, string(topic))
		was := s.told[string(topic)]
		delete(s.told, string(topic))
		return was
	}
	return s.g.allowed(s.peer, topic)
}

// refreshLater schedules refresh on a goroutine of its own: it writes to
// the stream, which must never block the router's event loop.
func (s *guardedStream) refreshLater() {
	if s.pending.CompareAndSwap(false, true) {
		go func() {
			s.pending.Store(false)
			s.refresh()
		}()
	}
}

// refresh tells the peer of the subscriptions the router meant for it
// and it may now hear of, and withdraws the ones it may no longer hear
// of.
func (s *guardedStream) refresh() {
	s.mu.Lock()
	defer s.mu.Unlock()
	var body []byte
	for t := range s.meant {
		if !s.told[t] && s.g.Allowed(s.peer, t) {
			s.told[t] = true
			body = appendSubOpts(body, t, true)
		}
	}
	for t := range s.told {
		if !s.g.Allowed(s.peer, t) {
			delete(s.told, t)
			body = appendSubOpts(body, t, false)
		}
	}
	if len(body) == 0 {
		return
	}
	frame := appendUvarint(nil, uint64(len(body)))
	if _, err := s.Stream.Write(append(frame, body...)); err != nil {
		s.Reset() // forgotten here; the router sees the stream die
	}
}

// Close and Reset forget the stream before closing it.
func (s *guardedStream) Close() error {
	s.g.drop(s)
	return s.Stream.Close()
}

func (s *guardedStream) Reset() error {
	s.g.drop(s)
	return s.Stream.Reset()
}
