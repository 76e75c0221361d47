package mobile

import (
	"context"
	"encoding/json"
	"time"
)

// Drain limits.
const (
	defaultDrainTimeout = 25 * time.Second // under iOS's 30 s for a background push
	maxDrainTimeout     = 10 * time.Minute
	sendPoll            = 50 * time.Millisecond // how often Drain looks at the outbox
)

// DrainResult is Drain's summary, as JSON.
type drainResult struct {
	// Delivered counts the incoming messages delivered through the
	// Callback during the drain.
	Delivered int `json:"delivered"`
	// Sent counts the outgoing messages that reached a relay or a device
	// during the drain.
	Sent int `json:"sent"`
	// Queued is what is still queued for a device the node can reach.
	Queued int `json:"queued"`
	// Drained says every relay mailbox was drained.
	Drained bool `json:"drained"`
	// Complete: drained, nothing sendable left, every event delivered,
	// before the timeout.
	Complete bool `json:"complete"`
}

// Drain is what the app does when a push wakes it: it starts the network
// if it is off, waits until every relay mailbox has been drained (each
// message stored and acknowledged, its event delivered through the
// Callback) and what is queued has gone, then stops the network again if
// Drain started it, so the relays wake the device by push again. The
// store stays open: Call still reads what arrived. It returns a summary,
// {"delivered":N,"sent":M,"queued":K,"drained":true,"complete":true},
// also when timeoutMs (default 25 s when <= 0) runs out first: then
// "complete" is false. Drain needs Start first (with "offline": true
// when the app was woken in the background).
func Drain(timeoutMs int) (summary string, err error) {
	defer recoverError("Drain", &err)
	hook("Drain")
	life.Lock()
	defer life.Unlock()
	f := current()
	if f == nil {
		return "", errNotStarted
	}
	timeout := defaultDrainTimeout
	if timeoutMs > 0 {
		timeout = min(time.Duration(timeoutMs)*time.Millisecond, maxDrainTimeout)
	}
	ctx, cancel := context.WithTimeout(f.ctx, timeout)
	defer cancel()

	count := newDrainCount()
	f.pump.observe(count)
	started := false
	if !f.networkOn() {
		if err := f.startNetwork(); err != nil {
			f.pump.unobserve()
			return "", err
		}
		started = true
	}
	n := f.node()
	var res drainResult
	res.Drained = n.WaitDrained(ctx) == nil
	for n.Sendable() > 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(sendPoll):
		}
	}
	res.Queued = n.Sendable()
	delivered := f.pump.waitDelivered(ctx, n.LastEvent())
	res.Complete = res.Drained && res.Queued == 0 && delivered && ctx.Err() == nil
	if started {
		f.stopNetwork()
	}
	res.Delivered, res.Sent = f.pump.unobserve()
	b, err := json.Marshal(res)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
