package search

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

func id(i int) ID {
	var x ID
	x[0], x[1], x[2] = byte(i>>16), byte(i>>8), byte(i)
	return x
}

func ids(hits []Hit) []int {
	var out []int
	for _, h := range hits {
		out = append(out, int(h.ID[0])<<16|int(h.ID[1])<<8|int(h.ID[2]))
	}
	return out
}

func TestWords(t *testing.T) {
	got := fmt.Sprint(Words("Hello, wörld! ÉTÉ it's 42x"))
	if got != "[hello wörld été it s 42x]" {
		t.Fatal(got)
	}
}

func TestSearch(t *testing.T) {
	x := New()
	x.Put(id(1), "a", 1, "Lunch at noon?")
	x.Put(id(2), "b", 2, "lunchtime is over")
	x.Put(id(3), "a", 3, "Dinner at NOON")
	if got := ids(x.Search("lunch", 0, nil)); fmt.Sprint(got) != "[2 1]" {
		t.Fatalf("prefix, newest first: %v", got)
	}
	if got := ids(x.Search("NOON at", 0, nil)); fmt.Sprint(got) != "[3 1]" {
		t.Fatalf("every word: %v", got)
	}
	if got := ids(x.Search("noon", 1, nil)); fmt.Sprint(got) != "[3]" {
		t.Fatalf("limit: %v", got)
	}
	if got := ids(x.Search("lunch", 0, func(c string) bool { return c == "a" })); fmt.Sprint(got) != "[1]" {
		t.Fatalf("conversation filter: %v", got)
	}
	if got := x.Search("unch", 0, nil); got != nil {
		t.Fatalf("inside a word: %v", got)
	}
	if got := x.Search(" ,. ", 0, nil); got != nil {
		t.Fatalf("no words: %v", got)
	}
	x.Put(id(1), "a", 1, "breakfast") // edited
	if got := ids(x.Search("lunch", 0, nil)); fmt.Sprint(got) != "[2]" {
		t.Fatalf("after edit: %v", got)
	}
	x.Put(id(2), "b", 2, "") // deleted for everyone: no text
	x.Remove(id(3))          // expired
	if got := x.Search("lunch noon", 0, nil); got != nil {
		t.Fatalf("after delete: %v", got)
	}
	x.RemoveConv("a")
	if x.Len() != 0 {
		t.Fatal(x.Len())
	}
}

// A message put again unchanged (its state changed: sent, delivered,
// read) leaves the index as it was: no dead doc, the same hits; a change
// of text, time or conversation still replaces it.
func TestPutUnchanged(t *testing.T) {
	x := New()
	x.Put(id(1), "a", 1, "lunch at noon")
	for range 3 {
		x.Put(id(1), "a", 1, "lunch at noon")
	}
	if len(x.docs) != 1 || x.dead != 0 {
		t.Fatalf("docs %d, dead %d after unchanged puts", len(x.docs), x.dead)
	}
	if got := ids(x.Search("lunch", 0, nil)); fmt.Sprint(got) != "[1]" {
		t.Fatalf("unchanged: %v", got)
	}
	x.Put(id(1), "a", 2, "lunch at noon") // another time
	if got := x.Search("lunch", 0, nil); len(got) != 1 || got[0].Time != 2 {
		t.Fatalf("new time: %v", got)
	}
	x.Put(id(1), "b", 2, "lunch at noon") // another conversation
	if got := x.Search("lunch", 0, func(c string) bool { return c == "b" }); len(got) != 1 {
		t.Fatalf("new conversation: %v", got)
	}
	x.Put(id(1), "b", 2, "dinner")
	if got := x.Search("lunch", 0, nil); got != nil {
		t.Fatalf("edited: %v", got)
	}
	x.Put(id(1), "b", 2, "")
	x.Put(id(1), "b", 2, "")
	if x.Len() != 0 {
		t.Fatalf("deleted: %d", x.Len())
	}
}

func TestCompaction(t *testing.T) {
	x := New()
	for i := range 5000 {
		x.Put(id(i%100), "c", int64(i), fmt.Sprintf("word%d common", i))
	}
	if x.Len() != 100 || len(x.docs) > 2*1024+100 {
		t.Fatalf("len %d, docs %d", x.Len(), len(x.docs))
	}
	if got := x.Search("common", 0, nil); len(got) != 100 || got[0].Time != 4999 {
		t.Fatalf("%d hits", len(got))
	}
	if got := ids(x.Search("word4999", 0, nil)); fmt.Sprint(got) != "[99]" {
		t.Fatal(got)
	}
}

var vocab = func() []string {
	var v []string
	for i := range 20000 {
		v = append(v, fmt.Sprintf("w%xq", i*2654435761%1000003))
	}
	return v
}()

// corpus is n messages of 3 to 20 words each from a 20,000-word
// vocabulary (Zipf-like: low ranks are common), plus "needle" in every
// 1,000th.
func corpus(x *Index, n int) {
	for i := range n {
		k := 3 + i%18
		text := make([]byte, 0, 128)
		for j := range k {
			r := (i*7919 + j*104729) % len(vocab)
			r = r * r / len(vocab) // skew towards common words
			text = append(text, vocab[r]...)
			text = append(text, ' ')
		}
		if i%1000 == 0 {
			text = append(text, "Needle"...)
		}
		x.Put(id(i), fmt.Sprint("conv", i%50), int64(i), string(text))
	}
}

// BenchmarkBuild100k builds the index of 100,000 messages and reports
// the heap it holds.
func BenchmarkBuild100k(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		x := New()
		corpus(x, 100000)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-held")
		runtime.KeepAlive(x)
	}
}

// BenchmarkSearch100k searches 100,000 indexed messages: a rare word, a
// common prefix (many hits, sorted newest first, 50 kept) and two words.
func BenchmarkSearch100k(b *testing.B) {
	x := New()
	start := time.Now()
	corpus(x, 100000)
	b.Logf("built in %v", time.Since(start))
	x.Search("warm", 1, nil)
	for _, q := range []string{"needle", "w1", vocab[3] + " " + vocab[0]} {
		b.Run(q[:min(len(q), 6)], func(b *testing.B) {
			for b.Loop() {
				x.Search(q, 50, nil)
			}
		})
	}
}
