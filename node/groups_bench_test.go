package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/crypto/senderkey"
	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/internal/testutil"
	"github.com/hushnet/hush/node/group"
)

const fanoutMembers = 50

// fanoutMin is the fewest messages an arm's percentiles rest on: a run
// shorter than that (make bench's -benchtime 1s) sends more after the
// timed loop. -benchtime 300x sends 300 per arm.
const fanoutMin = 300

// fanoutPace is the pause after each message, so every message finds the
// nodes idle (50 msg/s per arm).
const fanoutPace = 20 * time.Millisecond

// fanoutText is the text of a hush message; the raw arm publishes data of
// the size hush puts on the topic for it (fanoutTopicSize).
var fanoutText = strings.Repeat("f", 256)

// BenchmarkGroupFanout50 measures, for a 50-member group of in-process
// nodes (real libp2p hosts on loopback TCP, one process), the time from
// SendGroup on one member to the message event on the last of the other
// 49, one message at a time, 256 B of text. Each iteration also sends one
// message through the raw arm: 50 more hosts built as the node builds
// its host, with plain GossipSub and the same options, publishing data
// of the same size (the padded topic message); the two arms alternate,
// so both see the same machine. A third arm, floor (floorFanoutArm), is
// the raw arm plus the work the architecture requires of each member (the
// sender-key signature check, the decryption, one sealed record written):
// the least a member doing that work can reach. It reports each arm's p50
// and p99, their ratios to the raw arm (p50-x and p99-x for hush, the
// target's; floor-p50-x, floor-p99-x), and the allocations and CPU time
// per message (the whole process, send to last arrival: steadier than the
// percentiles on a shared machine, and with 49 receivers on 2 cores what
// sets them).
//
// HUSH_FANOUT_ARMS=hush,raw (any of hush, raw, floor, comma-separated)
// runs those arms only, for profiling or a shorter run;
// HUSH_FANOUT_RAW_SIZE=n makes the raw arm publish n bytes instead;
// HUSH_FANOUT_PROFILE=prefix writes a CPU profile of the timed loop
// (prefix.cpu) and heap profiles at its start and end (prefix.mem0,
// prefix.mem1: go tool pprof -sample_index=alloc_space -diff_base
// prefix.mem0 prefix.mem1).
func BenchmarkGroupFanout50(b *testing.B) {
	b.Run("fsync", func(b *testing.B) { benchFanout(b, false) })
	// All 50 stores share one disk here, so their fsyncs queue behind
	// each other; without fsync the figure shows the rest of the path.
	b.Run("nosync", func(b *testing.B) { benchFanout(b, true) })
}

// BenchmarkGossipSubFanout50 is the raw arm alone.
func BenchmarkGossipSubFanout50(b *testing.B) {
	runFanout(b, []fanoutArm{rawFanoutArm(b)})
}

func benchFanout(b *testing.B, noSync bool) {
	only := os.Getenv("HUSH_FANOUT_ARMS")
	if only == "" {
		only = "hush,raw,floor"
	}
	var arms []fanoutArm
	for _, name := range strings.Split(only, ",") {
		switch name {
		case "hush":
			arms = append(arms, hushFanoutArm(b, noSync))
		case "raw":
			arms = append(arms, rawFanoutArm(b))
		case "floor":
			arms = append(arms, floorFanoutArm(b))
		default:
			b.Fatalf("HUSH_FANOUT_ARMS: unknown arm %q (hush, raw, floor)", name)
		}
	}
	runFanout(b, arms)
}

// fanoutArm sends message i to 49 receivers and returns once the last
// one has it.
type fanoutArm struct {
	name string
	send func(i int)
}

// runFanout alternates the arms' messages (the order flips each
// iteration) and reports their figures.
func runFanout(b *testing.B, arms []fanoutArm) {
	lat := make([][]time.Duration, len(arms))
	allocs := make([]uint64, len(arms))
	cpu := make([]time.Duration, len(arms))
	var ms runtime.MemStats
	i := 0
	round := func() {
		for j := range arms {
			k := j
			if i%2 == 1 {
				k = len(arms) - 1 - j
			}
			runtime.ReadMemStats(&ms)
			m0 := ms.Mallocs
			c0 := testutil.ProcessCPU()
			t0 := time.Now()
			arms[k].send(i)
			lat[k] = append(lat[k], time.Since(t0))
			cpu[k] += testutil.ProcessCPU() - c0
			runtime.ReadMemStats(&ms)
			allocs[k] += ms.Mallocs - m0
			time.Sleep(fanoutPace)
		}
		i++
	}
	stop := startFanoutProfile(b)
	b.ResetTimer()
	for b.Loop() {
		round()
	}
	stop()
	for len(lat[0]) < fanoutMin {
		round()
	}
	p := make([][2]float64, len(arms))
	for k, a := range arms {
		p[k] = percentiles(lat[k])
		b.ReportMetric(p[k][0], a.name+"-p50-µs")
		b.ReportMetric(p[k][1], a.name+"-p99-µs")
		b.ReportMetric(float64(allocs[k])/float64(len(lat[k])), a.name+"-allocs/msg")
		b.ReportMetric(float64(cpu[k].Microseconds())/float64(len(lat[k])), a.name+"-cpu-µs/msg")
	}
	// Each arm's ratios to the raw arm: p50-x and p99-x for hush (the
	// target's), floor-p50-x and floor-p99-x for the floor arm.
	raw := slices.IndexFunc(arms, func(a fanoutArm) bool { return a.name == "raw" })
	for k, a := range arms {
		if raw < 0 || k == raw {
			continue
		}
		prefix := a.name + "-"
		if a.name == "hush" {
			prefix = ""
		}
		b.ReportMetric(p[k][0]/p[raw][0], prefix+"p50-x")
		b.ReportMetric(p[k][1]/p[raw][1], prefix+"p99-x")
	}
}

// percentiles returns the p50 and p99 of d in µs.
func percentiles(d []time.Duration) [2]float64 {
	d = slices.Clone(d)
	slices.Sort(d)
	p := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))].Microseconds()) }
	return [2]float64{p(0.5), p(0.99)}
}

// startFanoutProfile starts the profiles HUSH_FANOUT_PROFILE asks for and
// returns their stop.
func startFanoutProfile(b *testing.B) func() {
	prefix := os.Getenv("HUSH_FANOUT_PROFILE")
	if prefix == "" {
		return func() {}
	}
	heap := func(name string) {
		runtime.GC()
		f, err := os.Create(prefix + name)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
	}
	heap(".mem0")
	f, err := os.Create(prefix + ".cpu")
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		heap(".mem1")
	}
}

// hushFanoutArm makes the 50-member group; node 0 sends.
func hushFanoutArm(b *testing.B, noSync bool) fanoutArm {
	old, oldSync := testGroupSync, testNoSync
	testGroupSync, testNoSync = time.Minute, noSync // measure the topic path, not repairs
	nodes := makeGroupWith(b, fanoutMembers, "fanout", waitLong)
	testGroupSync, testNoSync = old, oldSync
	var mu sync.Mutex
	got := map[string]int{}
	arrived := make(chan string, 1<<16)
	for _, r := range nodes[1:] {
		events, cancel := r.n.Subscribe(0)
		b.Cleanup(cancel)
		go func() {
			for ev := range events {
				if ev.Type == EventMessage && ev.Message.Direction == "in" && ev.Message.Group != "" {
					mu.Lock()
					got[ev.Message.ID]++
					if got[ev.Message.ID] == fanoutMembers-1 {
						arrived <- ev.Message.ID
					}
					mu.Unlock()
				}
			}
		}()
	}
	sendGroupEventuallyFor(b, nodes[0], "fanout", "warm-up", time.Minute)
	<-arrived
	return fanoutArm{name: "hush", send: func(int) {
		m, err := nodes[0].n.SendGroup(context.Background(), GroupSendRequest{Group: "fanout", Text: fanoutText})
		if err != nil {
			b.Fatal(err)
		}
		select {
		case id := <-arrived:
			if id != m.ID {
				b.Fatalf("arrived %s, sent %s", id, m.ID)
			}
		case <-time.After(30 * time.Second):
			b.Fatal("a member never got the message")
		}
	}}
}

// fanoutTopicSize is the size of the topic message hush publishes for a
// group text of fanoutText: the payload, sealed with the sender key and
// for the topic, padded to its bucket.
func fanoutTopicSize() int {
	p := &payload{Type: ptText, Text: fanoutText}
	return group.TopicSize(len(p.marshal()))
}

// rawFanoutArm makes 50 hosts as newHost makes a node's, fully
// connected, running GossipSub with the group topic options (no guard,
// no validator); host 0 publishes data of the size hush puts on the
// topic.
func rawFanoutArm(b *testing.B) fanoutArm {
	size := fanoutTopicSize()
	if v, err := strconv.Atoi(os.Getenv("HUSH_FANOUT_RAW_SIZE")); err == nil && v >= 16 {
		size = v // to see what the size costs (GossipSub sends IDONTWANT for 1 KiB and more)
	}
	payload := make([]byte, size)
	return gossipFanoutArm(b, "raw", fanoutMembers, func(i int) []byte {
		copy(payload, fmt.Sprintf("%016d", i))
		return append([]byte(nil), payload...)
	}, func(_ int, data []byte) string { return string(data[:16]) })
}

// floorFanoutArm is the raw arm plus what docs/ARCHITECTURE.md requires
// of every member for a group message, and nothing else: the sender
// encrypts under a sender key, each receiver checks its Ed25519 signature,
// decrypts it and writes it as one sealed record into its own store
// (internal/store, written as the node writes a received group message:
// lazily, its fsync left to the store's next synced write). No topic
// seal, no padding check, no guard, no events, no index. Its ratio to
// the raw arm is the least a member doing the required work can reach
// on this machine.
func floorFanoutArm(b *testing.B) fanoutArm {
	var gid [senderkey.GroupIDSize]byte
	var dev [senderkey.DeviceIDSize]byte
	rand.Read(gid[:])
	rand.Read(dev[:])
	sk, err := senderkey.NewSenderKey(gid, 1, dev)
	if err != nil {
		b.Fatal(err)
	}
	recvs := make([]*senderkey.Receiver, fanoutMembers)
	dbs := make([]*store.DB, fanoutMembers)
	for r := 1; r < fanoutMembers; r++ {
		recvs[r] = senderkey.NewReceiver(gid)
		if err := recvs[r].Add(sk.Distribution()); err != nil {
			b.Fatal(err)
		}
		db, err := store.Open(b.TempDir(), store.Config{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		dbs[r] = db
	}
	plain := make([]byte, len((&payload{Type: ptText, Text: fanoutText}).marshal()))
	size := fanoutTopicSize()
	return gossipFanoutArm(b, "floor", fanoutMembers, func(i int) []byte {
		copy(plain, fmt.Sprintf("%016d", i))
		msg, err := sk.Encrypt(plain)
		if err != nil {
			b.Fatal(err)
		}
		data := make([]byte, max(size, 2+len(msg)))
		binary.BigEndian.PutUint16(data, uint16(len(msg)))
		copy(data[2:], msg)
		return data
	}, func(r int, data []byte) string {
		n := int(binary.BigEndian.Uint16(data))
		pt, _, err := recvs[r].Decrypt(data[2 : 2+n])
		if err != nil {
			b.Error(err)
			return ""
		}
		batch := dbs[r].Batch()
		batch.Lazy()
		tab := dbs[r].Table("messages")
		if err := batch.Put(tab, pt[:16], pt); err != nil {
			b.Error(err)
		}
		if err := batch.Commit(); err != nil {
			b.Error(err)
		}
		return string(pt[:16])
	})
}

// gossipFanoutArm makes n hosts as newHost makes a node's, fully
// connected, running GossipSub with the group topic options (no guard,
// no validator). Host 0 publishes message(i); each other host r hands
// what arrives to receive(r, data), which returns the message's ID (the
// first 16 bytes of message(i)'s plaintext).
func gossipFanoutArm(b *testing.B, name string, n int, message func(i int) []byte, receive func(r int, data []byte) string) fanoutArm {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	var hosts []host.Host
	var topics []*pubsub.Topic
	var subs []*pubsub.Subscription
	for range n {
		h := loopbackHost(b)
		ps, err := pubsub.NewGossipSub(ctx, h, group.PubSubOptions()...)
		if err != nil {
			b.Fatal(err)
		}
		tp, err := ps.Join("hush/g/bench")
		if err != nil {
			b.Fatal(err)
		}
		sub, err := tp.Subscribe()
		if err != nil {
			b.Fatal(err)
		}
		hosts, topics, subs = append(hosts, h), append(topics, tp), append(subs, sub)
	}
	// Every host connects to every other, as group members do.
	for i, h := range hosts {
		for _, o := range hosts[i+1:] {
			if err := h.Connect(ctx, peer.AddrInfo{ID: o.ID(), Addrs: o.Addrs()}); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Host 0 floods its messages to every peer it knows is on the topic.
	waitLong(b, "the "+name+" topic's peers", func() bool { return len(topics[0].ListPeers()) == n-1 })
	var mu sync.Mutex
	got := map[string]int{}
	arrived := make(chan string, 1<<16)
	for r, sub := range subs[1:] {
		go func() {
			for {
				m, err := sub.Next(ctx)
				if err != nil {
					return
				}
				id := receive(r+1, m.Data)
				mu.Lock()
				got[id]++
				if got[id] == n-1 {
					arrived <- id
				}
				mu.Unlock()
			}
		}()
	}
	send := func(i int) {
		id := fmt.Sprintf("%016d", i)
		if err := topics[0].Publish(ctx, message(i)); err != nil {
			b.Fatal(err)
		}
		select {
		case got := <-arrived:
			if got != id {
				b.Fatalf("arrived %s, sent %s", got, id)
			}
		case <-time.After(30 * time.Second):
			b.Fatal("a host never got the message")
		}
	}
	send(-1) // warm-up
	return fanoutArm{name: name, send: send}
}

func waitLong(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sendGroupEventuallyFor(t testing.TB, r *running, name, text string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		_, err := r.n.SendGroup(context.Background(), GroupSendRequest{Group: name, Text: text})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
