// Package search is the message search index: an in-memory inverted
// index from lowercased words to messages, built when the node unlocks
// its store and kept in step with every message written or deleted
// (docs/API.md "Search"). It holds no I/O and no node types: the node
// feeds it message IDs, conversation keys, times and texts.
package search

import (
	"hash/maphash"
	"math/bits"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode"
)

// ID is a message ID.
type ID [16]byte

// Hit is one message that matched: its ID, its conversation key and its
// time (unix nanoseconds).
type Hit struct {
	ID   ID
	Conv string
	Time int64
}

type doc struct {
	id   ID
	conv string
	time int64
	sum  uint64 // of the text, so a Put of the same text is seen as one
	live bool
}

// Index maps words to the messages that hold them. It is safe for
// concurrent use.
type Index struct {
	mu       sync.RWMutex
	docs     []doc         // by doc number; a replaced or removed doc is not live
	byID     map[ID]uint32 // the live doc of each message
	postings map[string][]uint32
	terms    []string // the sorted words, for prefix lookups; nil when stale
	dead     int
	seed     maphash.Seed
}

// New returns an empty index.
func New() *Index {
	return &Index{byID: make(map[ID]uint32), postings: make(map[string][]uint32), seed: maphash.MakeSeed()}
}

// Words splits text into lowercased words: runs of letters and digits.
func Words(text string) []string {
	var out []string
	start := -1
	for i, r := range text {
		word := unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)
		switch {
		case word && start < 0:
			start = i
		case !word && start >= 0:
			out = append(out, strings.ToLower(text[start:i]))
			start = -1
		}
	}
	if start >= 0 {
		out = append(out, strings.ToLower(text[start:]))
	}
	return out
}

// Put indexes message id of conversation conv at time t (unix ns) with
// text, replacing what was indexed for id. Empty text (a deleted
// message) leaves it out of the index.
//
// A message whose state changed (sent, delivered, read) is put again
// with the text it had: that Put changes nothing and costs a hash of the
// text, not a tokenising and a dead doc.
func (x *Index) Put(id ID, conv string, t int64, text string) {
	sum := maphash.String(x.seed, text)
	x.mu.RLock()
	num, ok := x.byID[id]
	same := ok && x.docs[num].sum == sum && x.docs[num].time == t && x.docs[num].conv == conv
	x.mu.RUnlock()
	if same {
		return
	}
	words := Words(text)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.removeLocked(id)
	if len(words) == 0 {
		return
	}
	num = uint32(len(x.docs))
	x.docs = append(x.docs, doc{id: id, conv: conv, time: t, sum: sum, live: true})
	x.byID[id] = num
	slices.Sort(words)
	words = slices.Compact(words)
	for _, w := range words {
		p, ok := x.postings[w]
		if !ok {
			x.terms = nil
		}
		x.postings[w] = append(p, num)
	}
}

// Remove takes message id out of the index.
func (x *Index) Remove(id ID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.removeLocked(id)
}

// RemoveConv takes every message of conversation conv out of the index.
func (x *Index) RemoveConv(conv string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for id, num := range x.byID {
		if x.docs[num].conv == conv {
			x.removeLocked(id)
		}
	}
}

func (x *Index) removeLocked(id ID) {
	num, ok := x.byID[id]
	if !ok {
		return
	}
	delete(x.byID, id)
	x.docs[num].live = false
	x.dead++
	if x.dead > 1024 && x.dead > len(x.byID) {
		x.compactLocked()
	}
}

// compactLocked renumbers the live docs and drops dead postings.
func (x *Index) compactLocked() {
	renum := make([]uint32, len(x.docs))
	docs := make([]doc, 0, len(x.byID))
	for i, d := range x.docs {
		if d.live {
			renum[i] = uint32(len(docs))
			docs = append(docs, d)
		}
	}
	for w, p := range x.postings {
		out := p[:0]
		for _, num := range p {
			if x.docs[num].live {
				out = append(out, renum[num])
			}
		}
		if len(out) == 0 {
			delete(x.postings, w)
			x.terms = nil
		} else {
			x.postings[w] = slices.Clip(out)
		}
	}
	for id, num := range x.byID {
		x.byID[id] = renum[num]
	}
	x.docs, x.dead = docs, 0
}

// Len returns the number of messages indexed.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.byID)
}

// Search returns up to limit messages (0: all) that hold every word of
// query, each as a word or the start of one, case-insensitively, newest
// first; keep, if set, says which conversations may be shown. A query
// without words finds nothing.
func (x *Index) Search(query string, limit int, keep func(conv string) bool) []Hit {
	words := Words(query)
	if len(words) == 0 {
		return nil
	}
	x.mu.RLock()
	if x.terms == nil {
		x.mu.RUnlock()
		x.mu.Lock()
		if x.terms == nil {
			terms := make([]string, 0, len(x.postings))
			for w := range x.postings {
				terms = append(terms, w)
			}
			sort.Strings(terms)
			x.terms = terms
		}
		x.mu.Unlock()
		x.mu.RLock()
	}
	defer x.mu.RUnlock()
	var set []uint64 // bitset of doc numbers matching every word so far
	for i, w := range words {
		cur := make([]uint64, (len(x.docs)+63)/64)
		from := sort.SearchStrings(x.terms, w)
		for _, t := range x.terms[from:] {
			if !strings.HasPrefix(t, w) {
				break
			}
			for _, num := range x.postings[t] {
				cur[num/64] |= 1 << (num % 64)
			}
		}
		if i == 0 {
			set = cur
			continue
		}
		for j := range set {
			set[j] &= cur[j]
		}
	}
	var hits []Hit
	allowed := map[string]bool{}
	for j, w := range set {
		for w != 0 {
			b := uint32(j*64) + uint32(bits.TrailingZeros64(w))
			w &= w - 1
			d := &x.docs[b]
			if !d.live {
				continue
			}
			if keep != nil {
				ok, seen := allowed[d.conv]
				if !seen {
					ok = keep(d.conv)
					allowed[d.conv] = ok
				}
				if !ok {
					continue
				}
			}
			hits = append(hits, Hit{ID: d.id, Conv: d.conv, Time: d.time})
		}
	}
	slices.SortFunc(hits, func(a, b Hit) int {
		switch {
		case a.Time > b.Time:
			return -1
		case a.Time < b.Time:
			return 1
		}
		return strings.Compare(string(b.ID[:]), string(a.ID[:]))
	})
	if limit > 0 && len(hits) > limit {
		hits = hits[:limit]
	}
	return hits
}
