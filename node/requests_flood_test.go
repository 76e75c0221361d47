package node

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hushnet/hush/crypto/envelope"
)

// treeSize is the bytes of the files under dir.
func treeSize(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			total += info.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// floodCap bounds what a flood may add to a home: MaxRequests requests,
// each at most a card (64 KiB) and MaxRequestBytes of text, with their
// session states, plus the prekey store's replay cache (40 bytes a
// first message). 10,000 requests kept would take several times this.
const floodCap = 16 << 20

// A flood of 10,000 first messages from fresh identities (issue 17;
// 200 under the race detector, which slows the crypto tens of times:
// `make test` runs the Burst tests at full size without it, about 70 s
// on the 2-core VM), in batches as a mailbox
// drain gives them, with the strangers' session budget raised so that
// the request cap is what binds: MaxRequests are kept, every other one
// is dropped and counted, the home grows by less than floodCap, the
// sessions in memory stay at the requests', and a contact's conversation
// goes on.
func TestRequestFloodBurst(t *testing.T) {
	total := 10_000
	if raceEnabled {
		total = 2 * MaxRequests
	}
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	b.n.newSessions.mu.Lock()
	b.n.newSessions.strangerBurst = 2 * total
	b.n.newSessions.mu.Unlock()
	bCard := cardOf(t, b)
	before := treeSize(t, b.home)

	const batch = 100
	envs := make(chan []*envelope.Inner, 4)
	go func() {
		defer close(envs)
		for start := 0; start < total; start += batch {
			out := make([]*envelope.Inner, min(batch, total-start))
			var wg sync.WaitGroup
			for w := range 2 { // the machine's two cores
				wg.Go(func() {
					for i := w; i < len(out); i += 2 {
						local, c := stranger(t, fmt.Sprintf("flood %d", start+i))
						out[i] = prekeyMessageFrom(t, local, bCard, fmt.Sprintf("FLOOD %d", start+i), c.Marshal())
					}
				})
			}
			wg.Wait()
			envs <- out
		}
	}()
	for items := range envs {
		for _, st := range b.n.receive(items, true) {
			if st != ackOK {
				t.Fatalf("a flood message: status %d, want ok (dropped or kept, acknowledged alike)", st)
			}
		}
	}

	rs, err := b.n.Requests()
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != MaxRequests {
		t.Fatalf("%d requests kept, want %d", len(rs), MaxRequests)
	}
	if h := b.n.Health(); h.DroppedRequests != int64(total-MaxRequests) {
		t.Fatalf("health counts %d dropped requests, want %d", h.DroppedRequests, total-MaxRequests)
	}
	b.n.mu.Lock()
	sets := len(b.n.sets)
	b.n.mu.Unlock()
	if sets > MaxRequests+4 {
		t.Fatalf("%d session sets in memory after the flood", sets)
	}
	grown := treeSize(t, b.home) - before
	t.Logf("%d first messages: the home grew by %d KiB", total, grown>>10)
	if grown > floodCap {
		t.Fatalf("the home grew by %d bytes, over %d", grown, floodCap)
	}
	if _, err := a.n.Send(context.Background(), SendRequest{To: "bob", Text: "still here"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's message after the flood", func() bool { return len(texts(t, b.n, "alice", "in")) == 1 })
}
