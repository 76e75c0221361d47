// Package loops runs the background goroutines of one node run as a
// group: each gets the run's context, none starts after Stop, and Stop
// returns only when all have ended, so Run leaves nothing behind. It is
// errgroup's shape without the error: a loop logs its own failures.
package loops

import (
	"context"
	"sync"
)

// Group is the goroutines of one run. The zero value is stopped.
type Group struct {
	mu     sync.Mutex
	ctx    context.Context // the run's; nil while stopped
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start begins a run under parent and returns its context, which Stop
// cancels. Start on a running group panics.
func (g *Group) Start(parent context.Context) context.Context {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ctx != nil {
		panic("loops: Start on a running group")
	}
	g.ctx, g.cancel = context.WithCancel(parent)
	return g.ctx
}

// Running reports whether the group runs (between Start and Stop).
func (g *Group) Running() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ctx != nil
}

// Go runs f in a goroutine with the run's context. It reports false, and
// does not run f, when the group is stopped.
func (g *Group) Go(f func(ctx context.Context)) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ctx == nil {
		return false
	}
	ctx := g.ctx
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f(ctx)
	}()
	return true
}

// Child returns a context that ends with the run or with its cancel
// function, for a goroutine that may end before the run does (one topic's
// reader). ok is false when the group is stopped.
func (g *Group) Child() (ctx context.Context, cancel context.CancelFunc, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ctx == nil {
		return nil, nil, false
	}
	ctx, cancel = context.WithCancel(g.ctx)
	return ctx, cancel, true
}

// Stop cancels the run's context and waits for every goroutine Go
// started. It must not be called from one of them.
func (g *Group) Stop() {
	g.mu.Lock()
	cancel := g.cancel
	g.ctx, g.cancel = nil, nil
	g.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	g.wg.Wait()
}
