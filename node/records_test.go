package node

import (
	"strings"
	"testing"
)

// The record cache stays within its count and byte bounds, and its byte
// count follows replacements and evictions.
func TestRecentCacheBounds(t *testing.T) {
	n := newRecords()
	id := func(i int) (x [msgIDSize]byte) { x[0], x[1], x[2] = byte(i), byte(i>>8), byte(i>>16); return }
	big := &msgRec{Text: strings.Repeat("x", 16<<10)}
	for i := range 2000 {
		n.cache(id(i), big, indexRec{})
	}
	if n.size > recentBytes {
		t.Fatalf("cache holds %d bytes, bound %d", n.size, recentBytes)
	}
	if _, ok := n.recent[id(1999)]; !ok {
		t.Fatal("the newest record was evicted")
	}
	if _, ok := n.recent[id(0)]; ok {
		t.Fatal("the oldest record was kept past the byte bound")
	}
	small := &msgRec{Text: "hi"}
	for i := range recentMsgs + 10 {
		n.cache(id(100000+i), small, indexRec{})
		n.cache(id(100000+i), small, indexRec{}) // a replacement counts once
	}
	if len(n.recent) != recentMsgs || len(n.order) != recentMsgs {
		t.Fatalf("cache holds %d records (%d in order), bound %d", len(n.recent), len(n.order), recentMsgs)
	}
	want := 0
	for _, c := range n.recent {
		want += c.size
	}
	if n.size != want {
		t.Fatalf("byte count %d, records hold %d", n.size, want)
	}
	n.forget()
	if len(n.recent) != 0 || n.size != 0 || len(n.order) != 0 {
		t.Fatal("forget left records behind")
	}
}
