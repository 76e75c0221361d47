package pushbridge

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/hushnet/hush/pushbridge/provider"
)

// Back-off for a busy service that named no Retry-After: retryBase
// doubling per try up to retryCap. A Retry-After longer than
// maxRetryAfter is cut to it.
const (
	retryBase     = 10 * time.Second
	retryCap      = 15 * time.Minute
	maxRetryAfter = time.Hour
	// pruneEvery is how often idle per-handle state is forgotten.
	pruneEvery = time.Minute
	// maxSlots bounds the per-handle state; beyond it new handles wait
	// for the next prune (their wakes are counted as limited).
	maxSlots = 200_000
)

// slot is the bridge's memory of one handle: what is in flight, what is
// queued, when it was last delivered and its rate bucket. Its fields are
// guarded by Bridge.mu. It lives only in memory and is forgotten when
// idle.
type slot struct {
	key     handleKey
	sender  provider.Sender
	token   string
	prio    provider.Priority
	bucket  bucket
	touched time.Time // last wake

	inflight int       // attempts under way
	pending  bool      // a wake arrived during an attempt: one more after the window
	lastSent time.Time // last delivery
	sent     uint64    // deliveries so far
	tries    int       // failed attempts of the push now queued
	gone     bool      // unregistered or dead: never send again

	queued bool      // in Bridge.queue
	due    time.Time // when queued: when to send
	index  int       // position in Bridge.queue
}

// admit decides what a wake for key does now. It returns the slot with
// an attempt counted in flight when the wake should be sent at once, or
// nil when it was coalesced into another wake-up or refused by a limit.
func (b *Bridge) admit(key handleKey, s provider.Sender, token string, urgency provider.Priority) *slot {
	now := time.Now()
	window := time.Duration(b.limits.CoalesceWindow)
	b.mu.Lock()
	defer b.mu.Unlock()
	sl := b.slots[key]
	if sl == nil {
		if len(b.slots) >= maxSlots {
			b.pruneLocked(now)
		}
		if len(b.slots) >= maxSlots {
			b.stats.limited.Add(1)
			return nil
		}
		sl = &slot{key: key, sender: s, token: token,
			bucket: newBucket(b.limits.HandlePerMinute/60, b.limits.HandleBurst)}
		b.slots[key] = sl
	}
	sl.touched = now
	if sl.queued {
		// A retry or a coalesced wake-up is coming; sending now as well
		// would duplicate it.
		sl.prio = max(sl.prio, urgency)
		b.stats.coalesced.Add(1)
		return nil
	}
	if window > 0 {
		if sl.inflight > 0 {
			sl.pending = true
			sl.prio = max(sl.prio, urgency)
			b.stats.coalesced.Add(1)
			return nil
		}
		if !sl.lastSent.IsZero() && now.Before(sl.lastSent.Add(window)) {
			sl.prio = urgency
			if b.enqueueLocked(sl, sl.lastSent.Add(window)) {
				b.stats.coalesced.Add(1)
			}
			return nil
		}
	}
	if !sl.bucket.allow(now) || !b.global.take(now) {
		b.stats.limited.Add(1)
		return nil
	}
	sl.bucket.take(now)
	sl.prio = urgency
	sl.inflight++
	return sl
}

// attempt sends one wake-up for sl (counted in flight by its caller) and
// settles the result.
func (b *Bridge) attempt(ctx context.Context, sl *slot) provider.Outcome {
	b.mu.Lock()
	p := provider.Push{Token: sl.token, Payload: WakePayload, Priority: sl.prio,
		TTL: time.Duration(b.cfg.PushTTL), CollapseID: CollapseID}
	seen := sl.sent
	b.mu.Unlock()
	res := b.send(ctx, sl.sender, p)
	b.finish(sl, seen, res)
	return res.Outcome
}

// finish settles one attempt begun when sl.sent was seen.
func (b *Bridge) finish(sl *slot, seen uint64, res provider.Result) {
	now := time.Now()
	window := time.Duration(b.limits.CoalesceWindow)
	kind := string(sl.sender.Kind())
	b.mu.Lock()
	sl.inflight--
	pending := sl.pending
	sl.pending = false
	switch res.Outcome {
	case provider.Delivered:
		b.stats.delivered.Add(1)
		sl.lastSent = now
		sl.sent++
		sl.tries = 0
		if pending && window > 0 && !sl.gone {
			b.enqueueLocked(sl, now.Add(window))
		}
	case provider.Dead:
		b.stats.dead.Add(1)
		b.forgetLocked(sl.key)
	case provider.Retry:
		switch {
		case sl.gone:
		case sl.sent != seen || sl.queued:
			// Another attempt delivered meanwhile, or one is queued: a
			// retry would duplicate it.
			b.stats.coalesced.Add(1)
		case sl.tries >= b.limits.MaxRetries:
			b.stats.dropped.Add(1)
			sl.tries = 0
		default:
			sl.tries++
			delay := res.RetryAfter
			if delay <= 0 {
				delay = min(retryBase<<(sl.tries-1), retryCap)
			}
			if b.enqueueLocked(sl, now.Add(min(delay, maxRetryAfter))) {
				b.stats.retried.Add(1)
			}
		}
	case provider.Refused:
		b.stats.refused.Add(1)
	}
	b.mu.Unlock()

	if res.Outcome != provider.Delivered {
		b.log.Info("wake-up not delivered", "provider", kind, "outcome", res.Outcome.String(),
			"status", res.Status, "reason", res.Reason)
	}
	if res.Outcome == provider.Dead {
		if err := b.tombstone(sl.key); err != nil {
			b.log.Error("cannot record dead handle", "err", err)
		}
	}
}

// enqueueLocked queues sl to be sent at due (earlier if already queued
// later). It reports false, counting a drop, when the queue is full.
func (b *Bridge) enqueueLocked(sl *slot, due time.Time) bool {
	if sl.queued {
		if due.Before(sl.due) {
			sl.due = due
			heap.Fix(&b.queue, sl.index)
		}
		return true
	}
	if b.queue.Len() >= b.limits.RetryQueue {
		b.stats.dropped.Add(1)
		return false
	}
	sl.due, sl.queued = due, true
	heap.Push(&b.queue, sl)
	select {
	case b.wakeQueue <- struct{}{}:
	default:
	}
	return true
}

// forget drops the state of key; nothing more is sent for it.
func (b *Bridge) forget(key handleKey) {
	b.mu.Lock()
	b.forgetLocked(key)
	b.mu.Unlock()
}

func (b *Bridge) forgetLocked(key handleKey) {
	sl := b.slots[key]
	if sl == nil {
		return
	}
	sl.gone = true
	if sl.queued {
		heap.Remove(&b.queue, sl.index)
		sl.queued = false
	}
	delete(b.slots, key)
}

// schedule sends queued wake-ups when they fall due, until ctx is done.
// The attempts it starts are added to wg.
func (b *Bridge) schedule(ctx context.Context, wg *sync.WaitGroup) {
	timer := time.NewTimer(pruneEvery)
	defer timer.Stop()
	lastPrune := time.Now()
	for {
		now := time.Now()
		b.mu.Lock()
		for b.queue.Len() > 0 && !b.queue[0].due.After(now) {
			sl := heap.Pop(&b.queue).(*slot)
			sl.queued = false
			sl.inflight++
			wg.Go(func() { b.attempt(ctx, sl) })
		}
		if now.Sub(lastPrune) >= pruneEvery {
			b.pruneLocked(now)
			lastPrune = now
		}
		wait := pruneEvery - now.Sub(lastPrune)
		if b.queue.Len() > 0 {
			wait = min(wait, b.queue[0].due.Sub(now))
		}
		b.mu.Unlock()

		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-b.wakeQueue:
		}
	}
}

// pruneLocked forgets idle per-handle state and registration buckets, and
// expired registrations.
func (b *Bridge) pruneLocked(now time.Time) {
	idle := time.Duration(b.limits.CoalesceWindow) + b.limits.handleRefill()
	for k, sl := range b.slots {
		if sl.inflight == 0 && !sl.queued && now.Sub(sl.touched) > idle && now.Sub(sl.lastSent) > idle {
			delete(b.slots, k)
		}
	}
	for k, bk := range b.regLimits {
		if bk.full(now) {
			delete(b.regLimits, k)
		}
	}
	b.regMu.Lock()
	b.pruneRegistrationsLocked(now)
	b.regMu.Unlock()
}

// handleRefill is how long an empty handle bucket takes to fill.
func (l Limits) handleRefill() time.Duration {
	if l.HandlePerMinute <= 0 {
		return 0
	}
	return time.Duration(float64(l.HandleBurst) / l.HandlePerMinute * float64(time.Minute))
}

// allowRegister takes a token from the token's and the global bucket.
func (b *Bridge) allowRegister(now time.Time, kind provider.Kind, token string) bool {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(token))
	key := [sha256.Size]byte(h.Sum(nil))
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.regLimits[key]
	if bk == nil {
		nb := newBucket(b.limits.RegisterPerHour/3600, 3)
		bk = &nb
		b.regLimits[key] = bk
	}
	if !bk.allow(now) || !b.global.take(now) {
		return false
	}
	return bk.take(now)
}

// bucket is a token bucket; a rate of zero or less lets everything pass.
type bucket struct {
	rate   float64 // tokens a second
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(perSecond float64, burst int) bucket {
	return bucket{rate: perSecond, burst: float64(burst), tokens: float64(burst)}
}

func (k *bucket) refill(now time.Time) {
	if !k.last.IsZero() {
		k.tokens = min(k.burst, k.tokens+now.Sub(k.last).Seconds()*k.rate)
	}
	k.last = now
}

func (k *bucket) allow(now time.Time) bool {
	if k.rate <= 0 {
		return true
	}
	k.refill(now)
	return k.tokens >= 1
}

func (k *bucket) take(now time.Time) bool {
	if !k.allow(now) {
		return false
	}
	if k.rate > 0 {
		k.tokens--
	}
	return true
}

func (k *bucket) full(now time.Time) bool {
	return k.rate <= 0 || (k.allow(now) && k.tokens >= k.burst)
}

// slotQueue is a min-heap of slots by due time.
type slotQueue []*slot

func (q slotQueue) Len() int           { return len(q) }
func (q slotQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q slotQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *slotQueue) Push(x any) {
	sl := x.(*slot)
	sl.index = len(*q)
	*q = append(*q, sl)
}
func (q *slotQueue) Pop() any {
	old := *q
	sl := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return sl
}
