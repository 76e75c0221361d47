package node

import (
	"context"
	"encoding/hex"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// Issue 16's benchmarks through the node: a file to and from a relay's
// blob store, and the time to the first byte of a resumed download.

// uploadedAt waits until a's relay upload of m's file is done and
// returns when it saw it (polled every millisecond).
func uploadedAt(tb testing.TB, a *running, m Message) time.Time {
	tb.Helper()
	hash, _ := hex.DecodeString(m.File.Hash)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		a.n.mu.Lock()
		var rec fileRec
		err := a.n.getJSON(a.n.tabs.files, hash, &rec)
		a.n.mu.Unlock()
		if err == nil && !rec.Upload {
			return time.Now()
		}
		if time.Now().After(deadline) {
			tb.Fatal("timed out waiting for the relay upload")
		}
		time.Sleep(time.Millisecond)
	}
}

// waitOffered waits until r lists message id's file.
func waitOffered(tb testing.TB, r *running, id string) {
	tb.Helper()
	waitFor(tb, "the offer", func() bool {
		ms, _ := r.n.Files("alice")
		for _, m := range ms {
			if m.ID == id {
				return true
			}
		}
		return false
	})
}

// relayPair runs a relay with a blob store and two befriended nodes
// using it; the relay's address is returned for restarting the nodes.
func relayPair(b *testing.B) (a, bob *running, addr string) {
	cfg := relayCfg()
	cfg.BlobDir = b.TempDir()
	addr = startRelay(b, cfg)
	a = startNodeCfg(b, Config{Home: newHome(b, "alice"), Relays: []string{addr}})
	bob = startNodeCfg(b, Config{Home: newHome(b, "bob"), Relays: []string{addr}})
	waitMailbox(b, a)
	waitMailbox(b, bob)
	befriend(b, a, bob)
	return a, bob, addr
}

// BenchmarkFileRelay64MiB: a 64 MiB file from a node to a relay's blob
// store (in this process, on loopback, fsynced) and from there to the
// recipient node, every chunk verified, against a raw libp2p stream
// moving the same bytes in the same run. Upload: from the start of the
// node's upload (after sealing) until it is marked done. Download: the
// sender is stopped first, so the recipient's FetchFile tries the
// sender's device (refused at once on loopback) and then reads from the
// relay, until the file is done. MB/s are of the file's bytes.
func BenchmarkFileRelay64MiB(b *testing.B) {
	a, bob, addr := relayPair(b)
	defer func() { a.stop(b) }()
	defer bob.stop(b)
	const size = 64 << 20
	path, _ := writeFile(b, size, "bench")
	var upStart atomic.Pointer[time.Time]
	taps.Store(&tapFuncs{upload: func(*Node) { now := time.Now(); upStart.CompareAndSwap(nil, &now) }})
	defer taps.Store(nil)
	var up, down time.Duration
	var raw float64
	for b.Loop() {
		upStart.Store(nil)
		m, err := a.n.SendFile(context.Background(), SendFileRequest{To: "bob", Path: path})
		if err != nil {
			b.Fatal(err)
		}
		end := uploadedAt(b, a, m)
		up += end.Sub(*upStart.Load())
		waitOffered(b, bob, m.ID)
		a.stop(b)
		t0 := time.Now()
		if _, err := bob.n.FetchFile(context.Background(), m.ID); err != nil {
			b.Fatal(err)
		}
		waitFileDone(b, bob, m.ID)
		down += time.Since(t0)
		raw += rawStreamMBps(b, size)
		a = startNodeCfg(b, Config{Home: a.home, Relays: []string{addr}})
	}
	mb := float64(size) * float64(b.N) / 1e6
	b.ReportMetric(mb/up.Seconds(), "upload-MB/s")
	b.ReportMetric(mb/down.Seconds(), "download-MB/s")
	b.ReportMetric(raw/float64(b.N), "raw-MB/s")
	b.ReportMetric(mb/up.Seconds()/(raw/float64(b.N)), "upload-ratio")
	b.ReportMetric(mb/down.Seconds()/(raw/float64(b.N)), "download-ratio")
}

// BenchmarkFileResumeTTFB: a 64 MiB download cut after at least 8 MiB
// by stopping the recipient's node, which then starts again and resumes
// it by itself: the time from the restart (the call starting the node)
// to the first chunk after the cut verified (ttfb-ms), and of that, the
// node's start until it is ready (start-ms). direct: from the sending
// device. relay: the sender stopped, so the resumed download tries the
// sender's device (refused at once on loopback), then the relay.
func BenchmarkFileResumeTTFB(b *testing.B) {
	b.Run("direct", func(b *testing.B) { benchResumeTTFB(b, false) })
	b.Run("relay", func(b *testing.B) { benchResumeTTFB(b, true) })
}

func benchResumeTTFB(b *testing.B, viaRelay bool) {
	var a, bob *running
	var addr string
	if viaRelay {
		a, bob, addr = relayPair(b)
	} else {
		a, bob = pair(b)
	}
	defer func() { a.stop(b) }()
	defer func() { bob.stop(b) }()
	const size, cutAfter = 64 << 20, 8 << 20
	path, _ := writeFile(b, size, "bench")
	var relays []string
	if viaRelay {
		relays = []string{addr}
	}
	// fed reports the first moment the recipient (the only node
	// downloading) verified bytes past want.
	var want atomic.Int64
	first := make(chan time.Time, 1)
	taps.Store(&tapFuncs{fed: func(_ *Node, verified int64) {
		if verified > want.Load() {
			select {
			case first <- time.Now():
			default:
			}
		}
	}})
	defer taps.Store(nil)
	var ttfb, start time.Duration
	for b.Loop() {
		want.Store(1 << 62)
		m, err := a.n.SendFile(context.Background(), SendFileRequest{To: "bob", Path: path})
		if err != nil {
			b.Fatal(err)
		}
		waitOffered(b, bob, m.ID)
		if viaRelay {
			uploadedAt(b, a, m)
			a.stop(b)
		}
		if _, err := bob.n.FetchFile(context.Background(), m.ID); err != nil {
			b.Fatal(err)
		}
		waitFor(b, "part of the file", func() bool {
			ms, _ := bob.n.Files("alice")
			for _, f := range ms {
				if f.ID == m.ID {
					return f.File.Bytes >= cutAfter
				}
			}
			return false
		})
		bob.stop(b)
		part, err := os.Stat(bob.n.blobPath(hashOfMsg(b, m), ".part"))
		if err != nil {
			b.Fatal(err)
		}
		if part.Size() >= m.File.Size {
			b.Fatalf("the download was not cut: %d bytes in the .part", part.Size())
		}
		select {
		case <-first:
		default:
		}
		want.Store(part.Size()) // a chunk ending past the .part's end is new
		t0 := time.Now()
		bob = startNodeCfg(b, Config{Home: bob.home, Relays: relays})
		start += time.Since(t0)
		select {
		case t1 := <-first:
			ttfb += t1.Sub(t0)
		case <-time.After(time.Minute):
			b.Fatal("the resumed download verified nothing in a minute")
		}
		waitFileDone(b, bob, m.ID)
		if viaRelay {
			a = startNodeCfg(b, Config{Home: a.home, Relays: relays})
		}
	}
	b.ReportMetric(float64(ttfb.Microseconds())/1e3/float64(b.N), "ttfb-ms")
	b.ReportMetric(float64(start.Microseconds())/1e3/float64(b.N), "start-ms")
}

// hashOfMsg is the blob hash of a message's file.
func hashOfMsg(tb testing.TB, m Message) [32]byte {
	h, err := hex.DecodeString(m.File.Hash)
	if err != nil || len(h) != 32 {
		tb.Fatalf("file hash %q", m.File.Hash)
	}
	return [32]byte(h)
}
