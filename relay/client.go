package relay

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/internal/gossip"
	"github.com/hushnet/hush/internal/wire"
)

// Client talks /hush/mailbox/1 to relays. The zero value works; a Client
// must not be copied after first use.
type Client struct {
	// PoWBits is the proof of work Create solves before sending: the
	// number of leading zero bits the relay asks for (its Error says so).
	// Default 0.
	PoWBits int
	// Timeout bounds each request. Default 30 s.
	Timeout time.Duration
	// PingInterval is how often a Subscription pings the relay.
	// Default 60 s.
	PingInterval time.Duration
	// Now is the clock for signed request times. Default time.Now.
	Now func() time.Time

	// watchMu guards lastWatch, the time of the last Watch sent.
	watchMu   sync.Mutex
	lastWatch uint64
}

// ParseRelayAddr parses a relay multiaddr ending in /p2p/<PeerID>.
func ParseRelayAddr(s string) (peer.AddrInfo, error) {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("relay: address %q: %w", s, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("relay: address %q: %w", s, err)
	}
	return *ai, nil
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultRequestTimeout
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// open connects to the relay and opens a mailbox stream.
func (c *Client) open(ctx context.Context, h host.Host, relay peer.AddrInfo) (network.Stream, error) {
	if len(relay.Addrs) > 0 {
		if err := h.Connect(ctx, relay); err != nil {
			return nil, fmt.Errorf("relay: connect: %w", err)
		}
	}
	st, err := h.NewStream(ctx, relay.ID, ProtocolID)
	if err != nil {
		return nil, fmt.Errorf("relay: open stream: %w", err)
	}
	return st, nil
}

// roundTrip sends req and reads one answer; an Error answer is returned
// as a *RemoteError.
func roundTrip(st network.Stream, req any) (any, error) {
	if err := wire.WriteFrame(st, Encode(req)); err != nil {
		return nil, err
	}
	return readAnswer(st)
}

func readAnswer(st network.Stream) (any, error) {
	b, err := wire.ReadFrame(st, MaxFrame)
	if err != nil {
		return nil, fmt.Errorf("relay: read answer: %w", err)
	}
	m, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if e, ok := m.(*ErrorMsg); ok {
		return nil, &RemoteError{Code: e.Code, Message: e.Message}
	}
	return m, nil
}

// request runs one request on a fresh stream.
func (c *Client) request(ctx context.Context, h host.Host, relay peer.AddrInfo, req any) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	st, err := c.open(ctx, h, relay)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if d, ok := ctx.Deadline(); ok {
		st.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	return roundTrip(st, req)
}

func unexpected(m any) error { return fmt.Errorf("%w: unexpected answer %T", ErrBadRequest, m) }

// Create makes a mailbox owned by owner (a key fresh for this mailbox).
// invite is the operator's invite token, or nil.
func (c *Client) Create(ctx context.Context, h host.Host, relay peer.AddrInfo, owner ed25519.PrivateKey, invite []byte) (*Created, error) {
	m := &Create{Owner: owner.Public().(ed25519.PublicKey), Time: uint64(c.now().Unix()), Invite: invite}
	if c.PoWBits > 0 {
		for powBits(m) < c.PoWBits {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			m.Nonce++
		}
	}
	SignCreate(m, owner)
	resp, err := c.request(ctx, h, relay, m)
	if err != nil {
		return nil, err
	}
	cr, ok := resp.(*Created)
	if !ok {
		return nil, unexpected(resp)
	}
	return cr, nil
}

// Deposit stores a sealed envelope in the mailbox behind deposit and
// returns its message ID once the relay has it on disk.
func (c *Client) Deposit(ctx context.Context, h host.Host, relay peer.AddrInfo, deposit ID, env []byte) (MessageID, error) {
	if len(env) > envelope.MaxEnvelopeSize {
		return MessageID{}, ErrTooLarge
	}
	resp, err := c.request(ctx, h, relay, &Deposit{Deposit: deposit, Envelope: env})
	if err != nil {
		return MessageID{}, err
	}
	r, ok := resp.(*Receipt)
	if !ok {
		return MessageID{}, unexpected(resp)
	}
	return r.Message, nil
}

// Depositor deposits many envelopes over one stream, one at a time.
// It is safe for concurrent use (requests are serialised).
type Depositor struct {
	c  *Client
	mu sync.Mutex
	st network.Stream
}

// OpenDepositor opens a deposit stream to relay.
func (c *Client) OpenDepositor(ctx context.Context, h host.Host, relay peer.AddrInfo) (*Depositor, error) {
	st, err := c.open(ctx, h, relay)
	if err != nil {
		return nil, err
	}
	return &Depositor{c: c, st: st}, nil
}

// Deposit stores one envelope; after a transport error the Depositor is
// unusable.
func (d *Depositor) Deposit(deposit ID, env []byte) (MessageID, error) {
	if len(env) > envelope.MaxEnvelopeSize {
		return MessageID{}, ErrTooLarge
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.SetDeadline(time.Now().Add(d.c.timeout()))
	resp, err := roundTrip(d.st, &Deposit{Deposit: deposit, Envelope: env})
	if err != nil {
		return MessageID{}, err
	}
	r, ok := resp.(*Receipt)
	if !ok {
		return MessageID{}, unexpected(resp)
	}
	return r.Message, nil
}

// Close closes the stream.
func (d *Depositor) Close() error { return d.st.Close() }

// GetPrekeys fetches one prekey bundle of the mailbox behind deposit: a
// one-time bundle while any is left (oneTime true), else the last-resort.
func (c *Client) GetPrekeys(ctx context.Context, h host.Host, relay peer.AddrInfo, deposit ID) (bundle []byte, oneTime bool, err error) {
	resp, err := c.request(ctx, h, relay, &GetPrekeys{Deposit: deposit})
	if err != nil {
		return nil, false, err
	}
	p, ok := resp.(*Prekeys)
	if !ok {
		return nil, false, unexpected(resp)
	}
	return p.Bundle, p.OneTime, nil
}

// PutPrekeys replaces the mailbox's bundles.
func (c *Client) PutPrekeys(ctx context.Context, h host.Host, relay peer.AddrInfo, mailbox ID, owner ed25519.PrivateKey, lastResort []byte, oneTime [][]byte) error {
	m := &PutPrekeys{Mailbox: mailbox, Time: uint64(c.now().Unix()), LastResort: lastResort, OneTime: oneTime}
	SignPutPrekeys(m, owner)
	return c.expectOK(ctx, h, relay, m)
}

// AddPrekeys replaces the mailbox's last-resort bundle, adds oneTime
// after the one-time bundles the relay still holds, and returns how many
// it holds now.
func (c *Client) AddPrekeys(ctx context.Context, h host.Host, relay peer.AddrInfo, mailbox ID, owner ed25519.PrivateKey, lastResort []byte, oneTime [][]byte) (int, error) {
	m := &AddPrekeys{Mailbox: mailbox, Time: uint64(c.now().Unix()), LastResort: lastResort, OneTime: oneTime}
	SignAddPrekeys(m, owner)
	resp, err := c.request(ctx, h, relay, m)
	if err != nil {
		return 0, err
	}
	n, ok := resp.(*PrekeyCount)
	if !ok {
		return 0, unexpected(resp)
	}
	return int(n.OneTime), nil
}

// Delete removes the mailbox and everything in it.
func (c *Client) Delete(ctx context.Context, h host.Host, relay peer.AddrInfo, mailbox ID, owner ed25519.PrivateKey) error {
	m := &Delete{Mailbox: mailbox, Time: uint64(c.now().Unix())}
	SignDelete(m, owner)
	return c.expectOK(ctx, h, relay, m)
}

// Watch replaces the group topics the relay watches for the mailbox: it
// files every message seen on them into the mailbox (Deliver with
// SourceTopic) until the next Watch; an empty list stops watching. A
// relay without a group store answers ErrUnsupported; one watching as
// many topics as it allows answers ErrFull.
//
// The signed time is the clock's, or one second after the last Watch
// this Client sent if that is later, so successive Watches always
// increase (the relay refuses a Watch not newer than the last one it
// accepted for the mailbox).
func (c *Client) Watch(ctx context.Context, h host.Host, relay peer.AddrInfo, mailbox ID, owner ed25519.PrivateKey, topics []string) error {
	if len(topics) > MaxWatchTopics {
		return fmt.Errorf("%w: at most %d topics", ErrBadRequest, MaxWatchTopics)
	}
	for _, t := range topics {
		if !gossip.ValidTopic(t) {
			return fmt.Errorf("%w: not a group topic name", ErrBadRequest)
		}
	}
	c.watchMu.Lock()
	t := max(uint64(c.now().Unix()), c.lastWatch+1)
	c.lastWatch = t
	c.watchMu.Unlock()
	m := &Watch{Mailbox: mailbox, Time: t, Topics: topics}
	SignWatch(m, owner)
	return c.expectOK(ctx, h, relay, m)
}

// SetWake attaches a push bridge's wake handle to the mailbox ("" to
// detach it); the relay then asks its bridge to wake this device when an
// envelope arrives while it is not subscribed. Relays without a bridge
// answer ErrUnsupported.
func (c *Client) SetWake(ctx context.Context, h host.Host, relay peer.AddrInfo, mailbox ID, owner ed25519.PrivateKey, handle string) error {
	if len(handle) > MaxWakeHandle {
		return fmt.Errorf("%w: a wake handle is at most %d bytes", ErrBadRequest, MaxWakeHandle)
	}
	c.watchMu.Lock()
	t := max(uint64(c.now().Unix()), c.lastWatch+1) // one clock for the owner's signed settings
	c.lastWatch = t
	c.watchMu.Unlock()
	m := &SetWake{Mailbox: mailbox, Time: t, Handle: handle}
	SignSetWake(m, owner)
	return c.expectOK(ctx, h, relay, m)
}

func (c *Client) expectOK(ctx context.Context, h host.Host, relay peer.AddrInfo, m any) error {
	resp, err := c.request(ctx, h, relay, m)
	if err != nil {
		return err
	}
	if _, ok := resp.(okMsg); !ok {
		return unexpected(resp)
	}
	return nil
}

// Subscription is an open owner session. Delivered envelopes arrive on
// Messages (oldest first); Drained is closed once the backlog has been
// sent. Messages is closed when the session ends; Err then says why.
type Subscription struct {
	st      network.Stream
	msgs    chan *Deliver
	drained chan struct{}
	done    chan struct{}
	kick    chan struct{}
	quit    chan struct{} // closed by Close

	// mu guards the writer and err.
	mu     sync.Mutex
	w      *bufio.Writer
	err    error
	closed bool
}

// Subscribe opens an owner session on mailbox: it answers the relay's
// challenge with owner's signature, then receives every stored envelope
// and, with live, each new deposit at once. Unacknowledged envelopes are
// delivered again on the next subscription.
func (c *Client) Subscribe(ctx context.Context, h host.Host, relay peer.AddrInfo, mailbox ID, owner ed25519.PrivateKey, live bool) (*Subscription, error) {
	octx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	st, err := c.open(octx, h, relay)
	if err != nil {
		return nil, err
	}
	st.SetDeadline(time.Now().Add(c.timeout()))
	resp, err := roundTrip(st, &Hello{Mailbox: mailbox})
	if err != nil {
		st.Reset()
		return nil, err
	}
	ch, ok := resp.(*Challenge)
	if !ok {
		st.Reset()
		return nil, unexpected(resp)
	}
	sub := &Subscribe{Mailbox: mailbox, Nonce: ch.Nonce, Live: live}
	SignSubscribe(sub, owner)
	if err := wire.WriteFrame(st, Encode(sub)); err != nil {
		st.Reset()
		return nil, err
	}
	st.SetDeadline(time.Time{})
	s := &Subscription{st: st, msgs: make(chan *Deliver, 256), drained: make(chan struct{}),
		done: make(chan struct{}), kick: make(chan struct{}, 1), quit: make(chan struct{}), w: bufio.NewWriterSize(st, 4096)}
	interval := c.PingInterval
	if interval <= 0 {
		interval = 60 * time.Second
	}
	go s.readLoop()
	go s.writeLoop(interval)
	return s, nil
}

// Messages returns the channel of delivered envelopes.
func (s *Subscription) Messages() <-chan *Deliver { return s.msgs }

// Drained is closed when the relay has sent the whole backlog.
func (s *Subscription) Drained() <-chan struct{} { return s.drained }

// Done is closed when the session has ended.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err returns why the session ended (nil while it runs or after Close).
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Subscription) fail(err error) {
	s.mu.Lock()
	if s.err == nil && !s.closed {
		s.err = err
	}
	s.mu.Unlock()
}

func (s *Subscription) readLoop() {
	defer close(s.done)
	defer close(s.msgs)
	drained := false
	for {
		b, err := wire.ReadFrame(s.st, MaxFrame)
		if err != nil {
			s.fail(fmt.Errorf("relay: subscription ended: %w", err))
			s.st.Reset()
			return
		}
		m, err := Decode(b)
		if err != nil {
			s.fail(err)
			s.st.Reset()
			return
		}
		switch v := m.(type) {
		case *Deliver:
			select {
			case s.msgs <- v:
			case <-s.quit: // closing: drop; it is delivered again next time
			}
		case drainedMsg:
			if !drained {
				drained = true
				close(s.drained)
			}
		case *ErrorMsg:
			s.fail(&RemoteError{Code: v.Code, Message: v.Message})
			s.st.Reset()
			return
		default:
			s.fail(unexpected(m))
			s.st.Reset()
			return
		}
	}
}

// writeLoop flushes acks promptly (batching those written meanwhile) and
// pings when idle.
func (s *Subscription) writeLoop(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	ping, _ := wire.AppendFrame(nil, Encode(Ping))
	for {
		select {
		case <-s.done:
			return
		case <-s.kick:
		case <-t.C:
			s.mu.Lock()
			s.w.Write(ping)
			s.mu.Unlock()
		}
		s.mu.Lock()
		s.st.SetWriteDeadline(time.Now().Add(DefaultRequestTimeout))
		err := s.w.Flush()
		s.mu.Unlock()
		if err != nil {
			s.fail(err)
			s.st.Reset()
			return
		}
	}
}

// Ack acknowledges a delivered envelope; the relay deletes it. Acks are
// sent shortly after (batched); an error means the session has ended.
func (s *Subscription) Ack(id MessageID) error {
	frame, _ := wire.AppendFrame(make([]byte, 0, 24), Encode(&Ack{Message: id}))
	s.mu.Lock()
	if s.closed || s.err != nil {
		err := s.err
		s.mu.Unlock()
		if err == nil {
			err = errors.New("relay: subscription closed")
		}
		return err
	}
	_, err := s.w.Write(frame)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return err
}

// Close flushes pending acks and ends the session. It is idempotent.
func (s *Subscription) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.st.SetWriteDeadline(time.Now().Add(5 * time.Second))
	s.w.Flush()
	s.mu.Unlock()
	s.st.CloseWrite()
	close(s.quit)
	// The relay commits the acks it has read, then closes its side.
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.st.Reset()
		<-s.done
	}
	return nil
}
