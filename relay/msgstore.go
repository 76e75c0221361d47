package relay

// Storing a mailbox's messages, and deleting them: the one storage path
// of deposits and group-topic filings (queued for a grouped commit,
// finished once it landed), the store's byte quota, expiry and
// deletion.

import (
	"bytes"
	"crypto/rand"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/hushnet/hush/internal/gossip"
	"github.com/hushnet/hush/internal/store"
)

// reserveBytes adds n to the stored bytes unless that passes the cap.
func (s *Server) reserveBytes(n int64, src Source) bool {
	limit := s.cfg.MaxStoreBytes
	if src == SourceTopic {
		limit = topicShare(limit)
	}
	for {
		cur := s.storedBytes.Load()
		if cur+n > limit {
			return false
		}
		if s.storedBytes.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// pendingStore is a message queued for a grouped commit by storeQueue;
// storeFinish completes it.
type pendingStore struct {
	mb   *mailbox
	ref  msgRef
	msg  *message
	wait func() error // shared by the messages of one batch
	// borrowed: msg.envelope is in a request frame's buffer, reused once
	// the request is answered (framepool.go), so a push gets a copy.
	borrowed bool
}

// topicShare is how much of a quota group-store filings may fill: three
// quarters. The rest is kept for 1:1 deposits, so a flood on a watched
// topic (anyone may publish there, and the relay cannot tell a member's
// message from garbage) cannot stop a member's contacts from reaching
// its mailbox.
func topicShare[T int64 | int](quota T) T { return quota - quota/4 }

// storeQueue stores data in mb, from a deposit or a group topic (the one
// storage path of both): storeQueueMany with one message.
func (s *Server) storeQueue(mb *mailbox, data []byte, src Source, topic string) (*pendingStore, *reqErr) {
	ps, errs := s.storeQueueMany(mb, [][]byte{data}, src, topic)
	return ps[0], errs[0]
}

// storeQueueMany stores data in mb, in order: for each message it checks
// the mailbox's quota (count and bytes; a topic message only up to
// topicShare of them) and the relay's cap, assigns the arrival number and
// expiry, and adds the message's one record (messages[mailbox, arrival])
// to one batch, which it queues for a grouped commit while holding mb.mu
// (so a mailbox's batches commit in the order of their arrival numbers).
// It returns, per message, the pending store or why it was refused; the
// caller must call storeFinish for every pending store. Nothing else is
// written: the mailbox's counters are checkpointed (checkpoint) and
// recounted past the checkpoint at start, expiry walks the mailbox
// (expireMailboxes), and an ack finds the message by its arrival number,
// which the owner's session knows (no msgids record).
func (s *Server) storeQueueMany(mb *mailbox, data [][]byte, src Source, topic string) ([]*pendingStore, []*reqErr) {
	now := s.cfg.Now()
	ps := make([]*pendingStore, len(data))
	errs := make([]*reqErr, len(data))
	ids := make([]byte, MessageIDSize*len(data))
	rand.Read(ids)
	expiry := uint64(now.Add(time.Duration(s.cfg.TTL)).UnixNano())

	mb.mu.Lock()
	defer mb.mu.Unlock()
	maxCount, maxBytes := int64(s.cfg.MaxMessages), s.cfg.MaxMailboxBytes
	if src == SourceTopic {
		maxCount, maxBytes = topicShare(maxCount), topicShare(maxBytes)
	}
	b := s.db.Batch()
	queued := 0
	for i, d := range data {
		size := int64(len(d))
		switch {
		case mb.deleted:
			errs[i] = fail(CodeNotFound, "no such mailbox")
			continue
		case mb.count+1 > maxCount || mb.bytes+size > maxBytes:
			errs[i] = fail(CodeQuota, "mailbox full")
			continue
		case !s.reserveBytes(size, src):
			errs[i] = fail(CodeFull, "relay storage full")
			continue
		}
		msg := &message{storedAt: uint64(now.Unix()), expiry: expiry, source: src, topic: topic, envelope: d}
		copy(msg.id[:], ids[i*MessageIDSize:])
		arrival := mb.next
		mb.next++
		mb.count++
		mb.bytes += size
		ref := msgRef{mailbox: mb.id, msg: msg.id, arrival: arrival, size: uint32(size)}
		// The record in parts: the envelope is copied once, into the
		// sealed record.
		var head [msgHeaderSize]byte
		var tail [2 + gossip.MaxTopicLen]byte
		b.PutSeqParts(s.t.messages, mb.id[:], arrival, msg.appendHeader(head[:0]), d, msg.appendTrailer(tail[:0]))
		ps[i] = &pendingStore{mb: mb, ref: ref, msg: msg}
		queued++
	}
	if queued == 0 {
		return ps, errs
	}
	mb.dueAt = min(mb.dueAt, expiry)
	wait := sync.OnceValue(s.db.CommitGroupedAsync(b))
	mb.inflight.Add(queued)
	for _, p := range ps {
		if p != nil {
			p.wait = wait
		}
	}
	return ps, errs
}

// storeFinish waits for the commit of p and hands the message to the
// owner's live subscription. On a failed commit nothing is stored.
func (s *Server) storeFinish(p *pendingStore) *reqErr {
	mb, size := p.mb, int64(p.ref.size)
	err := p.wait()
	mb.inflight.Done()
	if err != nil {
		mb.mu.Lock()
		mb.count--
		mb.bytes -= size
		// A checkpoint queued meanwhile may have counted it: the next
		// one rewrites the counters.
		mb.ckptNext = math.MaxUint64
		mb.mu.Unlock()
		s.storedBytes.Add(-size)
		s.log.Error("store commit failed", "err", err)
		return fail(CodeInternal, "store failed; nothing stored")
	}
	s.m.Stored(s.storedMsgs.Add(1), s.storedBytes.Load())

	mb.mu.Lock()
	sub := mb.sub
	mb.mu.Unlock()
	if sub != nil {
		msg := p.msg
		if p.borrowed {
			c := *msg
			c.envelope = bytes.Clone(msg.envelope)
			msg = &c
		}
		sub.push(p.ref, msg)
	}
	return nil
}

// expire deletes the envelopes whose TTL has passed: those of each
// mailbox from its oldest (expireMailboxes), and those a relay before
// deposits in batches listed in the expiry index (expireIndexed).
func (s *Server) expire() {
	n := s.expireIndexed()
	n += s.expireMailboxes(uint64(s.cfg.Now().UnixNano()))
	if n > 0 {
		s.m.Expired(n)
		s.log.Debug("envelopes expired", "count", n)
	}
}

// expireIndexed deletes the envelopes due by the expiry index, in rounds
// of at most expiryRound. Only messages stored by relays before deposits
// in batches have an index entry; the index empties as they go.
func (s *Server) expireIndexed() int {
	const expiryRound = 4096
	total := 0
	for {
		now := uint64(s.cfg.Now().UnixNano())
		type entry struct {
			seq uint64
			ref msgRef
		}
		var due []entry
		errStop := errors.New("stop")
		err := s.t.expiry.ScanSeq(expiryID, 0, now, func(seq uint64, v []byte) error {
			ref, err := parseRef(v)
			if err != nil {
				return err
			}
			due = append(due, entry{seq, ref})
			if len(due) >= expiryRound {
				return errStop
			}
			return nil
		})
		if err != nil && err != errStop {
			s.log.Error("expiry scan failed", "err", err)
			return total
		}
		if len(due) == 0 {
			return total
		}
		byBox := make(map[ID][]msgRef)
		for _, e := range due {
			e.ref.expiry = e.seq
			byBox[e.ref.mailbox] = append(byBox[e.ref.mailbox], e.ref)
		}
		n := 0
		for id, refs := range byBox {
			mb := s.lookupMailbox(id)
			if mb == nil {
				// Left over from a deleted mailbox: drop the records only.
				b := s.db.Batch()
				for _, r := range refs {
					b.DeleteSeq(s.t.messages, id[:], r.arrival)
					b.Delete(s.t.msgids, r.msg[:])
					b.DeleteSeq(s.t.expiry, expiryID, r.expiry)
				}
				if err := s.db.CommitGrouped(b); err != nil {
					s.log.Error("expiry delete failed", "err", err)
					return total
				}
				continue
			}
			k, err := s.deleteMessages(mb, refs, true)
			if err != nil {
				s.log.Error("expiry delete failed", "err", err)
				return total
			}
			n += k
		}
		total += n
		if len(due) < expiryRound {
			return total
		}
	}
}

// stored reports whether the message r names is still stored in mb: by
// its msgids record for a message stored by a relay before deposits in
// batches (it has an index entry), else by its record under its arrival
// number (which no other message ever takes).
func (s *Server) stored(mb *mailbox, r msgRef) (bool, error) {
	if r.expiry != 0 {
		return s.t.msgids.Has(r.msg[:])
	}
	v, err := s.t.messages.GetSeq(mb.id[:], r.arrival)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return len(v) >= MessageIDSize && [MessageIDSize]byte(v[:MessageIDSize]) == r.msg, nil
}

// deleteMessages deletes refs from mb (acks and expiry) in one grouped
// commit, skipping those already deleted or being deleted. With
// dropIndex, expiry entries of messages already gone are dropped too.
func (s *Server) deleteMessages(mb *mailbox, refs []msgRef, dropIndex bool) (int, error) {
	b := s.db.Batch()
	var gone []MessageID
	var freed int64
	mb.mu.Lock()
	if mb.deleted {
		mb.mu.Unlock()
		return 0, nil
	}
	if mb.deleting == nil {
		mb.deleting = make(map[MessageID]struct{})
	}
	for _, r := range refs {
		if _, busy := mb.deleting[r.msg]; busy {
			continue
		}
		ok, err := s.stored(mb, r)
		if err != nil {
			mb.mu.Unlock()
			return 0, err
		}
		if !ok {
			if dropIndex && r.expiry != 0 {
				b.DeleteSeq(s.t.expiry, expiryID, r.expiry)
			}
			continue
		}
		mb.deleting[r.msg] = struct{}{}
		gone = append(gone, r.msg)
		b.DeleteSeq(s.t.messages, mb.id[:], r.arrival)
		if r.expiry != 0 {
			// Stored by a relay before deposits in batches: it has a
			// msgids record and an index entry.
			b.Delete(s.t.msgids, r.msg[:])
			b.DeleteSeq(s.t.expiry, expiryID, r.expiry)
		}
		freed += int64(r.size)
	}
	if len(gone) > 0 {
		mb.count -= int64(len(gone))
		mb.bytes -= freed
		// The counters' checkpoint goes with the deletes (loadCounters
		// counts only what lies past a checkpoint).
		b.Put(s.t.mailboxes, mb.id[:], mb.recordLocked())
		mb.ckptNext = mb.next
	}
	wait := s.db.CommitGroupedAsync(b)
	mb.mu.Unlock()
	err := wait()
	mb.mu.Lock()
	for _, id := range gone {
		delete(mb.deleting, id)
	}
	if err != nil {
		mb.count += int64(len(gone))
		mb.bytes += freed
	}
	mb.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if len(gone) > 0 {
		s.storedBytes.Add(-freed)
		s.m.Stored(s.storedMsgs.Add(-int64(len(gone))), s.storedBytes.Load())
	}
	return len(gone), nil
}
