package node

import (
	"context"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/node/group"
)

// The topics of the group runner: GossipSub subscriptions per group and
// epoch, publications after a commit, and connections to members and
// their relays.

// publication is a group wire message to publish after its commit.
type publication struct {
	topic string
	data  []byte
}

// publishAll sends publications; it runs after their commit, without the
// lock. Members that are offline get them from their relays' group store
// or by anti-entropy when they return.
func (n *Node) publishAll(ctx context.Context, pubs []publication) {
	n.mu.Lock()
	handles := make([]*pubsub.Topic, len(pubs))
	for i, p := range pubs {
		handles[i] = n.topicLocked(p.topic)
	}
	n.mu.Unlock()
	for i, p := range pubs {
		if handles[i] != nil {
			if err := handles[i].Publish(ctx, p.data); err != nil {
				n.log.Debug("group publish failed", "err", err)
			}
		}
	}
}

// topicLocked returns the joined handle of a topic. A topic this device
// no longer subscribes to (the last op after leaving) is joined for the
// publication only.
func (n *Node) topicLocked(name string) *pubsub.Topic {
	if n.ps == nil || name == "" {
		return nil
	}
	for _, gs := range n.groups {
		if jt := gs.topics[name]; jt != nil {
			return jt.t
		}
	}
	if tp := n.tempTopics[name]; tp != nil {
		return tp
	}
	tp, err := n.ps.Join(name)
	if err != nil {
		return nil
	}
	n.tempTopics[name] = tp
	n.loops.Go(func(ctx context.Context) { // leave it once the message had time to go out
		select {
		case <-time.After(30 * time.Second):
		case <-ctx.Done():
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.tempTopics[name] == tp {
			delete(n.tempTopics, name)
			tp.Close()
		}
	})
	return tp
}

// syncTopicsLocked subscribes to the group's current topics and leaves
// the ones it no longer uses; on joining a topic it connects to the
// members' devices so the mesh forms.
func (n *Node) syncTopicsLocked(gs *groupState) {
	if n.ps == nil || !n.loops.Running() || gs.topics == nil {
		return
	}
	want := map[string]bool{}
	if gs.eng.IsMember() {
		for _, name := range gs.eng.Topics() {
			want[name] = true
		}
	}
	for name, jt := range gs.topics {
		if !want[name] {
			jt.cancel()
			delete(gs.topics, name)
			n.topicsChangedLocked()
		}
	}
	joined := false
	for name := range want {
		if gs.topics[name] != nil {
			continue
		}
		// The validator only reads framing (no I/O, no cryptography), so
		// it runs inline in the router's validation worker: an async one
		// costs each received message a goroutine and a timeout context.
		if err := n.ps.RegisterTopicValidator(name, group.Validator, pubsub.WithValidatorInline(true)); err != nil {
			n.log.Debug("group topic validator", "err", err)
		}
		tp := n.tempTopics[name] // joined for a publication: adopt it
		delete(n.tempTopics, name)
		var err error
		if tp == nil {
			tp, err = n.ps.Join(name)
		}
		if err != nil {
			n.log.Debug("join group topic", "err", err)
			continue
		}
		sub, err := tp.Subscribe()
		if err != nil {
			tp.Close()
			continue
		}
		ctx, cancel, ok := n.loops.Child()
		if !ok {
			sub.Cancel()
			tp.Close()
			return
		}
		gs.topics[name] = &joinedTopic{t: tp, cancel: func() {
			cancel()
			sub.Cancel()
			tp.Close()
			n.ps.UnregisterTopicValidator(name)
		}}
		id := gs.eng.ID()
		n.loops.Go(func(context.Context) { n.readTopic(ctx, id, sub) })
		joined = true
	}
	n.connectRelaysLocked(gs)
	if joined {
		n.topicsChangedLocked()
		n.connectMembersLocked(gs)
		// Whatever was published before this subscription is fetched
		// from the members.
		id := gs.eng.ID()
		n.loops.Go(func(context.Context) { n.askSyncNow(id) })
	}
}

// connectMembersLocked dials the members' devices and their relays in
// the background (on joining a topic, and with each anti-entropy round).
func (n *Node) connectMembersLocked(gs *groupState) {
	if n.host == nil || !n.loops.Running() {
		return
	}
	var peers []peer.AddrInfo
	for _, m := range gs.eng.State().Members {
		for _, d := range m.Devices {
			if pid, ok := n.peerOfLocked(d); ok && pid != n.host.ID() {
				peers = append(peers, peer.AddrInfo{ID: pid})
			}
		}
	}
	n.dialLocked(peers)
	n.connectRelaysLocked(gs)
}

// connectRelaysLocked dials the relays the members' cards list, at most
// maxGroupRelays, each at most once per relayRedial. A member's relay
// keeps a group store for it (docs/RELAY.md): it must be in the topic's
// mesh while the member is away, so members stay connected to it (the
// connections are protected from the connection manager). It runs
// whenever the groups change, so a new member's relay is dialed as soon
// as its card is known.
func (n *Node) connectRelaysLocked(gs *groupState) {
	n.guardChangedLocked()
	if n.host == nil || !n.loops.Running() || !gs.eng.IsMember() {
		return
	}
	now := n.now()
	seen := map[peer.ID]bool{}
	var dial []peer.AddrInfo
	for _, m := range gs.eng.State().Members {
		for _, d := range m.Devices {
			cc := n.cardOfDeviceLocked(d)
			if cc == nil {
				continue
			}
			cd := cc.Device(d)
			if cd == nil {
				continue
			}
			for _, mb := range cd.Mailboxes {
				ri, _, err := relayInfo(mb)
				if err != nil || seen[ri.ID] || len(seen) == maxGroupRelays {
					continue
				}
				seen[ri.ID] = true
				if n.host.Network().Connectedness(ri.ID) == network.Connected || now.Sub(n.relayDialed[ri.ID]) < relayRedial {
					continue
				}
				n.relayDialed[ri.ID] = now
				n.host.ConnManager().Protect(ri.ID, groupRelayTag)
				dial = append(dial, ri)
			}
		}
	}
	n.dialLocked(dial)
}

// dialLocked connects to peers that are not connected, in the background.
func (n *Node) dialLocked(peers []peer.AddrInfo) {
	h := n.host
	if h == nil {
		return
	}
	for _, pi := range peers {
		if h.Network().Connectedness(pi.ID) == network.Connected {
			continue
		}
		n.loops.Go(func(ctx context.Context) {
			cctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			h.Connect(cctx, pi)
		})
	}
}

// maxGroupRelays caps the member relays a node stays connected to for
// one group; groupRelayTag protects those connections from the
// connection manager.
const (
	maxGroupRelays = 32
	groupRelayTag  = "hush-group-relay"
	relayRedial    = 10 * time.Second
)
