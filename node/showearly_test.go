package node

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
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
	const text = "shown before durable"
	held, release := holdSyncOf(t, b.n, text)
	defer release() // before the nodes stop: a held sync would hold bob's stop
	events, cancel := b.n.Subscribe(0)
	defer cancel()
	m, err := a.n.Send(ctx, SendRequest{To: "bob", Text: text})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(time.Minute):
		t.Fatal("bob never reached the synced write")
	}
	shown := false
	for !shown {
		select {
		case ev := <-events:
			shown = ev.Type == EventMessage && ev.Message.ID == m.ID
		case <-time.After(time.Minute):
			t.Fatal("no event for the message while its synced write is held")
		}
	}
	if got := lastIn(t, b.n, "alice"); got.ID != m.ID {
		t.Fatalf("bob's store reads back %q while the synced write is held", got.Text)
	}
	if st := lastOut(t, a.n, "bob").State; st == StateDelivered {
		t.Fatal("alice has bob's acknowledgement before bob's write is durable")
	}
	release()
	if _, err := a.n.WaitState(ctx, m.ID, StateDelivered); err != nil {
		t.Fatal(err)
	}
}

// holdSyncOf holds n's synced write of received messages, once, when
// the last message of its conversation with alice is text: held is
// closed then, and the write waits until release is called (release may
// be called more than once; a test defers it, so that it runs before the
// nodes stop, and its cleanup calls it too).
func holdSyncOf(t *testing.T, n *Node, text string) (held <-chan struct{}, release func()) {
	h, r := make(chan struct{}), make(chan struct{})
	var once, released atomic.Bool
	taps.Store(&tapFuncs{syncWait: func(m *Node) {
		if m != n {
			return
		}
		// Only the batch that holds the text (anything else passes),
		// and only once.
		ms, _ := m.Messages("alice", 0)
		if len(ms) > 0 && ms[len(ms)-1].Text == text && once.CompareAndSwap(false, true) {
			close(h)
			<-r
		}
	}})
	release = func() {
		if released.CompareAndSwap(false, true) {
			close(r)
		}
	}
	t.Cleanup(func() {
		release()
		taps.Store(nil)
	})
	return h, release
}

// bobKillable starts alice and bob, makes them contacts, delivers a
// warm-up text and stops bob, whose home is then for a process the test
// kills (killedReceiver).
func bobKillable(t *testing.T) (a *running, bobHome string) {
	bobHome = newHome(t, "bob")
	a, b := startNode(t, newHome(t, "alice")), startNode(t, bobHome)
	befriend(t, a, b)
	sendAndWaitDelivered(t, a.n, "warm")
	b.stop(t)
	return a, bobHome
}

// childKillReceiver runs bob's node in home and prints "ready". When
// its synced write of received messages is about to run and every text
// of texts (one per line) has been shown (its event has come, from this
// write or one made while it waits), it kills itself with SIGKILL. It
// prints "shown: TEXT" for each text as its event comes.
func childKillReceiver(home, texts string) {
	n, err := New(Config{Home: home, NoMDNS: true, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, KDF: testKDF})
	if err != nil {
		panic(err)
	}
	want := strings.Split(texts, "\n")
	events, _ := n.Subscribe(0)
	var mu sync.Mutex
	shown := map[string]bool{}
	taps.Store(&tapFuncs{syncWait: func(n *Node) {
		mu.Lock() // one sync waits here at a time
		defer mu.Unlock()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case ev := <-events:
				if ev.Type != EventMessage || !slices.Contains(want, ev.Message.Text) {
					continue
				}
				shown[ev.Message.Text] = true
				fmt.Println("shown: " + ev.Message.Text)
				if len(shown) == len(want) {
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

// killedReceiver starts bob's process in home (childKillReceiver) to be
// killed once texts are shown; lines are what it prints after "ready".
func killedReceiver(t *testing.T, home string, texts ...string) (cmd *exec.Cmd, lines <-chan string) {
	t.Helper()
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchChildEnv+"=kill-receiver", "HUSH_BENCH_HOME="+home, "HUSH_KILL_TEXT="+strings.Join(texts, "\n"))
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 8)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	if line := <-ch; line != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("bob's process said %q", line)
	}
	return cmd, ch
}

// waitKilled collects what the process prints until it ends and checks
// that it was killed with SIGKILL after showing every one of texts.
func waitKilled(t *testing.T, cmd *exec.Cmd, lines <-chan string, texts ...string) {
	t.Helper()
	var out []string
	for line := range lines {
		out = append(out, line)
	}
	err := cmd.Wait()
	for _, text := range texts {
		if !slices.Contains(out, "shown: "+text) {
			t.Fatalf("bob did not show %q before it was killed (%v): %q", text, err, out)
		}
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("bob was not killed (%v): %q", err, out)
	}
}

// A received message shown and then lost to a SIGKILL before its synced
// write: the write was in the operating system's hands, so bob has it
// after the restart; alice had no acknowledgement, so she sends it
// again, and bob keeps one copy and acknowledges it. Three rounds.
func TestReceiverKilledAfterShowBeforeSync(t *testing.T) {
	a, bobHome := bobKillable(t)
	defer a.stop(t)
	ctx := context.Background()
	for round := range 3 {
		doomed := fmt.Sprintf("shown, then killed before its sync, round %d", round)
		t0 := time.Now()
		cmd, lines := killedReceiver(t, bobHome, doomed)
		m, err := a.n.Send(ctx, SendRequest{To: "bob", Text: doomed})
		if err != nil {
			t.Fatal(err)
		}
		waitKilled(t, cmd, lines, doomed)
		t.Logf("round %d: bob killed %v after it started", round, time.Since(t0).Round(time.Millisecond))
		if st := lastOut(t, a.n, "bob"); st.ID != m.ID || st.State == StateDelivered {
			t.Fatalf("round %d: alice's message is %s before bob's write was durable", round, st.State)
		}
		t1 := time.Now()
		b := startNode(t, bobHome)
		if got := lastIn(t, b.n, "alice"); got.Text != doomed {
			t.Fatalf("round %d: after the kill bob's last message is %q, want the one shown", round, got.Text)
		}
		if _, err := a.n.WaitState(ctx, m.ID, StateDelivered); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: delivered %v after bob's restart", round, time.Since(t1).Round(time.Millisecond))
		b.stop(t)
	}
	b := startNode(t, bobHome)
	defer b.stop(t)
	in := texts(t, b.n, "alice", "in")
	if len(in) != 4 {
		t.Errorf("bob has %d messages, want the warm-up and three, once each: %q", len(in), in)
	}
}

// Two rounds in flight when the receiver dies (messaging.md "Pipelined
// rounds"): bob's sync of the first message is held until the second,
// which alice sends once bob shows the first, has been written and
// shown; then bob is killed with SIGKILL. After the restart bob has
// both; alice, with neither acknowledged, sends both again, and bob keeps
// one copy of each, in order. With a sender that waits for a round's
// statuses the second message never comes while the first one's sync is
// held, and bob is not killed.
func TestReceiverKilledWithRoundsInFlight(t *testing.T) {
	a, bobHome := bobKillable(t)
	defer a.stop(t)
	ctx := context.Background()
	const first, second = "first, its sync held", "second, shown while the first one's sync waits"
	cmd, lines := killedReceiver(t, bobHome, first, second)
	m1, err := a.n.Send(ctx, SendRequest{To: "bob", Text: first})
	if err != nil {
		t.Fatal(err)
	}
	if line := <-lines; line != "shown: "+first {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("bob said %q, want the first message shown", line)
	}
	m2, err := a.n.Send(ctx, SendRequest{To: "bob", Text: second})
	if err != nil {
		t.Fatal(err)
	}
	waitKilled(t, cmd, lines, second)
	for _, id := range []string{m1.ID, m2.ID} {
		if m, err := a.n.GetMessage(id); err != nil || m.State == StateDelivered {
			t.Fatalf("%s is %v (%v) though bob died before its sync", id, m.State, err)
		}
	}
	b := startNode(t, bobHome)
	defer b.stop(t)
	if got, want := texts(t, b.n, "alice", "in"), []string{"warm", first, second}; !slices.Equal(got, want) {
		t.Fatalf("after the kill bob has %q, want %q", got, want)
	}
	for _, id := range []string{m1.ID, m2.ID} {
		if _, err := a.n.WaitState(ctx, id, StateDelivered); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := texts(t, b.n, "alice", "in"), []string{"warm", first, second}; !slices.Equal(got, want) {
		t.Fatalf("after alice sent both again bob has %q, want %q", got, want)
	}
}
