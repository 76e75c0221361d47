package relay

import (
	"context"
	"sync"
	"testing"
	"time"
)

// benchConfig lifts the limits that would stop a benchmark.
var benchConfig = Config{PeerRate: -1, IPRate: -1, MaxMessages: 1 << 30, MaxMailboxBytes: 1 << 40, MaxStoreBytes: 1 << 40,
	MaxMailboxesPerPeer: 1 << 20, MaxMailboxesPerIP: 1 << 20, CreateIPPerHour: -1, TopicFileRate: -1, TopicFileIPRate: -1}

// BenchmarkDeposit1KiB: many depositors (8 hosts × 64 streams) storing
// 1 KiB envelopes over real loopback streams, synced in groups.
func BenchmarkDeposit1KiB(b *testing.B) {
	r := startRelay(b, benchConfig)
	c := &Client{}
	const hosts, streams = 8, 64
	setup := newHost(b)
	var boxes []*owner
	for range 64 {
		boxes = append(boxes, createMailbox(b, c, setup, r))
	}
	env := sealed1K(b)
	var deps []*Depositor
	for range hosts {
		h := newHost(b)
		for range streams {
			d, err := c.OpenDepositor(context.Background(), h, r.info)
			if err != nil {
				b.Fatal(err)
			}
			deps = append(deps, d)
		}
	}
	b.SetBytes(int64(len(env)))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var next sync.Mutex
	n := 0
	for i, d := range deps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			box := boxes[i%len(boxes)].created.Deposit
			for {
				next.Lock()
				if n >= b.N {
					next.Unlock()
					return
				}
				n++
				next.Unlock()
				if _, err := d.Deposit(box, env); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deposits/s")
}

// fill stores n 1 KiB envelopes in o's mailbox.
func fill(b *testing.B, r *testRelay, o *owner, n int) {
	c := &Client{}
	env := sealed1K(b)
	h := newHost(b)
	var wg sync.WaitGroup
	per := (n + 63) / 64
	for w := 0; w < 64; w++ {
		k := min(per, n-w*per)
		if k <= 0 {
			break
		}
		d, err := c.OpenDepositor(context.Background(), h, r.info)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range k {
				if _, err := d.Deposit(o.created.Deposit, env); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// catchUp subscribes, receives and acks n envelopes, and waits until the
// relay has deleted them.
func catchUp(b *testing.B, r *testRelay, o *owner, n int) {
	c := &Client{}
	h := newHost(b)
	sub, err := c.Subscribe(context.Background(), h, r.info, o.created.Mailbox, o.key, false)
	if err != nil {
		b.Fatal(err)
	}
	for range n {
		d, ok := <-sub.Messages()
		if !ok {
			b.Fatalf("subscription ended: %v", sub.Err())
		}
		sub.Ack(d.Message)
	}
	sub.Close()
	if left := r.srv.storedMsgs.Load(); left != 0 {
		b.Fatalf("%d left after acks", left)
	}
}

// BenchmarkFetchAck1KiB: an owner receives and acknowledges stored 1 KiB
// envelopes; the acks are committed (deleted) before the clock stops.
func BenchmarkFetchAck1KiB(b *testing.B) {
	r := startRelay(b, benchConfig)
	o := createMailbox(b, &Client{}, newHost(b), r)
	fill(b, r, o, b.N)
	b.ResetTimer()
	start := time.Now()
	catchUp(b, r, o, b.N)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkCatchUp10k: time for an owner to receive and ack 10,000
// stored envelopes.
func BenchmarkCatchUp10k(b *testing.B) {
	r := startRelay(b, benchConfig)
	for range b.N {
		b.StopTimer()
		o := createMailbox(b, &Client{}, newHost(b), r)
		fill(b, r, o, 10000)
		b.StartTimer()
		start := time.Now()
		catchUp(b, r, o, 10000)
		b.ReportMetric(time.Since(start).Seconds(), "s/catchup")
	}
}

// BenchmarkTopicFile1KiB: 1 KiB group topic messages published by a
// member's host and filed by the relay into the 8 mailboxes watching the
// topic (synced group commits), at most 1,000 in flight; one op is one
// message filed 8 times.
func BenchmarkTopicFile1KiB(b *testing.B) {
	const watchers = 8
	met := &topicMetrics{dropped: map[ErrorCode]int{}}
	cfg := benchConfig
	cfg.Metrics = met
	r := startRelay(b, cfg)
	c := &Client{}
	h := newHost(b)
	topic := newTopic()
	for range watchers {
		createMailbox(b, c, h, r).watch(b, c, h, r, topic)
	}
	pub := newPublisher(b, r)
	pub.waitRelay(topic, true)
	data := make([][]byte, b.N)
	for i := range data {
		data[i] = groupData(1024)
	}
	b.SetBytes(1024)
	b.ResetTimer()
	start := time.Now()
	for i, d := range data {
		// Pace like a member's node: keep under the queues of
		// gossip.QueueSize (a tight loop of more would overflow them).
		for int64(i-1000)*watchers > met.filed.Load() {
			time.Sleep(time.Millisecond)
		}
		pub.publish(topic, d)
	}
	eventually(b, "all filed", func() bool { return met.filed.Load() == int64(watchers*b.N) })
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
