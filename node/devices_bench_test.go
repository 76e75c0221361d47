package node

import (
	"context"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fillHistory writes count messages with bob into n's store, in batches,
// as a conversation that grew over count minutes: half in, half out.
func fillHistory(b *testing.B, n *Node, count int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := n.byNameLocked("bob")
	if err != nil {
		b.Fatal(err)
	}
	acc := c.account()
	start := time.Now().Add(-time.Duration(count) * time.Minute)
	for i := 0; i < count; {
		t := n.newTxnLocked()
		for j := 0; j < 1000 && i < count; j, i = j+1, i+1 {
			id := newMessageID()
			m := &msgRec{ID: hex.EncodeToString(id[:]), Dir: "in", State: StateRead,
				Text: fmt.Sprintf("message %d: %s", i, strings.Repeat("x", 40)), Time: start.Add(time.Duration(i) * time.Minute).UTC()}
			if i%2 == 1 {
				m.Dir, m.State = "out", StateDelivered
			}
			n.putMsgLocked(t, id, indexRec{Account: acc[:], Seq: n.nextSeqLocked()}, m)
		}
		n.saveSeqLocked(t)
		if err := n.commitReleasingLock(t); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHistoryTransfer10k: a new device links and receives a
// 10,000-message history over loopback, every chunk committed (fsync)
// on the new device. Target (issue 14): under 3 s.
func BenchmarkHistoryTransfer10k(b *testing.B) {
	laptop, bob := pair(b)
	defer laptop.stop(b)
	defer bob.stop(b)
	const count = 10000
	fillHistory(b, laptop.n, count)
	var items uint64
	for b.Loop() {
		offer, err := laptop.n.LinkDevice(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		home := filepath.Join(b.TempDir(), "phone")
		var last HistoryProgress
		if _, err := JoinDevice(context.Background(), home, JoinOptions{Code: offer.Code, Name: "phone", KDF: testKDF,
			Progress: func(p HistoryProgress) { last = p }}); err != nil {
			b.Fatal(err)
		}
		if last.Done < count {
			b.Fatalf("%d items transferred", last.Done)
		}
		items = last.Done
		b.StopTimer()
		ds, _ := laptop.n.Devices()
		for _, d := range ds {
			if !d.This {
				if err := laptop.n.RevokeDevice(d.ID); err != nil { // room for the next round
					b.Fatal(err)
				}
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(items), "items")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/transfer")
}

// BenchmarkSyncLatency: the laptop sends a text to bob; the time to bob's
// event (a 1:1 message) and to the phone's event (the sync message of
// the same send), in the same run, all three nodes in this process.
// Target (issue 14): sync p99 within 2x the 1:1 p99.
func BenchmarkSyncLatency(b *testing.B) {
	laptop, bob := pair(b)
	defer laptop.stop(b)
	defer bob.stop(b)
	phone := startNode(b, linkDevice(b, laptop, "phone"))
	defer phone.stop(b)
	waitEntry(b, laptop, phone)
	arrivals := func(r *running, dir string) <-chan string {
		ch := make(chan string, 1<<16)
		evs, cancel := r.n.Subscribe(^uint64(0))
		b.Cleanup(cancel)
		go func() {
			for ev := range evs {
				if ev.Type == EventMessage && ev.Message.Direction == dir {
					ch <- ev.Message.ID
				}
			}
		}()
		return ch
	}
	atBob, atPhone := arrivals(bob, "in"), arrivals(phone, "out")
	text := strings.Repeat("x", 256)
	send := func() (string, time.Time) {
		t0 := time.Now()
		m, err := laptop.n.Send(context.Background(), SendRequest{To: "bob", Text: text})
		if err != nil {
			b.Fatal(err)
		}
		return m.ID, t0
	}
	// Warm up: sessions leave the prekey-message phase.
	for range 3 {
		id, _ := send()
		for got := <-atBob; got != id; got = <-atBob {
		}
		for got := <-atPhone; got != id; got = <-atPhone {
		}
	}
	var direct, synced []time.Duration
	for b.Loop() {
		id, t0 := send()
		for range 2 {
			select {
			case got := <-atBob:
				if got != id {
					b.Fatalf("bob got %s, sent %s", got, id)
				}
				direct = append(direct, time.Since(t0))
			case got := <-atPhone:
				if got != id {
					b.Fatalf("the phone got %s, sent %s", got, id)
				}
				synced = append(synced, time.Since(t0))
			}
		}
	}
	p := func(d []time.Duration, q float64) float64 {
		s := append([]time.Duration(nil), d...)
		slices.Sort(s)
		return float64(s[int(q*float64(len(s)-1))].Microseconds())
	}
	b.ReportMetric(p(direct, 0.5), "1:1-p50-µs")
	b.ReportMetric(p(direct, 0.99), "1:1-p99-µs")
	b.ReportMetric(p(synced, 0.5), "sync-p50-µs")
	b.ReportMetric(p(synced, 0.99), "sync-p99-µs")
	b.ReportMetric(p(synced, 0.99)/p(direct, 0.99), "p99-ratio")
}
