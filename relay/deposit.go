package relay

import (
	"bufio"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/internal/wire"
)

// Deposits in batches (docs/RELAY.md "Deposits in batches"): a stream's
// deposit frames (Deposit, DepositMany) are pipelined, each queued for a
// grouped commit as soon as it is read and answered in order by the
// stream's replier once its commit is synced; a deposit writes one
// record (the message); the mailbox counters live in memory and are
// checkpointed.

// depositWindow is how many request frames one stream may have read and
// not yet answered (each holds its frame budget until answered).
const depositWindow = 8

// replyItem is one answer of a stream, in request order: resp, or what
// wait returns once the request's commit is done. hold is the request
// frame's budget, given back once the answer is written.
type replyItem struct {
	hold *frameHold
	resp any
	wait func() any
}

// replier writes a stream's answers in order, from the first deposit
// frame on (the reading loop goes on reading meanwhile).
type replier struct {
	c       *conn
	q       chan replyItem
	done    chan struct{}
	timeout time.Duration
	failed  chan struct{} // closed when a write failed
}

func (s *Server) startReplier(c *conn) *replier {
	r := &replier{c: c, q: make(chan replyItem, depositWindow-1), done: make(chan struct{}),
		timeout: time.Duration(s.cfg.RequestTimeout), failed: make(chan struct{})}
	go r.run()
	return r
}

// send queues an answer; it waits while depositWindow answers are
// pending. An error means the stream can no longer be written.
func (r *replier) send(it replyItem) error {
	select {
	case r.q <- it:
		return nil
	case <-r.failed:
		// Still answered (its commit is waited for), not written.
		r.q <- it
		return fmt.Errorf("relay: stream write failed")
	}
}

// stop lets the replier write what is queued and waits for it. A nil
// replier does nothing.
func (r *replier) stop() {
	if r == nil {
		return
	}
	close(r.q)
	<-r.done
}

func (r *replier) run() {
	defer close(r.done)
	st := r.c.st
	w := bufio.NewWriterSize(st, 8<<10)
	var buf []byte
	failed := false
	for it := range r.q {
		resp := it.resp
		if it.wait != nil {
			resp = it.wait() // always: it completes the stores
		}
		if !failed {
			st.SetWriteDeadline(time.Now().Add(r.timeout))
			buf, _ = wire.AppendFrame(buf[:0], Encode(resp))
			_, err := w.Write(buf)
			if err == nil && len(r.q) == 0 {
				err = w.Flush()
			}
			if err != nil {
				failed = true
				close(r.failed)
				st.Reset()
			}
		}
		it.hold.release()
	}
	if !failed {
		st.SetWriteDeadline(time.Now().Add(r.timeout))
		w.Flush()
	}
}

// single is the answer to a Deposit: a Receipt or an Error.
func (r ItemResult) single() any {
	if r.Code == 0 {
		return &Receipt{Message: r.Message}
	}
	return &ErrorMsg{Code: r.Code, Message: codeText[r.Code]}
}

// codeText is the text of the Error answering a refused Deposit.
var codeText = map[ErrorCode]string{
	CodeRateLimited: "too many requests; retry later",
	CodeTooLarge:    "envelope too large",
	CodeBadRequest:  "not a sealed envelope",
	CodeNotFound:    "no such mailbox",
	CodeQuota:       "mailbox full",
	CodeFull:        "relay storage full",
	CodeInternal:    "store failed; nothing stored",
}

// checkDeposit checks one deposited envelope as a Deposit is checked: the
// rate limits (one token per envelope), its size and header, and its
// mailbox.
func (s *Server) checkDeposit(c *conn, it *DepositItem) (*mailbox, ErrorCode) {
	if !s.allow(c) {
		return nil, CodeRateLimited
	}
	if len(it.Envelope) > s.cfg.MaxEnvelope {
		return nil, CodeTooLarge
	}
	if _, err := envelope.ParseHeader(it.Envelope); err != nil {
		return nil, CodeBadRequest
	}
	s.mu.RLock()
	mb := s.byDeposit[it.Deposit]
	s.mu.RUnlock()
	if mb == nil {
		return nil, CodeNotFound
	}
	return mb, 0
}

// depositItems queues the envelopes of one deposit frame for a grouped
// commit, each mailbox's in frame order (one batch per mailbox), and
// returns the function that waits for the commits and gives each item's
// result. The envelopes must stay unchanged until then; nothing refers
// to them afterwards (a live subscription is pushed a copy), so the
// frame's buffer can be reused once the frame is answered.
func (s *Server) depositItems(c *conn, items []DepositItem) func() []ItemResult {
	res := make([]ItemResult, len(items))
	type group struct {
		mb   *mailbox
		idx  []int
		data [][]byte
	}
	var groups []*group
	for i := range items {
		mb, code := s.checkDeposit(c, &items[i])
		if code != 0 {
			res[i].Code = code
			continue
		}
		k := slices.IndexFunc(groups, func(g *group) bool { return g.mb == mb })
		if k < 0 {
			k = len(groups)
			groups = append(groups, &group{mb: mb})
		}
		g := groups[k]
		g.idx = append(g.idx, i)
		g.data = append(g.data, items[i].Envelope)
	}
	type queued struct {
		i int
		p *pendingStore
	}
	var pend []queued
	for _, g := range groups {
		ps, errs := s.storeQueueMany(g.mb, g.data, SourceDeposit, "")
		for j, i := range g.idx {
			if errs[j] != nil {
				res[i].Code = errs[j].code
				continue
			}
			ps[j].borrowed = true
			pend = append(pend, queued{i, ps[j]})
		}
	}
	return func() []ItemResult {
		var woken *mailbox
		for _, q := range pend {
			if rerr := s.storeFinish(q.p); rerr != nil {
				res[q.i].Code = rerr.code
				continue
			}
			res[q.i].Message = q.p.msg.id
			s.m.DepositAccepted(len(q.p.msg.envelope))
			if q.p.mb != woken {
				woken = q.p.mb
				s.wake.notify(q.p.mb)
			}
		}
		for _, r := range res {
			if r.Code != 0 {
				s.m.DepositRejected(r.Code)
			}
		}
		return res
	}
}

// loadCounters completes a mailbox's counters, read from its record (the
// last checkpoint), with the messages stored past it: those with an
// arrival number at or after the checkpoint's next (a deposit assigns
// arrival numbers in order and no longer rewrites the record; a delete
// rewrites it in its own batch, so no message before the checkpoint's
// next is counted that is gone).
func (s *Server) loadCounters(mb *mailbox) error {
	mb.ckptNext = mb.next
	err := s.t.messages.ScanSeq(mb.id[:], mb.next, math.MaxUint64, func(seq uint64, v []byte) error {
		msg, err := parseMessage(v)
		if err != nil {
			return err
		}
		mb.count++
		mb.bytes += int64(len(msg.envelope))
		mb.next = seq + 1
		return nil
	})
	mb.dueAt = math.MaxUint64
	if mb.count > 0 {
		mb.dueAt = 0 // not known: the first expiry pass looks
	}
	return err
}

// checkpoint writes the mailbox record (the counters) of every mailbox
// that took deposits since its last one: lazily (synced with the next
// synced commit) on the expiry tick, synced when the relay stops. Each
// record is queued under its mailbox's lock, after the deposits it
// counts.
func (s *Server) checkpoint(synced bool) {
	s.mu.RLock()
	boxes := make([]*mailbox, 0, len(s.byMailbox))
	for _, mb := range s.byMailbox {
		boxes = append(boxes, mb)
	}
	s.mu.RUnlock()
	var waits []func() error
	for _, mb := range boxes {
		mb.mu.Lock()
		if !mb.deleted && mb.next != mb.ckptNext {
			b := s.db.Batch()
			b.Put(s.t.mailboxes, mb.id[:], mb.recordLocked())
			if !synced {
				b.Lazy()
			}
			waits = append(waits, s.db.CommitGroupedAsync(b))
			mb.ckptNext = mb.next
		}
		mb.mu.Unlock()
	}
	for _, w := range waits {
		if err := w(); err != nil {
			// Nothing is lost: the start recounts past the last
			// checkpoint on disk.
			s.log.Error("mailbox checkpoint failed", "err", err)
		}
	}
}

// expireMailboxes deletes, mailbox by mailbox, the messages due by now
// (message.dueAt), walking each mailbox from its oldest message while
// they are due: messages expire in arrival order. Only mailboxes whose
// dueAt has passed are read.
func (s *Server) expireMailboxes(now uint64) int {
	const round = 4096
	ttl := time.Duration(s.cfg.TTL)
	s.mu.RLock()
	boxes := make([]*mailbox, 0, len(s.byMailbox))
	for _, mb := range s.byMailbox {
		boxes = append(boxes, mb)
	}
	s.mu.RUnlock()
	n := 0
	for _, mb := range boxes {
		for {
			mb.mu.Lock()
			due := !mb.deleted && mb.count > 0 && mb.dueAt <= now
			arrivals := mb.next
			mb.mu.Unlock()
			if !due {
				break
			}
			var refs []msgRef
			next := uint64(math.MaxUint64)
			errStop := fmt.Errorf("stop")
			err := s.t.messages.ScanSeq(mb.id[:], 0, math.MaxUint64, func(seq uint64, v []byte) error {
				msg, err := parseMessage(v)
				if err != nil {
					return err
				}
				if d := msg.dueAt(ttl); d > now {
					next = d
					return errStop
				}
				if len(refs) == round {
					next = 0 // more to do
					return errStop
				}
				refs = append(refs, msgRef{mailbox: mb.id, msg: msg.id, arrival: seq, expiry: msg.indexSeq(), size: uint32(len(msg.envelope))})
				return nil
			})
			if err != nil && err != errStop {
				s.log.Error("expiry scan failed", "err", err)
				return n
			}
			if len(refs) > 0 {
				k, err := s.deleteMessages(mb, refs, true)
				if err != nil {
					s.log.Error("expiry delete failed", "err", err)
					return n
				}
				n += k
			}
			mb.mu.Lock()
			if mb.next == arrivals {
				mb.dueAt = next
			} else {
				// Deposits came meanwhile, maybe after the scan read
				// past them: dueAt is still at or before their expiry.
				mb.dueAt = min(mb.dueAt, next)
			}
			mb.mu.Unlock()
			if next != 0 {
				break
			}
		}
	}
	return n
}

// recount rewrites every mailbox record from the messages present (after
// a store repair, which may have dropped writes on either side of a
// checkpoint).
func recount(db *store.DB) (int, error) {
	t := openTables(db)
	var boxes []*mailbox
	err := t.mailboxes.Scan(func(id, value []byte) error {
		mb, err := parseMailbox(id, value)
		if err != nil {
			return err
		}
		boxes = append(boxes, mb)
		return nil
	})
	if err != nil {
		return 0, err
	}
	fixed := 0
	for _, mb := range boxes {
		count, bytes, next := int64(0), int64(0), mb.next
		err := t.messages.ScanSeq(mb.id[:], 0, math.MaxUint64, func(seq uint64, v []byte) error {
			msg, err := parseMessage(v)
			if err != nil {
				return err
			}
			count++
			bytes += int64(len(msg.envelope))
			next = max(next, seq+1)
			return nil
		})
		if err != nil {
			return fixed, err
		}
		if count == mb.count && bytes == mb.bytes && next == mb.next {
			continue
		}
		mb.count, mb.bytes, mb.next = count, bytes, next
		b := db.Batch()
		b.Put(t.mailboxes, mb.id[:], mb.recordLocked())
		if err := b.Commit(); err != nil {
			return fixed, err
		}
		fixed++
	}
	return fixed, nil
}
