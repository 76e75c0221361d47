package node

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// rawStreamMBps moves size bytes over a raw libp2p stream between two
// default hosts (libp2p.New: TLS preferred, so AES-GCM, and yamux) in
// this process and returns MB/s: the first baseline of
// BenchmarkFileDirect64MiB and the baseline of BenchmarkFileRelay64MiB.
func rawStreamMBps(b *testing.B, size int64) float64 {
	src, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	dst, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		b.Fatal(err)
	}
	defer dst.Close()
	return sinkMBps(b, src, dst, size)
}

// nodeHostsMBps is rawStreamMBps between two hosts built by newHost, as
// Run builds a node's (TCP and QUIC, Noise, so ChaCha20-Poly1305, yamux,
// the node's resource and connection managers), on loopback TCP as the
// benchmark's nodes are: the same stack /hush/file/1 runs on, without
// hush.
func nodeHostsMBps(b *testing.B, size int64) float64 {
	src, dst := loopbackHost(b), loopbackHost(b)
	return sinkMBps(b, src, dst, size)
}

// sinkMBps connects src to dst, opens one stream and times size bytes
// written to it in 64 KiB writes until dst has read them all.
func sinkMBps(b *testing.B, src, dst host.Host, size int64) float64 {
	done := make(chan int64, 1)
	dst.SetStreamHandler("/bench/sink", func(s network.Stream) {
		n, _ := io.Copy(io.Discard, s)
		s.Close()
		done <- n
	})
	ctx := context.Background()
	if err := src.Connect(ctx, peer.AddrInfo{ID: dst.ID(), Addrs: dst.Addrs()}); err != nil {
		b.Fatal(err)
	}
	s, err := src.NewStream(ctx, dst.ID(), "/bench/sink")
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	t0 := time.Now()
	for left := size; left > 0; left -= int64(len(buf)) {
		if _, err := s.Write(buf[:min(int64(len(buf)), left)]); err != nil {
			b.Fatal(err)
		}
	}
	s.CloseWrite()
	if got := <-done; got != size {
		b.Fatalf("sink got %d of %d bytes", got, size)
	}
	return float64(size) / time.Since(t0).Seconds() / 1e6
}

// BenchmarkFileDirect64MiB: a 64 MiB file from one node to another on
// loopback over /hush/file/1 (every chunk verified, the .part synced),
// from FetchFile until the file is done, against two raw libp2p streams
// moving the blob's bytes (the 64 MiB file sealed and padded: 66 MiB) in
// the same run: raw, between default hosts (TLS, AES-GCM); node-raw,
// between hosts built as the nodes' are (Noise, ChaCha20-Poly1305): the
// fair baseline. Each ratio is the file's time over the stream's for
// the same bytes. Target (issue 16): at least 50 % of raw.
func BenchmarkFileDirect64MiB(b *testing.B) {
	a, bob := pair(b)
	defer a.stop(b)
	defer bob.stop(b)
	const size = 64 << 20
	path, _ := writeFile(b, size, "bench")
	var file, raw, node, head, tail, fileCPU, nodeCPU time.Duration
	var blob int64
	// lastFrame is when the download took its last bytes but the final
	// frame's: from there to done is the tail (the last frame, the
	// final flush and sync, the rename, the commit of the state).
	// firstFrame is when it took its first: from FetchFile to there is
	// the head (the commit of the state, the stream's opening, the first
	// request's round trip).
	var firstFrame, lastFrame atomic.Pointer[time.Time]
	taps.Store(&tapFuncs{fed: func(n *Node, verified int64) {
		if n == bob.n && verified < blob {
			now := time.Now()
			firstFrame.CompareAndSwap(nil, &now)
			lastFrame.Store(&now)
		}
	}})
	defer taps.Store(nil)
	for i := 0; b.Loop(); i++ {
		m, err := a.n.SendFile(context.Background(), SendFileRequest{To: "bob", Path: path})
		if err != nil {
			b.Fatal(err)
		}
		waitOffered(b, bob, m.ID)
		blob = blobSizeOf(b, a, m)
		stopProfile := profileTransfer(b, fmt.Sprint(i))
		firstFrame.Store(nil)
		c0 := cpuTime(0)
		t0 := time.Now()
		if _, err := bob.n.FetchFile(context.Background(), m.ID); err != nil {
			b.Fatal(err)
		}
		waitFileDone(b, bob, m.ID)
		file += time.Since(t0)
		fileCPU += cpuTime(0) - c0
		tail += time.Since(*lastFrame.Load())
		head += firstFrame.Load().Sub(t0)
		stopProfile()
		// The two baselines alternate their order, so neither always runs
		// on the heels of the file.
		arms := []func(){
			func() { raw += mbpsTime(blob, rawStreamMBps(b, blob)) },
			func() {
				stop := profileTransfer(b, fmt.Sprintf("node-raw.%d", i))
				c0 := cpuTime(0)
				node += mbpsTime(blob, nodeHostsMBps(b, blob))
				nodeCPU += cpuTime(0) - c0
				stop()
			},
		}
		if i%2 == 1 {
			arms[0], arms[1] = arms[1], arms[0]
		}
		for _, arm := range arms {
			arm()
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(size)*n/file.Seconds()/1e6, "file-MB/s")
	b.ReportMetric(float64(blob)*n/file.Seconds()/1e6, "blob-MB/s")
	b.ReportMetric(float64(blob)*n/raw.Seconds()/1e6, "raw-MB/s")
	b.ReportMetric(float64(blob)*n/node.Seconds()/1e6, "node-raw-MB/s")
	// CPU per byte, both ends (cpuTime(0): this process, so with the hosts' set-up
	// for node-raw): less sensitive than MB/s to what else the machine runs.
	b.ReportMetric(float64(fileCPU.Nanoseconds())/n/float64(blob), "file-cpu-ns/B")
	b.ReportMetric(float64(nodeCPU.Nanoseconds())/n/float64(blob), "node-raw-cpu-ns/B")
	b.ReportMetric(float64(head.Milliseconds())/n, "head-ms")
	b.ReportMetric(float64(tail.Milliseconds())/n, "tail-ms")
	b.ReportMetric(raw.Seconds()/file.Seconds(), "ratio")
	b.ReportMetric(node.Seconds()/file.Seconds(), "node-ratio")
}

// blobSizeOf is the size of the blob r sent for m.
func blobSizeOf(b *testing.B, r *running, m Message) int64 {
	hash, err := hex.DecodeString(m.File.Hash)
	if err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(r.n.blobPath([32]byte(hash), ".blob"))
	if err != nil {
		b.Fatal(err)
	}
	return st.Size()
}

// mbpsTime is the time size bytes take at mbps MB/s.
func mbpsTime(size int64, mbps float64) time.Duration {
	return time.Duration(float64(size) / mbps / 1e6 * float64(time.Second))
}

// profileTransfer writes a CPU profile of a transfer (the file's, both
// nodes, or a baseline's) to $HUSH_FILE_CPUPROFILE.name, and an execution
// trace to $HUSH_FILE_TRACE.name (go tool trace -pprof=sync|sched), when
// those are set (go test's -cpuprofile would also take the sealing and
// the set-up in); the returned function stops them.
func profileTransfer(b *testing.B, name string) func() {
	var stops []func()
	if base := os.Getenv("HUSH_FILE_CPUPROFILE"); base != "" {
		f, err := os.Create(base + "." + name)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
	}
	if base := os.Getenv("HUSH_FILE_TRACE"); base != "" {
		f, err := os.Create(base + "." + name)
		if err != nil {
			b.Fatal(err)
		}
		if err := trace.Start(f); err != nil {
			b.Fatal(err)
		}
		stops = append(stops, func() { trace.Stop(); f.Close() })
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}
