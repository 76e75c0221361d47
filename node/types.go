package node

import (
	"errors"
	"time"

	"github.com/hushnet/hush/internal/store"
)

// Limits a user can run into.
const (
	// MaxTextSize is the largest message text, in bytes of UTF-8.
	MaxTextSize = 16 << 10
	// MaxNameSize is the largest contact or display name, in bytes.
	MaxNameSize = 64
)

// Sentinel errors the API and CLI branch on. Messages are written for the
// person at the keyboard.
var (
	ErrNoIdentity      = errors.New("no identity in this home directory; run `hush init` first")
	ErrIdentityExists  = errors.New("an identity already exists in this home directory")
	ErrUnknownContact  = errors.New("unknown contact")
	ErrContactExists   = errors.New("a different contact already has this name")
	ErrEmptyMessage    = errors.New("message is empty")
	ErrMessageTooLarge = errors.New("message is too large")
	ErrUnknownMessage  = errors.New("unknown message")
	ErrKeyChanged      = errors.New("contact's identity key changed; compare safety numbers, then run `hush contact verify`")
	ErrInvalidName     = errors.New("invalid name")
	ErrClosed          = errors.New("node is closed")
	// ErrStoreInUse: another process (a running daemon) has the store open.
	ErrStoreInUse = store.ErrLocked
	// ErrWrongPassphrase: the passphrase does not open the store.
	ErrWrongPassphrase = store.ErrWrongPassphrase
	// ErrNotRunning: the node's card (its link, and the card a first
	// message carries) names the libp2p peer and its addresses, which
	// exist only while Run runs. A card without them would leave every
	// contact unable to reach this device.
	ErrNotRunning = errors.New("node is not running yet: its link needs the network address it is still opening")
)

// MessageState is where an outgoing message stands; incoming messages
// have StateReceived (or StateRead once read locally).
type MessageState string

// Message states, in order.
const (
	StateQueued    MessageState = "queued"    // durable in the store, not yet confirmed by anyone
	StateSent      MessageState = "sent"      // a relay confirmed it (relay issue)
	StateDelivered MessageState = "delivered" // a recipient device acknowledged it
	StateRead      MessageState = "read"      // the recipient sent a read receipt
	StateFailed    MessageState = "failed"    // will not be delivered (see Message.Error)
	StateReceived  MessageState = "received"  // incoming, not yet read here
)

// rank orders states so a state never moves backwards.
func (s MessageState) rank() int {
	switch s {
	case StateQueued:
		return 1
	case StateSent:
		return 2
	case StateDelivered:
		return 3
	case StateRead:
		return 4
	case StateFailed:
		return 5
	}
	return 0
}

// Kind is what a message does.
type Kind string

// Message kinds users send. Receipts and typing indicators travel as
// their own wire kinds and show up as state changes and events.
const (
	KindText     Kind = "text"
	KindReply    Kind = "reply"
	KindEdit     Kind = "edit"
	KindDelete   Kind = "delete"
	KindReaction Kind = "reaction"
)

// Message is one entry of a conversation, as the API and CLI show it.
type Message struct {
	ID        string              `json:"id"`
	Contact   string              `json:"contact"`
	Direction string              `json:"direction"` // "in" or "out"
	Text      string              `json:"text"`
	State     MessageState        `json:"state"`
	Time      time.Time           `json:"time"`
	ReplyTo   string              `json:"reply_to,omitempty"`
	Edited    bool                `json:"edited,omitempty"`
	Deleted   bool                `json:"deleted,omitempty"`
	Reactions map[string][]string `json:"reactions,omitempty"` // emoji → who ("me" or the contact's name)
	Error     string              `json:"error,omitempty"`
	Group     string              `json:"group,omitempty"`  // group ID, for group messages
	Sender    string              `json:"sender,omitempty"` // group messages: who sent it ("me" for this account)
}

// Contact is a person in the address book.
type Contact struct {
	Name       string    `json:"name"`
	Account    string    `json:"account"` // hex account key
	Verified   bool      `json:"verified"`
	KeyChanged bool      `json:"key_changed,omitempty"`
	Devices    int       `json:"devices"`
	Added      time.Time `json:"added"`
	Request    bool      `json:"request,omitempty"` // added by an incoming first message, not by the user
}

// Self describes this device.
type Self struct {
	Name        string   `json:"name"`
	Account     string   `json:"account"`
	Device      string   `json:"device"`
	Link        string   `json:"link"`
	Fingerprint string   `json:"fingerprint"` // hex of the account key, grouped, for eyeballing
	PeerID      string   `json:"peer_id"`
	Addrs       []string `json:"addrs"`
	Protected   bool     `json:"protected"` // the store has a passphrase
	Mailboxes   int      `json:"mailboxes"` // relay mailboxes listed in the link
	Relays      int      `json:"relays"`    // relays configured for this run
}

// SendRequest asks for one message to go to a contact.
type SendRequest struct {
	To     string `json:"to"`
	Kind   Kind   `json:"kind,omitempty"`   // default text
	Text   string `json:"text,omitempty"`   // text, reply, edit (new text), reaction (emoji)
	Target string `json:"target,omitempty"` // reply, edit, delete, reaction: the message ID acted on
	TxnID  string `json:"txn_id,omitempty"` // client transaction ID: a retried request with the same ID is not sent twice
	Remove bool   `json:"remove,omitempty"` // reaction: take the emoji back
}

// EventType names an event.
type EventType string

// Event types.
const (
	EventMessage EventType = "message" // a new incoming or outgoing message
	EventUpdate  EventType = "update"  // a message changed: state, edit, delete, reaction
	EventContact EventType = "contact" // a contact was added, changed or removed
	EventTyping  EventType = "typing"  // a contact started or stopped typing
	EventGroup   EventType = "group"   // a group changed: invitation, members, name, epoch
)

// Event is delivered to subscribers (API server-sent events, mobile
// callbacks).
type Event struct {
	Seq     uint64    `json:"seq"`
	Type    EventType `json:"type"`
	Message *Message  `json:"message,omitempty"`
	Contact *Contact  `json:"contact,omitempty"`
	Group   *Group    `json:"group,omitempty"`
	Typing  *bool     `json:"typing,omitempty"`
	From    string    `json:"from,omitempty"` // contact name for typing events
}
