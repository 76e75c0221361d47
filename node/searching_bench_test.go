package node

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// searchCorpus writes count message records in a's conversation with
// bob straight into the store (no network): 3 to 20 words each from a
// 20,000-word vocabulary skewed towards common words, "needle" in every
// 1,000th.
func searchCorpus(b *testing.B, r *running, contact string, count int) {
	r.n.mu.Lock()
	c, err := r.n.contactByNameLocked(contact)
	r.n.mu.Unlock()
	if err != nil {
		b.Fatal(err)
	}
	acc := c.account()
	vocab := make([]string, 20000)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("w%xq", i*2654435761%1000003)
	}
	t0 := time.Now().Add(-time.Duration(count) * time.Second)
	for start := 0; start < count; start += 5000 {
		batch := r.n.db.Batch()
		for i := start; i < min(count, start+5000); i++ {
			text := make([]byte, 0, 128)
			for j := range 3 + i%18 {
				k := (i*7919 + j*104729) % len(vocab)
				text = append(append(text, vocab[k*k/len(vocab)]...), ' ')
			}
			if i%1000 == 0 {
				text = append(text, "Needle"...)
			}
			id := newMessageID()
			m := msgRec{ID: fmt.Sprintf("%x", id), Dir: "in", Text: string(text), State: StateRead, Time: t0.Add(time.Duration(i) * time.Second)}
			batch.PutSeq(r.n.tabs.messages, acc[:], uint64(1_000_000+i), m.marshal())
			batch.Put(r.n.tabs.msgIndex, id[:], (&indexRec{Account: acc[:], Seq: uint64(1_000_000 + i)}).marshal())
		}
		if err := batch.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSearch100k: 100,000 messages in the encrypted store. Build:
// the index built from the store (decrypting every record), with the
// heap it holds; then searches through Node.Search (index, then each
// hit's record loaded and shown): a rare word (100 hits), a common
// prefix (thousands of hits, 50 shown) and two words.
func BenchmarkSearch100k(b *testing.B) {
	testNoSync = true
	defer func() { testNoSync = false }()
	a, bob := pair(b)
	defer a.stop(b)
	defer bob.stop(b)
	const count = 100_000
	searchCorpus(b, a, "bob", count)

	b.Run("build", func(b *testing.B) {
		for b.Loop() {
			a.n.search.mu.Lock()
			a.n.search.idx = nil
			a.n.search.mu.Unlock()
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			idx, err := a.n.searchIndex()
			if err != nil || idx.Len() < count {
				b.Fatal(err, idx.Len())
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "MiB-held")
		}
	})
	for _, q := range []string{"needle", "w1", "w0q w1"} {
		b.Run("query="+q, func(b *testing.B) {
			for b.Loop() {
				ms, err := a.n.Search(SearchRequest{Text: q})
				if err != nil || len(ms) == 0 {
					b.Fatal(err, len(ms))
				}
			}
		})
	}
}
