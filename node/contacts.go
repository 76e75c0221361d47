package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/text/unicode/norm"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/safety"
	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/node/shortlink"
	msync "github.com/hushnet/hush/sync"
)

// contactRec is a contacts-table record, keyed by account ID.
type contactRec struct {
	Name       string `json:"name"`
	Card       []byte `json:"card"`
	Verified   bool   `json:"verified,omitempty"`
	KeyChanged bool   `json:"key_changed,omitempty"` // the key under this name changed since the user last verified or added it
	MustVerify bool   `json:"blocked,omitempty"`     // key changed on a verified contact: no sending until verified again (the JSON name is from before blocking, blocks.go)
	Request    bool   `json:"request,omitempty"`
	// The contact's profile as it sent it (profile.go): its display name,
	// its avatar (a checked JPEG) and the sender's time of the newest one
	// taken. LocalName: the user chose the name (contact add, rename, an
	// invitation's label), and Name stays whatever the profile says.
	ProfileName string `json:"profile_name,omitempty"`
	Avatar      []byte `json:"avatar,omitempty"`
	ProfileAt   uint64 `json:"profile_at,omitempty"`
	LocalName   bool   `json:"local_name,omitempty"`
	SentRoute   string `json:"sent_route,omitempty"` // routeKey of the card last sent to this contact
	// Invite is the token of the contact's one-time invitation this
	// account used to add it: the first messages of a session this
	// device opens carry it (addresses.md §20.4).
	Invite []byte    `json:"invite,omitempty"`
	Added  time.Time `json:"added"`
}

type contact struct {
	rec     contactRec
	card    *card.Card
	blocked bool // the account is in n.blocks (blocks.go), for view
}

func (c *contact) account() identity.AccountID { return c.card.Account() }

func (c *contact) view() Contact {
	return Contact{
		Name:       c.rec.Name,
		Account:    c.account().Hex(),
		Verified:   c.rec.Verified,
		KeyChanged: c.rec.KeyChanged,
		Devices:    c.card.List.Len(),
		Added:      c.rec.Added,
		Request:    c.rec.Request,
		Blocked:    c.blocked,
		Profile:    c.rec.ProfileName,
		Avatar:     c.rec.Avatar,
	}
}

// parseStoredCard parses a card from the store. Stored cards were verified
// when received; prekey expiry is not re-checked here (Start re-parses the
// bundle with the current time).
func parseStoredCard(b []byte) (*card.Card, error) {
	return card.ParseStored(b)
}

func (n *Node) loadContacts() error {
	return n.tabs.contacts.Scan(func(id, v []byte) error {
		var rec contactRec
		if err := jsonUnmarshal(v, &rec); err != nil {
			return err
		}
		c, err := parseStoredCard(rec.Card)
		if err != nil {
			return fmt.Errorf("node: stored contact card: %w", err)
		}
		n.contacts[c.Account()] = &contact{rec: rec, card: c}
		return nil
	})
}

// byNameLocked finds a contact by name.
func (n *Node) byNameLocked(name string) (*contact, error) {
	name = norm.NFC.String(name)
	for _, c := range n.contacts {
		if c.rec.Name == name {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownContact, name)
}

// lookalikeLocked returns a contact other than except whose name looks
// like name (same nameKey), or nil.
func (n *Node) lookalikeLocked(name string, except *contact) *contact {
	k := nameKey(name)
	for _, c := range n.contacts {
		if c != except && nameKey(c.rec.Name) == k {
			return c
		}
	}
	return nil
}

func (n *Node) saveContact(b *store.Batch, c *contact) {
	acc := c.account()
	putJSON(b, n.tabs.contacts, acc[:], &c.rec)
}

// AddContact adds (or refreshes) a contact from a hush:// link. Adding the
// same link again is a no-op. A name that only looks like another
// contact's ("Bob", "bob\u200b", a Cyrillic "о") is refused with
// ErrContactExists. If the very name is taken by another account, the
// name moves to the new key and the old contact stays, with its history,
// under "NAME (previous key)"; if the old one was verified, sending to the
// name stays blocked until VerifyContact, else the returned Contact has
// KeyChanged set so the caller can warn.
func (n *Node) AddContact(name, link string) (Contact, error) {
	name, err := checkName(name)
	if err != nil {
		return Contact{}, err
	}
	now := n.now()
	var c *card.Card
	var invite [shortlink.TokenSize]byte
	if _, serr := shortlink.Parse(link); !errors.Is(serr, shortlink.ErrNotShortLink) {
		// A short link: the card is on the relay it names.
		if c, invite, err = n.resolveShortLink(context.Background(), link); err != nil {
			return Contact{}, err
		}
	} else if c, err = card.ParseLink(link, now); err != nil {
		return Contact{}, fmt.Errorf("invalid contact link: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return Contact{}, ErrClosed
	}
	if c.Account() == n.cert.Account() {
		return Contact{}, errors.New("that link is your own")
	}
	t := n.newTxnLocked()
	b := t.b
	existing := n.contacts[c.Account()]
	switch {
	case existing != nil:
		// Same person: refresh the card if it is newer; a pending message
		// request becomes a contact under the name the user chose.
		if cardNewer(c, existing.card) {
			existing.card = c
			existing.rec.Card = c.Marshal()
		}
		if existing.rec.Request || existing.rec.Name != name {
			if other := n.lookalikeLocked(name, existing); other != nil {
				return Contact{}, fmt.Errorf("%w: %q", ErrContactExists, other.rec.Name)
			}
			existing.rec.Name, existing.rec.LocalName = name, true
			existing.rec.Request = false
		}
		n.saveContact(b, existing)
		t.events = append(t.events, Event{Type: EventContact, Contact: ptr(existing.view())})
		n.syncContactAddLocked(t, existing, now)
		n.routeChangedLocked(existing.card)
		n.releaseHeldLocked(t, existing.account(), now)
		n.saveSeqLocked(t)
		if err := n.commitReleasingLock(t); err != nil {
			return Contact{}, fmt.Errorf("node: store: %w", err)
		}
		return existing.view(), nil
	}
	nc := &contact{rec: contactRec{Name: name, LocalName: true, Card: c.Marshal(), Added: now.UTC()}, card: c, blocked: n.blockedLocked(c.Account())}
	if invite != ([shortlink.TokenSize]byte{}) {
		nc.rec.Invite = invite[:]
	}
	if other := n.lookalikeLocked(name, nil); other != nil && other.rec.Name != name {
		return Contact{}, fmt.Errorf("%w: %q looks like %q", ErrContactExists, name, other.rec.Name)
	}
	if old, err := n.byNameLocked(name); err == nil {
		// The name now points at a different account key. The old
		// contact keeps its conversation under another name.
		nc.rec.KeyChanged = true
		nc.rec.MustVerify = old.rec.Verified || old.rec.MustVerify
		prev := old.rec.Name
		old.rec.Name = n.freeNameLocked(name + " (previous key)")
		n.saveContact(b, old)
		t.undo(func() { old.rec.Name = prev })
		t.events = append(t.events, Event{Type: EventContact, Contact: ptr(old.view())})
		n.syncContactAddLocked(t, old, now) // renamed: the other devices free the name first
	}
	n.contacts[c.Account()] = nc
	// Every device shows the time of the add's clock (to the
	// millisecond), which is what the others learn.
	nc.rec.Added = time.UnixMilli(int64(n.syncContactAddLocked(t, nc, now).Lamport)).UTC()
	n.saveContact(b, nc)
	t.events = append(t.events, Event{Type: EventContact, Contact: ptr(nc.view())})
	if err := n.releasePendingLocked(t, c.Account()); err != nil {
		n.log.Warn("synced messages not shown", "err", err)
	}
	n.routeChangedLocked(c)
	n.releaseHeldLocked(t, c.Account(), now)
	n.saveSeqLocked(t)
	t.undo(func() { delete(n.contacts, c.Account()) })
	if err := n.commitReleasingLock(t); err != nil {
		return Contact{}, fmt.Errorf("node: store: %w", err)
	}
	n.loops.Go(func(ctx context.Context) { n.prefetchPrekeys(ctx, c) })
	return nc.view(), nil
}

// cardNewer reports whether c should replace old for the same account.
func cardNewer(c, old *card.Card) bool {
	if bytes.Equal(c.Marshal(), old.Marshal()) {
		return false
	}
	if c.List.Version() != old.List.Version() {
		return c.List.Follows(old.List) == nil
	}
	return c.Created.After(old.Created) || c.Created.Equal(old.Created)
}

func ptr[T any](v T) *T { return &v }

// learnAddrsLocked tells the peerstore where a contact's devices listen.
func (n *Node) learnAddrsLocked(c *card.Card) {
	if n.host == nil {
		return
	}
	for _, d := range c.Devices {
		pid, err := peer.IDFromBytes(d.PeerID)
		if err != nil {
			continue
		}
		var addrs []ma.Multiaddr
		for _, a := range d.Addrs {
			if m, err := ma.NewMultiaddrBytes(a); err == nil {
				addrs = append(addrs, m)
			}
		}
		n.host.Peerstore().AddAddrs(pid, addrs, 7*24*time.Hour)
	}
}

// Contacts lists the address book, sorted by name; pending requests are
// Requests'.
func (n *Node) Contacts() ([]Contact, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Contact, 0, len(n.contacts))
	now := n.now()
	for acc, c := range n.contacts {
		if !c.rec.Request { // requests: Requests
			v := c.view()
			v.Presence = n.presenceOfLocked(acc, now)
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b Contact) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// RemoveContact deletes a contact, its sessions, its pending outbox
// entries and its message history.
func (n *Node) RemoveContact(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := n.byNameLocked(name)
	if err != nil {
		return err
	}
	now := n.now()
	t := n.newTxnLocked()
	n.syncContactRemoveLocked(t, c, now)
	n.deleteContactLocked(t.b, c)
	acc := c.account()
	t.undo(func() { n.contacts[acc] = c })
	t.events = append(t.events, Event{Type: EventContact, Contact: ptr(c.view())})
	if err := n.commitReleasingLock(t); err != nil {
		return fmt.Errorf("node: store: %w", err)
	}
	return nil
}

// deleteContactLocked removes a contact and everything about it.
func (n *Node) deleteContactLocked(b *store.Batch, c *contact) {
	acc := c.account()
	b.Delete(n.tabs.contacts, acc[:])
	for _, d := range c.card.List.Devices() {
		id := d.DeviceID()
		b.Delete(n.tabs.sessions, id[:])
		delete(n.sets, id)
		if q := n.queues[id]; q != nil {
			for _, e := range q.pending {
				n.deleteOut(b, e)
			}
			q.pending = nil
		}
	}
	n.deleteMessagesLocked(b, acc)
	delete(n.contacts, acc)
}

// deleteMessagesLocked deletes, in b, the conversation with acc.
func (n *Node) deleteMessagesLocked(b *store.Batch, acc identity.AccountID) {
	n.tabs.messages.ScanSeq(acc[:], 0, ^uint64(0), func(seq uint64, v []byte) error {
		var m msgRec
		if decodeMsgRec(v, &m) == nil {
			if id, err := parseMsgID(m.ID); err == nil {
				b.Delete(n.tabs.msgIndex, id[:])
				b.Delete(n.syncTable(), syncKey(skMessage, id[:])) // its synced state, if any
			}
		}
		b.DeleteSeq(n.tabs.messages, acc[:], seq)
		return nil
	})
	n.records.forget() // it may hold the conversation's messages
	n.tails.forget(acc[:])
	n.search.removeConv(acc[:])
}

// VerifyContact marks the contact's current key as verified (the user
// compared safety numbers) and unblocks sending after a key change.
func (n *Node) VerifyContact(name string) (Contact, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := n.byNameLocked(name)
	if err != nil {
		return Contact{}, err
	}
	prev := c.rec
	c.rec.Verified, c.rec.KeyChanged, c.rec.MustVerify = true, false, false
	now := n.now()
	t := n.newTxnLocked()
	t.undo(func() { c.rec = prev })
	n.saveContact(t.b, c)
	n.syncLocalLocked(t, &msync.ContactVerify{Account: c.account(), Clock: n.tickLocked(t, now), Verified: true}, now)
	t.events = append(t.events, Event{Type: EventContact, Contact: ptr(c.view())})
	if err := n.commitReleasingLock(t); err != nil {
		return Contact{}, fmt.Errorf("node: store: %w", err)
	}
	return c.view(), nil
}

// SafetyNumber returns the 60-digit safety number with a contact, grouped
// in blocks of five.
func (n *Node) SafetyNumber(name string) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := n.byNameLocked(name)
	if err != nil {
		return "", err
	}
	return safety.Format(safety.Number(n.cert.Account(), c.account())), nil
}
