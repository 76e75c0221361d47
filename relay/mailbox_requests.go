package relay

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/hushnet/hush/internal/store"
)

// The owner's requests on a mailbox's life: creating it (proof of work,
// invite tokens), its prekeys, deleting it; and the check every signed
// owner request passes (ownerRequest).

func checkTime(now time.Time, t uint64) bool {
	d := now.Sub(time.Unix(int64(t), 0))
	return d <= clockSkew && d >= -clockSkew
}

// powBits counts the leading zero bits of SHA-256(PoWInput(c)).
func powBits(c *Create) int {
	sum := sha256.Sum256(PoWInput(c))
	n := 0
	for _, b := range sum {
		if b != 0 {
			return n + bits.LeadingZeros8(b)
		}
		n += 8
	}
	return n
}

func (s *Server) create(c *conn, m *Create) (any, *reqErr) {
	if !s.allow(c) {
		return nil, fail(CodeRateLimited, "too many requests; retry later")
	}
	if s.cfg.Creation == CreationClosed {
		return nil, fail(CodeCreationClosed, "this relay accepts no new mailboxes")
	}
	if !checkTime(s.cfg.Now(), m.Time) {
		return nil, fail(CodeAuth, "time outside the allowed window")
	}
	mb := &mailbox{owner: m.Owner, created: uint64(s.cfg.Now().Unix()), dueAt: math.MaxUint64}
	if s.cfg.Creation == CreationOpen {
		// Before the signature check, so a refused flood costs the relay
		// no verification (the rate is the requester's own network's).
		if rerr := s.creates.reserve(c.peerKey, c.ipKey); rerr != nil {
			return nil, rerr
		}
		mb.creator = &creator{peer: c.peerKey, ip: c.ipKey}
	}
	if rerr := s.checkCreate(m); rerr != nil {
		s.releaseCreator(mb)
		return nil, rerr
	}
	rand.Read(mb.id[:])
	rand.Read(mb.deposit[:])
	b := s.db.Batch()
	b.Put(s.t.mailboxes, mb.id[:], mb.recordLocked())
	b.Put(s.t.deposits, mb.deposit[:], mb.id[:])
	if err := s.db.CommitGrouped(b); err != nil {
		s.releaseCreator(mb)
		s.log.Error("mailbox create failed", "err", err)
		return nil, fail(CodeInternal, "store failed")
	}
	s.mu.Lock()
	s.byMailbox[mb.id] = mb
	s.byDeposit[mb.deposit] = mb
	n := len(s.byMailbox)
	s.mu.Unlock()
	s.m.Mailboxes(int64(n))
	s.log.Debug("mailbox created")
	return &Created{Mailbox: mb.id, Deposit: mb.deposit, MaxMessages: uint32(s.cfg.MaxMessages),
		MaxBytes: uint64(s.cfg.MaxMailboxBytes), TTLSeconds: uint64(time.Duration(s.cfg.TTL) / time.Second)}, nil
}

// checkCreate checks a Create's signature, and its invite token and
// proof of work when the relay asks for them.
func (s *Server) checkCreate(m *Create) *reqErr {
	if !VerifyCreate(m) {
		return fail(CodeAuth, "bad signature")
	}
	if s.cfg.Creation == CreationInvite && !s.validInvite(m.Invite) {
		return fail(CodeCreationClosed, "an invite token is required")
	}
	if s.cfg.PoWBits > 0 && powBits(m) < s.cfg.PoWBits {
		return fail(CodeCreationClosed, fmt.Sprintf("proof of work: %d bits required", s.cfg.PoWBits))
	}
	return nil
}

// releaseCreator gives back the creation count of mb's creator, if it
// has one (creationLimits). mb.mu is held or mb is not yet shared.
func (s *Server) releaseCreator(mb *mailbox) {
	if mb.creator != nil {
		s.creates.release(mb.creator.peer, mb.creator.ip)
		mb.creator = nil
	}
}

func (s *Server) validInvite(tok []byte) bool {
	ok := 0
	for _, t := range s.cfg.InviteTokens {
		if len(t) > 0 {
			ok |= subtle.ConstantTimeCompare([]byte(t), tok)
		}
	}
	return ok == 1
}

// ownerRequest finds the mailbox an owner's signed request names and
// checks its time and signature (verify, against the owner's key).
func (s *Server) ownerRequest(id ID, t uint64, verify func(owner ed25519.PublicKey) bool) (*mailbox, *reqErr) {
	mb := s.lookupMailbox(id)
	if mb == nil {
		return nil, fail(CodeNotFound, "no such mailbox")
	}
	if !checkTime(s.cfg.Now(), t) {
		return nil, fail(CodeAuth, "time outside the allowed window")
	}
	if !verify(mb.owner) {
		return nil, fail(CodeAuth, "bad signature")
	}
	return mb, nil
}

func (s *Server) putPrekeys(m *PutPrekeys) (any, *reqErr) {
	mb, rerr := s.ownerRequest(m.Mailbox, m.Time, func(o ed25519.PublicKey) bool { return VerifyPutPrekeys(m, o) })
	if rerr != nil {
		return nil, rerr
	}
	if len(m.LastResort) == 0 {
		return nil, fail(CodeBadRequest, "last-resort bundle missing")
	}
	if len(m.OneTime) > s.cfg.MaxOneTime {
		return nil, fail(CodeQuota, fmt.Sprintf("at most %d one-time bundles", s.cfg.MaxOneTime))
	}
	rec := &prekeyRecord{lastResort: m.LastResort, oneTime: m.OneTime}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.deleted {
		return nil, fail(CodeNotFound, "no such mailbox")
	}
	b := s.db.Batch()
	b.Put(s.t.prekeys, mb.id[:], rec.encode())
	if err := s.db.CommitGrouped(b); err != nil {
		s.log.Error("prekeys store failed", "err", err)
		return nil, fail(CodeInternal, "store failed")
	}
	return OK, nil
}

func (s *Server) addPrekeys(m *AddPrekeys) (any, *reqErr) {
	mb, rerr := s.ownerRequest(m.Mailbox, m.Time, func(o ed25519.PublicKey) bool { return VerifyAddPrekeys(m, o) })
	if rerr != nil {
		return nil, rerr
	}
	if len(m.LastResort) == 0 {
		return nil, fail(CodeBadRequest, "last-resort bundle missing")
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.deleted {
		return nil, fail(CodeNotFound, "no such mailbox")
	}
	rec := &prekeyRecord{}
	raw, err := s.t.prekeys.Get(mb.id[:])
	switch {
	case err == nil:
		if rec, err = parsePrekeys(raw); err != nil {
			s.log.Error("prekeys read failed", "err", err)
			return nil, fail(CodeInternal, "store failed")
		}
	case !errors.Is(err, store.ErrNotFound):
		s.log.Error("prekeys read failed", "err", err)
		return nil, fail(CodeInternal, "store failed")
	}
	rec.lastResort = m.LastResort
	room := max(s.cfg.MaxOneTime-len(rec.oneTime), 0)
	rec.oneTime = append(rec.oneTime, m.OneTime[:min(room, len(m.OneTime))]...)
	b := s.db.Batch()
	b.Put(s.t.prekeys, mb.id[:], rec.encode())
	if err := s.db.CommitGrouped(b); err != nil {
		s.log.Error("prekeys store failed", "err", err)
		return nil, fail(CodeInternal, "store failed")
	}
	return &PrekeyCount{OneTime: uint16(len(rec.oneTime))}, nil
}

func (s *Server) getPrekeys(c *conn, m *GetPrekeys) (any, *reqErr) {
	if !s.allow(c) {
		return nil, fail(CodeRateLimited, "too many requests; retry later")
	}
	s.mu.RLock()
	mb := s.byDeposit[m.Deposit]
	s.mu.RUnlock()
	if mb == nil {
		return nil, fail(CodeNotFound, "no such mailbox")
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.deleted {
		return nil, fail(CodeNotFound, "no such mailbox")
	}
	raw, err := s.t.prekeys.Get(mb.id[:])
	if errors.Is(err, store.ErrNotFound) {
		return nil, fail(CodeNotFound, "no prekeys")
	}
	if err != nil {
		s.log.Error("prekeys read failed", "err", err)
		return nil, fail(CodeInternal, "store failed")
	}
	rec, err := parsePrekeys(raw)
	if err != nil {
		s.log.Error("prekeys read failed", "err", err)
		return nil, fail(CodeInternal, "store failed")
	}
	if len(rec.oneTime) == 0 {
		return &Prekeys{Bundle: rec.lastResort}, nil
	}
	bundle := rec.oneTime[0]
	rec.oneTime = rec.oneTime[1:]
	b := s.db.Batch()
	b.Put(s.t.prekeys, mb.id[:], rec.encode())
	if err := s.db.CommitGrouped(b); err != nil {
		s.log.Error("prekeys update failed", "err", err)
		return nil, fail(CodeInternal, "store failed")
	}
	return &Prekeys{Bundle: bundle, OneTime: true}, nil
}

func (s *Server) deleteMailbox(m *Delete) (any, *reqErr) {
	mb, rerr := s.ownerRequest(m.Mailbox, m.Time, func(o ed25519.PublicKey) bool { return VerifyDelete(m, o) })
	if rerr != nil {
		return nil, rerr
	}
	mb.mu.Lock()
	if mb.deleted {
		mb.mu.Unlock()
		return nil, fail(CodeNotFound, "no such mailbox")
	}
	mb.deleted = true // no new deposits from here on
	sub := mb.sub
	mb.sub = nil
	mb.mu.Unlock()
	if sub != nil {
		sub.cancel()
	}
	mb.inflight.Wait() // deposits already queued are committed

	mb.mu.Lock()
	defer mb.mu.Unlock()
	b := s.db.Batch()
	err := s.t.messages.ScanSeq(mb.id[:], 0, ^uint64(0), func(seq uint64, v []byte) error {
		msg, err := parseMessage(v)
		if err != nil {
			return err
		}
		b.DeleteSeq(s.t.messages, mb.id[:], seq)
		if msg.indexed {
			b.Delete(s.t.msgids, msg.id[:])
			b.DeleteSeq(s.t.expiry, expiryID, msg.expiry)
		}
		return nil
	})
	b.Delete(s.t.mailboxes, mb.id[:])
	b.Delete(s.t.deposits, mb.deposit[:])
	b.Delete(s.t.prekeys, mb.id[:])
	b.Delete(s.t.watches, mb.id[:])
	b.Delete(s.t.wakes, mb.id[:])
	if err == nil {
		err = s.db.CommitGrouped(b)
	}
	if err != nil {
		mb.deleted = false
		s.log.Error("mailbox delete failed", "err", err)
		return nil, fail(CodeInternal, "store failed")
	}
	s.group.dropLocked(mb)
	s.releaseCreator(mb)
	s.mu.Lock()
	delete(s.byMailbox, mb.id)
	delete(s.byDeposit, mb.deposit)
	n := len(s.byMailbox)
	s.mu.Unlock()
	s.storedBytes.Add(-mb.bytes)
	s.m.Stored(s.storedMsgs.Add(-mb.count), s.storedBytes.Load())
	s.m.Mailboxes(int64(n))
	mb.count, mb.bytes = 0, 0
	return OK, nil
}
