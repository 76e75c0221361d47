package mobile

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node"
)

// pump delivers a node's events to the app's Callback, in order, from a
// subscription to the node's event hub (as the Unix socket's subscribe
// does). Its cursor, the last seq delivered, outlives the node it reads:
// when Drain reopens the node, delivery goes on after that seq.
type pump struct {
	cb Callback

	ctl sync.Mutex // serialises attach and detach

	mu      sync.Mutex // guards the fields below
	last    uint64     // the last seq delivered (or the "since" to start after)
	moved   chan struct{}
	watch   *drainCount // counts what a Drain delivers; nil outside one
	stop    func()      // ends the running subscription; nil when detached
	stopped chan struct{}
}

func newPump(cb Callback, since uint64) *pump {
	return &pump{cb: cb, last: since, moved: make(chan struct{})}
}

// attach starts delivering n's events after the cursor (after n's last
// event when the cursor is 0: only new ones).
func (p *pump) attach(n *node.Node) {
	p.ctl.Lock()
	defer p.ctl.Unlock()
	p.attachLocked(n)
}

func (p *pump) attachLocked(n *node.Node) {
	p.mu.Lock()
	if p.stop != nil {
		p.mu.Unlock()
		return
	}
	if p.last == 0 {
		p.last = n.EventHead()
	}
	after := p.last
	p.mu.Unlock()
	events, unsub := n.Subscribe(after)
	quit, done := make(chan struct{}), make(chan struct{})
	go p.run(events, quit, done)
	p.mu.Lock()
	p.stop = func() { close(quit); unsub() }
	p.stopped = done
	p.mu.Unlock()
}

// detach stops the delivery and waits until no OnEvent is running.
func (p *pump) detach() {
	p.ctl.Lock()
	defer p.ctl.Unlock()
	p.detachLocked()
}

func (p *pump) detachLocked() {
	p.mu.Lock()
	stop, done := p.stop, p.stopped
	p.stop, p.stopped = nil, nil
	p.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// restart delivers the events after since (0: only new ones) of the
// node nodeOf returns, read under ctl so that a reopen cannot slip in.
func (p *pump) restart(nodeOf func() *node.Node, since uint64) {
	p.ctl.Lock()
	defer p.ctl.Unlock()
	p.detachLocked()
	p.mu.Lock()
	p.last = since
	p.mu.Unlock()
	p.attachLocked(nodeOf())
}

func (p *pump) run(events <-chan node.Event, quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-quit:
			return
		case ev, ok := <-events:
			if !ok { // the node closed
				return
			}
			b, err := json.Marshal(ev)
			if err != nil {
				continue // only the API's own types: never happens
			}
			deliver(p.cb, string(b))
			p.mu.Lock()
			p.last = ev.Seq
			if p.watch != nil {
				p.watch.see(ev)
			}
			close(p.moved)
			p.moved = make(chan struct{})
			p.mu.Unlock()
		}
	}
}

// waitDelivered waits until the event seq (or a later one) has been
// delivered, or ctx ends.
func (p *pump) waitDelivered(ctx context.Context, seq uint64) bool {
	for {
		p.mu.Lock()
		last, moved := p.last, p.moved
		p.mu.Unlock()
		if last >= seq {
			return true
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return false
		}
	}
}

// observe starts counting what is delivered into c.
func (p *pump) observe(c *drainCount) {
	p.mu.Lock()
	p.watch = c
	p.mu.Unlock()
}

// unobserve stops counting and returns the counts.
func (p *pump) unobserve() (delivered, sent int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.watch
	p.watch = nil
	if c == nil {
		return 0, 0
	}
	return len(c.in), len(c.out)
}

// drainCount counts, by message ID, the incoming messages and the
// outgoing messages that reached a relay or a device during a Drain.
type drainCount struct {
	in, out map[string]bool
}

func newDrainCount() *drainCount {
	return &drainCount{in: map[string]bool{}, out: map[string]bool{}}
}

func (c *drainCount) see(ev node.Event) {
	m := ev.Message
	if m == nil {
		return
	}
	switch {
	case ev.Type == apitypes.EventMessage && m.Direction == "in":
		c.in[m.ID] = true
	case ev.Type == apitypes.EventUpdate && m.Direction == "out" &&
		(m.State == apitypes.StateSent || m.State == apitypes.StateDelivered || m.State == apitypes.StateRead):
		c.out[m.ID] = true
	}
}
