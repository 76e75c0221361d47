package relay

import (
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fileBudget bounds what one publishing peer, and one network, may file
// into the group store: anyone who reaches the relay may publish on a
// watched topic, and the relay cannot tell a member's message from
// garbage, so without it one stranger could fill the topic share
// (topicShare) of every offline owner watching the topic. One token files
// one message into one mailbox; a message handed to an online owner's
// live subscription costs nothing (it is not stored). The publishing peer
// is the GossipSub peer the message came from (members flood-publish
// their own messages, so that is usually the author; a message forwarded
// by a mesh peer is charged to the forwarder). The buckets live in memory
// only.
type fileBudget struct {
	h        host.Host
	peer, ip *limiter
	now      func() time.Time
	log      *slog.Logger
	logged   logLimit
}

func newFileBudget(h host.Host, cfg Config) *fileBudget {
	return &fileBudget{h: h, now: cfg.Now, log: cfg.Logger,
		peer: newLimiter(cfg.TopicFileRate, cfg.TopicFileBurst),
		ip:   newLimiter(cfg.TopicFileIPRate, cfg.TopicFileIPBurst)}
}

// filingPayer is the publisher of one topic message, with its budget
// keys resolved once for all the mailboxes the message is filed into.
type filingPayer struct {
	b        *fileBudget
	peer, ip string // ip is "" when the peer's address is not known
	now      time.Time
}

// payer returns the payer of a message that came from p.
func (b *fileBudget) payer(p peer.ID) filingPayer {
	ip := ""
	if b.h != nil {
		for _, c := range b.h.Network().ConnsToPeer(p) {
			if ip = ipKeyOf(c.RemoteMultiaddr()); ip != "" {
				break
			}
		}
	}
	return filingPayer{b: b, peer: string(p), ip: ip, now: b.now()}
}

// take takes one filing from the publisher's and its network's buckets,
// reporting false (and logging, at most once a minute) when either is
// empty.
func (p filingPayer) take() bool {
	b := p.b
	if !b.peer.allow(p.peer, p.now) {
		b.refused("peer")
		return false
	}
	if p.ip != "" && !b.ip.allow(p.ip, p.now) {
		b.peer.refund(p.peer)
		b.refused("network")
		return false
	}
	return true
}

// refund gives back a filing taken by take that did not happen (the
// mailbox refused the message).
func (p filingPayer) refund() {
	p.b.peer.refund(p.peer)
	if p.ip != "" {
		p.b.ip.refund(p.ip)
	}
}

func (b *fileBudget) refused(by string) {
	if b.logged.allow() {
		b.log.Warn("group-store filing refused: a publishing peer or network filed as much as it may", "budget", by)
	}
}

// sweep forgets the buckets that have refilled.
func (b *fileBudget) sweep(now time.Time) {
	b.peer.sweep(now)
	b.ip.sweep(now)
}
