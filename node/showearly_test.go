package node

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Received messages are shown once written and acknowledged once
// durable (docs/protocol/messaging.md "Shown once written, acknowledged
// once durable"): while bob's synced write is held, bob shows alice's
// message (its event, and the store reads it back) and alice has no
// acknowledgement; once the write is let go, alice's message is
// delivered.
func TestReceivedShownBeforeDurableAckedAfter(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	ctx := context.Background()
	sendAndWaitDelivered(t, a.n, "warm")
	held, release := make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	const text = "shown before durable"
	taps.Store(&tapFuncs{syncWait: func(n *Node) {
		if n != b.n {
			return
		}
		// Only the batch that holds the text (anything else bob gets
		// passes), and only once.
		ms, _ := n.Messages("alice", 0)
		if len(ms) > 0 && ms[len(ms)-1].Text == text && once.CompareAndSwap(false, true) {
			close(held)
			<-release
		}
	}})
	defer taps.Store(nil)
	events, cancel := b.n.Subscribe(0)
	defer cancel()
	m, err := a.n.Send(ctx, SendRequest{To: "bob", Text: text})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(time.Minute):
		close(release)
		t.Fatal("bob never reached the synced write")
	}
	shown := false
	for !shown {
		select {
		case ev := <-events:
			shown = ev.Type == EventMessage && ev.Message.ID == m.ID
		case <-time.After(time.Minute):
			close(release)
			t.Fatal("no event for the message while its synced write is held")
		}
	}
	if got := lastIn(t, b.n, "alice"); got.ID != m.ID {
		close(release)
		t.Fatalf("bob's store reads back %q while the synced write is held", got.Text)
	}
	if st := lastOut(t, a.n, "bob").State; st == StateDelivered {
		close(release)
		t.Fatal("alice has bob's acknowledgement before bob's write is durable")
	}
	close(release)
	if _, err := a.n.WaitState(ctx, m.ID, StateDelivered); err != nil {
		t.Fatal(err)
	}
}

// childKillReceiver runs bob's node in home and prints "ready"; when a
// received text is shown (its event has come) and before the synced
// write that acknowledges it, it prints "shown" and kills itself with
// SIGKILL.
func childKillReceiver(home, text string) {
	n, err := New(Config{Home: home, NoMDNS: true, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, KDF: testKDF})
	if err != nil {
		panic(err)
	}
	events, _ := n.Subscribe(0)
	taps.Store(&tapFuncs{syncWait: func(n *Node) {
		timeout := time.After(10 * time.Second)
		for {
			select {
			case ev := <-events:
				if ev.Type == EventMessage && ev.Message.Text == text {
					fmt.Println("shown")
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
				}
			case <-timeout:
				return // another batch (a receipt, a card): not the one
			}
		}
	}})
	go n.Run(context.Background())
	<-n.Ready()
	fmt.Println("ready")
	select {}
}

// A received message shown and then lost to a SIGKILL before its synced
// write: the write was in the operating system's hands, so bob has it
// after the restart; alice had no acknowledgement, so she sends it
// again, and bob keeps one copy and acknowledges it. Three rounds.
func TestReceiverKilledAfterShowBeforeSync(t *testing.T) {
	bobHome := newHome(t, "bob")
	a, b := startNode(t, newHome(t, "alice")), startNode(t, bobHome)
	defer a.stop(t)
	befriend(t, a, b)
	ctx := context.Background()
	sendAndWaitDelivered(t, a.n, "warm")
	b.stop(t)
	for round := range 3 {
		doomed := fmt.Sprintf("shown, then killed before its sync, round %d", round)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), benchChildEnv+"=kill-receiver", "HUSH_BENCH_HOME="+bobHome, "HUSH_KILL_TEXT="+doomed)
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 4)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		t0 := time.Now()
		if line := <-lines; line != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: bob's process said %q", round, line)
		}
		m, err := a.n.Send(ctx, SendRequest{To: "bob", Text: doomed})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for line := range lines {
			out = append(out, line)
		}
		err = cmd.Wait()
		t.Logf("round %d: bob killed %v after it started", round, time.Since(t0).Round(time.Millisecond))
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL || !slices.Contains(out, "shown") {
			t.Fatalf("round %d: bob was not killed after showing the message (%v): %q", round, err, out)
		}
		if st := lastOut(t, a.n, "bob"); st.ID != m.ID || st.State == StateDelivered {
			t.Fatalf("round %d: alice's message is %s before bob's write was durable", round, st.State)
		}
		t1 := time.Now()
		b = startNode(t, bobHome)
		if got := lastIn(t, b.n, "alice"); got.Text != doomed {
			t.Fatalf("round %d: after the kill bob's last message is %q, want the one shown", round, got.Text)
		}
		if _, err := a.n.WaitState(ctx, m.ID, StateDelivered); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: delivered %v after bob's restart", round, time.Since(t1).Round(time.Millisecond))
		b.stop(t)
	}
	b = startNode(t, bobHome)
	defer b.stop(t)
	in := texts(t, b.n, "alice", "in")
	if len(in) != 4 {
		t.Errorf("bob has %d messages, want the warm-up and three, once each: %q", len(in), in)
	}
}
