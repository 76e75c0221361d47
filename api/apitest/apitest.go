// Package apitest provides Backend, an in-memory stand-in for *node.Node
// that the api and cmd/hush tests (and the mobile facade's) serve without
// libp2p or a store. It follows node's documented behaviour closely
// enough for API and CLI tests, groups included; it delivers nothing
// anywhere.
package apitest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/node"
)

// Backend is a fake node. The zero value is not usable; call New.
type Backend struct {
	// Now is the clock for message times; default a fixed time.
	Now func() time.Time
	// LinkTTL is how long LinkDevice's codes are valid; default
	// DefaultLinkTTL. Set it before serving.
	LinkTTL time.Duration

	mu         sync.Mutex // guards everything below
	self       node.Self
	push       node.PushStatus
	health     node.Health
	contacts   map[string]*node.Contact
	msgs       map[string][]*node.Message // by contact, oldest first
	byID       map[string]*node.Message
	txns       map[string]string // txnID → message ID
	events     []node.Event
	seq        uint64
	subs       map[int]chan node.Event
	nextSub    int
	nextMsg    int
	receipts   bool
	presence   bool
	typing     []TypingCall
	safety     map[string]string
	waiters    []chan struct{}
	groups     map[string]*fakeGroup // by ID
	nextGrp    int
	devices    []node.Device                  // other devices of the account (AddDevice)
	links      int                            // LinkDevice calls
	files      map[string][]byte              // file contents by message ID (files.go)
	sentPaths  []string                       // SendFile's paths
	fetches    int                            // FetchFile calls
	uploads    bool                           // sent files go to a relay too (SetUploads)
	holdSeal   chan struct{}                  // sends wait half-way through their seal until it is closed (HoldSeals)
	autoDL     map[string]int64               // auto-download limits by conversation ("c:NAME", "g:ID")
	requests   map[string]*node.Request       // message requests by name (requests.go)
	blockedReq map[string]bool                // requests blocked (requests.go)
	short      fakeLinks                      // address and invitations (links.go)
	blocks     map[string]node.BlockedAccount // by account (contacts.go)
	convs      map[string]*fakeConv           // conversation settings by "c:NAME", "g:ID" (conversations.go)
	timers     map[string]time.Duration       // disappearing-messages timers by contact (search.go)
}

// TypingCall records a SetTyping call.
type TypingCall struct {
	Contact string
	Typing  bool
}

// T0 is the fake's default clock reading.
var T0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// New returns an empty fake with a self named "me".
func New() *Backend {
	return &Backend{
		Now: func() time.Time { return T0 },
		self: node.Self{
			Name:        "me",
			Account:     "aa11",
			Device:      "dd01",
			Link:        "hush://mefakelinkabcdefghijklmnopqrstuvwxyz234567",
			Fingerprint: "aa11 bb22 cc33 dd44",
			PeerID:      "12D3KooWFake",
			Addrs:       []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWFake"},
			Protected:   true,
		},
		contacts: map[string]*node.Contact{},
		msgs:     map[string][]*node.Message{},
		byID:     map[string]*node.Message{},
		txns:     map[string]string{},
		subs:     map[int]chan node.Event{},
		safety:   map[string]string{},
		groups:   map[string]*fakeGroup{},
		receipts: true,
	}
}

// SetSelf replaces what Self returns.
func (b *Backend) SetSelf(s node.Self) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.self = s
}

// Self implements api.Backend.
func (b *Backend) Self() (node.Self, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.self, nil
}

// WaitLink returns at once: the fake's link is always complete.
func (b *Backend) WaitLink(context.Context) error { return nil }

func validName(name string) error {
	if name == "" || len(name) > node.MaxNameSize || strings.ContainsAny(name, "\x00\n\r\t") {
		return node.ErrInvalidName
	}
	return nil
}

// AddContact implements api.Backend. A link must start with hush://;
// a link containing "changed" for an existing contact sets KeyChanged.
func (b *Backend) AddContact(name, link string) (node.Contact, error) {
	if err := validName(name); err != nil {
		return node.Contact{}, err
	}
	if !strings.HasPrefix(strings.ToLower(link), card.Scheme) {
		return node.Contact{}, card.ErrNotLink
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	account := fmt.Sprintf("%x", link)
	if len(account) > 16 {
		account = account[len(account)-16:]
	}
	if c, ok := b.contacts[name]; ok {
		if c.Account != account {
			c.Account = account
			c.KeyChanged = true
			b.publishLocked(node.Event{Type: node.EventContact, Contact: ptr(*c)})
		}
		return *c, nil
	}
	c := &node.Contact{Name: name, Account: account, Devices: 1, Added: b.Now()}
	b.contacts[name] = c
	b.safety[name] = strings.Repeat("0123456789", 6)
	b.publishLocked(node.Event{Type: node.EventContact, Contact: ptr(*c)})
	return *c, nil
}

func ptr[T any](v T) *T { return &v }

// Contacts implements api.Backend.
func (b *Backend) Contacts() ([]node.Contact, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []node.Contact
	for _, c := range b.contacts {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(x, y node.Contact) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// RemoveContact implements api.Backend.
func (b *Backend) RemoveContact(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.contacts[name]
	if !ok {
		return node.ErrUnknownContact
	}
	delete(b.contacts, name)
	delete(b.msgs, name)
	b.publishLocked(node.Event{Type: node.EventContact, Contact: ptr(*c)})
	return nil
}

// VerifyContact implements api.Backend.
func (b *Backend) VerifyContact(name string) (node.Contact, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.contacts[name]
	if !ok {
		return node.Contact{}, node.ErrUnknownContact
	}
	c.Verified, c.KeyChanged = true, false
	return *c, nil
}

// SafetyNumber implements api.Backend.
func (b *Backend) SafetyNumber(name string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.contacts[name]; !ok {
		return "", node.ErrUnknownContact
	}
	return b.safety[name], nil
}

// Send implements api.Backend: the message is stored as queued.
func (b *Backend) Send(ctx context.Context, req node.SendRequest) (node.Message, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.contacts[req.To]
	if !ok {
		return node.Message{}, node.ErrUnknownContact
	}
	if c.KeyChanged && c.Verified {
		return node.Message{}, node.ErrKeyChanged
	}
	if c.Blocked {
		return node.Message{}, fmt.Errorf("%w (%s)", node.ErrBlocked, req.To)
	}
	if req.TxnID != "" {
		if id, ok := b.txns[req.TxnID]; ok {
			return *b.byID[id], nil
		}
	}
	if len(req.Text) > node.MaxTextSize {
		return node.Message{}, node.ErrMessageTooLarge
	}
	kind := req.Kind
	if kind == "" {
		kind = node.KindText
	}
	if kind != node.KindText {
		t, ok := b.byID[req.Target]
		if !ok || t.Contact != req.To || t.Group != "" {
			return node.Message{}, node.ErrUnknownMessage
		}
		if kind != node.KindReply {
			b.actLocked(t, kind, req.Text, req.Remove)
			return *t, nil
		}
	}
	b.nextMsg++
	m := &node.Message{
		ID: fmt.Sprintf("m%04d", b.nextMsg), Contact: req.To, Direction: "out",
		Text: req.Text, State: node.StateQueued, Time: b.Now(),
	}
	if kind == node.KindReply {
		m.ReplyTo = req.Target
	}
	b.addLocked(m)
	if req.TxnID != "" {
		b.txns[req.TxnID] = m.ID
	}
	return *m, nil
}

// actLocked applies an edit, delete or reaction of this account to t.
func (b *Backend) actLocked(t *node.Message, kind node.Kind, text string, remove bool) {
	switch kind {
	case node.KindEdit:
		t.Text, t.Edited = text, true
	case node.KindDelete:
		t.Text, t.Deleted = "", true
	case node.KindReaction:
		if t.Reactions == nil {
			t.Reactions = map[string][]string{}
		}
		if remove {
			t.Reactions[text] = slices.DeleteFunc(t.Reactions[text], func(s string) bool { return s == "me" })
			if len(t.Reactions[text]) == 0 {
				delete(t.Reactions, text)
			}
		} else {
			t.Reactions[text] = append(t.Reactions[text], "me")
		}
	}
	b.publishLocked(node.Event{Type: node.EventUpdate, Message: ptr(*t)})
}

func (b *Backend) addLocked(m *node.Message) {
	b.msgs[m.Contact] = append(b.msgs[m.Contact], m)
	b.byID[m.ID] = m
	b.publishLocked(node.Event{Type: node.EventMessage, Message: ptr(*m)})
}

// Receive adds an incoming message from contact, as if it arrived.
func (b *Backend) Receive(contact, text string) node.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nextMsg++
	m := &node.Message{
		ID: fmt.Sprintf("m%04d", b.nextMsg), Contact: contact, Direction: "in",
		Text: text, State: node.StateReceived, Time: b.Now(),
	}
	b.addLocked(m)
	return *m
}

// SetState moves a message to state, as if a receipt arrived.
func (b *Backend) SetState(id string, state node.MessageState) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, ok := b.byID[id]
	if !ok {
		return node.ErrUnknownMessage
	}
	m.State = state
	b.publishLocked(node.Event{Type: node.EventUpdate, Message: ptr(*m)})
	return nil
}

func rank(s node.MessageState) int { return apitypes.MessageState(s).Rank() }

// WaitState implements api.Backend.
func (b *Backend) WaitState(ctx context.Context, id string, state node.MessageState) (node.Message, error) {
	for {
		b.mu.Lock()
		m, ok := b.byID[id]
		if !ok {
			b.mu.Unlock()
			return node.Message{}, node.ErrUnknownMessage
		}
		if rank(m.State) >= rank(state) {
			b.mu.Unlock()
			return *m, nil
		}
		w := make(chan struct{})
		b.waiters = append(b.waiters, w)
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return node.Message{}, ctx.Err()
		case <-w:
		}
	}
}

// Messages implements api.Backend.
func (b *Backend) Messages(contact string, limit int) ([]node.Message, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.contacts[contact]; !ok {
		return nil, node.ErrUnknownContact
	}
	ms := b.msgs[contact]
	if limit > 0 && len(ms) > limit {
		ms = ms[len(ms)-limit:]
	}
	out := make([]node.Message, len(ms))
	for i, m := range ms {
		out[i] = *m
	}
	return out, nil
}

// MarkRead implements api.Backend.
func (b *Backend) MarkRead(contact string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.contacts[contact]; !ok {
		return node.ErrUnknownContact
	}
	for _, m := range b.msgs[contact] {
		if m.Direction == "in" && m.State == node.StateReceived {
			m.State = node.StateRead
			b.publishLocked(node.Event{Type: node.EventUpdate, Message: ptr(*m)})
		}
	}
	return nil
}

// SetTyping implements api.Backend and records the call.
func (b *Backend) SetTyping(contact string, typing bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.contacts[contact]; !ok {
		return node.ErrUnknownContact
	}
	b.typing = append(b.typing, TypingCall{contact, typing})
	return nil
}

// SetGroupTyping implements api.Backend and records the call (Contact
// is "group:" and the group).
func (b *Backend) SetGroupTyping(group string, typing bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.groupLocked(group); err != nil {
		return err
	}
	b.typing = append(b.typing, TypingCall{"group:" + group, typing})
	return nil
}

// TypingCalls returns the SetTyping calls so far.
func (b *Backend) TypingCalls() []TypingCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.typing)
}

// SetReadReceipts implements api.Backend.
func (b *Backend) SetReadReceipts(on bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.receipts = on
	return nil
}

// SetPresence implements api.Backend.
func (b *Backend) SetPresence(on bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.presence = on
	return nil
}

// Presence implements api.Backend.
func (b *Backend) Presence() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.presence
}

// SetContactPresence sets what the fake shows of a contact's presence
// (nil: unknown), as if the contact had sent it.
func (b *Backend) SetContactPresence(name string, p *node.Presence) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.contacts[name]; c != nil {
		c.Presence = p
	}
}

// ReadReceipts reports the read-receipt setting.
func (b *Backend) ReadReceipts() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.receipts
}

// Publish emits an arbitrary event (Seq is assigned) and returns it.
func (b *Backend) Publish(ev node.Event) node.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.publishLocked(ev)
}

// subBuffer is how far a subscriber may fall behind before it is dropped.
const subBuffer = 256

func (b *Backend) publishLocked(ev node.Event) node.Event {
	b.seq++
	ev.Seq = b.seq
	b.events = append(b.events, ev)
	for id, ch := range b.subs {
		select {
		case ch <- ev:
		default:
			close(ch)
			delete(b.subs, id)
		}
	}
	for _, w := range b.waiters {
		close(w)
	}
	b.waiters = nil
	return ev
}

// Subscribe implements api.Backend: events after seq are replayed from
// the log, then new ones follow.
func (b *Backend) Subscribe(after uint64) (<-chan node.Event, func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan node.Event, subBuffer+len(b.events))
	if after > 0 {
		for _, ev := range b.events {
			if ev.Seq > after {
				ch <- ev
			}
		}
	}
	id := b.nextSub
	b.nextSub++
	b.subs[id] = ch
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if c, ok := b.subs[id]; ok {
				close(c)
				delete(b.subs, id)
			}
		})
	}
}

// Subscribers reports how many subscriptions are open.
func (b *Backend) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}
