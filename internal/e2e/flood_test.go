package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/internal/gossip"
	"github.com/hushnet/hush/relay"
)

// floodHost is a stock go-libp2p host listening, and so dialling, on
// loopback address ip: on Linux all of 127.0.0.0/8 is loopback, so
// 127.0.0.10, 127.0.0.11, … are other networks to the relay than the
// daemons' 127.0.0.1, as an attacker's would be.
func floodHost(tb testing.TB, ip string, opts ...libp2p.Option) host.Host {
	tb.Helper()
	opts = append([]libp2p.Option{libp2p.ListenAddrStrings("/ip4/" + ip + "/tcp/0"), libp2p.DisableMetrics(),
		libp2p.ResourceManager(&network.NullResourceManager{})}, opts...)
	h, err := libp2p.New(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

func randomTopic() string {
	b := make([]byte, 16)
	rand.Read(b)
	return gossip.TopicPrefix + hex.EncodeToString(b)
}

// mailboxFlood is the first attack of issue 12 item 1, from this process:
// anonymous hosts on several networks, each creating mailboxes on the
// relay and watching MaxWatchTopics random topics with each, as fast as
// the relay answers, until stop.
type mailboxFlood struct {
	own sync.Map // topics the flood watches

	created, createRefused, watched, watchRefused, failed atomic.Int64
	firstErr                                              atomic.Value // of the failed

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// start runs the flood until stop: hostsPerNetwork hosts on each of
// networks networks (127.0.0.10, 127.0.0.11, …).
func (f *mailboxFlood) start(tb testing.TB, ri peer.AddrInfo, networks, hostsPerNetwork int) {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	for n := range networks {
		for range hostsPerNetwork {
			h := floodHost(tb, fmt.Sprintf("127.0.0.%d", 10+n))
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				for ctx.Err() == nil {
					f.once(ctx, h, ri)
				}
			}()
		}
	}
	tb.Cleanup(f.stop)
}

// once creates a mailbox and watches random topics with it.
func (f *mailboxFlood) once(ctx context.Context, h host.Host, ri peer.AddrInfo) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	c := &relay.Client{Timeout: 10 * time.Second} // each signs its Watch times from the clock
	cr, err := c.Create(ctx, h, ri, key, nil)
	if ctx.Err() != nil || !f.count(err, &f.created, &f.createRefused) {
		return // stopped: errors from here on are the flood's own
	}
	topics := make([]string, relay.MaxWatchTopics)
	for i := range topics {
		topics[i] = randomTopic()
		f.own.Store(topics[i], true)
	}
	if err := c.Watch(ctx, h, ri, cr.Mailbox, key, topics); ctx.Err() == nil {
		f.count(err, &f.watched, &f.watchRefused)
	}
}

// count counts a request's outcome: done, refused by a limit, or failed
// otherwise; it reports whether it was done.
func (f *mailboxFlood) count(err error, done, refused *atomic.Int64) bool {
	switch {
	case err == nil:
		done.Add(1)
		return true
	case errors.Is(err, relay.ErrQuota), errors.Is(err, relay.ErrRateLimited), errors.Is(err, relay.ErrFull):
		refused.Add(1)
	default:
		if f.failed.Add(1) == 1 {
			f.firstErr.Store(err.Error())
		}
	}
	return false
}

func (f *mailboxFlood) stop() {
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
}

func (f *mailboxFlood) String() string {
	return fmt.Sprintf("%d mailboxes created, %d creations refused; %d watches accepted, %d refused; %d other errors (first: %v)",
		f.created.Load(), f.createRefused.Load(), f.watched.Load(), f.watchRefused.Load(), f.failed.Load(), f.firstErr.Load())
}

// garbagePublisher is the second attack of issue 12 item 1: a stranger's
// GossipSub host connected to the relay, publishing framed garbage
// (gossip.TagVersion, gossip.TagKind, random bytes: what the relay can
// check of a sealed group message) on the group topics it hears the relay
// announce, those of the mailbox flood excepted. A relay that tells a
// stranger only the topics it announced itself (the Echo guard,
// docs/protocol/groups.md §16.11) leaves it its own: a topic it made the
// relay watch with a mailbox of its own (probe), which the relay then
// files into that mailbox up to the stranger's filing budget.
type garbagePublisher struct {
	ps    *pubsub.PubSub
	relay peer.ID
	flood *mailboxFlood
	probe string // a topic of its own, watched by a mailbox of its own

	heardMu sync.Mutex
	heard   []string // group topics announced to it, in order

	topics  map[string]*pubsub.Topic
	next    int
	onHeard int // messages published on heard group topics
	onProbe int // … and on its own topic
}

// newGarbagePublisher connects the publisher to the relay and returns
// once the relay's announcements reach it: it watches a topic of its own
// (probe) with a mailbox of its own and subscribes to it, so even a relay
// that tells a peer only the topics it announced itself tells it that one.
func newGarbagePublisher(tb testing.TB, ri peer.AddrInfo, ip string, flood *mailboxFlood) *garbagePublisher {
	g := &garbagePublisher{relay: ri.ID, flood: flood, probe: randomTopic(), topics: map[string]*pubsub.Topic{}}
	h := floodHost(tb, ip)
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	inspect := func(_ peer.ID, rpc *pubsub.RPC) error {
		g.heardMu.Lock()
		defer g.heardMu.Unlock()
		for _, s := range rpc.GetSubscriptions() {
			if t := s.GetTopicid(); s.GetSubscribe() && gossip.ValidTopic(t) && !slices.Contains(g.heard, t) {
				g.heard = append(g.heard, t)
			}
		}
		return nil
	}
	var err error
	g.ps, err = pubsub.NewGossipSub(ctx, h, append(gossip.Options(), pubsub.WithAppSpecificRpcInspector(inspect))...)
	if err != nil {
		tb.Fatal(err)
	}
	c := &relay.Client{}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	cr, err := c.Create(ctx, h, ri, key, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.Watch(ctx, h, ri, cr.Mailbox, key, []string{g.probe}); err != nil {
		tb.Fatal(err)
	}
	t, err := g.ps.Join(g.probe)
	if err != nil {
		tb.Fatal(err)
	}
	g.topics[g.probe] = t
	sub, err := t.Subscribe()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(sub.Cancel)
	deadline := time.Now().Add(30 * time.Second) // a failure bound, not a wait
	for !slices.Contains(t.ListPeers(), ri.ID) {
		if time.Now().After(deadline) {
			tb.Fatal("the relay's subscriptions never reached the garbage publisher")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return g
}

// target picks the next topic: a heard one that is not the flood's nor
// its own and on which the router knows the relay (so a message reaches
// it), round robin, else its own.
func (g *garbagePublisher) target() (string, bool) {
	g.heardMu.Lock()
	heard := slices.Clone(g.heard)
	g.heardMu.Unlock()
	var group []string
	for _, t := range heard {
		if _, own := g.flood.own.Load(t); !own && t != g.probe && slices.Contains(g.ps.ListPeers(t), g.relay) {
			group = append(group, t)
		}
	}
	if len(group) == 0 {
		return g.probe, false
	}
	g.next++
	return group[g.next%len(group)], true
}

// publish publishes n garbage messages of 200 bytes.
func (g *garbagePublisher) publish(n int) error {
	for range n {
		name, heard := g.target()
		t := g.topics[name]
		if t == nil {
			var err error
			if t, err = g.ps.Join(name); err != nil {
				return err
			}
			g.topics[name] = t
		}
		data := make([]byte, 200)
		rand.Read(data)
		data[0], data[1] = gossip.TagVersion, gossip.TagKind
		if err := t.Publish(context.Background(), data); err != nil {
			return err
		}
		if heard {
			g.onHeard++
		} else {
			g.onProbe++
		}
	}
	return nil
}

// relayMetric reads one metric (summed over its labels, or one labelled
// sample when name includes its labels) from r's metrics listener.
func relayMetric(t *testing.T, r *relayProc, name string) float64 {
	return metricValue(scrape(t, "http://"+r.metrics+"/metrics"), name)
}

// The flood of issue 12 item 1 runs while two real daemons exchange 1:1
// and group messages through their relay with the recipient offline:
// anonymous hosts on four other networks create mailboxes and watch
// random topics as fast as the relay answers, and a stranger publishes
// framed garbage on the group's topic (100 messages before each of
// alice's sends, 3,000 in all). Then alice goes offline, bob comes back,
// and every message reaches him from the relay, exactly once. The
// flood is refused by the relay's limits (counted in its metrics, logged
// a bounded number of times). Before, the garbage filled bob's mailbox's
// topic share and alice's group messages were dropped (Quota); before
// that, the throwaway mailboxes took the relay's topic capacity.
func TestFloodWhileOffline(t *testing.T) {
	r := newRelay(t, "")
	r.metrics = freeAddr(t)
	r.start()
	defer r.stop(syscall.SIGTERM)
	ri, err := relay.ParseRelayAddr(r.addr)
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	alice.startWithRelays(r)
	defer alice.stop()
	bob.startWithRelays(r)
	alice.waitMailboxes(1)
	bob.waitMailboxes(1)
	befriend(t, alice, bob, "alice", "bob")
	const group = "flood-proof-club"
	alice.mustRun("group", "create", group)
	alice.mustRun("group", "invite", group, "bob")
	eventually(t, "the invitation", func() bool { gs := bob.groups(); return len(gs) == 1 && gs[0].Pending })
	bob.mustRun("group", "accept", group)
	eventually(t, "alice can send", func() bool {
		_, _, code := alice.run("group", "send", group, "warm-up")
		return code == 0
	})
	eventually(t, "the warm-up at bob", func() bool { return len(bob.groupMessages(group)) == 1 })
	eventually(t, "the relay watches the group", func() bool { return relayMetric(t, r, "hush_relay_watched_topics") >= 1 })
	bob.stop()
	// Bob's subscription has ended (what it had not acknowledged is filed).
	eventually(t, "bob's subscription to end", func() bool { return relayMetric(t, r, "hush_relay_subscribers") == 1 })
	pushed0 := relayMetric(t, r, "hush_relay_topic_messages_pushed_total")

	// The publisher connects before the flood has the relay watch
	// thousands of topics: the hello a GossipSub router sends a new peer
	// lists all its topics in one RPC, which past about 1,600 topics is
	// over the peers' 72 KiB RPC limit, and the publisher would hear none.
	flood := &mailboxFlood{}
	garbage := newGarbagePublisher(t, ri, "127.0.0.20", flood)
	flood.start(t, ri, 4, 8)
	var direct, grouped []string
	for i := range 20 {
		if err := garbage.publish(100); err != nil {
			t.Fatal(err)
		}
		text := fmt.Sprintf("direct %02d while flooded", i)
		alice.mustRun("send", "bob", text)
		direct = append(direct, text)
	}
	for i := range 10 {
		if err := garbage.publish(100); err != nil {
			t.Fatal(err)
		}
		text := fmt.Sprintf("group %02d while flooded", i)
		alice.mustRun("group", "send", group, text)
		grouped = append(grouped, text)
	}
	waitNoQueued(t, alice, "bob") // every 1:1 message is on the relay
	// Every group message has been handled by the relay: alice's own
	// mailbox watches every topic of the group and she is online, so the
	// relay pushes her each message it handles (her own, and the
	// garbage on those topics) in the same step that files it for bob.
	want := float64(garbage.onHeard + len(grouped))
	eventually(t, "the relay to handle every group message", func() bool {
		return relayMetric(t, r, "hush_relay_topic_messages_pushed_total")-pushed0 >= want
	})
	alice.stop()

	bob.start()
	defer bob.stop()
	expectExactly(t, bob, "alice", direct)
	wantGroup := append([]string{"warm-up"}, grouped...)
	eventually(t, "the group messages at bob", func() bool { return len(bob.groupMessages(group)) >= len(wantGroup) })
	var got []string
	for _, m := range bob.groupMessages(group) {
		got = append(got, m.Text)
	}
	slices.Sort(got)
	slices.Sort(wantGroup)
	if !slices.Equal(got, wantGroup) {
		t.Fatalf("bob's group messages %q, want %q (each once)", got, wantGroup)
	}
	flood.stop()

	page := scrape(t, "http://"+r.metrics+"/metrics")
	t.Logf("flood: %v; garbage: %d messages on the group's topics, %d on its own", flood, garbage.onHeard, garbage.onProbe)
	t.Logf("relay: %s", grepLines(page, "refused_total"))
	t.Logf("relay: %s", grepLines(page, "topic_messages"))
	if metricValue(page, "hush_relay_creates_refused_total") == 0 || metricValue(page, "hush_relay_watches_refused_total") == 0 {
		t.Errorf("the mailbox flood was not refused by the relay's limits")
	}
	if metricValue(page, `hush_relay_topic_messages_dropped_total{reason="rate_limited"}`) == 0 {
		t.Errorf("the garbage publisher filed without limit")
	}
	if n := strings.Count(r.log.String(), "mailbox creation refused"); n == 0 || n > 3 {
		t.Errorf("%d log lines about refused creations, want a few (at most one a minute)", n)
	}
}

// BenchmarkRelayDepositsUnderFlood measures legitimate 1:1 throughput
// through a hush-relay process: 1 KiB envelopes deposited by 8 streams
// of a relay client into an offline recipient's mailbox, 4,000 without
// the flood and then 4,000 while the flood of issue 12 item 1 runs from a
// process of its own (TestFloodProcess: TestFloodWhileOffline's mailbox
// flood from 4 networks of 8 hosts, and a garbage publisher as fast as
// it can), in one run. The relay's deposit rate limits and quotas are
// lifted (they would measure themselves); its limits on strangers are the
// defaults. It reports the CPU (cores) the relay, this client and the
// flood used in each phase. Run once:
//
//	go test -run '^$' -bench RelayDepositsUnderFlood -benchtime 1x ./internal/e2e
func BenchmarkRelayDepositsUnderFlood(b *testing.B) {
	const deposits, streams = 4000, 8
	for range b.N {
		b.StopTimer()
		r := newRelay(b, `{"peer_rate": -1, "ip_rate": -1, "max_messages": 1000000, "max_mailbox_bytes": 68719476736, "max_store_bytes": 68719476736}`)
		r.start()
		b.Cleanup(func() { r.stop(syscall.SIGTERM) })
		ri, err := relay.ParseRelayAddr(r.addr)
		if err != nil {
			b.Fatal(err)
		}
		c := &relay.Client{}
		h := floodHost(b, "127.0.0.1")
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		box, err := c.Create(context.Background(), h, ri, key, nil)
		if err != nil {
			b.Fatal(err)
		}
		k, _ := ecdh.X25519().GenerateKey(rand.Reader)
		env, _ := envelope.Seal(k.PublicKey(), &envelope.Inner{Kind: envelope.KindMessage, Body: make([]byte, 900)})
		var deps []*relay.Depositor
		for range streams {
			d, err := c.OpenDepositor(context.Background(), h, ri)
			if err != nil {
				b.Fatal(err)
			}
			deps = append(deps, d)
		}
		// run deposits; it returns deposits per second and the cores the
		// relay, this process and process other (if any) used meanwhile.
		run := func(other int) (rate, relayCPU, selfCPU, otherCPU float64) {
			cpu := func() (float64, float64, float64) {
				o := 0.0
				if other != 0 {
					o = procCPU(b, other)
				}
				return procCPU(b, r.cmd.Process.Pid), selfCPUTime(), o
			}
			relay0, self0, other0 := cpu()
			start := time.Now()
			var wg sync.WaitGroup
			for _, d := range deps {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range deposits / streams {
						if _, err := d.Deposit(box.Deposit, env); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			d := time.Since(start).Seconds()
			relay1, self1, other1 := cpu()
			return deposits / d, (relay1 - relay0) / d, (self1 - self0) / d, (other1 - other0) / d
		}
		b.StartTimer()
		quiet, quietRelay, quietSelf, _ := run(0)
		b.StopTimer()

		flood := exec.Command(os.Args[0], "-test.run=^TestFloodProcess$", "-test.v")
		flood.Env = append(os.Environ(), "HUSH_FLOOD_RELAY="+r.addr)
		stdin, _ := flood.StdinPipe()
		stdout, _ := flood.StdoutPipe()
		flood.Stderr = os.Stderr
		if err := flood.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { stdin.Close(); flood.Wait() })
		lines := bufio.NewScanner(stdout)
		for lines.Scan() && lines.Text() != "flooding" {
		}
		b.StartTimer()
		flooded, floodRelay, floodSelf, floodCPU := run(flood.Process.Pid)
		b.StopTimer()
		stdin.Close()
		var report string
		for lines.Scan() {
			if rest, ok := strings.CutPrefix(lines.Text(), "flood: "); ok {
				report = rest
			}
		}
		flood.Wait()
		r.stop(syscall.SIGTERM)
		b.Logf("flood: %s", report)
		b.ReportMetric(quiet, "quiet-deposits/s")
		b.ReportMetric(flooded, "flood-deposits/s")
		b.ReportMetric(quietRelay, "quiet-relay-cores")
		b.ReportMetric(floodRelay, "flood-relay-cores")
		b.ReportMetric(quietSelf, "quiet-client-cores")
		b.ReportMetric(floodSelf, "flood-client-cores")
		b.ReportMetric(floodCPU, "flooder-cores")
	}
}

// TestFloodProcess is the flood process of BenchmarkRelayDepositsUnderFlood
// (run as the test binary with HUSH_FLOOD_RELAY set; otherwise skipped):
// the mailbox flood and the garbage publisher against that relay, from
// "flooding" on stdout until its stdin closes, then a line of counts.
func TestFloodProcess(t *testing.T) {
	addr := os.Getenv("HUSH_FLOOD_RELAY")
	if addr == "" {
		t.Skip("the flood process of BenchmarkRelayDepositsUnderFlood")
	}
	ri, err := relay.ParseRelayAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	flood := &mailboxFlood{}
	garbage := newGarbagePublisher(t, ri, "127.0.0.20", flood)
	flood.start(t, ri, 4, 8)
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	fmt.Println("flooding")
	for {
		select {
		case <-stop:
			flood.stop()
			fmt.Printf("flood: %v; %d garbage messages published\n", flood, garbage.onHeard+garbage.onProbe)
			return
		default:
			if err := garbage.publish(10); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// procCPU returns the CPU time (user and system) process pid has used,
// in seconds, from /proc/pid/stat.
func procCPU(tb testing.TB, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) in ")":
	// state is field 3, utime 14 and stime 15.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// selfCPUTime returns the CPU time this process has used, in seconds.
func selfCPUTime() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
