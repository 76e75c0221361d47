package sync

import (
	"bytes"
	"cmp"
	"fmt"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
)

// Whole-object sync messages: the merged state of one message or one
// contact, as history transfer and catching up send them.

// EditEntry is one actor's latest edit of a message.
type EditEntry struct {
	Actor identity.AccountID
	Clock Clock
	Text  string
}

// DeleteEntry is one actor's recall of a message.
type DeleteEntry struct {
	Actor identity.AccountID
	Clock Clock
}

// ReactionEntry is one actor's latest word on one emoji.
type ReactionEntry struct {
	Actor   identity.AccountID
	Emoji   string
	Clock   Clock
	Present bool
}

// MessageState is the merged state of one message (docs/protocol/sync.md
// §18.6): its record if known, its delivery state, and per-actor
// registers for edits, deletes and reactions, each list sorted by key.
type MessageState struct {
	Conv      Conversation
	ID        MessageID
	Record    *Record // nil until the message itself is known
	Status    DeliveryState
	Edits     []EditEntry     // sorted by actor
	Deletes   []DeleteEntry   // sorted by actor
	Reactions []ReactionEntry // sorted by (actor, emoji)
}

// Kind implements Message.
func (*MessageState) Kind() Kind { return KindMessageState }

func (m *MessageState) encode(w *codec.Writer) {
	m.Conv.encode(w)
	w.Fixed(m.ID[:])
	w.Bool(m.Record != nil)
	if m.Record != nil {
		m.Record.encodeTail(w)
	}
	w.U8(uint8(m.Status))
	w.U16(uint16(len(m.Edits)))
	for _, e := range m.Edits {
		w.Fixed(e.Actor[:])
		e.Clock.encode(w)
		w.Bytes32([]byte(e.Text))
	}
	w.U16(uint16(len(m.Deletes)))
	for _, d := range m.Deletes {
		w.Fixed(d.Actor[:])
		d.Clock.encode(w)
	}
	w.U16(uint16(len(m.Reactions)))
	for _, x := range m.Reactions {
		w.Fixed(x.Actor[:])
		w.String16(x.Emoji)
		x.Clock.encode(w)
		w.Bool(x.Present)
	}
}

func (m *MessageState) decode(r *codec.Reader) {
	m.Conv = readConv(r)
	copy(m.ID[:], r.Fixed(16))
	if r.Bool() {
		m.Record = &Record{Conv: m.Conv, ID: m.ID}
		m.Record.decodeTail(r)
	}
	m.Status = DeliveryState(r.U8())
	for range r.Count(MaxEditActors) {
		var e EditEntry
		copy(e.Actor[:], r.Fixed(identity.AccountIDSize))
		e.Clock = readClock(r)
		e.Text = string(r.Bytes32(MaxTextSize))
		m.Edits = append(m.Edits, e)
	}
	for range r.Count(MaxDeleteActors) {
		var d DeleteEntry
		copy(d.Actor[:], r.Fixed(identity.AccountIDSize))
		d.Clock = readClock(r)
		m.Deletes = append(m.Deletes, d)
	}
	for range r.Count(MaxReactions) {
		var x ReactionEntry
		copy(x.Actor[:], r.Fixed(identity.AccountIDSize))
		x.Emoji = r.String16(MaxEmojiSize)
		x.Clock = readClock(r)
		x.Present = r.Bool()
		m.Reactions = append(m.Reactions, x)
	}
}

func (m *MessageState) check() error {
	if !m.Conv.valid() {
		return fmt.Errorf("conversation kind %d", m.Conv.Kind)
	}
	if m.Record != nil {
		if m.Record.Conv != m.Conv || m.Record.ID != m.ID {
			return fmt.Errorf("record of another message")
		}
		if err := m.Record.check(); err != nil {
			return err
		}
	}
	if m.Status > StateRead {
		return fmt.Errorf("delivery state %d", m.Status)
	}
	if len(m.Edits) > MaxEditActors || len(m.Deletes) > MaxDeleteActors || len(m.Reactions) > MaxReactions {
		return fmt.Errorf("message state lists over their limits")
	}
	for i, e := range m.Edits {
		if i > 0 && bytes.Compare(m.Edits[i-1].Actor[:], e.Actor[:]) >= 0 {
			return fmt.Errorf("edits not sorted by actor")
		}
		if err := checkClock(e.Clock, "edit"); err != nil {
			return err
		}
		if err := checkText(e.Text, MaxTextSize, "edit text"); err != nil {
			return err
		}
	}
	for i, d := range m.Deletes {
		if i > 0 && bytes.Compare(m.Deletes[i-1].Actor[:], d.Actor[:]) >= 0 {
			return fmt.Errorf("deletes not sorted by actor")
		}
		if err := checkClock(d.Clock, "delete"); err != nil {
			return err
		}
	}
	for i, x := range m.Reactions {
		if i > 0 && reactionKeyCompare(&m.Reactions[i-1], &x) >= 0 {
			return fmt.Errorf("reactions not sorted")
		}
		if err := checkClock(x.Clock, "reaction"); err != nil {
			return err
		}
		if err := checkEmoji(x.Emoji); err != nil {
			return err
		}
	}
	return nil
}

func reactionKeyCompare(a, b *ReactionEntry) int {
	return cmp.Or(bytes.Compare(a.Actor[:], b.Actor[:]), cmp.Compare(a.Emoji, b.Emoji))
}

// ContactState is the merged state of one contact (docs/protocol/sync.md
// §18.6): an add-wins observed-remove set entry with version-vector
// tombstones, and two last-writer-wins registers.
type ContactState struct {
	Account identity.AccountID
	// Added holds, per device, the highest clock of an add; Removed the
	// highest add clock a remove took away.
	Added, Removed VersionVector
	// InfoClock orders the name and card register (zero: never set).
	InfoClock Clock
	Name      string
	Card      []byte
	// VerifiedClock orders the verified register (zero: never set).
	VerifiedClock Clock
	Verified      bool
}

// Kind implements Message.
func (*ContactState) Kind() Kind { return KindContactState }

// Present reports whether the contact is in the address book: some add
// that no remove has seen.
func (m *ContactState) Present() bool {
	for _, d := range m.Added {
		if d.Lamport > m.Removed.Get(d.Device) {
			return true
		}
	}
	return false
}

func (m *ContactState) encode(w *codec.Writer) {
	w.Fixed(m.Account[:])
	m.Added.encode(w)
	m.Removed.encode(w)
	m.InfoClock.encode(w)
	w.String16(m.Name)
	w.Bytes32(m.Card)
	m.VerifiedClock.encode(w)
	w.Bool(m.Verified)
}

func (m *ContactState) decode(r *codec.Reader) {
	copy(m.Account[:], r.Fixed(identity.AccountIDSize))
	m.Added = readVV(r)
	m.Removed = readVV(r)
	m.InfoClock = readClock(r)
	m.Name = r.String16(MaxDeviceNameSize)
	m.Card = codec.Clone(r.Bytes32(MaxCardSize))
	m.VerifiedClock = readClock(r)
	m.Verified = r.Bool()
}

func (m *ContactState) check() error {
	if err := m.Added.check(); err != nil {
		return err
	}
	if err := m.Removed.check(); err != nil {
		return err
	}
	if err := checkRegClock(m.InfoClock, m.Name == "" && len(m.Card) == 0, "contact info"); err != nil {
		return err
	}
	if !m.InfoClock.IsZero() {
		if err := checkName(m.Name, false); err != nil {
			return err
		}
	}
	if len(m.Card) > MaxCardSize {
		return fmt.Errorf("card too large")
	}
	return checkRegClock(m.VerifiedClock, !m.Verified, "contact verified")
}
