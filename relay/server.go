package relay

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/internal/wire"
)

// Server is the mailbox service of a relay (docs/RELAY.md). It serves
// /hush/mailbox/1 on a libp2p host, keeps its data in a store, runs a
// circuit relay v2 service open only to its mailbox owners and, unless
// Config.NoGroupStore, a group store: a GossipSub router that files the
// messages of the group topics its owners watch into their mailboxes.
// With Config.BlobDir (and not Config.NoBlobStore) it also serves the
// blob store, /hush/blob/1, for attachments; unless Config.NoLinkStore,
// the link store, /hush/link/1, for short links.
type Server struct {
	cfg Config
	h   host.Host
	db  *store.DB
	t   tables
	log *slog.Logger
	m   Metrics
	acl *ownerACL

	group *groupStore
	wake  *waker
	blobs *blobStore
	links *linkStore

	peerLim, ipLim *limiter
	creates        *creationLimits // mailbox creation in the open mode
	filing         *fileBudget     // group-store filings per publisher
	frames         *frameBudget    // request frame bytes held

	// mu guards the two indexes; a mailbox's own fields are guarded by its mu.
	mu        sync.RWMutex
	byMailbox map[ID]*mailbox
	byDeposit map[ID]*mailbox

	storedBytes atomic.Int64
	storedMsgs  atomic.Int64
	subscribers atomic.Int64
	pushSeq     atomic.Uint64 // orders transient pushes (groupstore.go)

	ready chan struct{} // closed when Run serves
	done  chan struct{} // closed when Run returns

	// lifeMu guards the lifecycle fields below.
	lifeMu   sync.Mutex
	started  bool
	closing  bool
	runCtx   context.Context
	cancel   context.CancelFunc
	streams  map[network.Stream]struct{}
	sessions map[*session]struct{}
	handlers sync.WaitGroup
}

// New returns a relay server over h and db. It reads the mailbox records
// (all are kept in memory), the blob store's records, bringing the blob
// directory in line with them (blobstore.go), and the link store's
// metadata (linkstore.go); Run serves. The caller
// owns h and db and closes them after Run returns.
func New(cfg Config, h host.Host, db *store.DB) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, h: h, db: db, t: openTables(db), log: cfg.Logger, m: cfg.Metrics,
		acl:       &ownerACL{grace: time.Duration(cfg.OwnerGrace), now: cfg.Now, active: map[string]int{}, last: map[string]time.Time{}},
		peerLim:   newLimiter(cfg.PeerRate, cfg.PeerBurst),
		ipLim:     newLimiter(cfg.IPRate, cfg.IPBurst),
		creates:   newCreationLimits(cfg),
		filing:    newFileBudget(h, cfg),
		frames:    newFrameBudget(cfg),
		byMailbox: make(map[ID]*mailbox),
		byDeposit: make(map[ID]*mailbox),
		ready:     make(chan struct{}),
		done:      make(chan struct{}),
		streams:   make(map[network.Stream]struct{}),
		sessions:  make(map[*session]struct{}),
	}
	s.group = newGroupStore(s)
	s.wake = newWaker(s, cfg.Push)
	if s.blobs, err = newBlobStore(s); err != nil {
		return nil, err
	}
	if s.links, err = newLinkStore(s); err != nil {
		return nil, err
	}
	err = s.t.mailboxes.Scan(func(id, value []byte) error {
		mb, err := parseMailbox(id, value)
		if err != nil {
			return err
		}
		s.byMailbox[mb.id] = mb
		s.byDeposit[mb.deposit] = mb
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("relay: load mailboxes: %w", err)
	}
	for _, mb := range s.byMailbox {
		if err := s.loadCounters(mb); err != nil {
			return nil, fmt.Errorf("relay: load mailboxes: %w", err)
		}
		s.storedBytes.Add(mb.bytes)
		s.storedMsgs.Add(mb.count)
	}
	err = s.t.watches.Scan(func(id, value []byte) error {
		if len(id) != IDSize {
			return nil
		}
		mb := s.byMailbox[ID(id)]
		if mb == nil {
			return nil // left by no mailbox: ignored
		}
		rec, err := parseWatch(value)
		if err != nil {
			return err
		}
		s.group.load(mb, rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("relay: load watches: %w", err)
	}
	err = s.t.wakes.Scan(func(id, value []byte) error {
		mb := s.byMailbox[ID(id)]
		if len(id) != IDSize || mb == nil {
			return nil // left by no mailbox: ignored
		}
		var err error
		mb.wakeTime, mb.wakeHandle, err = parseWake(value)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("relay: load wake settings: %w", err)
	}
	s.m.Mailboxes(int64(len(s.byMailbox)))
	s.m.Stored(s.storedMsgs.Load(), s.storedBytes.Load())
	return s, nil
}

// Ready is closed once Run serves the protocol.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Run serves until ctx ends or Close is called, then shuts down
// gracefully: it stops accepting streams, stops the group store's topic
// readers (what they queued is committed), lets in-flight requests finish
// (their commits included), closes subscriptions and stops the circuit
// relay. It returns nil after a graceful shutdown.
func (s *Server) Run(ctx context.Context) error {
	s.lifeMu.Lock()
	if s.started || s.closing {
		s.lifeMu.Unlock()
		return errors.New("relay: server already started or closed")
	}
	s.started = true
	ctx, s.cancel = context.WithCancel(ctx)
	s.runCtx = ctx
	s.lifeMu.Unlock()
	defer close(s.done)
	defer s.cancel()

	if err := s.group.start(ctx); err != nil {
		return err
	}
	var circ *circuit.Relay
	if !s.cfg.NoCircuitRelay {
		res := circuit.DefaultResources()
		res.MaxReservations = 1024
		var err error
		circ, err = circuit.New(s.h, circuit.WithACL(s.acl), circuit.WithResources(res))
		if err != nil {
			s.cancel()
			s.group.stop()
			return fmt.Errorf("relay: circuit relay: %w", err)
		}
	}
	s.h.SetStreamHandler(ProtocolID, s.handle)
	if s.blobs.on {
		s.h.SetStreamHandler(BlobProtocolID, s.blobs.handle)
	}
	if s.links.on {
		s.h.SetStreamHandler(LinkProtocolID, s.links.handle)
	}
	wakeDone := make(chan struct{})
	go func() {
		defer close(wakeDone)
		s.wake.run(ctx)
	}()
	defer func() { <-wakeDone }()
	close(s.ready)
	s.log.Info("relay serving", "mailboxes", s.mailboxCount(), "circuit_relay", circ != nil,
		"group_store", !s.cfg.NoGroupStore, "group_topics", s.group.topicCount(), "blob_store", s.blobs.on,
		"link_store", s.links.on, "link_records", s.links.count())

	tick := time.NewTicker(time.Duration(s.cfg.ExpiryInterval))
	defer tick.Stop()
	idleTick := time.NewTicker(max(time.Duration(s.cfg.IdleTimeout)/4, 10*time.Millisecond))
	defer idleTick.Stop()
	s.expire()
	s.blobs.sweep(s.cfg.Now())
	s.links.sweep(s.cfg.Now())
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-idleTick.C:
			s.sweepIdle()
		case <-tick.C:
			s.expire()
			s.checkpoint(false)
			now := s.cfg.Now()
			s.blobs.sweep(now)
			s.links.sweep(now)
			s.peerLim.sweep(now)
			s.ipLim.sweep(now)
			s.creates.sweep(now)
			s.filing.sweep(now)
			s.acl.sweep()
		}
	}

	s.log.Info("relay shutting down")
	s.h.RemoveStreamHandler(ProtocolID)
	s.h.RemoveStreamHandler(BlobProtocolID)
	s.h.RemoveStreamHandler(LinkProtocolID)
	s.lifeMu.Lock()
	s.closing = true
	for st := range s.streams {
		// Wake readers blocked between requests; a request being served
		// finishes (its response has its own write deadline).
		st.SetReadDeadline(time.Now())
	}
	for ss := range s.sessions {
		ss.cancel()
	}
	s.lifeMu.Unlock()
	// Topic readers stop first; what they queued is committed.
	s.group.stop()
	s.handlers.Wait()
	s.checkpoint(true)
	if circ != nil {
		circ.Close()
	}
	s.log.Info("relay stopped")
	return nil
}

// Close stops Run and waits for it to return. It is idempotent and safe
// to call before Run.
func (s *Server) Close() error {
	s.lifeMu.Lock()
	s.closing = true
	started := s.started
	if s.cancel != nil {
		s.cancel()
	}
	s.lifeMu.Unlock()
	if started {
		<-s.done
	}
	return nil
}

func (s *Server) mailboxCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byMailbox)
}

// track registers a stream for shutdown; false when closing.
func (s *Server) track(st network.Stream) bool {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closing {
		return false
	}
	s.streams[st] = struct{}{}
	s.handlers.Add(1)
	return true
}

func (s *Server) untrack(st network.Stream) {
	s.lifeMu.Lock()
	delete(s.streams, st)
	s.lifeMu.Unlock()
	s.handlers.Done()
}

// conn is the state of one stream.
type conn struct {
	st      network.Stream
	peerKey string // rate-limit keys; never logged
	ipKey   string

	// the current challenge (Hello), valid once
	chal      [NonceSize]byte
	chalBox   ID
	chalAt    time.Time
	chalValid bool
}

func (c *conn) write(m any) error { return wire.WriteFrame(c.st, Encode(m)) }

func (c *conn) writeErr(code ErrorCode, text string) error {
	return c.write(&ErrorMsg{Code: code, Message: text})
}

// ipKey is the rate-limit key of a stream's remote address (ipKeyOf).
func ipKey(st network.Stream) string { return ipKeyOf(st.Conn().RemoteMultiaddr()) }

// ipKeyOf is the rate-limit key of a remote address: the IPv4 address, or
// the IPv6 /64; "" when it has no IP.
func ipKeyOf(addr ma.Multiaddr) string {
	ip, err := manet.ToIP(addr)
	if err != nil {
		return ""
	}
	if ip4 := ip.To4(); ip4 != nil {
		return string(ip4)
	}
	return string(ip.Mask(net.CIDRMask(64, 128)))
}

// reqErr is a refused request: its code and a text for people.
type reqErr struct {
	code ErrorCode
	text string
}

func fail(code ErrorCode, text string) *reqErr { return &reqErr{code, text} }

func (s *Server) handle(st network.Stream) {
	if !s.track(st) {
		st.Reset()
		return
	}
	// A live session's reader takes the stream over (runSession); until
	// then it is ended here.
	handedOff := false
	defer func() {
		if !handedOff {
			st.Close()
			s.untrack(st)
		}
	}()
	c := &conn{st: st, peerKey: string(st.Conn().RemotePeer()), ipKey: ipKey(st)}
	timeout := time.Duration(s.cfg.RequestTimeout)
	// rp answers the stream's requests in order once a deposit frame came
	// (deposit.go); before that, each request is answered here.
	var rp *replier
	defer func() { rp.stop() }()
	answer := func(frame *frameHold, resp any) error {
		if rp != nil {
			return rp.send(replyItem{hold: frame, resp: resp})
		}
		err := c.write(resp)
		frame.release()
		return err
	}
	for {
		frame := s.frames.hold(c.ipKey) // framebudget.go
		st.SetReadDeadline(time.Now().Add(timeout))
		payload, err := frame.read(st)
		if err != nil {
			frame.release()
			if errors.Is(err, errFrameBudget) {
				s.frames.refused()
				st.Reset()
				return
			}
			if rp == nil {
				st.SetWriteDeadline(time.Now().Add(timeout))
			}
			switch {
			case errors.Is(err, wire.ErrFrameTooLarge):
				answer(nil, &ErrorMsg{Code: CodeTooLarge, Message: "frame too large"})
			case errors.Is(err, errCutFrame):
				// A stream cut inside a frame (not one idle or ended
				// between frames). Answered after the receipts of the
				// frames before it.
				answer(nil, &ErrorMsg{Code: CodeBadRequest, Message: "truncated frame"})
			}
			return
		}
		if rp == nil {
			st.SetDeadline(time.Now().Add(timeout))
		}
		msg, err := Decode(payload)
		if err != nil {
			answer(frame, &ErrorMsg{Code: CodeBadRequest, Message: "malformed request"})
			return
		}
		var resp any
		var rerr *reqErr
		switch m := msg.(type) {
		case *Deposit:
			if rp == nil {
				rp = s.startReplier(c)
			}
			frame.recycle = true // nothing keeps its envelope (depositItems)
			wait := s.depositItems(c, []DepositItem{{Deposit: m.Deposit, Envelope: m.Envelope}})
			if rp.send(replyItem{hold: frame, wait: func() any { return wait()[0].single() }}) != nil {
				return
			}
			continue
		case *DepositMany:
			if rp == nil {
				rp = s.startReplier(c)
			}
			frame.recycle = true
			wait := s.depositItems(c, m.Items)
			if rp.send(replyItem{hold: frame, wait: func() any { return &Receipts{Results: wait()} }}) != nil {
				return
			}
			continue
		case *Create:
			resp, rerr = s.create(c, m)
		case *GetPrekeys:
			resp, rerr = s.getPrekeys(c, m)
		case *PutPrekeys:
			resp, rerr = s.putPrekeys(m)
		case *AddPrekeys:
			resp, rerr = s.addPrekeys(m)
		case *Delete:
			resp, rerr = s.deleteMailbox(m)
		case *Watch:
			resp, rerr = s.watch(c, m)
		case *SetWake:
			resp, rerr = s.setWake(c, m)
		case *Hello:
			resp, rerr = s.hello(c, m)
		case *Subscribe:
			var mb *mailbox
			mb, rerr = s.checkSubscribe(c, m)
			if rerr == nil {
				frame.release()
				if rp != nil {
					// The answers to the deposits before it go first.
					rp.stop()
					rp = nil
				}
				st.SetDeadline(time.Now().Add(timeout))
				handedOff = s.runSession(c, mb, m.Live)
				return
			}
		case pingMsg:
			// Outside a subscription a Ping is a liveness probe: answered
			// OK and the stream is closed, not held to its deadline.
			answer(frame, OK)
			return
		default:
			answer(frame, &ErrorMsg{Code: CodeBadRequest, Message: "unexpected message"})
			return
		}
		if rerr != nil {
			resp = &ErrorMsg{Code: rerr.code, Message: rerr.text}
		}
		if answer(frame, resp) != nil {
			return
		}
	}
}

// allow applies the per-peer and per-IP token buckets.
func (s *Server) allow(c *conn) bool {
	now := s.cfg.Now()
	return s.peerLim.allow(c.peerKey, now) && s.ipLim.allow(c.ipKey, now)
}

func (s *Server) lookupMailbox(id ID) *mailbox {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byMailbox[id]
}

func (s *Server) hello(c *conn, m *Hello) (any, *reqErr) {
	if s.lookupMailbox(m.Mailbox) == nil {
		return nil, fail(CodeNotFound, "no such mailbox")
	}
	rand.Read(c.chal[:])
	c.chalBox = m.Mailbox
	c.chalAt = s.cfg.Now()
	c.chalValid = true
	return &Challenge{Nonce: c.chal, Time: uint64(c.chalAt.Unix())}, nil
}

func (s *Server) checkSubscribe(c *conn, m *Subscribe) (*mailbox, *reqErr) {
	valid := c.chalValid && m.Mailbox == c.chalBox && subtle.ConstantTimeCompare(m.Nonce[:], c.chal[:]) == 1
	c.chalValid = false
	if !valid {
		return nil, fail(CodeAuth, "unknown or reused challenge")
	}
	if s.cfg.Now().Sub(c.chalAt) > challengeLifetime {
		return nil, fail(CodeAuth, "stale challenge")
	}
	mb := s.lookupMailbox(m.Mailbox)
	if mb == nil {
		return nil, fail(CodeNotFound, "no such mailbox")
	}
	if !VerifySubscribe(m, mb.owner) {
		return nil, fail(CodeAuth, "bad signature")
	}
	return mb, nil
}
