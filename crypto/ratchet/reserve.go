package ratchet

// Reserving sending indices (docs/protocol/ratchet.md §6.10).
//
// A caller that persists the session after every Encrypt must wait for
// that write before the message leaves. A reservation lets it send first:
// the stored state gives the sending chain already advanced to a mark
// (CKs and Ns as they will be after mark − Ns more messages), so a session
// loaded after a crash starts at the mark and never derives a message key
// it may have used before. Indices below the mark are skipped by the
// receiver like lost messages (at most ReserveAhead per crash).

// ReserveAhead is how many sending indices a reservation covers. A new
// reservation is made when half is used, and the messages after it are
// early only once its write is durable: at 64, a sender of 13,000
// messages a second used up the rest (32 messages, 2.5 ms) before a
// grouped fsync returned, and then wrote its session with each message
// until it did (node's BenchmarkNodeThroughput256: 8.65 records written
// a message sent at 64, 8.25 at 256). A sender's crash costs its peer at
// most ReserveAhead skipped keys (MaxSkip is 2000).
const ReserveAhead = 256

// Reservation names a reserved mark on one sending chain, for Confirm.
type Reservation struct {
	chain key // the sending ratchet public key: the chain it was made on
	mark  uint32
}

// Reserve moves the mark the serialised state gives to ReserveAhead
// indices past the next one (never back) and returns it. The caller
// stores the session (MarshalBinary) and, once that write is durable,
// calls Confirm. It does nothing on a session that cannot send.
func (s *Session) Reserve() Reservation {
	if !s.CanSend() {
		return Reservation{}
	}
	mark := s.ns + ReserveAhead
	if mark < s.ns || mark > reservedCounter {
		mark = reservedCounter
	}
	if mark > s.mark {
		from, ck := s.ns, s.cks
		if s.mark > s.ns {
			from, ck = s.mark, s.markCK
		}
		for range mark - from {
			mk := s.kdfCK(&ck)
			clear(mk[:])
		}
		s.mark, s.markCK = mark, ck
	}
	return Reservation{chain: s.dhsPub, mark: s.mark}
}

// Confirm records that the state serialised after r was made is stored:
// Encrypt's output below r's mark may then leave before the session is
// stored again. A reservation on a chain the session has left (a DH
// ratchet step since) is ignored.
func (s *Session) Confirm(r Reservation) {
	if r.mark == 0 || r.chain != s.dhsPub || r.mark > s.mark {
		return
	}
	s.stored = max(s.stored, r.mark)
}

// Reserved reports whether the next Encrypt's index is below a confirmed
// mark: its message may leave before the session is stored.
func (s *Session) Reserved() bool { return s.CanSend() && s.ns < s.stored }

// ReserveLow reports whether the reservation covers fewer than half of
// ReserveAhead further messages: time to Reserve again and store the
// session, while the messages still covered go on leaving early.
func (s *Session) ReserveLow() bool {
	return s.CanSend() && s.mark-min(s.mark, s.ns) < ReserveAhead/2
}

func (s *Session) dropReservation() {
	clear(s.markCK[:])
	s.mark, s.stored = 0, 0
}
