package session

import "github.com/hushnet/hush/crypto/ratchet"

// Reservation is a reserved mark on the active session's sending chain
// (ratchet.Session.Reserve), for Confirm once the Set is stored.
type Reservation struct {
	r   *ratchet.Session
	res ratchet.Reservation
}

// Reserve reserves sending indices on the active session: the Set's
// next MarshalBinary gives its sending chain ratchet.ReserveAhead
// messages ahead. Store the Set, then Confirm.
func (s *Set) Reserve() Reservation {
	if len(s.sessions) == 0 {
		return Reservation{}
	}
	r := s.sessions[0].r
	return Reservation{r: r, res: r.Reserve()}
}

// Confirm records that the Set serialised after res was made is stored.
func (s *Set) Confirm(res Reservation) {
	if res.r != nil {
		res.r.Confirm(res.res)
	}
}

// Reserved reports whether the next Encrypt's output may leave before
// the Set is stored again (its index is below a confirmed reservation).
func (s *Set) Reserved() bool { return len(s.sessions) > 0 && s.sessions[0].r.Reserved() }

// ReserveLow reports whether the active session should Reserve again
// (ratchet.Session.ReserveLow).
func (s *Set) ReserveLow() bool { return len(s.sessions) > 0 && s.sessions[0].r.ReserveLow() }
