package node

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Every goroutine a node starts (delivery loops, background commits,
// group publications and dials, topic readers, mailbox loops) ends before
// Run returns and the node is closed. The relay runs in this process
// too and is stopped before the check.
func TestRunLeavesNoGoroutines(t *testing.T) {
	before := goleak.IgnoreCurrent()
	func() {
		relayAddr, stopRelay := startStoppableRelay(t, relayCfg())
		defer stopRelay()
		nodes := makeGroupOn(t, "leak check", []string{relayAddr, "", ""}, waitFor)
		if _, err := nodes[1].n.SendGroup(context.Background(), GroupSendRequest{Group: "leak check", Text: "hello"}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the group message", func() bool { return len(groupTexts(t, nodes[0], "leak check")) == 1 })
		sendAndWait(t, nodes[0].n, "m1", 3)
		for _, r := range nodes {
			r.stop(t)
		}
	}()
	// goleveldb's pool drainer lingers up to a second after Close, and
	// libp2p's connection goroutines a moment after the host's.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := goleak.Find(before)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
