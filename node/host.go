package node

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	"github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// mdnsService is the mDNS service name hush nodes announce on the LAN.
const mdnsService = "_hush._udp"

// relayRetry is how soon AutoRelay asks a relay again after a refused
// reservation (libp2p's default is an hour). A hush relay reserves only for
// peers whose owner subscription is up, and the first request of every start
// (and the renewal after a relay restart) races that subscription. AutoRelay
// rereads its static relays every relayReread (default 30 s), so a relay is
// asked again within relayRetry+relayReread.
const (
	relayRetry  = 5 * time.Second
	relayReread = time.Second
)

// DefaultListenAddrs are used when HostConfig.ListenAddrs is empty: TCP
// and QUIC on every interface, on ports the OS picks.
var DefaultListenAddrs = []string{
	"/ip4/0.0.0.0/tcp/0",
	"/ip4/0.0.0.0/udp/0/quic-v1",
}

// HostConfig configures the libp2p host. The zero value works.
type HostConfig struct {
	// Key is the libp2p host key (the PeerID). It is separate from the
	// messaging identity. Required.
	Key crypto.PrivKey
	// ListenAddrs are multiaddrs to listen on; default DefaultListenAddrs.
	ListenAddrs []string
	// NoMDNS turns LAN discovery off; default on.
	NoMDNS bool
	// ConnLow and ConnHigh are the connection manager watermarks;
	// default 64 and 256.
	ConnLow, ConnHigh int
	// MemoryLimit and MaxConns cap the resource manager's system scope
	// (bytes, connections); default scaled from the machine's memory.
	MemoryLimit int64
	MaxConns    int
	// StaticRelays are relays to hold circuit-relay reservations on, so
	// that this host is reachable through them behind NAT; default none.
	// With relays the host holds a reservation on each from the start: it
	// does not wait for AutoNAT to call it unreachable, which no hush peer
	// serves and so never happens.
	StaticRelays []peer.AddrInfo
	// Logger receives host events (at debug level, each connection to a
	// peer other than StaticRelays, relayed or direct); discarded by
	// default.
	Logger *slog.Logger
}

// newHost builds the libp2p host: TCP and QUIC, Noise, yamux, the resource
// manager and connection manager on, AutoNAT v2, hole punching and the
// circuit-relay v2 client enabled (the relay issue only adds servers).
func newHost(cfg HostConfig) (host.Host, error) {
	if cfg.Key == nil {
		return nil, fmt.Errorf("node: host key missing")
	}
	addrs := cfg.ListenAddrs
	if len(addrs) == 0 {
		addrs = DefaultListenAddrs
	}
	low, high := cfg.ConnLow, cfg.ConnHigh
	if low == 0 {
		low = 64
	}
	if high == 0 {
		high = 256
	}
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(systemLimits(limits.AutoScale(), cfg.MemoryLimit, cfg.MaxConns)))
	if err != nil {
		return nil, fmt.Errorf("node: resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(low, high, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("node: connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(cfg.Key),
		libp2p.ListenAddrStrings(addrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.EnableRelay(),
		libp2p.EnableHolePunching(),
		libp2p.EnableAutoNATv2(),
		libp2p.DisableMetrics(),
		libp2p.UserAgent("hush/1"),
	}
	if len(cfg.StaticRelays) > 0 {
		opts = append(opts,
			libp2p.EnableAutoRelayWithStaticRelays(cfg.StaticRelays,
				autorelay.WithBackoff(relayRetry), autorelay.WithMinInterval(relayReread)),
			// AutoRelay starts only once reachability is private (or unknown)
			// by an event that AutoNAT v1 never sends when no peer serves it.
			libp2p.ForceReachabilityPrivate())
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("node: libp2p host: %w", err)
	}
	if cfg.Logger != nil {
		logConnections(h, cfg.Logger, cfg.StaticRelays)
	}
	return h, nil
}

// logConnections logs, at debug level, each new connection to a peer other
// than relays: "relayed" through a relay's circuit (limited in time and
// bytes: it reaches a device behind NAT and carries the hole punch) or
// "direct" (after a hole punch, or to a reachable address). It names no
// peer and no address.
func logConnections(h host.Host, log *slog.Logger, relays []peer.AddrInfo) {
	skip := make(map[peer.ID]bool, len(relays))
	for _, r := range relays {
		skip[r.ID] = true
	}
	h.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if skip[c.RemotePeer()] {
			return
		}
		path := "direct"
		if _, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT); err == nil {
			path = "relayed"
		}
		log.Debug("peer connection", "path", path, "transport", c.ConnState().Transport,
			"direction", c.Stat().Direction.String())
	}})
}

// systemLimits caps the system scope of lc at memory bytes and conns
// connections where they are set (a zero keeps lc's value).
func systemLimits(lc rcmgr.ConcreteLimitConfig, memory int64, conns int) rcmgr.ConcreteLimitConfig {
	if memory <= 0 && conns <= 0 {
		return lc
	}
	sys := rcmgr.ResourceLimits{Memory: rcmgr.LimitVal64(max(memory, 0)), Conns: rcmgr.LimitVal(max(conns, 0))}
	if conns > 0 {
		sys.ConnsInbound, sys.ConnsOutbound = rcmgr.LimitVal(conns), rcmgr.LimitVal(conns)
	}
	return rcmgr.PartialLimitConfig{System: sys, Transient: sys}.Build(lc)
}

// lanDiscovery connects to hush peers found by mDNS.
type lanDiscovery struct {
	h   host.Host
	log *slog.Logger
}

func (d *lanDiscovery) HandlePeerFound(pi peer.AddrInfo) {
	if pi.ID == d.h.ID() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.h.Connect(ctx, pi); err != nil {
		d.log.Debug("mdns peer unreachable", "err", err)
	}
}

// startMDNS starts LAN discovery; the returned function stops it.
func startMDNS(h host.Host, log *slog.Logger) (func() error, error) {
	svc := mdns.NewMdnsService(h, mdnsService, &lanDiscovery{h: h, log: log})
	if err := svc.Start(); err != nil {
		return nil, fmt.Errorf("node: mdns: %w", err)
	}
	return svc.Close, nil
}

// newAnonHost makes a client-only libp2p host under a fresh identity,
// for talking to other people's relays (deposits, prekey fetches)
// without the PeerID this device's card names: the relay cannot link the
// deposit to the sender's card, nor two contacts' deposits to one
// sender. It listens nowhere and offers no services. Closing it throws
// the identity away.
func newAnonHost() (host.Host, error) {
	return libp2p.New(anonOptions(libp2p.DisableRelay())...)
}

// newJoinHost is newAnonHost for a new device that links: it may also
// dial the existing device through a relay's circuit (a link code names
// circuit addresses first).
func newJoinHost() (host.Host, error) {
	return libp2p.New(anonOptions(libp2p.EnableRelay())...)
}

func anonOptions(relay libp2p.Option) []libp2p.Option {
	return []libp2p.Option{
		libp2p.RandomIdentity,
		libp2p.NoListenAddrs,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		relay,
		libp2p.DisableMetrics(),
		libp2p.Ping(false),
		libp2p.UserAgent("hush/1"),
	}
}
