package group

import "github.com/hushnet/hush/crypto/senderkey"

// Reservation is a reserved mark on this device's current sender key
// (senderkey.SenderKey.Reserve, docs/protocol/groups.md §16.13), for
// Confirm once the engine is stored.
type Reservation struct {
	sk  *senderkey.SenderKey
	res senderkey.Reservation
}

// Reserve reserves iterations of this device's current sender key: the
// engine's next MarshalState gives that chain senderkey.ReserveAhead
// messages ahead. Store the state, then Confirm.
func (e *Engine) Reserve() Reservation {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := e.own[e.curID]
	if k == nil {
		return Reservation{}
	}
	return Reservation{sk: k.sk, res: k.sk.Reserve()}
}

// Confirm records that the state marshalled after r was made is stored.
func (e *Engine) Confirm(r Reservation) {
	if r.sk != nil {
		r.sk.Confirm(r.res)
	}
}

// SendReserved reports whether the next Seal's message may leave before
// the engine is stored again: its iteration is below a confirmed mark of
// the current key, and Seal will not rotate the key first.
func (e *Engine) SendReserved() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := e.own[e.curID]
	return k != nil && e.inLocked() && !e.rotationDueLocked(k) && k.sk.Reserved()
}

// ReserveLow reports whether the current key should Reserve again
// (senderkey.SenderKey.ReserveLow).
func (e *Engine) ReserveLow() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := e.own[e.curID]
	return k != nil && k.sk.ReserveLow()
}
