package relay

import (
	"bufio"
	"cmp"
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/hushnet/hush/internal/wire"
)

// session is an authenticated owner subscription on one stream.
//
// An idle live session, what most of a relay's sessions are, is one
// goroutine: its reader. The stream handler's goroutine sends the
// backlog and Drained and then ends; a push starts a writer goroutine
// that sends what is queued and ends when nothing is (as an ack starts
// the ack worker). The reader ends the session (readAndEnd). docs/RELAY.md
// "Capacity and libp2p limits".
type session struct {
	s    *Server
	c    *conn
	mb   *mailbox
	live bool

	ended atomic.Bool // set by cancel: the session is ending

	// mu guards the fields below.
	mu        sync.Mutex
	pending   []pushItem
	writing   bool                   // a writer (the backlog's, or one a push started) owns pending
	backlog   map[uint64]struct{}    // arrivals sent in the backlog: a push of one is not sent again
	delivered map[MessageID]msgRef   // delivered on this session, not acked
	unacked   map[MessageID]*message // transient pushes sent, not acked
	closed    bool                   // ending: no writer starts, transient pushes are refused (see storeUnacked)
	ackq      []MessageID            // acks read, not yet taken by the ack worker
	acking    bool                   // an ack worker runs
	ackRoom   sync.Cond              // on mu: ackq was taken

	writers sync.WaitGroup // the backlog writer and the push writers
	ackers  sync.WaitGroup // the ack workers

	lastRead atomic.Int64 // when the reader started or last read a frame (UnixNano); see sweepIdle
}

type pushItem struct {
	ref       msgRef
	msg       *message
	transient bool // not stored: an ack for it is ignored
}

// maxPending bounds the pushes queued for a slow owner; past it the
// session is closed and the owner resubscribes (nothing is lost: the
// envelopes are on disk).
const maxPending = 4096

// push queues a committed deposit for a live session.
func (ss *session) push(ref msgRef, msg *message) {
	if !ss.live {
		return
	}
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return
	}
	if len(ss.pending) >= maxPending {
		ss.mu.Unlock()
		ss.cancel()
		return
	}
	ss.pending = append(ss.pending, pushItem{ref: ref, msg: msg})
	ss.startWriterLocked()
	ss.mu.Unlock()
}

// pushTransient queues a message that is not stored (a group topic
// message for an owner that is online) for a live session. It reports
// false, and queues nothing, if the session is not live, ending, or its
// queue is full: the caller stores the message instead. A transient push
// the owner has not acknowledged when the session ends is stored then
// (storeUnacked), so an owner that goes away loses nothing a relay that
// keeps running took.
func (ss *session) pushTransient(msg *message) bool {
	if !ss.live || ss.ended.Load() {
		return false
	}
	ss.mu.Lock()
	if ss.closed || len(ss.pending) >= maxPending {
		ss.mu.Unlock()
		return false
	}
	ss.pending = append(ss.pending, pushItem{msg: msg, transient: true})
	ss.startWriterLocked()
	ss.mu.Unlock()
	return true
}

// startWriterLocked starts a writer for the pending pushes unless one
// owns them (the backlog's writer takes them once it sent Drained).
// ss.mu is held.
func (ss *session) startWriterLocked() {
	if ss.writing {
		return
	}
	ss.writing = true
	ss.writers.Add(1)
	go ss.writePending(nil)
}

// runSession starts an authenticated subscription on the stream: it
// starts the session's reader, which ends the session (readAndEnd) when the
// stream ends, a newer subscription replaces it, the mailbox is deleted
// or the server stops, and sends the backlog and Drained on the calling
// goroutine. It reports whether the reader took the stream over (it
// closes it and untracks it when the session ends); if not, the caller
// closes it.
func (s *Server) runSession(c *conn, mb *mailbox, live bool) bool {
	s.lifeMu.Lock()
	if s.closing || s.runCtx == nil {
		s.lifeMu.Unlock()
		return false
	}
	// writing: the backlog writer (below) owns the pushes queued from
	// the moment the session is the mailbox's, until it sent Drained.
	ss := &session{s: s, c: c, mb: mb, live: live, writing: true,
		delivered: make(map[MessageID]msgRef), unacked: make(map[MessageID]*message)}
	ss.ackRoom.L = &ss.mu
	ss.lastRead.Store(time.Now().UnixNano())
	ss.writers.Add(1) // the backlog writer
	s.sessions[ss] = struct{}{}
	s.lifeMu.Unlock()

	mb.mu.Lock()
	if mb.deleted {
		mb.mu.Unlock()
		ss.ended.Store(true) // not cancel: the answer below is still written
		s.lifeMu.Lock()
		delete(s.sessions, ss)
		s.lifeMu.Unlock()
		c.writeErr(CodeNotFound, "no such mailbox")
		return false
	}
	old := mb.sub
	mb.sub = ss
	mb.mu.Unlock()
	if old != nil {
		old.cancel()
	}
	s.acl.up(c.st.Conn().RemotePeer())
	s.m.Subscribers(s.subscribers.Add(1))

	go ss.readAndEnd()
	ss.writeBacklog()
	return true
}

// cancel ends the session: it wakes the reader and a writer blocked on
// the stream by setting the stream's deadline to now. Each checks ended
// again after setting its own deadline, so a cancel between its check and
// its deadline is not missed. The server's Run cancels every session when
// it stops (no context per session: 20,000 idle owners, docs/RELAY.md
// "Capacity and libp2p limits").
func (ss *session) cancel() {
	if ss.ended.CompareAndSwap(false, true) {
		ss.c.st.SetDeadline(time.Now())
	}
}

// readAndEnd is the session's reader; when it stops (the stream ended or
// failed, or the session was cancelled) it ends the session: it waits
// for the writers and the ack workers, stores the unacknowledged
// transient pushes, and closes and untracks the stream.
func (ss *session) readAndEnd() {
	s, st := ss.s, ss.c.st
	ss.readLoop()
	ss.cancel()
	ss.mu.Lock()
	ss.closed = true // no writer starts from here
	ss.mu.Unlock()
	ss.writers.Wait()
	ss.ackers.Wait()
	ss.storeUnacked()

	s.lifeMu.Lock()
	delete(s.sessions, ss)
	s.lifeMu.Unlock()
	ss.mb.mu.Lock()
	if ss.mb.sub == ss {
		ss.mb.sub = nil
	}
	ss.mb.mu.Unlock()
	s.acl.down(st.Conn().RemotePeer())
	s.m.Subscribers(s.subscribers.Add(-1))
	st.Close()
	s.untrack(st)
}

// storeUnacked stores the transient pushes of an ended session that the
// owner did not acknowledge (sent or still queued), and makes the session
// refuse new ones, which are stored by their sender instead.
func (ss *session) storeUnacked() {
	ss.mu.Lock()
	ss.closed = true
	var left []*message
	for _, it := range ss.pending {
		if it.transient {
			left = append(left, it.msg)
		}
	}
	ss.pending = nil
	for _, m := range ss.unacked {
		left = append(left, m)
	}
	ss.unacked = nil
	ss.mu.Unlock()
	slices.SortFunc(left, func(a, b *message) int { return cmp.Compare(a.seq, b.seq) })
	var queued []*pendingStore
	for _, m := range left {
		p, rerr := ss.s.storeQueue(ss.mb, m.envelope, SourceTopic, m.topic)
		if rerr != nil {
			if rerr.code != CodeNotFound {
				ss.s.m.TopicDropped(rerr.code)
			}
			continue
		}
		queued = append(queued, p)
	}
	for _, p := range queued {
		if rerr := ss.s.storeFinish(p); rerr != nil {
			ss.s.m.TopicDropped(rerr.code)
			continue
		}
		ss.s.m.TopicFiled(int(p.ref.size))
	}
}

// sessionWriter is a session's write buffer and frame scratch space,
// lent by writers only while the session writes: an idle live
// subscription, what most of a relay's subscriptions are, holds neither
// (64 KiB each; docs/RELAY.md "Capacity and libp2p limits").
type sessionWriter struct {
	w   *bufio.Writer
	buf []byte
}

var writers = sync.Pool{New: func() any {
	return &sessionWriter{w: bufio.NewWriterSize(nil, 64<<10), buf: make([]byte, 0, 2048)}
}}

func getWriter(st io.Writer) *sessionWriter {
	sw := writers.Get().(*sessionWriter)
	sw.w.Reset(st)
	return sw
}

func putWriter(sw *sessionWriter) {
	sw.w.Reset(nil)
	writers.Put(sw)
}

// send records a delivery (delivered, or unacked for a transient push)
// and writes it into sw.
func (ss *session) send(sw *sessionWriter, ref msgRef, msg *message, transient bool) error {
	ss.mu.Lock()
	if transient {
		ss.unacked[msg.id] = msg
	} else {
		ss.delivered[msg.id] = ref
	}
	ss.mu.Unlock()
	var err error
	sw.buf, err = wire.AppendFrame(sw.buf[:0], Encode(&Deliver{Message: msg.id, StoredAt: msg.storedAt, Source: msg.source, Topic: msg.topic, Envelope: msg.envelope}))
	if err != nil {
		return err
	}
	_, err = sw.w.Write(sw.buf)
	return err
}

// setWriteDeadline sets the stream's write deadline and reports whether
// the session still runs: checked after the deadline is set, so a cancel
// that came before is seen here and one that comes after sets the
// deadline to now (cancel).
func (ss *session) setWriteDeadline() bool {
	ss.c.st.SetWriteDeadline(time.Now().Add(time.Duration(ss.s.cfg.RequestTimeout)))
	return !ss.ended.Load()
}

// writeBacklog sends the stored messages and Drained, then (live) the
// pushes queued meanwhile: it is the session's first writer.
func (ss *session) writeBacklog() {
	st := ss.c.st
	sw := getWriter(st)
	errStop := errors.New("stop")
	backlog := make(map[uint64]struct{})
	if !ss.setWriteDeadline() {
		ss.writePending(sw)
		return
	}
	n := 0
	id := ss.mb.id
	err := ss.s.t.messages.ScanSeq(id[:], 0, ^uint64(0), func(seq uint64, v []byte) error {
		if ss.ended.Load() {
			return errStop
		}
		msg, err := parseMessage(v)
		if err != nil {
			return err
		}
		backlog[seq] = struct{}{}
		n++
		if n%256 == 0 && !ss.setWriteDeadline() {
			return errStop
		}
		return ss.send(sw, msgRef{mailbox: id, msg: msg.id, arrival: seq, expiry: msg.indexSeq(), size: uint32(len(msg.envelope))}, msg, false)
	})
	if err == nil {
		sw.buf, _ = wire.AppendFrame(sw.buf[:0], Encode(Drained))
		sw.w.Write(sw.buf)
		err = sw.w.Flush()
	}
	if err != nil {
		if err != errStop {
			ss.s.log.Debug("backlog send failed", "err", err)
		}
		ss.cancel()
	} else {
		ss.s.m.Delivered(n)
		st.SetWriteDeadline(time.Time{}) // no timer while idle
	}
	if len(backlog) > 0 {
		ss.mu.Lock()
		ss.backlog = backlog
		ss.mu.Unlock()
	}
	ss.writePending(sw)
}

// writePending sends the queued pushes until none is queued, then ends
// (a push starts another writer); it ends too, leaving the rest queued,
// once the session is cancelled or a write fails (which cancels it).
// sw, if not nil, is the writer to use (the backlog's); either way the
// writer is returned to the pool before this returns.
func (ss *session) writePending(sw *sessionWriter) {
	defer ss.writers.Done()
	defer func() {
		if sw != nil {
			putWriter(sw)
		}
	}()
	for {
		ss.mu.Lock()
		items := ss.pending
		if len(items) == 0 || ss.ended.Load() || !ss.live {
			ss.writing = false
			ss.mu.Unlock()
			return
		}
		ss.pending = nil
		backlog := ss.backlog
		ss.mu.Unlock()
		if !ss.setWriteDeadline() {
			ss.requeue(items)
			continue
		}
		if sw == nil {
			sw = getWriter(ss.c.st)
		}
		k := 0
		for i, it := range items {
			if _, dup := backlog[it.ref.arrival]; dup && !it.transient {
				continue
			}
			if ss.send(sw, it.ref, it.msg, it.transient) != nil {
				ss.requeue(items[i+1:])
				ss.cancel()
				break
			}
			k++
		}
		if ss.ended.Load() || sw.w.Flush() != nil {
			ss.cancel()
			continue
		}
		ss.c.st.SetWriteDeadline(time.Time{}) // no timer while idle; set again before the next batch
		putWriter(sw)
		sw = nil
		ss.s.m.Delivered(k)
	}
}

// requeue puts pushes a writer took but did not send back at the head of
// the queue, so the transient ones among them are stored when the
// session ends (storeUnacked).
func (ss *session) requeue(items []pushItem) {
	if len(items) == 0 {
		return
	}
	ss.mu.Lock()
	ss.pending = append(slices.Clip(items), ss.pending...)
	ss.mu.Unlock()
}

// readLoop reads Acks and Pings. The stream has no read deadline: any
// frame marks the session active (lastRead), and the server's idle sweep
// (sweepIdle) cancels a session idle for IdleTimeout, which wakes this
// reader (cancel). One ticker for all sessions, not a
// timer each, reset on every frame.
func (ss *session) readLoop() {
	st := ss.c.st
	st.SetReadDeadline(time.Time{})
	if ss.ended.Load() {
		return // cancelled before the deadline was cleared: see cancel
	}
	fr := wire.NewFrameReader(st, MaxFrame)
	for {
		payload, err := fr.Next()
		if err != nil || ss.ended.Load() {
			return
		}
		ss.lastRead.Store(time.Now().UnixNano())
		msg, err := Decode(payload)
		if err != nil {
			ss.cancel()
			return
		}
		switch m := msg.(type) {
		case *Ack:
			ss.ack(m.Message)
		case pingMsg:
		default:
			return
		}
	}
}

// sweepIdle cancels the sessions that have read no frame for IdleTimeout
// (an owner pings well within it). Run calls it every IdleTimeout/4, so
// a silent session ends between IdleTimeout and 1.25 × IdleTimeout.
func (s *Server) sweepIdle() {
	cutoff := time.Now().Add(-time.Duration(s.cfg.IdleTimeout)).UnixNano()
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	for ss := range s.sessions {
		if ss.lastRead.Load() < cutoff {
			ss.cancel()
		}
	}
}

// maxAckQueue bounds the acks read and not yet taken by the ack worker;
// past it the reader waits (and the owner's writes with it).
const maxAckQueue = 4096

// ack queues an acknowledgement for the ack worker, starting one if none
// runs. A worker runs only while acks wait or commit, so an idle
// subscription, what most of a relay's are, has no worker goroutine
// (docs/RELAY.md "Capacity and libp2p limits").
func (ss *session) ack(id MessageID) {
	ss.mu.Lock()
	for len(ss.ackq) >= maxAckQueue {
		ss.ackRoom.Wait()
	}
	ss.ackq = append(ss.ackq, id)
	start := !ss.acking
	ss.acking = true
	ss.mu.Unlock()
	if start {
		ss.ackers.Add(1)
		go ss.ackWorker()
	}
}

// ackWorker deletes acknowledged messages in batches: whatever acks have
// arrived while the previous batch committed go into the next one; it
// ends when none waits. The Acked metric counts the stored messages
// deleted and the transient pushes acknowledged (a group message pushed
// to an online owner is never stored, so its ack deletes nothing, but it
// is an acknowledged delivery).
func (ss *session) ackWorker() {
	defer ss.ackers.Done()
	var refs []msgRef
	for {
		ss.mu.Lock()
		ids := ss.ackq
		ss.ackq = nil
		if len(ids) == 0 {
			ss.acking = false
			ss.mu.Unlock()
			return
		}
		ss.ackRoom.Broadcast()
		ss.mu.Unlock()
		pushes := 0
		refs = refs[:0]
		for _, id := range ids {
			refs, pushes = ss.collect(refs, pushes, id)
		}
		n := 0
		if len(refs) > 0 {
			var err error
			n, err = ss.s.deleteMessages(ss.mb, refs, false)
			if err != nil {
				ss.s.log.Error("ack commit failed", "err", err)
			}
		}
		if n+pushes > 0 {
			ss.s.m.Acked(n + pushes)
		}
	}
}

// collect appends the reference of an acked stored message, or counts an
// acked transient push in pushes; an unknown or repeated ack (or one for
// another mailbox) is ignored. A message not delivered on this session is
// found by its msgids record, which only messages stored by relays before
// deposits in batches have: an ack of another is ignored, and the message
// is delivered again.
func (ss *session) collect(refs []msgRef, pushes int, id MessageID) ([]msgRef, int) {
	ss.mu.Lock()
	ref, ok := ss.delivered[id]
	delete(ss.delivered, id)
	_, transient := ss.unacked[id]
	delete(ss.unacked, id)
	ss.mu.Unlock()
	if ok {
		return append(refs, ref), pushes
	}
	if transient {
		return refs, pushes + 1 // a transient push: nothing stored to delete
	}
	raw, err := ss.s.t.msgids.Get(id[:])
	if err != nil {
		return refs, pushes
	}
	ref, err = parseRef(raw)
	if err != nil || ref.mailbox != ss.mb.id {
		return refs, pushes
	}
	return append(refs, ref), pushes
}

// ownerACL admits to the circuit relay only peers that hold, or held in
// the last OwnerGrace, an authenticated owner subscription.
type ownerACL struct {
	grace time.Duration
	now   func() time.Time

	mu     sync.Mutex // guards active and last
	active map[string]int
	last   map[string]time.Time
}

func (a *ownerACL) up(p peer.ID) {
	a.mu.Lock()
	a.active[string(p)]++
	a.mu.Unlock()
}

func (a *ownerACL) down(p peer.ID) {
	a.mu.Lock()
	if a.active[string(p)]--; a.active[string(p)] <= 0 {
		delete(a.active, string(p))
	}
	a.last[string(p)] = a.now()
	a.mu.Unlock()
}

func (a *ownerACL) allowed(p peer.ID) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.active[string(p)] > 0 {
		return true
	}
	t, ok := a.last[string(p)]
	return ok && a.now().Sub(t) < a.grace
}

func (a *ownerACL) sweep() {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for p, t := range a.last {
		if now.Sub(t) >= a.grace {
			delete(a.last, p)
		}
	}
}

// AllowReserve admits a reservation from a current or recent owner.
func (a *ownerACL) AllowReserve(p peer.ID, _ ma.Multiaddr) bool { return a.allowed(p) }

// AllowConnect admits a relayed connection to a current or recent owner.
func (a *ownerACL) AllowConnect(_ peer.ID, _ ma.Multiaddr, dest peer.ID) bool {
	return a.allowed(dest)
}
