package loops

import (
	"context"
	"testing"
)

// Stop cancels the run and waits for every goroutine; after it, Go and
// Child refuse.
func TestStopWaitsAndRefuses(t *testing.T) {
	var g Group
	if g.Go(func(context.Context) { t.Error("ran while stopped") }) {
		t.Fatal("Go on a stopped group reported true")
	}
	g.Start(context.Background())
	ended := make(chan struct{}, 3)
	for range 3 {
		g.Go(func(ctx context.Context) {
			<-ctx.Done()
			ended <- struct{}{}
		})
	}
	child, cancelChild, ok := g.Child()
	if !ok {
		t.Fatal("Child on a running group failed")
	}
	defer cancelChild()
	g.Stop()
	if len(ended) != 3 {
		t.Fatalf("Stop returned with %d of 3 goroutines ended", len(ended))
	}
	if child.Err() == nil {
		t.Fatal("a child context outlived the run")
	}
	if g.Running() || g.Go(func(context.Context) {}) {
		t.Fatal("the group runs after Stop")
	}
	if _, _, ok := g.Child(); ok {
		t.Fatal("Child after Stop")
	}
	// A group can run again.
	ctx := g.Start(context.Background())
	g.Stop()
	if ctx.Err() == nil {
		t.Fatal("second run's context not cancelled")
	}
}

// Parent cancellation ends the run's context too.
func TestParentCancels(t *testing.T) {
	var g Group
	parent, cancel := context.WithCancel(context.Background())
	ctx := g.Start(parent)
	cancel()
	<-ctx.Done()
	g.Stop()
}
