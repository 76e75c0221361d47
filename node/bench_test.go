package node

// Benchmarks for the node issue, in one run: 256 B round trips on a raw
// loopback TCP socket and on a raw libp2p stream between two processes
// (the baselines), and node-to-node messages (Send on one node → message
// event on a node in another process), latency and sustained throughput.
//
// The second process is this test binary re-executed with HUSH_BENCH_CHILD
// set (see TestMain).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/hushnet/hush/internal/testutil"
)

const benchChildEnv = "HUSH_BENCH_CHILD"

// lastChildPID is the process child started last (benchmarks read its
// CPU time).
var lastChildPID int

// cpuTime returns the CPU time (user + system) this process and the
// process pid have used: on a shared machine the CPU a message costs
// moves less than the rate.
func cpuTime(pid int) time.Duration {
	self := testutil.ProcessCPU()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return self
	}
	// Fields after the command (which may hold spaces) start after ')'.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(f) < 13 {
		return self
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return self + time.Duration(ut+st)*time.Second/100 // clock ticks (USER_HZ 100)
}

func TestMain(m *testing.M) {
	switch os.Getenv(benchChildEnv) {
	case "":
		os.Exit(m.Run())
	case "tcp-echo":
		childTCPEcho()
	case "p2p-echo":
		childP2PEcho()
	case "node":
		childNode(os.Getenv("HUSH_BENCH_HOME"))
	case "floor-recv":
		childFloorRecv()
	case "kill-sender":
		childKillSender(os.Getenv("HUSH_BENCH_HOME"), os.Getenv("HUSH_KILL_TEXT"))
	case "kill-group-sender":
		childKillGroupSender(os.Getenv("HUSH_BENCH_HOME"), os.Getenv("HUSH_KILL_TEXT"))
	case "kill-receiver":
		childKillReceiver(os.Getenv("HUSH_BENCH_HOME"), os.Getenv("HUSH_KILL_TEXT"))
	}
	os.Exit(0)
}

// child starts this binary in a mode and returns its first stdout line
// and a reader for the rest. The child exits when its stdin closes.
func child(b *testing.B, mode string, env ...string) (string, *bufio.Reader, func()) {
	line, r, _, stop := childWithStdin(b, mode, env...)
	return line, r, stop
}

// childWithStdin is child also returning the child's standard input, for
// requests (the node child answers "written").
func childWithStdin(b *testing.B, mode string, env ...string) (string, *bufio.Reader, io.Writer, func()) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, benchChildEnv+"="+mode)...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	lastChildPID = cmd.Process.Pid
	r := bufio.NewReader(stdout)
	line, err := r.ReadString('\n')
	if err != nil {
		b.Fatalf("child %s: %v", mode, err)
	}
	return strings.TrimSpace(line), r, stdin, func() { stdin.Close(); cmd.Wait() }
}

func waitStdin() { io.Copy(io.Discard, os.Stdin) }

// dialChild connects h to the child process listening at addr (a
// multiaddr ending in /p2p/ID, the child's first line) and opens a
// stream of protocol proto.
func dialChild(b *testing.B, h host.Host, addr string, proto protocol.ID) network.Stream {
	b.Helper()
	m, err := ma.NewMultiaddr(addr)
	if err != nil {
		b.Fatalf("child said %q", addr)
	}
	pi, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := h.Connect(ctx, *pi); err != nil {
		b.Fatal(err)
	}
	s, err := h.NewStream(ctx, pi.ID, proto)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// loopbackHost is a host built by newHost, as Run builds a node's, with
// a new key, listening on loopback TCP; closed when tb ends.
func loopbackHost(tb testing.TB) host.Host {
	tb.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	h, err := newHost(HostConfig{Key: key, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

func childTCPEcho() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println(l.Addr())
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go io.Copy(c, c)
		}
	}()
	waitStdin()
}

const echoProto = "/hush-bench/echo/1"

func childP2PEcho() {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		panic(err)
	}
	h.SetStreamHandler(echoProto, func(s network.Stream) { io.Copy(s, s); s.Close() })
	fmt.Printf("%s/p2p/%s\n", h.Addrs()[0], h.ID())
	waitStdin()
	h.Close()
}

// childNode runs the node in home and prints "ready LINK", then one line
// "msg ID UNIXNANO" per incoming message event.
func childNode(home string) {
	if path := os.Getenv("HUSH_BENCH_CHILD_CPUPROFILE"); path != "" {
		// The receiving side's profile: HUSH_BENCH_CHILD_CPUPROFILE=FILE.
		f, err := os.Create(path)
		if err != nil {
			panic(err)
		}
		pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	n, err := New(Config{Home: home, NoMDNS: true, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, NoSync: os.Getenv("HUSH_BENCH_NOSYNC") != ""})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	<-n.Ready()
	events, _ := n.Subscribe(0)
	s, _ := n.Self()
	var outMu sync.Mutex
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	fmt.Fprintf(out, "ready %s\n", s.Link)
	out.Flush()
	go func() {
		replied := false
		for ev := range events {
			if ev.Type == EventRequest && ev.Message != nil {
				// The sender added this node, not the other way round:
				// its first message is a request, accepted as a person
				// would, so the rest are messages.
				if _, err := n.AcceptRequest(ev.Contact.Name); err != nil {
					panic(err)
				}
				ev.Type = EventMessage
			}
			if ev.Type == EventMessage && ev.Message.Direction == "in" {
				outMu.Lock()
				fmt.Fprintf(out, "msg %s %d\n", ev.Message.ID, time.Now().UnixNano())
				out.Flush()
				outMu.Unlock()
				if !replied {
					// Answer the first message, as a person would, so the
					// sender's session leaves the prekey-message phase.
					replied = true
					go n.Send(ctx, SendRequest{To: ev.Message.Contact, Text: "hi"})
				}
			}
		}
	}()
	// "written" asks what the store has written so far (records and
	// bytes, store.DB.Written); the end of input stops the node.
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "written" {
			records, bytes := n.db.Written()
			outMu.Lock()
			fmt.Fprintf(out, "written %d %d\n", records, bytes)
			out.Flush()
			outMu.Unlock()
		}
	}
	cancel()
	<-done
	n.Close()
}

func BenchmarkBaselineTCPRoundTrip256(b *testing.B) {
	addr, _, stop := child(b, "tcp-echo")
	defer stop()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 256)
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		c.Write(buf)
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	testutil.ReportPercentiles(b, lat)
}

func BenchmarkBaselineLibp2pRoundTrip256(b *testing.B) {
	addr, _, stop := child(b, "p2p-echo")
	defer stop()
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	s := dialChild(b, h, addr, echoProto)
	defer s.Close()
	buf := make([]byte, 256)
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		s.Write(buf)
		if _, err := io.ReadFull(s, buf); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	testutil.ReportPercentiles(b, lat)
}

// benchPair starts node A here and node B in a child process, contacts
// both ways, and returns A, a channel of (ID, arrival) from B, and stop.
// benchPair starts alice in this process and bob in a child process,
// alice adds bob and they exchange a first message each. It returns
// alice, bob's arrivals (message ID, unix ns), and bob's store.DB.Written
// (asked of the child).
func benchPair(b *testing.B, noSync bool) (a *running, arrivals <-chan [2]string, bobWritten func() (records, bytes uint64), stop func()) {
	bHome := newHome(b, "bob")
	env := []string{"HUSH_BENCH_HOME=" + bHome}
	if noSync {
		env = append(env, "HUSH_BENCH_NOSYNC=1")
	}
	line, r, stdin, stopChild := childWithStdin(b, "node", env...)
	link, ok := strings.CutPrefix(line, "ready ")
	if !ok {
		b.Fatalf("child said %q", line)
	}
	a = startNodeCfg(b, Config{Home: newHome(b, "alice"), NoSync: noSync})
	if _, err := a.n.AddContact("bob", link); err != nil {
		b.Fatal(err)
	}
	got := make(chan [2]string, 1<<16)
	written := make(chan [2]uint64, 1)
	go func() {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				close(got)
				return
			}
			f := strings.Fields(l)
			switch {
			case len(f) == 3 && f[0] == "msg":
				got <- [2]string{f[1], f[2]}
			case len(f) == 3 && f[0] == "written":
				records, _ := strconv.ParseUint(f[1], 10, 64)
				bytes, _ := strconv.ParseUint(f[2], 10, 64)
				written <- [2]uint64{records, bytes}
			}
		}
	}()
	arrivals = got
	bobWritten = func() (uint64, uint64) {
		if _, err := io.WriteString(stdin, "written\n"); err != nil {
			b.Fatal(err)
		}
		select {
		case w := <-written:
			return w[0], w[1]
		case <-time.After(20 * time.Second):
			b.Fatal("bob never said what he wrote")
			return 0, 0
		}
	}
	// Warm up: the first message carries the PQXDH handshake.
	if _, err := a.n.Send(context.Background(), SendRequest{To: "bob", Text: "warm-up"}); err != nil {
		b.Fatal(err)
	}
	select {
	case <-arrivals:
	case <-time.After(20 * time.Second):
		b.Fatal("warm-up message never arrived")
	}
	waitFor(b, "the reply", func() bool { return len(texts(b, a.n, "bob", "in")) == 1 })
	return a, arrivals, bobWritten, func() { a.stop(b); stopChild() }
}

// BenchmarkNodeMessageLatency256: Send on node A → message event on node B
// (another process), one message at a time, 256 B of text. In "fsync"
// and "nosync" each Send follows the previous message's event at once,
// so it may wait behind that message's acknowledgement (B acknowledges
// once its write is durable; A delivers a round at a time). In
// "fsync-idle" each Send waits until the previous message is
// acknowledged ("delivered"): the latency of a message sent on its own.
func BenchmarkNodeMessageLatency256(b *testing.B) {
	b.Run("fsync", func(b *testing.B) { benchLatency(b, false, false) })
	b.Run("fsync-idle", func(b *testing.B) { benchLatency(b, false, true) })
	b.Run("nosync", func(b *testing.B) { benchLatency(b, true, false) })
}

func benchLatency(b *testing.B, noSync, idle bool) {
	a, arrivals, _, stop := benchPair(b, noSync)
	defer stop()
	text := strings.Repeat("x", 256)
	var lat []time.Duration
	ctx := context.Background()
	for b.Loop() {
		t0 := time.Now()
		m, err := a.n.Send(ctx, SendRequest{To: "bob", Text: text})
		if err != nil {
			b.Fatal(err)
		}
		got := <-arrivals
		if got[0] != m.ID {
			b.Fatalf("arrived %s, sent %s", got[0], m.ID)
		}
		at, _ := strconv.ParseInt(got[1], 10, 64)
		lat = append(lat, time.Unix(0, at).Sub(t0))
		if idle {
			b.StopTimer()
			if _, err := a.n.WaitState(ctx, m.ID, StateDelivered); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	testutil.ReportPercentiles(b, lat)
}

// sendConcurrently sends total texts to "bob" from n over senders
// goroutines and returns the function that waits for them.
func sendConcurrently(b *testing.B, n *Node, senders, total int, text string) (wait func()) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for next.Add(1) <= int64(total) {
				if _, err := n.Send(context.Background(), SendRequest{To: "bob", Text: text}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	return wg.Wait
}

// BenchmarkNodeThroughput256: 64 concurrent senders on node A; reports
// messages/s until B has every one (nothing lost, nothing doubled).
func BenchmarkNodeThroughput256(b *testing.B) {
	b.Run("fsync", func(b *testing.B) { benchThroughput(b, false) })
	b.Run("nosync", func(b *testing.B) { benchThroughput(b, true) })
}

func benchThroughput(b *testing.B, noSync bool) {
	a, arrivals, bobWritten, stop := benchPair(b, noSync)
	defer stop()
	text := strings.Repeat("y", 256)
	const senders = 64
	total := b.N
	pid := lastChildPID
	aRec0, aBytes0 := a.n.db.Written()
	bRec0, bBytes0 := bobWritten()
	b.ResetTimer()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t0, cpu0, reads0, allocs0 := time.Now(), cpuTime(pid), a.n.db.IndexReads(), ms.Mallocs
	wait := sendConcurrently(b, a.n, senders, total, text)
	seen := make(map[string]bool, total)
	timeout := time.After(120 * time.Second)
	for len(seen) < total {
		select {
		case got, ok := <-arrivals:
			if !ok {
				b.Fatal("child exited")
			}
			if seen[got[0]] {
				b.Fatalf("message %s arrived twice", got[0])
			}
			seen[got[0]] = true
		case <-timeout:
			b.Fatalf("only %d of %d messages arrived", len(seen), total)
		}
	}
	elapsed := time.Since(t0)
	wait()
	b.ReportMetric(float64(total)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64((cpuTime(pid)-cpu0).Microseconds())/float64(total), "cpu-µs/msg")
	// Skip-list nodes the sender's commits read from disk (the
	// receipts that came by the last arrival).
	b.ReportMetric(float64(a.n.db.IndexReads()-reads0)/float64(total), "sender-index-reads/msg")
	// The sending process's allocations (the receipts that came by the
	// last arrival included).
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.Mallocs-allocs0)/float64(total), "sender-allocs/msg")
	// What each store wrote a message (goleveldb records and batch
	// bytes): the sender's once every Send has returned and every
	// message is delivered, so its acknowledgements are written too.
	waitFor(b, "every message delivered", func() bool { return outboxLen(b, a.n) == 0 })
	aRec, aBytes := a.n.db.Written()
	bRec, bBytes := bobWritten()
	b.ReportMetric(float64(aRec-aRec0)/float64(total), "sender-records/msg")
	b.ReportMetric(float64(aBytes-aBytes0)/float64(total), "sender-bytes/msg")
	b.ReportMetric(float64(bRec-bRec0)/float64(total), "receiver-records/msg")
	b.ReportMetric(float64(bBytes-bBytes0)/float64(total), "receiver-bytes/msg")
}

// BenchmarkNodeThroughputHistory256: the throughput benchmark's load
// (64 concurrent senders, 256 B, fsync on) for historyTotal messages in
// one conversation, reporting the receive rate over the window after the
// first 1,000 messages and over the last window: whether sending slows
// as both stores grow; and both processes' CPU per message over the
// same windows (cpu-late/early: whether a message costs more). b.N is
// ignored (one run is the measurement).
func BenchmarkNodeThroughputHistory256(b *testing.B) {
	total := 100_000
	if s := os.Getenv("HUSH_BENCH_HISTORY"); s != "" {
		total, _ = strconv.Atoi(s)
	}
	const window = 10_000
	if total < 2*window {
		b.Skipf("HUSH_BENCH_HISTORY=%d: at least %d messages", total, 2*window)
	}
	a, arrivals, _, stop := benchPair(b, false)
	defer stop()
	text := strings.Repeat("h", 256)
	reads0 := a.n.db.IndexReads()
	pid := lastChildPID
	// Both processes' CPU when the windows begin and end: the cost of a
	// message, which the machine's other work moves much less than the
	// rate.
	cpuAt := map[int]time.Duration{1_000: 0, 1_000 + window: 0, total - window: 0, total: 0}
	b.ResetTimer()
	wait := sendConcurrently(b, a.n, 64, total, text)
	at := make([]int64, 0, total)
	timeout := time.After(10 * time.Minute)
	for len(at) < total {
		select {
		case got, ok := <-arrivals:
			if !ok {
				b.Fatal("child exited")
			}
			ns, _ := strconv.ParseInt(got[1], 10, 64)
			at = append(at, ns)
			if _, ok := cpuAt[len(at)]; ok {
				cpuAt[len(at)] = cpuTime(pid)
			}
		case <-timeout:
			b.Fatalf("only %d of %d messages arrived", len(at), total)
		}
	}
	wait()
	rate := func(from int) float64 {
		return window / time.Duration(at[from+window-1]-at[from]).Seconds()
	}
	first, last := rate(1_000), rate(total-window)
	b.ReportMetric(first, "msgs/s-early")
	b.ReportMetric(last, "msgs/s-late")
	b.ReportMetric(last/first, "late/early")
	cpuEarly := cpuAt[1_000+window] - cpuAt[1_000]
	cpuLate := cpuAt[total] - cpuAt[total-window]
	b.ReportMetric(float64(cpuEarly.Microseconds())/window, "cpu-µs/msg-early")
	b.ReportMetric(float64(cpuLate.Microseconds())/window, "cpu-µs/msg-late")
	b.ReportMetric(float64(cpuLate)/float64(cpuEarly), "cpu-late/early")
	b.ReportMetric(float64(a.n.db.IndexReads()-reads0)/float64(total), "sender-index-reads/msg")
}
