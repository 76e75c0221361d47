package node

// Contact states for sync (docs/protocol/sync.md §18.6): the add-wins
// OR-set of the address book, merged and shown.

import (
	"bytes"
	"time"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/identity"
	msync "github.com/hushnet/hush/sync"
)

// contactStateLocked returns a contact's state: the stored one, else one
// derived from the address book (an add by this device at the time the
// contact was added, which also set the name, card and verified flag),
// else an empty one.
func (n *Node) contactStateLocked(t *txn, acc identity.AccountID) (*msync.ContactState, error) {
	st, err := n.storedContactStateLocked(t, acc)
	if err != nil || st != nil {
		return st, err
	}
	c := n.contacts[acc]
	if c == nil || c.rec.Request {
		return &msync.ContactState{Account: acc}, nil
	}
	return n.derivedContactState(c), nil
}

// firstAdd is when a contact was first added, as every device shows it:
// the earliest add clock of its state, read as Unix milliseconds.
func firstAdd(added msync.VersionVector, now time.Time) time.Time {
	if len(added) == 0 {
		return now.UTC()
	}
	first := added[0].Lamport
	for _, d := range added[1:] {
		first = min(first, d.Lamport)
	}
	return time.UnixMilli(int64(first)).UTC()
}

// derivedContactState is the state of a contact no sync touched.
func (n *Node) derivedContactState(c *contact) *msync.ContactState {
	at := derivedClock(uint64(max(c.rec.Added.UnixMilli(), 0)), n.cert.DeviceID())
	st := &msync.ContactState{Account: c.account(),
		Added:     msync.VersionVector{{Device: at.Device, Lamport: at.Lamport}},
		InfoClock: at, Name: c.rec.Name, Card: c.rec.Card}
	if c.rec.Verified {
		st.VerifiedClock, st.Verified = at, true
	}
	return st
}

// applyContactLocked merges d into its contact's state and, if that
// changed anything, stores the state and makes the address book show it.
func (n *Node) applyContactLocked(t *txn, d *msync.ContactState, now time.Time) (bool, error) {
	if d.Account == n.cert.Account() {
		return false, nil
	}
	cur, err := n.contactStateLocked(t, d.Account)
	if err != nil {
		return false, err
	}
	merged := cur.Clone()
	if !merged.Merge(d) {
		return false, nil
	}
	if err := n.putSyncLocked(t, syncKey(skContact, d.Account[:]), merged); err != nil {
		return false, err
	}
	return true, n.renderContactLocked(t, merged, now)
}

// renderContactLocked makes the address book show a contact's merged
// state: present (some add no remove saw) or not, its name (a name
// another contact has, or one like it, is kept as it was, or made free
// for a new contact as freeNameLocked does), its card (if it parses
// and is newer) and whether it is verified. A removed contact goes with
// its history, as RemoveContact does.
func (n *Node) renderContactLocked(t *txn, st *msync.ContactState, now time.Time) error {
	acc := st.Account
	c := n.contacts[acc]
	if !st.Present() {
		if c != nil {
			n.deleteContactLocked(t.b, c)
			t.undo(func() { n.contacts[acc] = c })
			t.events = append(t.events, Event{Type: EventContact, Contact: ptr(c.view())})
		}
		return nil
	}
	if len(st.Card) == 0 {
		return nil // an add whose card is not known yet
	}
	cc, err := card.ParseStored(st.Card)
	if err != nil || cc.Account() != acc {
		return nil // a card that does not parse, or another account's: not shown
	}
	name, err := checkName(st.Name)
	if err != nil {
		name = "contact"
	}
	if c == nil {
		if n.lookalikeLocked(name, nil) != nil {
			name = n.freeNameLocked(name)
		}
		nc := &contact{rec: contactRec{Name: name, Card: cc.Marshal(), Verified: st.Verified, Added: firstAdd(st.Added, now)}, card: cc, blocked: n.blockedLocked(acc)}
		n.contacts[acc] = nc
		t.undo(func() { delete(n.contacts, acc) })
		n.saveContact(t.b, nc)
		t.events = append(t.events, Event{Type: EventContact, Contact: ptr(nc.view())})
		n.routeChangedLocked(cc)
		return n.releasePendingLocked(t, acc)
	}
	prev := c.rec
	prevCard := c.card
	t.undo(func() { c.rec, c.card = prev, prevCard })
	if cardNewer(cc, c.card) {
		c.card, c.rec.Card = cc, cc.Marshal()
	}
	if name != c.rec.Name && n.lookalikeLocked(name, c) == nil {
		c.rec.Name = name
	}
	c.rec.Request = false
	if st.Verified != c.rec.Verified {
		c.rec.Verified = st.Verified
		if st.Verified {
			c.rec.KeyChanged, c.rec.MustVerify = false, false
		}
	}
	if c.rec.Name == prev.Name && bytes.Equal(c.rec.Card, prev.Card) && c.rec.Verified == prev.Verified &&
		c.rec.Request == prev.Request && c.rec.MustVerify == prev.MustVerify {
		return nil
	}
	n.saveContact(t.b, c)
	t.events = append(t.events, Event{Type: EventContact, Contact: ptr(c.view())})
	if c.card != prevCard {
		n.routeChangedLocked(c.card)
	}
	if prev.Request {
		return n.releasePendingLocked(t, acc)
	}
	return nil
}
