package node

import (
	"maps"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/crypto/card"
)

// Who may hear of a group topic (docs/protocol/groups.md §16.11): the
// guard GossipSub runs on (internal/gossip.Guard) removes every mention of
// a topic from what goes to a peer not in this table.

// guardTableLocked lists, for each topic of each group this device holds,
// the peers that may hear of it: the peers of the members'
// devices, the relays those devices list as mailboxes, and this device's
// own relays.
func (n *Node) guardTableLocked() map[string][]peer.ID {
	table := map[string][]peer.ID{}
	own := n.ownRelayPeersLocked()
	now := time.Now()
	for t, p := range n.parting {
		if now.After(p.until) {
			delete(n.parting, t)
			continue
		}
		table[t] = p.peers
	}
	// A group this device was removed from stays in the table while it
	// stays in n.groups.
	for _, gs := range n.groups {
		ids := n.groupPeersLocked(gs, own)
		for _, t := range gs.eng.Topics() {
			table[t] = ids
		}
	}
	return table
}

// groupPeersLocked lists the peers that may hear of a group's topics,
// sorted: own relays, the members' devices and their relays.
func (n *Node) groupPeersLocked(gs *groupState, own []peer.ID) []peer.ID {
	set := map[peer.ID]bool{}
	for _, id := range own {
		set[id] = true
	}
	for _, m := range gs.eng.State().Members {
		for _, d := range m.Devices {
			if pid, ok := n.peerOfLocked(d); ok {
				set[pid] = true
			}
			if c := n.cardOfDeviceLocked(d); c != nil {
				if cd := c.Device(d); cd != nil {
					addRelays(set, cd.Mailboxes)
				}
			}
		}
	}
	delete(set, n.hostID())
	return slices.Sorted(maps.Keys(set))
}

// ownRelayPeersLocked lists the relays this device keeps mailboxes on.
func (n *Node) ownRelayPeersLocked() []peer.ID {
	var own []peer.ID
	for _, mb := range n.ownMailboxesLocked() {
		if ri, _, err := relayInfo(mb); err == nil {
			own = append(own, ri.ID)
		}
	}
	return own
}

// partLocked keeps a group's topics in the guard's table for partingTime
// after the group is forgotten (left or declined): its last op goes out
// on them after the commit (topicLocked joins them for that). It is
// called before the op, while the engine still names the topics.
func (n *Node) partLocked(gs *groupState) {
	ids := n.groupPeersLocked(gs, n.ownRelayPeersLocked())
	until := time.Now().Add(partingTime)
	for _, t := range gs.eng.Topics() {
		n.parting[t] = partingTopic{peers: ids, until: until}
	}
}

// partingTopic is a forgotten group's topic still in the guard's table.
type partingTopic struct {
	peers []peer.ID
	until time.Time
}

// partingTime is how long a forgotten group's topics stay in the table:
// as long as topicLocked keeps a topic joined for a last publication.
const partingTime = 30 * time.Second

func addRelays(set map[peer.ID]bool, boxes []card.Mailbox) {
	for _, mb := range boxes {
		if ri, _, err := relayInfo(mb); err == nil {
			set[ri.ID] = true
		}
	}
}

// guardChangedLocked recomputes the guard's table after the groups, their
// members or the cards this device holds changed, and hands it to the
// guard when it differs from the last one.
func (n *Node) guardChangedLocked() {
	if n.guard == nil {
		return
	}
	if n.guardHold {
		n.guardDirty = true
		return
	}
	table := n.guardTableLocked()
	if maps.EqualFunc(table, n.guardTable, slices.Equal) {
		return
	}
	n.guardTable = table
	n.guard.SetTopicPeers(table)
}

// hostID is this device's libp2p identity, or "" before Run.
func (n *Node) hostID() peer.ID {
	if n.host == nil {
		return ""
	}
	return n.host.ID()
}

// guardBatchLocked runs fn, which may change many groups (a commit's
// after-effects walk every group), and rebuilds the guard's table once
// at the end instead of once per group, still before the lock is let go.
func (n *Node) guardBatchLocked(fn func()) {
	if n.guardHold { // nested: the outer call rebuilds
		fn()
		return
	}
	n.guardHold = true
	fn()
	n.guardHold = false
	if n.guardDirty {
		n.guardDirty = false
		n.guardChangedLocked()
	}
}
