package node

import (
	"errors"

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

// MessageState is where an outgoing message stands.
type MessageState = apitypes.MessageState

// Message states, in order (apitypes has their meaning).
const (
	StateQueued    = apitypes.StateQueued
	StateSent      = apitypes.StateSent
	StateDelivered = apitypes.StateDelivered
	StateRead      = apitypes.StateRead
	StateFailed    = apitypes.StateFailed
	StateReceived  = apitypes.StateReceived
)

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

// Message is a message as the API shows it.
type Message = apitypes.Message

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
	EventMessage  = apitypes.EventMessage
	EventUpdate   = apitypes.EventUpdate
	EventContact  = apitypes.EventContact
	EventTyping   = apitypes.EventTyping
	EventGroup    = apitypes.EventGroup
	EventDevice   = apitypes.EventDevice
	EventRequest  = apitypes.EventRequest
	EventGap      = apitypes.EventGap
	EventPresence = apitypes.EventPresence
	EventTimer    = apitypes.EventTimer
	EventFile     = apitypes.EventFile
)

// Presence is a contact's online status (presence.go).
type Presence = apitypes.Presence

// Event is one change the API streams.
type Event = apitypes.Event

// Device is one device of this account; LinkOffer a code that links a
// new one; DeviceEvent a link's, a transfer's or a revocation's news;
// HistoryProgress how far a new device's history transfer got.
type (
	Device          = apitypes.Device
	LinkOffer       = apitypes.LinkOffer
	DeviceEvent     = apitypes.DeviceEvent
	HistoryProgress = apitypes.HistoryProgress
)

// FileInfo is a message's attachment; SendFileRequest asks for one file
// to go to a contact.
type (
	FileInfo         = apitypes.FileInfo
	FileProgress     = apitypes.FileProgress
	AutoDownload     = apitypes.AutoDownload
	Request          = apitypes.Request
	ShortLink        = apitypes.ShortLink
	SendFileRequest  = apitypes.SendFileRequest
	GroupFileRequest = apitypes.GroupFileRequest
)

// File states (apitypes has their meaning).
const (
	FileSent        = apitypes.FileSent
	FileOffered     = apitypes.FileOffered
	FileDownloading = apitypes.FileDownloading
	FileDone        = apitypes.FileDone
	FileFailed      = apitypes.FileFailed
	FileExpired     = apitypes.FileExpired
)

// Upload states and progress phases of a sent file (apitypes has their
// meaning).
const (
	UploadPending = apitypes.UploadPending
	UploadDone    = apitypes.UploadDone
	UploadRefused = apitypes.UploadRefused
	PhaseSeal     = apitypes.PhaseSeal
	PhaseUpload   = apitypes.PhaseUpload
	PhaseServe    = apitypes.PhaseServe
)
