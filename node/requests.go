package node

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
)

// Message requests (docs/protocol/addresses.md §20.5): an account that
// writes first, and is not a contact, becomes a request. Its messages
// are stored, under caps, apart from the conversations: Messages and
// message events leave them out, Requests shows them, and AcceptRequest
// makes the account a contact (its messages join the conversation).
// DeclineRequest deletes it with its messages.

// Request caps: a flood of first messages, or one request writing on and
// on, fills nothing else.
const (
	MaxRequests        = 100      // pending requests; first messages past it are dropped
	MaxRequestMessages = 20       // messages kept per request
	MaxRequestBytes    = 64 << 10 // bytes of text kept per request
)

// Request errors.
var (
	ErrIsRequest  = errors.New("a message request: accept it first (hush request accept NAME)")
	ErrNotRequest = errors.New("not a message request")
)

// requestDrops counts what the caps dropped (first messages past
// MaxRequests, messages past a request's own caps), for Health.
type requestDrops struct{ first, messages atomic.Int64 }

// requestCountLocked is the number of pending requests.
func (n *Node) requestCountLocked() int {
	k := 0
	for _, c := range n.contacts {
		if c.rec.Request && !c.blocked {
			k++
		}
	}
	return k
}

// requestRoomLocked reports whether request c may keep one more text of
// size bytes: its stored messages (and those t adds) under the caps.
func (n *Node) requestRoomLocked(t *txn, c *contact, size int) bool {
	acc := c.account()
	count, bytes := 0, size
	seen := map[string]bool{}
	add := func(m *msgRec) {
		if !seen[m.ID] {
			seen[m.ID] = true
			count++
			bytes += len(m.Text)
		}
	}
	n.tabs.messages.ScanSeq(acc[:], 0, ^uint64(0), func(_ uint64, v []byte) error {
		var m msgRec
		if decodeMsgRec(v, &m) == nil {
			add(&m)
		}
		return nil
	})
	for _, id := range t.msgs {
		if m, ix, err := n.loadMsgLocked(id); err == nil && string(ix.Account) == string(acc[:]) {
			add(m)
		}
	}
	return count < MaxRequestMessages && bytes <= MaxRequestBytes
}

// requestEventsLocked turns the message events t holds for request c
// into request events: a request's messages stay out of conversations.
func (n *Node) requestEventsLocked(t *txn, c *contact) {
	out := t.events[:0]
	for _, e := range t.events {
		if (e.Type == EventMessage || e.Type == EventUpdate) && e.Message != nil && e.Message.Contact == c.rec.Name {
			if e.Type == EventMessage {
				out = append(out, Event{Type: EventRequest, Contact: ptr(c.view()), Message: e.Message})
			}
			continue
		}
		out = append(out, e)
	}
	t.events = out
}

// Requests lists the pending message requests, oldest first, each with
// the messages it sent.
func (n *Node) Requests() ([]Request, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := []Request{}
	for _, c := range n.contacts {
		if !c.rec.Request || c.blocked { // a blocked request is hidden (BlockRequest)
			continue
		}
		acc := c.account()
		ms, err := n.scanConversationLocked(acc[:], 0, func(m *msgRec) Message { return m.view(c.rec.Name) })
		if err != nil {
			return nil, err
		}
		out = append(out, Request{Name: c.rec.Name, Account: c.account().Hex(), Added: c.rec.Added, Messages: ms})
	}
	slices.SortFunc(out, func(a, b Request) int {
		return cmp.Or(a.Added.Compare(b.Added), strings.Compare(a.Name, b.Name))
	})
	return out, nil
}

// requestByNameLocked finds a pending request by name.
func (n *Node) requestByNameLocked(name string) (*contact, error) {
	c, err := n.byNameLocked(name)
	if err != nil {
		return nil, err
	}
	if !c.rec.Request {
		return nil, fmt.Errorf("%w: %s", ErrNotRequest, name)
	}
	return c, nil
}

// AcceptRequest makes a request a contact, under its name (rename it
// later if needed); its messages join the conversation.
func (n *Node) AcceptRequest(name string) (Contact, error) {
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return Contact{}, ErrClosed
	}
	c, err := n.requestByNameLocked(name)
	if err != nil {
		return Contact{}, err
	}
	t := n.newTxnLocked()
	c.rec.Request = false
	t.undo(func() { c.rec.Request = true })
	n.saveContact(t.b, c)
	t.events = append(t.events, Event{Type: EventContact, Contact: ptr(c.view())})
	n.syncContactAddLocked(t, c, now)
	n.routeChangedLocked(c.card)
	n.releaseHeldLocked(t, c.account(), now)
	n.saveSeqLocked(t)
	if err := n.commitReleasingLock(t); err != nil {
		return Contact{}, fmt.Errorf("node: store: %w", err)
	}
	return c.view(), nil
}

// DeclineRequest deletes a request and its messages; a later first
// message from the account is a new request.
func (n *Node) DeclineRequest(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	c, err := n.requestByNameLocked(name)
	if err != nil {
		return err
	}
	t := n.newTxnLocked()
	n.deleteContactLocked(t.b, c)
	acc := c.account()
	t.undo(func() { n.contacts[acc] = c })
	t.events = append(t.events, Event{Type: EventRequest, Contact: ptr(c.view())})
	if err := n.commitReleasingLock(t); err != nil {
		return fmt.Errorf("node: store: %w", err)
	}
	return nil
}

// BlockRequest blocks a request's account (blocks.go: nothing from it is
// stored or shown, now or if it writes again) and deletes its messages.
// The request stays, hidden, with its session: what the account sends
// next is decrypted and dropped like any blocked account's, so it learns
// nothing (a deleted session would make its messages fail visibly).
func (n *Node) BlockRequest(name string) error {
	n.mu.Lock()
	_, err := n.requestByNameLocked(name)
	n.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = n.BlockContact(name) // a request's messages go with the block
	return err
}

// contactByNameLocked finds a contact by name for a conversation: a
// request is refused (ErrIsRequest) until accepted.
func (n *Node) contactByNameLocked(name string) (*contact, error) {
	c, err := n.byNameLocked(name)
	if err == nil && c.rec.Request {
		return nil, fmt.Errorf("%w: %s", ErrIsRequest, name)
	}
	return c, err
}
