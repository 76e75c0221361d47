// Command hush-relay runs a hush relay: the /hush/mailbox/1 store-and-forward
// mailbox service for offline devices, the /hush/blob/1 blob store for
// their attachments (in <data>/blobs), the /hush/link/1 link store for
// short links, and a circuit relay v2 service open to its mailbox owners
// (docs/RELAY.md, docs/OPERATIONS.md).
//
//	hush-relay [--config FILE] [--data DIR] [--listen MULTIADDR]... [--metrics-addr ADDR]
//
// On start it prints one line per listen address, each a full multiaddr
// ending in /p2p/<PeerID>, then serves until SIGINT or SIGTERM.
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/relay"
)

// fileConfig is the JSON config file: relay.Config's fields plus the
// process's own. Flags override it.
type fileConfig struct {
	relay.Config
	// DataDir is the data directory. Default $XDG_DATA_HOME/hush-relay,
	// else ./hush-relay-data.
	DataDir string `json:"data_dir,omitempty"`
	// Listen are the libp2p listen multiaddrs. Default
	// /ip4/0.0.0.0/tcp/4001 and /ip4/0.0.0.0/udp/4001/quic-v1.
	Listen []string `json:"listen,omitempty"`
	// MetricsAddr is the host:port of the Prometheus /metrics listener.
	// Default empty: off.
	MetricsAddr string `json:"metrics_addr,omitempty"`
	// ConnLow and ConnHigh are the connection manager watermarks.
	// Default 2,048 and 8,192. The resource manager's limits are sized
	// from ConnHigh (resourceLimits): it is the relay's capacity in
	// connected peers.
	ConnLow  int `json:"conn_low,omitempty"`
	ConnHigh int `json:"conn_high,omitempty"`
	// MaxStreamsPerPeer is how many /hush/mailbox/1 streams one peer may
	// hold open at once (subscriptions and requests). Default 64.
	MaxStreamsPerPeer int `json:"max_streams_per_peer,omitempty"`
	// MaxConnsPerIP is how many connections one IPv4 address or IPv6 /56
	// may hold at once (eight times as many per IPv6 /48). Default 64.
	MaxConnsPerIP int `json:"max_conns_per_ip,omitempty"`
	// Libp2pLimits is a JSON file of libp2p resource-manager limits
	// (rcmgr.PartialLimitConfig) applied over the relay's own, for what
	// the fields above do not reach. Default none.
	Libp2pLimits string `json:"libp2p_limits,omitempty"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `json:"log_level,omitempty"`
	// NoSync skips fsync on commits: faster, but a crash can lose
	// receipted deposits. Default false. Only for tests and benchmarks.
	NoSync bool `json:"no_sync,omitempty"`
}

var defaultListen = []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hush-relay:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "repair" {
		return runRepair(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("hush-relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "JSON config `file` (fields: docs/OPERATIONS.md)")
	dataDir := fs.String("data", "", "data `directory` (default $XDG_DATA_HOME/hush-relay or ./hush-relay-data)")
	var listen listFlag
	fs.Var(&listen, "listen", "listen `multiaddr` (repeatable; default TCP and QUIC on port 4001)")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics on this `host:port` (default off)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var cfg fileConfig
	if *configPath != "" {
		if err := readConfig(*configPath, &cfg); err != nil {
			return err
		}
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if len(listen) > 0 {
		cfg.Listen = listen
	}
	if *metricsAddr != "" {
		cfg.MetricsAddr = *metricsAddr
	}
	if cfg.DataDir == "" {
		cfg.DataDir = defaultDataDir()
	}
	if cfg.BlobDir == "" && !cfg.NoBlobStore {
		cfg.BlobDir = filepath.Join(cfg.DataDir, "blobs")
	}
	if len(cfg.Listen) == 0 {
		cfg.Listen = defaultListen
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cmp.Or(cfg.LogLevel, "info"))); err != nil {
		return fmt.Errorf("config: log_level: %v", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = log

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	key, err := loadHostKey(filepath.Join(cfg.DataDir, "host.key"))
	if err != nil {
		return err
	}
	db, err := store.Open(filepath.Join(cfg.DataDir, "store"), relay.StoreConfig(store.Config{NoSync: cfg.NoSync, Logger: log}))
	if errors.Is(err, store.ErrJournalDamaged) {
		return fmt.Errorf("%w\nRun `hush-relay repair -data %s` to keep what can be read (it copies the damaged files aside and says what was lost)", err, cfg.DataDir)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	h, err := newHost(key, cfg)
	if err != nil {
		return err
	}
	defer h.Close()

	var reg *prometheus.Registry
	if cfg.MetricsAddr != "" {
		reg = prometheus.NewRegistry()
		reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
		cfg.Metrics = newPromMetrics(reg)
	}
	srv, err := relay.New(cfg.Config, h, db)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if reg != nil {
		hs := &http.Server{Addr: cfg.MetricsAddr, ReadHeaderTimeout: 10 * time.Second,
			Handler: metricsHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))}
		go func() {
			if err := hs.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics listener failed", "err", err)
			}
		}()
		defer hs.Close()
	}

	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		return err
	}
	for _, a := range h.Addrs() {
		fmt.Fprintf(stdout, "%s/p2p/%s\n", a, h.ID())
	}
	err = <-done
	log.Info("bye")
	return err
}

func readConfig(path string, cfg *fileConfig) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if err := cfg.check(); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// check refuses the values no relay can run with (relay.Config.Check, and
// negative connection watermarks), so a typo stops the relay at start
// instead of quietly becoming a default.
func (c *fileConfig) check() error {
	if c.ConnLow < 0 || c.ConnHigh < 0 {
		return fmt.Errorf("conn_low %d, conn_high %d: must not be negative; leave them out or set 0 for the defaults", c.ConnLow, c.ConnHigh)
	}
	if c.MaxStreamsPerPeer < 0 {
		return fmt.Errorf("max_streams_per_peer %d: must not be negative; leave it out or set 0 for the default", c.MaxStreamsPerPeer)
	}
	if c.MaxConnsPerIP < 0 {
		return fmt.Errorf("max_conns_per_ip %d: must not be negative; leave it out or set 0 for the default", c.MaxConnsPerIP)
	}
	return c.Config.Check()
}

func defaultDataDir() string {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "hush-relay")
	}
	return "hush-relay-data"
}

// loadHostKey reads the libp2p host key, creating it (mode 0600) on first
// start.
func loadHostKey(path string) (crypto.PrivKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("host key %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("host key: %w", err)
	}
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	b, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	return k, nil
}

// The defaults of the capacity settings (docs/OPERATIONS.md, "Capacity").
const (
	defaultConnLow        = 2048
	defaultConnHigh       = 8192
	defaultStreamsPerPeer = 64
	// blobStreamsPerPeer is how many /hush/blob/1 streams one peer may
	// hold open at once.
	blobStreamsPerPeer = 16
	// linkStreamsPerPeer is the same for /hush/link/1 (one request a
	// stream; a node puts from a throw-away identity).
	linkStreamsPerPeer = 8
	defaultConnsPerIP  = 64
	// streamWindow is what libp2p's resource manager counts for every
	// open yamux stream, busy or idle: go-yamux reserves a stream's
	// initial receive window (256 KiB, the least the yamux spec allows)
	// from the peer's scope when the stream opens.
	streamWindow = 256 << 10
)

// watermarks are the connection manager's low and high watermarks.
func (c *fileConfig) watermarks() (low, high int) {
	low, high = c.ConnLow, c.ConnHigh
	if low <= 0 {
		low = defaultConnLow
	}
	if high <= low {
		high = max(defaultConnHigh, low*2)
	}
	return low, high
}

// resourceLimits are the relay's libp2p resource-manager limits, sized
// from the connection manager's high watermark (high), the number of
// peers the relay is meant to hold (docs/OPERATIONS.md, "Capacity"):
//
//   - system: 2·high connections and file descriptors, 8·high streams
//     (4·high outbound), and memory for 4 stream windows a connection,
//     or libp2p's default for the machine if that is larger. An idle
//     owner holds one /hush/mailbox/1 stream, and two GossipSub streams
//     when its node runs GossipSub, each counted as a whole window;
//   - /hush/mailbox/1: 2·high inbound streams from all peers together
//     (a subscription per owner, and requests), max_streams_per_peer
//     from one peer; libp2p's default, 512 plus 256 a GiB of a machine's
//     eighth of memory, capped a relay near 1,265 subscribers;
//   - GossipSub and FloodSub (the group store): high streams each way
//     from all peers, 4 each way from one (a router keeps one);
//   - /hush/blob/1 and /hush/link/1: high inbound streams from all
//     peers together, 16 and 8 from one peer;
//   - one peer: 256 inbound and 256 outbound streams over all protocols
//     and 128 MiB (512 windows), libp2p's base without its growth with
//     the machine's memory, so no peer can hold a large share;
//   - one IPv4 address or IPv6 /56: max_conns_per_ip connections (8 in
//     libp2p), eight times as many per IPv6 /48;
//   - connections in their handshake: high/16 at once, or libp2p's
//     default for the machine if that is larger;
//   - everything else (identify, ping, the circuit relay, streams still
//     negotiating) at libp2p's defaults for the machine.
func resourceLimits(cfg fileConfig) (rcmgr.ConcreteLimitConfig, error) {
	_, high := cfg.watermarks()
	perPeer := cmp.Or(cfg.MaxStreamsPerPeer, defaultStreamsPerPeer)
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	auto := scaling.AutoScale()
	p := auto.ToPartialLimitConfig()
	p.System.Conns = rcmgr.LimitVal(high * 2)
	p.System.ConnsInbound = rcmgr.LimitVal(high * 2)
	p.System.FD = rcmgr.LimitVal(high * 2)
	p.System.Streams = rcmgr.LimitVal(high * 8)
	p.System.StreamsInbound = rcmgr.LimitVal(high * 8)
	p.System.StreamsOutbound = rcmgr.LimitVal(high * 4)
	p.System.Memory = rcmgr.LimitVal64(max(int64(p.System.Memory), int64(high)*4*streamWindow))
	// Connections in their handshake (Noise, then yamux) are transient:
	// libp2p allows 79 at once on a machine with 24 GiB, so a relay's
	// owners reconnecting together after a restart were reset.
	p.Transient.ConnsInbound = rcmgr.LimitVal(max(int(p.Transient.ConnsInbound), high/16))
	p.Transient.Conns = rcmgr.LimitVal(max(int(p.Transient.Conns), high/16))
	p.Transient.FD = rcmgr.LimitVal(max(int(p.Transient.FD), high/16))

	p.PeerDefault.StreamsInbound = rcmgr.LimitVal(rcmgr.DefaultLimits.PeerBaseLimit.StreamsInbound)
	p.PeerDefault.StreamsOutbound = rcmgr.LimitVal(rcmgr.DefaultLimits.PeerBaseLimit.StreamsInbound)
	p.PeerDefault.Streams = rcmgr.LimitVal(rcmgr.DefaultLimits.PeerBaseLimit.Streams)
	p.PeerDefault.Memory = rcmgr.LimitVal64(int64(rcmgr.DefaultLimits.PeerBaseLimit.Streams) * streamWindow)

	if p.Protocol == nil {
		p.Protocol = map[protocol.ID]rcmgr.ResourceLimits{}
	}
	if p.ProtocolPeer == nil {
		p.ProtocolPeer = map[protocol.ID]rcmgr.ResourceLimits{}
	}
	mailbox := p.ProtocolDefault
	mailbox.StreamsInbound = rcmgr.LimitVal(high * 2)
	mailbox.Streams = rcmgr.LimitVal(high * 2)
	p.Protocol[relay.ProtocolID] = mailbox
	mailboxPeer := p.ProtocolPeerDefault
	mailboxPeer.StreamsInbound = rcmgr.LimitVal(perPeer)
	mailboxPeer.Streams = rcmgr.LimitVal(perPeer)
	p.ProtocolPeer[relay.ProtocolID] = mailboxPeer
	// The blob store: a node uploads one blob at a time and downloads a
	// few.
	blob := p.ProtocolDefault
	blob.StreamsInbound = rcmgr.LimitVal(high)
	blob.Streams = rcmgr.LimitVal(high)
	p.Protocol[relay.BlobProtocolID] = blob
	blobPeer := p.ProtocolPeerDefault
	blobPeer.StreamsInbound = blobStreamsPerPeer
	blobPeer.Streams = blobStreamsPerPeer
	p.ProtocolPeer[relay.BlobProtocolID] = blobPeer
	// The link store: one short stream a request.
	link := p.ProtocolDefault
	link.StreamsInbound = rcmgr.LimitVal(high)
	link.Streams = rcmgr.LimitVal(high)
	p.Protocol[relay.LinkProtocolID] = link
	linkPeer := p.ProtocolPeerDefault
	linkPeer.StreamsInbound = linkStreamsPerPeer
	linkPeer.Streams = linkStreamsPerPeer
	p.ProtocolPeer[relay.LinkProtocolID] = linkPeer
	for _, id := range relay.GossipProtocols() {
		ps := p.ProtocolDefault
		ps.StreamsInbound = rcmgr.LimitVal(high)
		ps.StreamsOutbound = rcmgr.LimitVal(high)
		ps.Streams = rcmgr.LimitVal(high * 2)
		p.Protocol[id] = ps
		psPeer := p.ProtocolPeerDefault
		psPeer.StreamsInbound = 4
		psPeer.StreamsOutbound = 4
		psPeer.Streams = 8
		p.ProtocolPeer[id] = psPeer
	}
	limits := p.Build(auto)
	if cfg.Libp2pLimits != "" {
		b, err := os.ReadFile(cfg.Libp2pLimits)
		if err != nil {
			return limits, fmt.Errorf("libp2p_limits: %w", err)
		}
		var over rcmgr.PartialLimitConfig
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&over); err != nil {
			return limits, fmt.Errorf("libp2p_limits %s: %w", cfg.Libp2pLimits, err)
		}
		limits = over.Build(limits)
	}
	return limits, nil
}

// newHost builds the relay's libp2p host in the node's style (TCP and
// QUIC, Noise, yamux, resource and connection managers) with limits sized
// for many mostly idle owner connections (resourceLimits).
func newHost(key crypto.PrivKey, cfg fileConfig) (host.Host, error) {
	low, high := cfg.watermarks()
	limits, err := resourceLimits(cfg)
	if err != nil {
		return nil, err
	}
	perIP := cmp.Or(cfg.MaxConnsPerIP, defaultConnsPerIP)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits),
		rcmgr.WithLimitPerSubnet(
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: perIP}},
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: perIP}, {PrefixLength: 48, ConnCount: 8 * perIP}}))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(low, high, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(cfg.Listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, relayMuxer(cfg)),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.DisableRelay(), // the relay service is started by relay.Server
		libp2p.DisableMetrics(),
		libp2p.UserAgent("hush-relay/1"),
	)
	if err != nil {
		return nil, fmt.Errorf("libp2p host: %w", err)
	}
	return h, nil
}

// relayMuxer is libp2p's yamux with a smaller accept backlog. yamux
// allocates a channel of AcceptBacklog (256 by default) stream pointers
// for every connection, 2 KiB that an idle owner's connection never uses:
// the swarm takes each new stream off it at once. The backlog only has to
// hold a burst of new streams opened before the swarm's accept loop runs,
// and a peer may hold at most max_streams_per_peer /hush/mailbox/1 streams
// and a few of the other protocols (resourceLimits), so it is that plus
// muxBacklogSpare; a stream past a full backlog is reset.
// docs/RELAY.md "Capacity and libp2p limits".
func relayMuxer(cfg fileConfig) *yamux.Transport {
	t := *yamux.DefaultTransport
	t.AcceptBacklog = cmp.Or(cfg.MaxStreamsPerPeer, defaultStreamsPerPeer) + muxBacklogSpare
	return &t
}

// muxBacklogSpare is the room in the accept backlog for a peer's streams
// of other protocols (identify, ping, GossipSub) beside its mailbox ones.
const muxBacklogSpare = 16

// runRepair is `hush-relay repair [-config F] [-data DIR]`: it repairs a
// store the relay refuses with a damaged journal (relay.Repair) and says
// what was kept and lost. The relay must be stopped.
func runRepair(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hush-relay repair", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "JSON config `file` (for its data_dir)")
	dataDir := fs.String("data", "", "data `directory` (default $XDG_DATA_HOME/hush-relay or ./hush-relay-data)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("repair: unexpected arguments: %v", fs.Args())
	}
	var cfg fileConfig
	if *configPath != "" {
		if err := readConfig(*configPath, &cfg); err != nil {
			return err
		}
	}
	dir := cmp.Or(*dataDir, cfg.DataDir, defaultDataDir())
	rep, err := relay.Repair(filepath.Join(dir, "store"))
	switch {
	case err == nil:
	case errors.Is(err, store.ErrLocked):
		return fmt.Errorf("repair: a relay is using %s; stop it first", dir)
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("repair: no relay store in %s", dir)
	default:
		return fmt.Errorf("repair: %w", err)
	}
	for _, line := range rep.Lines() {
		fmt.Fprintln(stdout, line)
	}
	fmt.Fprintf(stdout, "The store opens again: hush-relay -data %s\n", dir)
	return nil
}
