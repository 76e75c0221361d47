package node

import (
	"errors"
	"time"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/internal/store"
)

// The types the API shows are declared in package apitypes, which
// imports only the standard library; node gives them its own names.
// Message, MessageState and Event are still node's copies (see
// MessageState), as is Group in groups.go; api's tests check that each
// copy encodes exactly as its apitypes original.

// Limits a user can run into.
const (
	MaxTextSize = apitypes.MaxTextSize // bytes of UTF-8 in a message text
	MaxNameSize = apitypes.MaxNameSize // bytes in a contact or display name
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

// MessageState is apitypes.MessageState under node's own type: node
// calls its unexported rank method, which an alias could not carry. Once
// those calls use apitypes' Rank, MessageState, Message and Event become
// aliases.
type MessageState string

// Message states, in order (apitypes has their meaning).
const (
	StateQueued    = MessageState(apitypes.StateQueued)
	StateSent      = MessageState(apitypes.StateSent)
	StateDelivered = MessageState(apitypes.StateDelivered)
	StateRead      = MessageState(apitypes.StateRead)
	StateFailed    = MessageState(apitypes.StateFailed)
	StateReceived  = MessageState(apitypes.StateReceived)
)

// rank orders states so a state never moves backwards.
func (s MessageState) rank() int { return apitypes.MessageState(s).Rank() }

// Kind is what a message does.
type Kind = apitypes.Kind

// Message kinds users send.
const (
	KindText     = apitypes.KindText
	KindReply    = apitypes.KindReply
	KindEdit     = apitypes.KindEdit
	KindDelete   = apitypes.KindDelete
	KindReaction = apitypes.KindReaction
)

// Message is apitypes.Message with node's MessageState.
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
type Contact = apitypes.Contact

// Self describes this device.
type Self = apitypes.Self

// SendRequest asks for one message to go to a contact.
type SendRequest = apitypes.SendRequest

// EventType names an event.
type EventType = apitypes.EventType

// Event types.
const (
	EventMessage = apitypes.EventMessage
	EventUpdate  = apitypes.EventUpdate
	EventContact = apitypes.EventContact
	EventTyping  = apitypes.EventTyping
	EventGroup   = apitypes.EventGroup
)

// Event is apitypes.Event with node's Message and Group.
type Event struct {
	Seq     uint64    `json:"seq"`
	Type    EventType `json:"type"`
	Message *Message  `json:"message,omitempty"`
	Contact *Contact  `json:"contact,omitempty"`
	Group   *Group    `json:"group,omitempty"`
	Typing  *bool     `json:"typing,omitempty"`
	From    string    `json:"from,omitempty"` // contact name for typing events
}
