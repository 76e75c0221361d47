package relay

import (
	"log/slog"
	"sync"
	"time"
)

// creationLimits bounds mailbox creation in the open mode, where a
// mailbox costs nothing but a key pair: the mailboxes one peer and one
// network (ipKey) created that the relay still holds, and the rate of
// creations per network. Its counts live in memory only: the relay stores
// no creator's peer or address, so the mailboxes loaded at start count
// towards nobody, and a restart gives every network its full count again
// (the rate still bounds how fast it is used).
type creationLimits struct {
	maxPerPeer, maxPerIP int
	rate                 *limiter // creations per network
	now                  func() time.Time
	log                  *slog.Logger
	m                    Metrics
	logged               logLimit

	// mu guards the counts.
	mu     sync.Mutex
	byPeer map[string]int
	byIP   map[string]int
}

func newCreationLimits(cfg Config) *creationLimits {
	return &creationLimits{
		maxPerPeer: cfg.MaxMailboxesPerPeer, maxPerIP: cfg.MaxMailboxesPerIP,
		rate: newLimiter(cfg.CreateIPPerHour/3600, cfg.CreateIPBurst),
		now:  cfg.Now, log: cfg.Logger, m: cfg.Metrics,
		byPeer: make(map[string]int), byIP: make(map[string]int),
	}
}

// reserve counts one creation by peer from network ip, or refuses it:
// Quota when either holds its maximum of mailboxes, RateLimited when the
// network creates too fast. A reservation whose mailbox is not created is
// given back with release.
func (cl *creationLimits) reserve(peer, ip string) *reqErr {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var rerr *reqErr
	switch {
	case cl.byPeer[peer] >= cl.maxPerPeer:
		rerr = fail(CodeQuota, "this peer holds as many mailboxes as this relay allows one peer")
	case cl.byIP[ip] >= cl.maxPerIP:
		rerr = fail(CodeQuota, "your network holds as many mailboxes as this relay allows one network")
	case !cl.rate.allow(ip, cl.now()):
		rerr = fail(CodeRateLimited, "your network creates mailboxes too fast; retry later")
	}
	if rerr != nil {
		cl.m.CreateRefused(rerr.code)
		if cl.logged.allow() {
			cl.log.Warn("mailbox creation refused: a peer or network reached its limit",
				"reason", rerr.code.String(), "max_mailboxes_per_ip", cl.maxPerIP,
				"max_mailboxes_per_peer", cl.maxPerPeer)
		}
		return rerr
	}
	cl.byPeer[peer]++
	cl.byIP[ip]++
	return nil
}

// release forgets one mailbox created by peer from network ip (deleted,
// or its creation failed). Mailboxes loaded at start have no creator and
// are not released.
func (cl *creationLimits) release(peer, ip string) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.byPeer[peer]--; cl.byPeer[peer] <= 0 {
		delete(cl.byPeer, peer)
	}
	if cl.byIP[ip]--; cl.byIP[ip] <= 0 {
		delete(cl.byIP, ip)
	}
}

// sweep forgets the rate buckets that have refilled.
func (cl *creationLimits) sweep(now time.Time) { cl.rate.sweep(now) }
