package main

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/internal/wire"
	"github.com/hushnet/hush/relay"
)

// The limits follow conn_high and max_streams_per_peer: the relay's
// protocols get room for every peer it holds, one peer a fixed share.
func TestResourceLimits(t *testing.T) {
	for _, tc := range []struct {
		cfg           fileConfig
		high, perPeer int
	}{
		{fileConfig{}, defaultConnHigh, defaultStreamsPerPeer},
		{fileConfig{ConnLow: 20000, ConnHigh: 25000, MaxStreamsPerPeer: 16}, 25000, 16},
	} {
		l, err := resourceLimits(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		p := l.ToPartialLimitConfig()
		if got := int(p.Protocol[relay.ProtocolID].StreamsInbound); got != 2*tc.high {
			t.Errorf("high %d: %s inbound streams %d, want %d", tc.high, relay.ProtocolID, got, 2*tc.high)
		}
		if got := int(p.ProtocolPeer[relay.ProtocolID].StreamsInbound); got != tc.perPeer {
			t.Errorf("high %d: %s inbound streams per peer %d, want %d", tc.high, relay.ProtocolID, got, tc.perPeer)
		}
		for _, id := range pubsub.GossipSubDefaultProtocols {
			if in, out := int(p.Protocol[id].StreamsInbound), int(p.Protocol[id].StreamsOutbound); in != tc.high || out != tc.high {
				t.Errorf("high %d: %s streams %d in, %d out, want %d each", tc.high, id, in, out, tc.high)
			}
		}
		if got := int64(p.System.Memory); got < int64(tc.high)*4*streamWindow {
			t.Errorf("high %d: system memory %d, under 4 stream windows a connection", tc.high, got)
		}
		if in := int(p.PeerDefault.StreamsInbound); in != 256 {
			t.Errorf("high %d: inbound streams per peer %d, want 256", tc.high, in)
		}
	}

	// libp2p_limits overrides a scope and leaves the rest.
	f := filepath.Join(t.TempDir(), "limits.json")
	os.WriteFile(f, []byte(`{"ProtocolPeer": {"/hush/mailbox/1": {"StreamsInbound": 3}}}`), 0o600)
	l, err := resourceLimits(fileConfig{Libp2pLimits: f})
	if err != nil {
		t.Fatal(err)
	}
	p := l.ToPartialLimitConfig()
	if got := int(p.ProtocolPeer[relay.ProtocolID].StreamsInbound); got != 3 {
		t.Errorf("libp2p_limits: per-peer inbound streams %d, want 3", got)
	}
	if got := int(p.Protocol[relay.ProtocolID].StreamsInbound); got != 2*defaultConnHigh {
		t.Errorf("libp2p_limits: protocol inbound streams %d, want %d", got, 2*defaultConnHigh)
	}
	os.WriteFile(f, []byte(`{"Bogus": 1}`), 0o600)
	if _, err := resourceLimits(fileConfig{Libp2pLimits: f}); err == nil {
		t.Error("libp2p_limits with an unknown field accepted")
	}
}

// With the protocol's limit raised for thousands of owners, one peer
// still holds at most max_streams_per_peer /hush/mailbox/1 streams: the
// next is reset, while another peer opens its own.
func TestPeerStreamLimit(t *testing.T) {
	const perPeer = 8
	ai := startInProcess(t, fileConfig{MaxStreamsPerPeer: perPeer})
	a := clientHost(t)
	ctx := context.Background()
	if err := a.Connect(ctx, ai); err != nil {
		t.Fatal(err)
	}
	for i := range perPeer {
		if err := holdStream(ctx, a, ai); err != nil {
			t.Fatalf("stream %d of %d: %v", i+1, perPeer, err)
		}
	}
	for i := range 4 {
		err := holdStream(ctx, a, ai)
		if err == nil {
			t.Fatalf("stream %d accepted past the per-peer limit of %d", perPeer+i+1, perPeer)
		}
		var se *network.StreamError
		if !errors.As(err, &se) && !errors.Is(err, network.ErrReset) {
			t.Fatalf("stream past the limit: %v, want a reset", err)
		}
	}
	b := clientHost(t)
	if err := b.Connect(ctx, ai); err != nil {
		t.Fatal(err)
	}
	if err := holdStream(ctx, b, ai); err != nil {
		t.Fatalf("another peer: %v", err)
	}
}

// The relay's yamux accept backlog is small (relayMuxer), but a peer that
// opens all the /hush/mailbox/1 streams it may hold at once has each one
// accepted, none reset by a full backlog. Repeated: how fast the swarm
// takes streams off the backlog varies.
func TestStreamBurstAccepted(t *testing.T) {
	ai := startInProcess(t, fileConfig{})
	ctx := context.Background()
	for round := range 3 {
		a := clientHost(t)
		if err := a.Connect(ctx, ai); err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, defaultStreamsPerPeer)
		for range defaultStreamsPerPeer {
			go func() { errs <- holdStream(ctx, a, ai) }()
		}
		for i := range defaultStreamsPerPeer {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: stream %d of a burst of %d: %v", round, i+1, defaultStreamsPerPeer, err)
			}
		}
		a.Close()
	}
}

// holdStream opens a /hush/mailbox/1 stream and sends a Hello the relay
// answers (NotFound) and then waits for the next request on: the stream
// stays open and counted.
func holdStream(ctx context.Context, h host.Host, ai peer.AddrInfo) error {
	st, err := h.NewStream(ctx, ai.ID, relay.ProtocolID)
	if err != nil {
		return err
	}
	var mb relay.ID
	rand.Read(mb[:])
	if err := wire.WriteFrame(st, relay.Encode(&relay.Hello{Mailbox: mb})); err != nil {
		return err
	}
	b, err := wire.ReadFrame(st, relay.MaxFrame)
	if err != nil {
		return err
	}
	m, err := relay.Decode(b)
	if err != nil {
		return err
	}
	if e, ok := m.(*relay.ErrorMsg); !ok || e.Code != relay.CodeNotFound {
		return errors.New("unexpected answer to a Hello")
	}
	return nil
}

// startInProcess runs a relay with cfg on 127.0.0.1 in this process.
func startInProcess(t *testing.T, cfg fileConfig) peer.AddrInfo {
	t.Helper()
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := newHost(key, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	db, err := store.Open(filepath.Join(t.TempDir(), "store"), store.Config{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg.NoCircuitRelay = true
	cfg.NoGroupStore = true
	srv, err := relay.New(cfg.Config, h, db)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background()) }()
	t.Cleanup(func() { srv.Close(); <-done })
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
}
