package relay

import (
	"context"
	"crypto/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"

	"github.com/hushnet/hush/internal/testutil"
)

// benchConfig lifts the limits that would stop a benchmark.
var benchConfig = Config{PeerRate: -1, IPRate: -1, MaxMessages: 1 << 30, MaxMailboxBytes: 1 << 40, MaxStoreBytes: 1 << 40,
	MaxMailboxesPerPeer: 1 << 20, MaxMailboxesPerIP: 1 << 20, CreateIPPerHour: -1, TopicFileRate: -1, TopicFileIPRate: -1}

// BenchmarkDeposit1KiB measures 1 KiB deposits against goleveldb's own
// synced-batch rate in the same run (docs/RELAY.md "Deposits in
// batches"):
//   - baseline-leveldb: goleveldb alone with the store's options (no
//     store layer), 1 KiB values under random 24-byte keys (the store's
//     keys are keyed hashes of that length) in synced batches of 100:
//     entries/s;
//   - relay: 8 hosts, one Depositor each, 64 goroutines per host
//     depositing one envelope at a time over real loopback streams
//     (their envelopes share DepositMany frames): deposits/s, and that
//     rate over the baseline's (x-baseline), and the deposits one synced
//     commit carried on average (deposits/sync);
//   - relay-2048: relay with 256 goroutines per host. The 512 of relay
//     are a closed loop bound by a deposit's round trip (about 12 ms:
//     512 in flight / 12 ms is the rate, with the store's writes in
//     flight two thirds of the time, docs/PERFORMANCE.md); four times
//     as many show what the relay takes when it is kept busy;
//   - relay-unbatched: as before deposits in batches, 8 hosts × 64
//     streams, one Deposit in flight on each.
func BenchmarkDeposit1KiB(b *testing.B) {
	b.Run("baseline-leveldb", func(b *testing.B) {
		cpu := testutil.ProcessCPU()
		rate := leveldbBatchRate(b, b.N)
		b.ReportMetric(float64((testutil.ProcessCPU()-cpu).Microseconds())/float64(b.N), "cpu-µs/entry")
		baselineRate = rate
		b.ReportMetric(rate, "entries/s")
	})
	b.Run("relay", func(b *testing.B) { benchDeposits(b, true, 64) })
	b.Run("relay-2048", func(b *testing.B) { benchDeposits(b, true, 256) })
	b.Run("relay-unbatched", func(b *testing.B) { benchDeposits(b, false, 64) })
}

// baselineRate is the entry rate the baseline arm measured last in this
// run (0: it did not run).
var baselineRate float64

// storeLevelDBOptions are internal/store's goleveldb options (its
// ldbOptions), so that the baseline writes as the store does: a 16 MiB
// memory table, 8 MiB tables, a 64 MiB first level, no compression, a
// bloom filter.
func storeLevelDBOptions() *opt.Options {
	return &opt.Options{Compression: opt.NoCompression, WriteBuffer: 16 << 20, CompactionTableSize: 8 << 20,
		CompactionTotalSize: 64 << 20, Filter: filter.NewBloomFilter(10)}
}

// storeKeyLen is the length of the store's keys (a table tag and a
// keyed hash).
const storeKeyLen = 24

// leveldbBatchRate writes n 1 KiB values to a fresh goleveldb in synced
// batches of 100 and returns the entries per second.
func leveldbBatchRate(b *testing.B, n int) float64 {
	db, err := leveldb.OpenFile(b.TempDir(), storeLevelDBOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	value := make([]byte, 1024)
	rand.Read(value)
	keys := make([]byte, storeKeyLen*100)
	wo := &opt.WriteOptions{Sync: true}
	b.SetBytes(int64(len(value)))
	b.ResetTimer()
	start := time.Now()
	var batch leveldb.Batch
	for done := 0; done < n; {
		batch.Reset()
		rand.Read(keys)
		for i := 0; i < 100 && done < n; i++ {
			batch.Put(keys[i*storeKeyLen:(i+1)*storeKeyLen], value)
			done++
		}
		if err := db.Write(&batch, wo); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

func benchDeposits(b *testing.B, batched bool, callers int) {
	r := startRelay(b, benchConfig)
	c := &Client{}
	const hosts = 8
	setup := newHost(b)
	var boxes []*owner
	for range 64 {
		boxes = append(boxes, createMailbox(b, c, setup, r))
	}
	env := sealed1K(b)
	// deposit is one caller's way to deposit: a Depositor shared by the
	// host's callers, or a stream of its own with one Deposit frame at a
	// time (the client before deposits in batches).
	var deps []func(ID, []byte) error
	for range hosts {
		h := newHost(b)
		var shared *Depositor
		for range callers {
			if !batched {
				lc := openLegacyDepositor(b, c, h, r)
				deps = append(deps, lc.deposit)
				continue
			}
			if shared == nil {
				d, err := c.OpenDepositor(context.Background(), h, r.info)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { d.Close() })
				shared = d
			}
			deps = append(deps, func(box ID, env []byte) error {
				_, err := shared.Deposit(box, env)
				return err
			})
		}
	}
	b.SetBytes(int64(len(env)))
	b.ResetTimer()
	start, cpu, syncs := time.Now(), testutil.ProcessCPU(), r.srv.db.SyncedWrites()
	var wg sync.WaitGroup
	var left atomic.Int64
	left.Store(int64(b.N))
	for i, d := range deps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			box := boxes[i%len(boxes)].created.Deposit
			for left.Add(-1) >= 0 {
				if err := d(box, env); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	rate := float64(b.N) / time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(float64((testutil.ProcessCPU()-cpu).Microseconds())/float64(b.N), "cpu-µs/deposit")
	b.ReportMetric(float64(b.N)/float64(r.srv.db.SyncedWrites()-syncs), "deposits/sync")
	b.ReportMetric(rate, "deposits/s")
	// Each caller has one deposit in flight (while deposits are left):
	// the mean round trip.
	b.ReportMetric(float64(min(hosts*callers, b.N))/rate*1e3, "round-trip-ms")
	if batched {
		base := baselineRate
		if base == 0 {
			base = leveldbBatchRate(b, 50000)
		}
		b.ReportMetric(rate/base, "x-baseline")
	}
}

// legacyDepositor deposits as the client before deposits in batches did:
// one Deposit frame at a time on its own stream.
type legacyDepositor struct{ st network.Stream }

func openLegacyDepositor(t testing.TB, c *Client, h host.Host, r *testRelay) *legacyDepositor {
	st, err := c.open(context.Background(), h, r.info)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &legacyDepositor{st: st}
}

func (d *legacyDepositor) deposit(box ID, env []byte) error {
	resp, err := roundTrip(d.st, &Deposit{Deposit: box, Envelope: env})
	if err != nil {
		return err
	}
	if _, ok := resp.(*Receipt); !ok {
		return unexpected(resp)
	}
	return nil
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
