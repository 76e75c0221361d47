package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
)

// childKillSender runs the node in home, sends a text to "bob" and
// waits until it is delivered (so its session's reservation is stored
// and confirmed), then sends text. That message leaves before its commit
// (a reserved index); the commit is held back, and the process kills
// itself with SIGKILL as soon as bob's acknowledgement arrives: bob has
// the message, this device never stored it.
func childKillSender(home, text string) {
	taps.Store(&tapFuncs{
		commit: func(n *Node, t *txn) {
			if t.done != nil { // it released entries early: never write it
				select {}
			}
		},
		acked: func(n *Node, batch []*outEntry) {
			for _, e := range batch {
				if e.commitDone == nil {
					continue
				}
				select {
				case <-e.commitDone:
				default: // acknowledged, not committed: the crash
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
				}
			}
		},
	})
	n, err := New(Config{Home: home, NoMDNS: true, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, KDF: testKDF})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	go n.Run(ctx)
	<-n.Ready()
	warm, err := n.Send(ctx, SendRequest{To: "bob", Text: "warm " + text})
	if err != nil {
		panic(err)
	}
	if _, err := n.WaitState(ctx, warm.ID, StateDelivered); err != nil {
		panic(err)
	}
	if _, err := n.Send(ctx, SendRequest{To: "bob", Text: text}); err != nil {
		panic(err)
	}
	fmt.Println("Send returned: the commit was not held")
	os.Exit(1)
}

// A message that left before its commit (docs/protocol/messaging.md
// "Sending before the commit"), with the sender killed after the
// recipient acknowledged it and before its commit landed: after the
// restart the sender's next message uses a fresh ratchet index, so the
// recipient reads it (a reused index would be refused as a duplicate and
// the message lost). Three kills in a row, each on a process of its own.
func TestSendEarlyKilledBeforeCommit(t *testing.T) {
	aliceHome := newHome(t, "alice")
	a, b := startNode(t, aliceHome), startNode(t, newHome(t, "bob"))
	defer b.stop(t)
	befriend(t, a, b)
	if _, err := a.n.Send(context.Background(), SendRequest{To: "bob", Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "hello", func() bool { return len(texts(t, b.n, "alice", "in")) == 1 })
	if _, err := b.n.Send(context.Background(), SendRequest{To: "alice", Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "hi", func() bool { return len(texts(t, a.n, "bob", "in")) == 1 })
	a.stop(t)

	for round := range 3 {
		doomed := fmt.Sprintf("sent before its commit, round %d", round)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), benchChildEnv+"=kill-sender", "HUSH_BENCH_HOME="+aliceHome, "HUSH_KILL_TEXT="+doomed)
		out, err := cmd.CombinedOutput()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: the sender was not killed (%v): %s", round, err, out)
		}
		waitFor(t, "bob has the message sent before its commit", func() bool {
			return slices.Contains(texts(t, b.n, "alice", "in"), doomed)
		})

		a = startNode(t, aliceHome)
		if slices.Contains(texts(t, a.n, "bob", "out"), doomed) {
			t.Fatalf("round %d: the held commit landed; the test proves nothing", round)
		}
		after := fmt.Sprintf("after the restart, round %d", round)
		if _, err := a.n.Send(context.Background(), SendRequest{To: "bob", Text: after}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "bob reads the message after the restart", func() bool {
			return slices.Contains(texts(t, b.n, "alice", "in"), after)
		})
		a.stop(t)
	}
	in := texts(t, b.n, "alice", "in")
	seen := map[string]int{}
	for _, text := range in {
		if seen[text]++; seen[text] == 2 {
			t.Errorf("bob has %q twice", text)
		}
	}
	if len(in) != 1+3*3 {
		t.Errorf("bob has %d messages, want 10: %q", len(in), in)
	}
}
