package node

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"
)

// BenchmarkConversationTails is the conversation list's cost: the tail
// of each of 200 conversations of 500 messages (every other one
// incoming), read as listConversations reads them. "read": everything
// read (the usual case); "unread50": the last 50 incoming unread in
// each; "outonly": conversations with no incoming message (the scan
// runs to its cap). The "cached" arms list through the tail cache
// (convtails.go) with one conversation changed between lists, as after
// a new message.
func BenchmarkConversationTails(b *testing.B) {
	for _, tc := range []struct {
		name   string
		unread int
		noIn   bool
		cached bool
	}{{"read", 0, false, false}, {"unread50", 50, false, false}, {"outonly", 0, true, false},
		{"unread50-cached", 50, false, true}, {"outonly-cached", 0, true, true}} {
		b.Run(tc.name, func(b *testing.B) {
			const convs, per = 200, 500
			n, err := New(Config{Home: newHome(b, "bench"), KDF: testKDF, NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			keys := make([][]byte, convs)
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for c := range convs {
				k := sha256.Sum256(fmt.Appendf(nil, "conv %d", c))
				keys[c] = k[:]
				batch := n.db.Batch()
				for i := range per {
					m := msgRec{ID: fmt.Sprintf("%032x", c*per+i), Dir: "out", Text: "a message of some ordinary length, like this one", State: StateRead, Time: t0.Add(time.Duration(i) * time.Second)}
					if i%2 == 1 && !tc.noIn {
						m.Dir = "in"
						if i >= per-2*tc.unread {
							m.State = StateReceived
						}
					}
					batch.PutSeq(n.tabs.messages, keys[c], uint64(i+1), m.marshal())
				}
				if err := batch.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for b.Loop() {
				n.mu.Lock()
				tail := n.convTailLocked
				if tc.cached {
					n.tails.forget(keys[0])
					tail = n.cachedTailLocked
				}
				for _, k := range keys {
					ct, err := tail(k)
					if err != nil || ct.last == nil || ct.unread != tc.unread {
						b.Fatalf("%+v %v", ct, err)
					}
				}
				n.mu.Unlock()
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/list")
		})
	}
}
