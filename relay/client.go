package relay

import (
	"bufio"
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
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

// Depositor deposits many envelopes over one stream. It is safe for
// concurrent use, and concurrent calls share frames: the envelopes queued
// while earlier frames are in flight go together in the next
// DepositMany (up to MaxDepositMany and MaxFrame), and up to
// depositorWindow frames are in flight at once, answered in order
// (docs/RELAY.md "Deposits in batches"). With a relay that predates
// DepositMany it sends one Deposit frame per envelope, pipelined the
// same way. After a transport error the Depositor is unusable: every
// call fails with that error.
type Depositor struct {
	c     *Client
	st    network.Stream
	batch bool // the relay takes DepositMany

	// mu guards the fields below.
	mu     sync.Mutex
	queue  []*depositCall
	err    error
	closed bool

	kick  chan struct{}       // the queue grew, or Close
	slots chan struct{}       // one per frame in flight
	fifo  chan []*depositCall // frames in flight, oldest first
	rdone chan struct{}       // the reader has returned
}

// depositorWindow is how many frames a Depositor has in flight.
const depositorWindow = 4

// depositCall is one envelope queued on a Depositor.
type depositCall struct {
	item DepositItem
	res  ItemResult
	err  error // a transport error: the Depositor failed
	// itemErr is the Error answering the Deposit frame that carried
	// the envelope alone (a relay without DepositMany).
	itemErr error
	wg      *sync.WaitGroup
}

// OpenDepositor opens a deposit stream to relay. It asks the relay
// whether it takes DepositMany (an empty one, answered by an empty
// Receipts); a relay that does not answers BadRequest and closes the
// stream, and the Depositor opens another and sends Deposits.
func (c *Client) OpenDepositor(ctx context.Context, h host.Host, relay peer.AddrInfo) (*Depositor, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	st, err := c.open(ctx, h, relay)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	st.SetDeadline(deadline)
	resp, err := roundTrip(st, &DepositMany{})
	batch := true
	if errors.Is(err, ErrBadRequest) {
		st.Close()
		batch = false
		if st, err = c.open(ctx, h, relay); err != nil {
			return nil, err
		}
	} else if err == nil {
		if r, ok := resp.(*Receipts); !ok || len(r.Results) != 0 {
			err = unexpected(resp)
		}
	}
	if err != nil {
		st.Reset()
		return nil, err
	}
	st.SetDeadline(time.Time{})
	d := &Depositor{c: c, st: st, batch: batch, kick: make(chan struct{}, 1),
		slots: make(chan struct{}, depositorWindow), fifo: make(chan []*depositCall, depositorWindow),
		rdone: make(chan struct{})}
	go d.writeLoop()
	go d.readLoop()
	return d, nil
}

// Batched reports whether the relay takes DepositMany (else each
// envelope goes in a Deposit frame of its own).
func (d *Depositor) Batched() bool { return d.batch }

// Deposit stores one envelope and returns its message ID once the relay
// has it on disk.
func (d *Depositor) Deposit(deposit ID, env []byte) (MessageID, error) {
	calls, err := d.deposit([]DepositItem{{Deposit: deposit, Envelope: env}})
	if err != nil {
		return MessageID{}, err
	}
	if calls[0].itemErr != nil {
		return MessageID{}, calls[0].itemErr
	}
	return calls[0].res.Message, calls[0].res.Err()
}

// DepositMany stores items in order (those to one mailbox get increasing
// arrival numbers) and returns one result per item once the relay has
// answered them all: a stored item's message ID, or the error code that
// refused it (ItemResult.Err). The error is a transport error, after
// which the Depositor is unusable; the items it names may or may not
// have been stored.
func (d *Depositor) DepositMany(items []DepositItem) ([]ItemResult, error) {
	calls, err := d.deposit(items)
	if err != nil {
		return nil, err
	}
	res := make([]ItemResult, len(items))
	for i := range calls {
		res[i] = calls[i].res
	}
	return res, nil
}

// deposit queues items and waits for their answers.
func (d *Depositor) deposit(items []DepositItem) ([]depositCall, error) {
	for _, it := range items {
		if len(it.Envelope) > envelope.MaxEnvelopeSize {
			return nil, ErrTooLarge
		}
	}
	var wg sync.WaitGroup
	calls := make([]depositCall, len(items))
	d.mu.Lock()
	if d.err != nil || d.closed {
		err := cmp.Or(d.err, errors.New("relay: depositor closed"))
		d.mu.Unlock()
		return nil, err
	}
	wg.Add(len(items))
	for i, it := range items {
		calls[i] = depositCall{item: it, wg: &wg}
		d.queue = append(d.queue, &calls[i])
	}
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default:
	}
	wg.Wait()
	for i := range calls {
		if calls[i].err != nil {
			return nil, calls[i].err
		}
	}
	return calls, nil
}

// fail makes the Depositor unusable with err (the first error stays).
func (d *Depositor) fail(err error) {
	d.mu.Lock()
	if d.err == nil {
		d.err = err
	}
	d.mu.Unlock()
	d.st.Reset()
}

func finish(calls []*depositCall, err error) {
	for _, c := range calls {
		c.err = err
		c.wg.Done()
	}
}

// writeLoop sends the queued envelopes, as many as fit in a frame, while
// a window slot is free.
func (d *Depositor) writeLoop() {
	defer close(d.fifo)
	var buf []byte
	for {
		<-d.kick
		for {
			d.mu.Lock()
			if d.err != nil {
				q, err, closed := d.queue, d.err, d.closed
				d.queue = nil
				d.mu.Unlock()
				finish(q, err)
				if closed {
					return
				}
				break
			}
			if len(d.queue) == 0 {
				closed := d.closed
				d.mu.Unlock()
				if closed {
					return
				}
				break
			}
			d.mu.Unlock()
			d.slots <- struct{}{}
			d.mu.Lock()
			n, size := 0, 64
			for n < len(d.queue) && n < MaxDepositMany && (n == 0 || size+IDSize+4+len(d.queue[n].item.Envelope) <= MaxFrame) {
				size += IDSize + 4 + len(d.queue[n].item.Envelope)
				n++
				if !d.batch {
					break
				}
			}
			calls := slices.Clone(d.queue[:n])
			d.queue = slices.Delete(d.queue, 0, n)
			err := d.err
			d.mu.Unlock()
			if err == nil {
				var req any
				if d.batch {
					m := &DepositMany{Items: make([]DepositItem, n)}
					for i, c := range calls {
						m.Items[i] = c.item
					}
					req = m
				} else {
					req = &Deposit{Deposit: calls[0].item.Deposit, Envelope: calls[0].item.Envelope}
				}
				buf, err = appendFrame(buf[:0], req)
				if err == nil {
					d.st.SetWriteDeadline(time.Now().Add(d.c.timeout()))
					_, err = d.st.Write(buf)
				}
				if err != nil {
					err = fmt.Errorf("relay: deposit: %w", err)
					d.fail(err)
				}
			}
			if err != nil {
				<-d.slots
				finish(calls, err)
				continue
			}
			d.fifo <- calls
		}
	}
}

// readLoop reads the answers, in order, and hands each call its result.
func (d *Depositor) readLoop() {
	defer close(d.rdone)
	for calls := range d.fifo {
		d.mu.Lock()
		err := d.err
		d.mu.Unlock()
		if err != nil {
			finish(calls, err)
			<-d.slots
			continue
		}
		d.st.SetReadDeadline(time.Now().Add(d.c.timeout()))
		resp, err := readAnswer(d.st)
		var remote *RemoteError
		switch v := resp.(type) {
		case *Receipts:
			if len(v.Results) != len(calls) {
				err = fmt.Errorf("%w: %d receipts for %d envelopes", ErrBadRequest, len(v.Results), len(calls))
				break
			}
			for i, c := range calls {
				c.res = v.Results[i]
			}
		case *Receipt:
			if len(calls) != 1 || d.batch {
				err = unexpected(resp)
				break
			}
			calls[0].res.Message = v.Message
		case nil:
			if errors.As(err, &remote) && !d.batch {
				// A refused Deposit: the stream goes on.
				calls[0].res.Code, calls[0].itemErr, err = remote.Code, remote, nil
			}
		default:
			err = unexpected(resp)
		}
		if err != nil {
			if remote == nil {
				err = fmt.Errorf("relay: deposit: %w", err)
			}
			d.fail(err)
			finish(calls, err)
		} else {
			finish(calls, nil)
		}
		<-d.slots
		// A window slot is free: send what queued meanwhile.
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
}

// Close sends what is queued, waits for the answers, then closes the
// stream.
func (d *Depositor) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default:
	}
	<-d.rdone
	return d.st.Close()
}

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
