package sync

import (
	"bytes"
	"cmp"
	"fmt"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
)

// Sync messages about one conversation's messages: what was sent or
// received, edits, recalls, reactions, delivery states and read markers.

// Record is a message as first sent: immutable, named by its ID.
type Record struct {
	Conv         Conversation
	ID           MessageID
	Author       identity.AccountID
	AuthorDevice identity.DeviceID
	TimeMS       uint64 // the author's clock, Unix milliseconds
	ReplyTo      MessageID
	Text         string
	// Attachment is the message's attachment pointer (node/attach, opaque
	// here; the node parses it), or empty.
	Attachment []byte
}

// encodeTail writes the record's fields after conv and ID.
func (m *Record) encodeTail(w *codec.Writer) {
	w.Fixed(m.Author[:])
	w.Fixed(m.AuthorDevice[:])
	w.U64(m.TimeMS)
	w.Fixed(m.ReplyTo[:])
	w.Bytes32([]byte(m.Text))
	w.Bytes16(m.Attachment)
}

func (m *Record) decodeTail(r *codec.Reader) {
	copy(m.Author[:], r.Fixed(identity.AccountIDSize))
	copy(m.AuthorDevice[:], r.Fixed(identity.DeviceIDSize))
	m.TimeMS = r.U64()
	copy(m.ReplyTo[:], r.Fixed(16))
	m.Text = string(r.Bytes32(MaxTextSize))
	if a := r.Bytes16(MaxAttachmentSize); len(a) > 0 {
		m.Attachment = bytes.Clone(a)
	}
}

func (m *Record) encode(w *codec.Writer) {
	m.Conv.encode(w)
	w.Fixed(m.ID[:])
	m.encodeTail(w)
}

func (m *Record) decode(r *codec.Reader) {
	m.Conv = readConv(r)
	copy(m.ID[:], r.Fixed(16))
	m.decodeTail(r)
}

func (m *Record) check() error {
	if !m.Conv.valid() {
		return fmt.Errorf("conversation kind %d", m.Conv.Kind)
	}
	if m.TimeMS >= 1<<63 {
		return fmt.Errorf("time out of range")
	}
	return checkText(m.Text, MaxTextSize, "text")
}

// tail returns the encoding of the fields after conv and ID: what two
// records under one ID are compared by.
func (m *Record) tail() []byte {
	w := codec.NewWriter(98 + len(m.Text) + len(m.Attachment))
	m.encodeTail(w)
	return w.Bytes()
}

// Transcript is a message this account sent, from the device that sent
// it. Author must be the account itself.
type Transcript struct{ Record }

// Incoming is a copy of a message this account received, for devices the
// sender may not have encrypted to.
type Incoming struct{ Record }

// Kind implements Message.
func (*Transcript) Kind() Kind { return KindTranscript }

// Kind implements Message.
func (*Incoming) Kind() Kind { return KindIncoming }

// Edit replaces the text of Target, by Actor (valid only from the
// message's author).
type Edit struct {
	Conv   Conversation
	Target MessageID
	Actor  identity.AccountID
	Clock  Clock
	Text   string
}

// Kind implements Message.
func (*Edit) Kind() Kind { return KindEdit }

func (m *Edit) encode(w *codec.Writer) {
	m.Conv.encode(w)
	w.Fixed(m.Target[:])
	w.Fixed(m.Actor[:])
	m.Clock.encode(w)
	w.Bytes32([]byte(m.Text))
}

func (m *Edit) decode(r *codec.Reader) {
	m.Conv = readConv(r)
	copy(m.Target[:], r.Fixed(16))
	copy(m.Actor[:], r.Fixed(identity.AccountIDSize))
	m.Clock = readClock(r)
	m.Text = string(r.Bytes32(MaxTextSize))
}

func (m *Edit) check() error {
	if !m.Conv.valid() {
		return fmt.Errorf("conversation kind %d", m.Conv.Kind)
	}
	if err := checkClock(m.Clock, "edit"); err != nil {
		return err
	}
	return checkText(m.Text, MaxTextSize, "text")
}

// Delete recalls Target, by Actor (valid only from the message's author).
type Delete struct {
	Conv   Conversation
	Target MessageID
	Actor  identity.AccountID
	Clock  Clock
}

// Kind implements Message.
func (*Delete) Kind() Kind { return KindDelete }

func (m *Delete) encode(w *codec.Writer) {
	m.Conv.encode(w)
	w.Fixed(m.Target[:])
	w.Fixed(m.Actor[:])
	m.Clock.encode(w)
}

func (m *Delete) decode(r *codec.Reader) {
	m.Conv = readConv(r)
	copy(m.Target[:], r.Fixed(16))
	copy(m.Actor[:], r.Fixed(identity.AccountIDSize))
	m.Clock = readClock(r)
}

func (m *Delete) check() error {
	if !m.Conv.valid() {
		return fmt.Errorf("conversation kind %d", m.Conv.Kind)
	}
	return checkClock(m.Clock, "delete")
}

// Reaction adds (or, with Remove, takes back) Actor's Emoji on Target.
type Reaction struct {
	Conv   Conversation
	Target MessageID
	Actor  identity.AccountID
	Clock  Clock
	Emoji  string
	Remove bool
}

// Kind implements Message.
func (*Reaction) Kind() Kind { return KindReaction }

func (m *Reaction) encode(w *codec.Writer) {
	m.Conv.encode(w)
	w.Fixed(m.Target[:])
	w.Fixed(m.Actor[:])
	m.Clock.encode(w)
	w.String16(m.Emoji)
	w.Bool(m.Remove)
}

func (m *Reaction) decode(r *codec.Reader) {
	m.Conv = readConv(r)
	copy(m.Target[:], r.Fixed(16))
	copy(m.Actor[:], r.Fixed(identity.AccountIDSize))
	m.Clock = readClock(r)
	m.Emoji = r.String16(MaxEmojiSize)
	m.Remove = r.Bool()
}

func (m *Reaction) check() error {
	if !m.Conv.valid() {
		return fmt.Errorf("conversation kind %d", m.Conv.Kind)
	}
	if err := checkClock(m.Clock, "reaction"); err != nil {
		return err
	}
	return checkEmoji(m.Emoji)
}

// DeliveryState is how far an own message got. It only moves forward.
type DeliveryState uint8

// Delivery states. Queued and failed belong to the sending device's
// outbox and are not synced.
const (
	StateSent      DeliveryState = 1
	StateDelivered DeliveryState = 2
	StateRead      DeliveryState = 3
)

// Status says an own message reached State.
type Status struct {
	Conv   Conversation
	Target MessageID
	State  DeliveryState
}

// Kind implements Message.
func (*Status) Kind() Kind { return KindStatus }

func (m *Status) encode(w *codec.Writer) {
	m.Conv.encode(w)
	w.Fixed(m.Target[:])
	w.U8(uint8(m.State))
}

func (m *Status) decode(r *codec.Reader) {
	m.Conv = readConv(r)
	copy(m.Target[:], r.Fixed(16))
	m.State = DeliveryState(r.U8())
}

func (m *Status) check() error {
	if !m.Conv.valid() {
		return fmt.Errorf("conversation kind %d", m.Conv.Kind)
	}
	if m.State < StateSent || m.State > StateRead {
		return fmt.Errorf("delivery state %d", m.State)
	}
	return nil
}

// ReadMarker says the user read Conv up to the message (TimeMS, ID).
type ReadMarker struct {
	Conv   Conversation
	TimeMS uint64
	ID     MessageID
}

// Kind implements Message.
func (*ReadMarker) Kind() Kind { return KindReadMarker }

func (m *ReadMarker) encode(w *codec.Writer) {
	m.Conv.encode(w)
	w.U64(m.TimeMS)
	w.Fixed(m.ID[:])
}

func (m *ReadMarker) decode(r *codec.Reader) {
	m.Conv = readConv(r)
	m.TimeMS = r.U64()
	copy(m.ID[:], r.Fixed(16))
}

func (m *ReadMarker) check() error {
	if !m.Conv.valid() {
		return fmt.Errorf("conversation kind %d", m.Conv.Kind)
	}
	return nil
}

// compare orders markers by (TimeMS, ID).
func (m *ReadMarker) compare(o *ReadMarker) int {
	return cmp.Or(cmp.Compare(m.TimeMS, o.TimeMS), bytes.Compare(m.ID[:], o.ID[:]))
}
