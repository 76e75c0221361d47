package node

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childKillSender runs the node in home, sends a text to "bob" and
// waits until it is delivered (so its session's reservation is stored
// and confirmed), then sends text. That message leaves before its commit
// (a reserved index); the commit is held back, and the process kills
// itself with SIGKILL as soon as bob's acknowledgement arrives: bob has
// the message, this device never stored it.
func childKillSender(home, text string) {
	taps.Store(&tapFuncs{
		hold: func(n *Node, t *txn) bool {
			return slices.ContainsFunc(t.queued, func(e *outEntry) bool { return e.early }) // never write it
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
	if _, err := n.Send(ctx, SendRequest{To: "bob", Text: text, TxnID: "txn " + text}); err != nil {
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
		// The user retries the send the crash interrupted, with its
		// transaction ID: the same message ID, which bob drops as a copy.
		retry, err := a.n.Send(context.Background(), SendRequest{To: "bob", Text: doomed, TxnID: "txn " + doomed})
		if err != nil {
			t.Fatal(err)
		}
		if got := lastIn(t, b.n, "alice"); got.Text != doomed || got.ID != retry.ID {
			t.Fatalf("round %d: bob has %q as %s, the retry is %s", round, got.Text, got.ID, retry.ID)
		}
		if _, err := a.n.WaitState(context.Background(), retry.ID, StateDelivered); err != nil {
			t.Fatal(err)
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

// childKillGroupSender runs the node in home, the admin of group
// "club": it sends a text to the group (its commit stores a sender-key
// reservation), waits until its topic has a peer, prints "ready" and
// waits for a line on stdin, then sends text with the commit held back
// (the message goes out before it) and prints "sent". The parent kills
// it once the member has the message.
func childKillGroupSender(home, text string) {
	n, err := New(Config{Home: home, NoMDNS: true, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, KDF: testKDF, GroupSync: testGroupSync})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	go n.Run(ctx)
	<-n.Ready()
	for {
		_, err := n.SendGroup(ctx, GroupSendRequest{Group: "club", Text: "warm " + text})
		if err == nil {
			break
		}
		if err != ErrGroupNotReady {
			panic(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for !topicHasPeer(n, "club") {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n')
	taps.Store(&tapFuncs{hold: func(n *Node, t *txn) bool {
		return t.publishEarly // it publishes before its commit: never write it
	}})
	go n.SendGroup(ctx, GroupSendRequest{Group: "club", Text: text, TxnID: "txn " + text})
	fmt.Println("sent")
	select {}
}

// topicHasPeer reports whether the group's current topic has a peer.
func topicHasPeer(n *Node, group string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	gs, err := n.resolveGroupLocked(group)
	if err != nil {
		return false
	}
	for _, jt := range gs.topics {
		if len(jt.t.ListPeers()) > 0 {
			return true
		}
	}
	return false
}

// A group message published before its commit (a reserved sender-key
// iteration, docs/protocol/groups.md §16.13), the sender killed with
// SIGKILL once the member has it and before the commit landed: after the
// restart the next message uses a fresh iteration and the member reads
// it (a reused iteration would be refused as a duplicate). Three times.
func TestGroupSendEarlyKilledBeforeCommit(t *testing.T) {
	nodes := makeGroup(t, 2, "club")
	admin, member := nodes[0], nodes[1]
	home := admin.home
	sendGroupEventually(t, admin, "club", "hello")
	waitFor(t, "hello", func() bool { return hasGroupText(t, member, "hello") })
	admin.stop(t)

	for round := range 3 {
		doomed := fmt.Sprintf("published before its commit, round %d", round)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), benchChildEnv+"=kill-group-sender", "HUSH_BENCH_HOME="+home, "HUSH_KILL_TEXT="+doomed)
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(stdout)
		if l, err := r.ReadString('\n'); err != nil || l != "ready\n" {
			cmd.Process.Kill()
			t.Fatalf("round %d: the sender said %q, %v", round, l, err)
		}
		waitFor(t, "the warm-up message", func() bool {
			return hasGroupText(t, member, "warm "+doomed)
		})
		fmt.Fprintln(stdin, "go")
		if l, err := r.ReadString('\n'); err != nil || l != "sent\n" {
			cmd.Process.Kill()
			t.Fatalf("round %d: the sender said %q, %v", round, l, err)
		}
		waitFor(t, "the member has the message published before its commit", func() bool {
			return hasGroupText(t, member, doomed)
		})
		cmd.Process.Kill() // SIGKILL
		cmd.Wait()

		admin = startNode(t, home)
		nodes[0] = admin // stopped by makeGroup's cleanup
		if hasGroupText(t, admin, doomed) {
			t.Fatalf("round %d: the held commit landed; the test proves nothing", round)
		}
		// The retry with the transaction ID: the member drops it as a copy
		// (checked with the others at the end).
		sendGroupReqEventually(t, admin, GroupSendRequest{Group: "club", Text: doomed, TxnID: "txn " + doomed})
		after := fmt.Sprintf("after the restart, round %d", round)
		sendGroupEventually(t, admin, "club", after)
		waitFor(t, "the member reads the message after the restart", func() bool {
			return hasGroupText(t, member, after)
		})
		admin.stop(t)
	}
	seen := map[string]int{}
	for _, text := range groupTexts(t, member, "club") {
		if seen[text]++; seen[text] == 2 {
			t.Errorf("the member has %q twice", text)
		}
	}
}

// hasGroupText reports whether node r shows text in group "club".
func hasGroupText(t *testing.T, r *running, text string) bool {
	return slices.ContainsFunc(groupTexts(t, r, "club"), func(s string) bool { return strings.HasSuffix(s, ": "+text) })
}
