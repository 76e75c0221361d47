package node

import (
	"sync"
	"time"

	"github.com/hushnet/hush/api/apitypes"
)

// Health is the API's.
type Health = apitypes.Health

// storeHealth remembers whether the store's commits are failing: every
// commit reports to it. It answers Health, and it bounds the log: a
// failing store logs its error when the failures begin and then at most
// once a minute, instead of once per retry. A part with its own lock.
type storeHealth struct {
	mu     sync.Mutex
	err    error
	since  time.Time // first failure of the current run of failures
	logged time.Time // last failure logged
}

// storeLogEvery is the most often a store that keeps failing is logged.
const storeLogEvery = time.Minute

// commitDone records a commit's outcome.
func (h *storeHealth) commitDone(err error, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.err = nil
		return
	}
	if h.err == nil {
		h.since = now
	}
	h.err = err
}

// logNow reports whether a failure should be logged now: the first of a
// run of failures, then at most once per storeLogEvery.
func (h *storeHealth) logNow(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now.Sub(h.logged) < storeLogEvery {
		return false
	}
	h.logged = now
	return true
}

func (h *storeHealth) health() Health {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil {
		return Health{Status: "ok"}
	}
	since := h.since
	return Health{Status: "failing", Error: h.err.Error(), Since: &since}
}

// Health reports whether the store takes commits: "failing" while the
// last commit failed (a full disk, a broken store), "ok" again after the
// next commit succeeds.
func (n *Node) Health() Health {
	h := n.storeHealth.health()
	h.History = n.historyProgress()
	h.DroppedRequests, h.DroppedRequestMessages = n.reqDrops.first.Load(), n.reqDrops.messages.Load()
	h.PresenceRounds = n.presence.beats.Load()
	return h
}

// logStoreError logs a failed commit, unless the store has been failing
// and was logged less than storeLogEvery ago.
func (n *Node) logStoreError(msg string, err error, args ...any) {
	now := time.Now()
	n.storeHealth.commitDone(err, now)
	if n.storeHealth.logNow(now) {
		n.log.Error(msg, append(args, "err", err)...)
	}
}
