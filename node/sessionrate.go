package node

import (
	"cmp"
	"sync"
	"time"

	"github.com/hushnet/hush/crypto/identity"
)

// sessionRate limits the new sessions this device accepts: from strangers
// (accounts it holds no card for and that are in none of its groups,
// whose first messages become message requests) all together, and from
// each account it knows. Each new
// session is what uses up a one-time prekey or adds a replay-cache entry
// for the last-resort prekey (crypto/pqxdh); at these rates the cache
// cannot reach its memory bound within the 44 days its entries live
// (20 an hour for 44 days is 21,120 of 65,536), so no outsider can make
// the device refuse first messages for weeks, only for the rest of an
// hour in which it spent the strangers' budget. A part with its own
// lock; the counts are in memory (a restart refills them).
type sessionRate struct {
	mu        sync.Mutex
	strangers bucket
	accounts  map[identity.AccountID]*bucket
	// strangerBurst, when a test sets it, replaces strangerSessions.
	strangerBurst int
}

// New-session limits: a burst, refilled at the same number an hour.
const (
	strangerSessions = 20 // an hour, from all strangers together
	accountSessions  = 10 // an hour, from one known account
	maxRateAccounts  = 4096
)

type bucket struct {
	tokens float64
	last   time.Time
}

// take spends one of up to burst tokens refilled at burst an hour.
func (b *bucket) take(now time.Time, burst int) bool {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else if d := now.Sub(b.last); d > 0 {
		b.tokens = min(float64(burst), b.tokens+d.Hours()*float64(burst))
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func newSessionRate() *sessionRate {
	return &sessionRate{accounts: make(map[identity.AccountID]*bucket)}
}

// allow reports whether a new session from acc may open now (stranger:
// no card of acc is held) and counts it.
func (r *sessionRate) allow(acc identity.AccountID, stranger bool, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if stranger {
		return r.strangers.take(now, cmp.Or(r.strangerBurst, strangerSessions))
	}
	b := r.accounts[acc]
	if b == nil {
		if len(r.accounts) >= maxRateAccounts {
			clear(r.accounts) // forgetting refills: at worst a burst more
		}
		b = &bucket{}
		r.accounts[acc] = b
	}
	return b.take(now, accountSessions)
}
