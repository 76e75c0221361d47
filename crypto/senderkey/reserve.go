package senderkey

import "github.com/hushnet/hush/crypto/suite"

// Reserving iterations (docs/protocol/groups.md §16.13), as the Double
// Ratchet does (crypto/ratchet reserve.go): the stored state gives the
// chain already advanced to a mark, so a message under an iteration below
// it may leave before the state that counts it is stored, and a chain
// loaded after a crash starts at the mark and never signs a second
// message under an iteration it may have used. Members skip the unused
// iterations like lost messages (at most ReserveAhead per crash).

// ReserveAhead is how many iterations a reservation covers.
const ReserveAhead = 64

// Reservation names a reserved mark on one chain, for Confirm.
type Reservation struct {
	chainID uint32
	mark    uint32
}

// Reserve moves the mark the serialised state gives to ReserveAhead
// iterations past the next one (never back) and returns it. The caller
// stores the state (MarshalBinary) and, once that write is durable,
// calls Confirm.
func (sk *SenderKey) Reserve() Reservation {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if sk.signing == nil {
		return Reservation{}
	}
	mark := sk.iteration + ReserveAhead
	if mark < sk.iteration || mark == 1<<32-1 {
		mark = 1<<32 - 1
	}
	if mark > sk.mark {
		from, ck := sk.iteration, sk.chainKey
		if sk.mark > sk.iteration {
			from, ck = sk.mark, sk.markCK
		}
		for range mark - from {
			next, mk := suite.ChainStep(ck[:])
			clear(mk)
			copy(ck[:], next)
		}
		sk.mark, sk.markCK = mark, ck
	}
	return Reservation{chainID: sk.chainID, mark: sk.mark}
}

// Confirm records that the state serialised after r was made is stored.
func (sk *SenderKey) Confirm(r Reservation) {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if r.mark == 0 || r.chainID != sk.chainID || r.mark > sk.mark {
		return
	}
	sk.stored = max(sk.stored, r.mark)
}

// Reserved reports whether the next message's iteration is below a
// confirmed mark: it may leave before the state is stored again.
func (sk *SenderKey) Reserved() bool {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	return sk.iteration < sk.stored
}

// ReserveLow reports whether fewer than half of ReserveAhead iterations
// are left before the mark: time to Reserve again.
func (sk *SenderKey) ReserveLow() bool {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	return sk.mark-min(sk.mark, sk.iteration) < ReserveAhead/2
}
