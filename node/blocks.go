package node

// Blocking (docs/protocol/addresses.md §20.6). A block is kept by account
// ID in the blocks table, apart from the contact record, so it survives
// restarts, removing the contact and adding it again. From a blocked
// account nothing is stored or shown: its envelopes are decrypted (the
// session advances, so that an unblock finds it working), acknowledged
// as transport, and dropped, with no delivery or read receipt. Nothing
// is sent to it while it is blocked.
//
// Blocks cover the 1:1 conversation. Group traffic from a blocked member
// of a group the user shares with it still flows: leaving the group, or
// removing the member, is the group's own decision.

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/session"
)

// ErrBlocked refuses sending to a blocked contact.
var ErrBlocked = errors.New("contact is blocked: nothing is sent to it until `hush contact unblock`")

// BlockedAccount is an entry of the block list.
type BlockedAccount = apitypes.BlockedAccount

// blockRec is a blocks-table record, keyed by account ID.
type blockRec struct {
	Name string    `json:"name"` // the contact's name when it was blocked
	At   time.Time `json:"at"`
}

func (n *Node) loadBlocks() error {
	n.blocks = make(map[identity.AccountID]blockRec)
	return n.tabs.blocks.Scan(func(id, v []byte) error {
		acc, err := identity.ParseAccountID(id)
		if err != nil {
			return fmt.Errorf("node: stored block: %w", err)
		}
		var rec blockRec
		if err := jsonUnmarshal(v, &rec); err != nil {
			return err
		}
		n.blocks[acc] = rec
		if c := n.contacts[acc]; c != nil {
			c.blocked = true
		}
		return nil
	})
}

// blockedLocked reports whether the user blocked account acc. It is the
// one check of the inbox (receiveOneLocked) and of every send to a
// contact (sendableLocked).
func (n *Node) blockedLocked(acc identity.AccountID) bool {
	_, ok := n.blocks[acc]
	return ok
}

// sendableLocked says why nothing may be sent to contact c: a key change
// on a verified contact (ErrKeyChanged), or a block (ErrBlocked).
func (n *Node) sendableLocked(c *contact) error {
	if c.rec.MustVerify {
		return fmt.Errorf("%w (%s)", ErrKeyChanged, c.rec.Name)
	}
	if n.blockedLocked(c.account()) {
		return fmt.Errorf("%w (%s)", ErrBlocked, c.rec.Name)
	}
	return nil
}

// sessionOnlyLocked takes a message the session decrypted and that is
// not kept (one from a blocked account): the session advances (and a
// newer card of a contact is kept, so that its routes are right after an
// unblock); nothing else is stored, shown or answered.
func (n *Node) sessionOnlyLocked(t *txn, c *contact, set *session.Set, kind envelope.Kind, p *payload, perr error, now time.Time) byte {
	if c != nil && perr == nil && p.Card != nil && string(p.Card) != string(c.rec.Card) {
		if cc, err := card.Parse(p.Card, now); err == nil && cc.Account() == c.account() {
			n.updateContactCardLocked(t, c, cc, now)
		}
	}
	n.saveSessionLocked(t, set, kind)
	return ackOK
}

// BlockContact blocks the contact named name (§20.6), on every device of
// the account (blocks_sync.go). Blocking a blocked contact again changes
// nothing. A request blocked loses its messages (BlockRequest).
func (n *Node) BlockContact(name string) (Contact, error) {
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return Contact{}, ErrClosed
	}
	c, err := n.byNameLocked(name)
	if err != nil {
		return Contact{}, err
	}
	acc := c.account()
	if n.blockedLocked(acc) {
		return c.view(), nil
	}
	t := n.newTxnLocked()
	n.blockLocked(t, acc, c.rec.Name, now)
	n.syncBlockLocked(t, acc, c.rec.Name, now)
	if err := n.commitReleasingLock(t); err != nil {
		return Contact{}, fmt.Errorf("node: store: %w", err)
	}
	return c.view(), nil
}

// blockLocked blocks acc in t (name: the contact's name, kept for the
// block list): a request's messages are deleted, and the queues of its
// devices are woken so that the user's messages still queued to it are
// dropped (dropToBlockedLocked).
func (n *Node) blockLocked(t *txn, acc identity.AccountID, name string, at time.Time) {
	if n.blockedLocked(acc) {
		return
	}
	rec := blockRec{Name: name, At: at.UTC()}
	putJSON(t.b, n.tabs.blocks, acc[:], &rec)
	n.blocks[acc] = rec
	c := n.contacts[acc]
	if c != nil {
		c.blocked = true
	}
	t.undo(func() {
		delete(n.blocks, acc)
		if c != nil {
			c.blocked = false
		}
	})
	if c == nil {
		return
	}
	if c.rec.Request {
		n.deleteMessagesLocked(t.b, acc)
		t.events = append(t.events, Event{Type: EventRequest, Contact: ptr(c.view())})
	} else {
		t.events = append(t.events, Event{Type: EventContact, Contact: ptr(c.view())})
	}
	for _, d := range c.card.List.Devices() {
		if q := n.queues[d.DeviceID()]; q != nil {
			n.kickLocked(q)
		}
	}
}

// UnblockContact lifts the block of a contact, by its name, or of an
// account that is no contact any more, by the account ID (64 hex digits)
// BlockedAccounts lists, on every device of the account.
func (n *Node) UnblockContact(nameOrAccount string) error {
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	var acc identity.AccountID
	c, err := n.byNameLocked(nameOrAccount)
	switch {
	case err == nil:
		acc = c.account()
	case len(nameOrAccount) == 2*identity.AccountIDSize:
		b, herr := hex.DecodeString(strings.ToLower(nameOrAccount))
		if herr != nil {
			return err
		}
		acc = identity.AccountID(b)
	default:
		return err
	}
	if !n.blockedLocked(acc) {
		return fmt.Errorf("%s is not blocked", nameOrAccount)
	}
	t := n.newTxnLocked()
	n.unblockLocked(t, acc)
	n.syncBlockLocked(t, acc, "", now)
	if err := n.commitReleasingLock(t); err != nil {
		return fmt.Errorf("node: store: %w", err)
	}
	return nil
}

// unblockLocked lifts acc's block in t.
func (n *Node) unblockLocked(t *txn, acc identity.AccountID) {
	prev, ok := n.blocks[acc]
	if !ok {
		return
	}
	t.b.Delete(n.tabs.blocks, acc[:])
	delete(n.blocks, acc)
	c := n.contacts[acc]
	if c != nil {
		c.blocked = false
		t.events = append(t.events, Event{Type: EventContact, Contact: ptr(c.view())})
	}
	t.undo(func() {
		n.blocks[acc] = prev
		if c != nil {
			c.blocked = true
		}
	})
}

// errBlockedUnsent is the reason a message still queued when its
// contact was blocked (here or on another device of the account) shows.
const errBlockedUnsent = "not sent: the contact was blocked before it left"

// dropToBlockedLocked drops from q, when its device's account is
// blocked, the user's messages still queued to it (tracked entries:
// texts, files, edits, reactions, recalls), each shown failed. The
// queue's deliverLoop calls it before each round, so no entry it drops
// is in flight; what a relay already took (q.redundant) has left.
// Untracked entries (receipts, group traffic) stay: what blocks.go says
// about groups holds. The drop commits in the background.
func (n *Node) dropToBlockedLocked(q *peerQueue) {
	if !n.blockedLocked(q.cert.Account()) || !slices.ContainsFunc(q.pending, func(e *outEntry) bool { return e.durable && e.Track }) {
		return
	}
	t := n.newTxnLocked()
	kept := q.pending[:0]
	for _, e := range q.pending {
		if e.durable && e.Track {
			n.deleteOut(t.b, e)
			n.setStateLocked(t, e.MsgID, StateFailed, errBlockedUnsent)
			continue
		}
		kept = append(kept, e)
	}
	clear(q.pending[len(kept):])
	q.pending = kept
	n.finishInBackgroundLocked(t)
}

// BlockedAccounts lists the blocked accounts, by name: the contact's
// current name, else its name when it was blocked.
func (n *Node) BlockedAccounts() ([]BlockedAccount, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]BlockedAccount, 0, len(n.blocks))
	for acc, rec := range n.blocks {
		b := BlockedAccount{Account: acc.Hex(), Name: rec.Name, Since: rec.At}
		if c := n.contacts[acc]; c != nil {
			b.Name, b.Contact = c.rec.Name, true
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b BlockedAccount) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
