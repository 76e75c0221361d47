package gossip

import (
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Lazy peering (docs/protocol/groups.md §16.11, "Peering"). The router
// learns of a connected peer from the host's identification events and
// then keeps a stream to it, a queue and three goroutines, whether or not
// the two share a topic. Through the guard it is told of a peer only once
// the peer may hear of a topic here (Members: the table lists it) or
// opened a GossipSub stream to this host; until then no GossipSub stream
// goes either way, and an idle connection (a contact, an owner on a
// relay) costs the router nothing. The guard filters the identification
// events the router subscribes to and tells it of a peer itself (an event
// of its own) when the peer becomes wanted or opens a stream.

// EventBus returns the host's event bus, through which the router sees
// only the peers it was told of.
func (g *Guard) EventBus() event.Bus { return &guardBus{Bus: g.Host.EventBus(), g: g} }

// SetStreamHandler sets the router's handler for its protocol: a peer
// that opens a GossipSub stream is told to the router first.
func (g *Guard) SetStreamHandler(pid protocol.ID, h network.StreamHandler) {
	g.Host.SetStreamHandler(pid, g.admitting(h))
}

// SetStreamHandlerMatch is SetStreamHandler for a matched protocol.
func (g *Guard) SetStreamHandlerMatch(pid protocol.ID, m func(protocol.ID) bool, h network.StreamHandler) {
	g.Host.SetStreamHandlerMatch(pid, m, g.admitting(h))
}

func (g *Guard) admitting(h network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		g.tell(s.Conn().RemotePeer())
		h(s)
	}
}

// Told reports whether the router was told of peer p (for tests).
func (g *Guard) Told(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.told[p]
}

// admit decides an identification event for p: it reaches the router
// if the router was told of p or p is wanted.
func (g *Guard) admit(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.told[p] {
		return true
	}
	if _, ok := (*g.wanted.Load())[p]; ok {
		g.told[p] = true
		return true
	}
	return false
}

// tell tells the router of p, once while p stays connected.
func (g *Guard) tell(p peer.ID) {
	g.mu.Lock()
	if g.told[p] {
		g.mu.Unlock()
		return
	}
	g.told[p] = true
	subs := make([]*peerSub, 0, len(g.subs))
	for s := range g.subs {
		subs = append(subs, s)
	}
	g.mu.Unlock()
	for _, s := range subs {
		select {
		case s.inject <- p:
		case <-s.closed:
		}
	}
}

// setWanted replaces the Members table's peers and tells the router of
// the connected ones it was not told of, on a goroutine of their own.
func (g *Guard) setWanted(m map[string]map[peer.ID]struct{}) {
	w := map[peer.ID]struct{}{}
	for _, set := range m {
		for p := range set {
			w[p] = struct{}{}
		}
	}
	g.wanted.Store(&w)
	var tell []peer.ID
	g.mu.Lock()
	for p := range w {
		if !g.told[p] && g.Host != nil && g.Host.Network().Connectedness(p) == network.Connected {
			tell = append(tell, p)
		}
	}
	g.mu.Unlock()
	if len(tell) > 0 {
		go func() {
			for _, p := range tell {
				g.tell(p)
			}
		}()
	}
}

type guardBus struct {
	event.Bus
	g *Guard
}

// Subscribe filters the subscriptions that carry identification events.
func (b *guardBus) Subscribe(evtTypes any, opts ...event.SubscriptionOpt) (event.Subscription, error) {
	sub, err := b.Bus.Subscribe(evtTypes, opts...)
	if err != nil || !namesPeerEvents(evtTypes) {
		return sub, err
	}
	s := &peerSub{Subscription: sub, g: b.g, out: make(chan any, 16), inject: make(chan peer.ID, 64), closed: make(chan struct{})}
	b.g.mu.Lock()
	b.g.subs[s] = struct{}{}
	b.g.mu.Unlock()
	go s.forward()
	return s, nil
}

func namesPeerEvents(evtTypes any) bool {
	list, ok := evtTypes.([]any)
	if !ok {
		list = []any{evtTypes}
	}
	for _, t := range list {
		switch t.(type) {
		case *event.EvtPeerIdentificationCompleted, *event.EvtPeerProtocolsUpdated:
			return true
		}
	}
	return false
}

// peerSub is a subscription of the router's with the identification
// events of peers it was not told of left out, and events of the
// guard's own for peers it is told of.
type peerSub struct {
	event.Subscription
	g      *Guard
	out    chan any
	inject chan peer.ID
	closed chan struct{}
	once   sync.Once
}

func (s *peerSub) Out() <-chan any { return s.out }

func (s *peerSub) Close() error {
	s.once.Do(func() {
		close(s.closed)
		s.g.mu.Lock()
		delete(s.g.subs, s)
		s.g.mu.Unlock()
	})
	return s.Subscription.Close()
}

func (s *peerSub) forward() {
	for {
		var ev any
		select {
		case e, ok := <-s.Subscription.Out():
			if !ok {
				close(s.out)
				return
			}
			if p, ok := eventPeer(e); ok && !s.g.admit(p) {
				continue
			}
			ev = e
		case p := <-s.inject:
			ev = event.EvtPeerIdentificationCompleted{Peer: p, Protocols: pubsub.GossipSubDefaultProtocols}
		case <-s.closed:
			return
		}
		select {
		case s.out <- ev:
		case <-s.closed:
			return
		}
	}
}

func eventPeer(e any) (peer.ID, bool) {
	switch e := e.(type) {
	case event.EvtPeerIdentificationCompleted:
		return e.Peer, true
	case event.EvtPeerProtocolsUpdated:
		return e.Peer, true
	}
	return "", false
}
