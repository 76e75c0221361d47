package node

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/node/group"
)

const fanoutMembers = 50

// fanoutBatch is how many messages one benchmark iteration sends, so the
// percentiles rest on at least that many samples (make bench runs one
// iteration).
const fanoutBatch = 300

// BenchmarkGroupFanout50 measures, for a 50-member group of in-process
// nodes (real libp2p hosts on loopback TCP, one process), the time from
// SendGroup on one member to the message event on the last of the other
// 49, one message at a time (fanoutBatch per iteration), 256 B of text. BenchmarkGossipSubFanout50 is
// raw GossipSub with the same options and payload size, for comparison.
func BenchmarkGroupFanout50(b *testing.B) {
	b.Run("fsync", func(b *testing.B) { benchFanout(b, false) })
	// All 50 stores share one disk here, so their fsyncs queue behind
	// each other; without fsync the figure shows the rest of the path.
	b.Run("nosync", func(b *testing.B) { benchFanout(b, true) })
}

func benchFanout(b *testing.B, noSync bool) {
	old, oldSync := testGroupSync, testNoSync
	testGroupSync, testNoSync = time.Minute, noSync // measure the topic path, not repairs
	defer func() { testGroupSync, testNoSync = old, oldSync }()
	nodes := makeGroupWith(b, fanoutMembers, "fanout", waitLong)
	var mu sync.Mutex
	got := map[string]int{}
	arrived := make(chan string, 1<<16)
	for _, r := range nodes[1:] {
		events, cancel := r.n.Subscribe(0)
		defer cancel()
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
	text := strings.Repeat("f", 256)
	sendGroupEventuallyFor(b, nodes[0], "fanout", "warm-up", time.Minute)
	<-arrived
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		for range fanoutBatch {
			t0 := time.Now()
			m, err := nodes[0].n.SendGroup(context.Background(), GroupSendRequest{Group: "fanout", Text: text})
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
			lat = append(lat, time.Since(t0))
			time.Sleep(20 * time.Millisecond) // paced, 50 msg/s as the baseline
		}
	}
	reportPercentiles(b, lat)
}

func BenchmarkGossipSubFanout50(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var hosts []host.Host
	var topics []*pubsub.Topic
	var subs []*pubsub.Subscription
	for range fanoutMembers {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
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
	time.Sleep(2 * time.Second) // mesh
	var mu sync.Mutex
	got := map[string]int{}
	arrived := make(chan string, 1<<16)
	for _, sub := range subs[1:] {
		go func() {
			for {
				m, err := sub.Next(ctx)
				if err != nil {
					return
				}
				id := string(m.Data[:16])
				mu.Lock()
				got[id]++
				if got[id] == fanoutMembers-1 {
					arrived <- id
				}
				mu.Unlock()
			}
		}()
	}
	payload := make([]byte, 256+174+group.TopicOverhead) // a group message of 256 B of text is about this size
	var lat []time.Duration
	i := 0
	for b.Loop() {
		for range fanoutBatch {
			i++
			copy(payload, fmt.Sprintf("%016d", i))
			t0 := time.Now()
			if err := topics[0].Publish(ctx, append([]byte(nil), payload...)); err != nil {
				b.Fatal(err)
			}
			select {
			case <-arrived:
			case <-time.After(30 * time.Second):
				b.Fatal("a host never got the message")
			}
			lat = append(lat, time.Since(t0))
			time.Sleep(20 * time.Millisecond)
		}
	}
	reportPercentiles(b, lat)
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
