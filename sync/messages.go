package sync

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
)

// MessageVersion is the first byte of every sync message.
const MessageVersion = 1

// Limits of sync messages (docs/protocol/sync.md §18.5, §18.8).
const (
	// MaxMessageSize bounds one encoded sync message.
	MaxMessageSize = 192 << 10
	// MaxTextSize bounds a message text (as node.MaxTextSize).
	MaxTextSize = 16384
	// MaxAttachmentSize bounds a record's attachment pointer (the 16 KiB
	// a payload extension may hold).
	MaxAttachmentSize = 16 << 10
	// MaxEmojiSize bounds a reaction.
	MaxEmojiSize = 64
	// MaxCardSize bounds a contact card (card.MaxCardSize).
	MaxCardSize = card.MaxCardSize
	// MaxSeen bounds the entries of a version vector.
	MaxSeen = 64
	// MaxNoticeOps bounds the ops of one GroupNotice; MaxOpSize one op.
	MaxNoticeOps = 64
	MaxOpSize    = 8192
	// MaxGroupOps bounds the ops kept for one group (group.MaxOps).
	MaxGroupOps = 16384
	// MaxGroupKeysSize bounds an engine's exported keys.
	MaxGroupKeysSize = 160 << 10
	// MaxSettingKey and MaxSettingValue bound a setting; MaxSettings the
	// number kept.
	MaxSettingKey   = 64
	MaxSettingValue = 1024
	MaxSettings     = 1024
	// MaxDeviceEntrySize bounds a device's card entry.
	MaxDeviceEntrySize = 16 << 10
	// MaxEditActors, MaxDeleteActors and MaxReactions bound one message's
	// state, so that it fits a sync message.
	MaxEditActors   = 4
	MaxDeleteActors = 4
	MaxReactions    = 256
	// MaxLamport bounds every Lamport clock value.
	MaxLamport = 1 << 62
)

// Kind is the kind of a sync message.
type Kind uint8

// Sync message kinds.
const (
	KindTranscript Kind = 1 + iota
	KindIncoming
	KindEdit
	KindDelete
	KindReaction
	KindStatus
	KindReadMarker
	KindContactAdd
	KindContactRemove
	KindContactVerify
	KindGroupNotice
	KindSetting
	KindDeviceList
	KindDeviceInfo
	KindMessageState
	KindContactState
	KindGroupKeys
	kindEnd
)

var kindNames = [...]string{"", "transcript", "incoming", "edit", "delete", "reaction", "status",
	"read-marker", "contact-add", "contact-remove", "contact-verify", "group-notice", "setting",
	"device-list", "device-info", "message-state", "contact-state", "group-keys"}

func (k Kind) String() string {
	if k > 0 && k < kindEnd {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Message is one sync message. The concrete types are the pointers to
// Transcript, Incoming, Edit, Delete, Reaction, Status, ReadMarker,
// ContactAdd, ContactRemove, ContactVerify, GroupNotice, Setting,
// DeviceList, DeviceInfo, MessageState, ContactState and GroupKeys.
type Message interface {
	Kind() Kind
	encode(w *codec.Writer)
	decode(r *codec.Reader)
	check() error
}

// MessageID is a message's random 16-byte ID, its identity everywhere.
type MessageID [16]byte

// GroupID is a group's 32-byte ID.
type GroupID [32]byte

// ConvKind says what a conversation is.
type ConvKind uint8

// Conversation kinds.
const (
	ConvContact ConvKind = 1 // ID is the contact's account ID
	ConvGroup   ConvKind = 2 // ID is the group ID
)

// Conversation names a 1:1 conversation or a group.
type Conversation struct {
	Kind ConvKind
	ID   [32]byte
}

// Compare orders conversations by kind, then ID.
func (c Conversation) Compare(o Conversation) int {
	return cmp.Or(cmp.Compare(c.Kind, o.Kind), bytes.Compare(c.ID[:], o.ID[:]))
}

func (c Conversation) valid() bool { return c.Kind == ConvContact || c.Kind == ConvGroup }

func (c Conversation) encode(w *codec.Writer) {
	w.U8(uint8(c.Kind))
	w.Fixed(c.ID[:])
}

func readConv(r *codec.Reader) Conversation {
	var c Conversation
	c.Kind = ConvKind(r.U8())
	copy(c.ID[:], r.Fixed(32))
	return c
}

// Clock is a Lamport clock value and the device that made it. Clocks are
// compared by Lamport value, then device ID; a device never reuses a value.
type Clock struct {
	Lamport uint64
	Device  identity.DeviceID
}

// Compare orders clocks.
func (c Clock) Compare(o Clock) int {
	return cmp.Or(cmp.Compare(c.Lamport, o.Lamport), bytes.Compare(c.Device[:], o.Device[:]))
}

// IsZero reports an unset clock.
func (c Clock) IsZero() bool { return c == Clock{} }

func (c Clock) encode(w *codec.Writer) {
	w.U64(c.Lamport)
	w.Fixed(c.Device[:])
}

func readClock(r *codec.Reader) Clock {
	var c Clock
	c.Lamport = r.U64()
	copy(c.Device[:], r.Fixed(identity.DeviceIDSize))
	return c
}

// checkClock accepts a set clock below MaxLamport.
func checkClock(c Clock, what string) error {
	if c.Lamport == 0 || c.Lamport >= MaxLamport {
		return fmt.Errorf("%s clock %d out of range", what, c.Lamport)
	}
	return nil
}

// checkRegClock accepts an unset clock, whose value must then be empty,
// or a set one.
func checkRegClock(c Clock, empty bool, what string) error {
	if c.IsZero() {
		if !empty {
			return fmt.Errorf("%s has a value but no clock", what)
		}
		return nil
	}
	return checkClock(c, what)
}

// Dot is one entry of a version vector: the highest clock value seen from
// a device.
type Dot struct {
	Device  identity.DeviceID
	Lamport uint64
}

// VersionVector maps devices to clock values, sorted by device ID, without
// zero entries.
type VersionVector []Dot

// Get returns the value for a device (0 if none).
func (v VersionVector) Get(d identity.DeviceID) uint64 {
	i, ok := slices.BinarySearchFunc(v, d, func(x Dot, d identity.DeviceID) int { return bytes.Compare(x.Device[:], d[:]) })
	if !ok {
		return 0
	}
	return v[i].Lamport
}

// join returns the pointwise maximum of v and o, capped at MaxSeen
// entries (the smallest device IDs kept), and whether it differs from v.
func (v VersionVector) join(o VersionVector) (VersionVector, bool) {
	out := slices.Clone(v)
	changed := false
	for _, d := range o {
		i, ok := slices.BinarySearchFunc(out, d.Device, func(x Dot, d identity.DeviceID) int { return bytes.Compare(x.Device[:], d[:]) })
		switch {
		case ok && out[i].Lamport < d.Lamport:
			out[i].Lamport = d.Lamport
			changed = true
		case !ok:
			out = slices.Insert(out, i, d)
			changed = true
		}
	}
	if len(out) > MaxSeen {
		out = out[:MaxSeen]
		changed = !slices.Equal(out, v)
	}
	return out, changed
}

func (v VersionVector) encode(w *codec.Writer) {
	w.U16(uint16(len(v)))
	for _, d := range v {
		w.Fixed(d.Device[:])
		w.U64(d.Lamport)
	}
}

func readVV(r *codec.Reader) VersionVector {
	n := r.Count(MaxSeen)
	var v VersionVector
	for range n {
		var d Dot
		copy(d.Device[:], r.Fixed(identity.DeviceIDSize))
		d.Lamport = r.U64()
		v = append(v, d)
	}
	return v
}

func (v VersionVector) check() error {
	if len(v) > MaxSeen {
		return fmt.Errorf("version vector of %d entries", len(v))
	}
	for i, d := range v {
		if d.Lamport == 0 || d.Lamport >= MaxLamport {
			return fmt.Errorf("version vector value out of range")
		}
		if i > 0 && bytes.Compare(v[i-1].Device[:], d.Device[:]) >= 0 {
			return fmt.Errorf("version vector not sorted or duplicated")
		}
	}
	return nil
}

func checkText(s string, max int, what string) error {
	if len(s) > max || !utf8.ValidString(s) {
		return fmt.Errorf("%s must be at most %d bytes of UTF-8", what, max)
	}
	return nil
}

func checkEmoji(s string) error {
	if s == "" {
		return fmt.Errorf("empty reaction")
	}
	return checkText(s, MaxEmojiSize, "reaction")
}

// newMessage returns an empty message of kind k.
func newMessage(k Kind) Message {
	switch k {
	case KindTranscript:
		return &Transcript{}
	case KindIncoming:
		return &Incoming{}
	case KindEdit:
		return &Edit{}
	case KindDelete:
		return &Delete{}
	case KindReaction:
		return &Reaction{}
	case KindStatus:
		return &Status{}
	case KindReadMarker:
		return &ReadMarker{}
	case KindContactAdd:
		return &ContactAdd{}
	case KindContactRemove:
		return &ContactRemove{}
	case KindContactVerify:
		return &ContactVerify{}
	case KindGroupNotice:
		return &GroupNotice{}
	case KindSetting:
		return &Setting{}
	case KindDeviceList:
		return &DeviceList{}
	case KindDeviceInfo:
		return &DeviceInfo{}
	case KindMessageState:
		return &MessageState{}
	case KindContactState:
		return &ContactState{}
	case KindGroupKeys:
		return &GroupKeys{}
	}
	return nil
}

// Marshal encodes a sync message: version ‖ kind ‖ body. It refuses a
// message that Parse would refuse.
func Marshal(m Message) ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, m.Kind(), err)
	}
	w := codec.NewWriter(256)
	w.U8(MessageVersion)
	w.U8(uint8(m.Kind()))
	m.encode(w)
	if w.Len() > MaxMessageSize {
		return nil, fmt.Errorf("%w: %s of %d bytes, limit %d", ErrTooLarge, m.Kind(), w.Len(), MaxMessageSize)
	}
	return w.Bytes(), nil
}

// Parse decodes a sync message. Every length is checked against its limit
// before anything is allocated, lists must be in canonical order, and
// nothing may follow the body, so an accepted message re-encodes to the
// same bytes.
func Parse(b []byte) (Message, error) {
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: sync message of %d bytes, limit %d", ErrTooLarge, len(b), MaxMessageSize)
	}
	r := codec.NewReader(b)
	v, k := r.U8(), Kind(r.U8())
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("%w: sync message: %w", ErrMalformed, err)
	}
	if v != MessageVersion {
		return nil, fmt.Errorf("%w: sync message version %d", ErrMalformed, v)
	}
	m := newMessage(k)
	if m == nil {
		return nil, fmt.Errorf("%w: sync message %s", ErrMalformed, k)
	}
	m.decode(r)
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, k, err)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, k, err)
	}
	return m, nil
}

// opHash is the identity of a group op in a GroupNotice.
func opHash(op []byte) [32]byte { return sha256.Sum256(op) }
