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

// Record is a message as first sent: immutable, named by its ID.
type Record struct {
	Conv         Conversation
	ID           MessageID
	Author       identity.AccountID
	AuthorDevice identity.DeviceID
	TimeMS       uint64 // the author's clock, Unix milliseconds
	ReplyTo      MessageID
	Text         string
}

// encodeTail writes the record's fields after conv and ID.
func (m *Record) encodeTail(w *codec.Writer) {
	w.Fixed(m.Author[:])
	w.Fixed(m.AuthorDevice[:])
	w.U64(m.TimeMS)
	w.Fixed(m.ReplyTo[:])
	w.Bytes32([]byte(m.Text))
}

func (m *Record) decodeTail(r *codec.Reader) {
	copy(m.Author[:], r.Fixed(identity.AccountIDSize))
	copy(m.AuthorDevice[:], r.Fixed(identity.DeviceIDSize))
	m.TimeMS = r.U64()
	copy(m.ReplyTo[:], r.Fixed(16))
	m.Text = string(r.Bytes32(MaxTextSize))
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
	w := codec.NewWriter(96 + len(m.Text))
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

// ContactAdd adds a contact (or changes its name or card).
type ContactAdd struct {
	Account identity.AccountID
	Clock   Clock
	Name    string
	Card    []byte
}

// Kind implements Message.
func (*ContactAdd) Kind() Kind { return KindContactAdd }

func (m *ContactAdd) encode(w *codec.Writer) {
	w.Fixed(m.Account[:])
	m.Clock.encode(w)
	w.String16(m.Name)
	w.Bytes32(m.Card)
}

func (m *ContactAdd) decode(r *codec.Reader) {
	copy(m.Account[:], r.Fixed(identity.AccountIDSize))
	m.Clock = readClock(r)
	m.Name = r.String16(MaxDeviceNameSize)
	m.Card = codec.Clone(r.Bytes32(MaxCardSize))
}

func (m *ContactAdd) check() error {
	if err := checkClock(m.Clock, "contact add"); err != nil {
		return err
	}
	if len(m.Card) > MaxCardSize {
		return fmt.Errorf("card too large")
	}
	return checkName(m.Name, false)
}

// ContactRemove removes a contact: the adds whose clocks Seen covers.
type ContactRemove struct {
	Account identity.AccountID
	Clock   Clock
	Seen    VersionVector
}

// Kind implements Message.
func (*ContactRemove) Kind() Kind { return KindContactRemove }

func (m *ContactRemove) encode(w *codec.Writer) {
	w.Fixed(m.Account[:])
	m.Clock.encode(w)
	m.Seen.encode(w)
}

func (m *ContactRemove) decode(r *codec.Reader) {
	copy(m.Account[:], r.Fixed(identity.AccountIDSize))
	m.Clock = readClock(r)
	m.Seen = readVV(r)
}

func (m *ContactRemove) check() error {
	if err := checkClock(m.Clock, "contact remove"); err != nil {
		return err
	}
	return m.Seen.check()
}

// ContactVerify sets whether a contact's safety number is verified.
type ContactVerify struct {
	Account  identity.AccountID
	Clock    Clock
	Verified bool
}

// Kind implements Message.
func (*ContactVerify) Kind() Kind { return KindContactVerify }

func (m *ContactVerify) encode(w *codec.Writer) {
	w.Fixed(m.Account[:])
	m.Clock.encode(w)
	w.Bool(m.Verified)
}

func (m *ContactVerify) decode(r *codec.Reader) {
	copy(m.Account[:], r.Fixed(identity.AccountIDSize))
	m.Clock = readClock(r)
	m.Verified = r.Bool()
}

func (m *ContactVerify) check() error { return checkClock(m.Clock, "contact verify") }

// GroupNotice carries signed group ops (opaque here; node/group checks
// them) that a device made or learned.
type GroupNotice struct {
	Group GroupID
	Ops   [][]byte
}

// Kind implements Message.
func (*GroupNotice) Kind() Kind { return KindGroupNotice }

func (m *GroupNotice) encode(w *codec.Writer) {
	w.Fixed(m.Group[:])
	w.U16(uint16(len(m.Ops)))
	for _, op := range m.Ops {
		w.Bytes16(op)
	}
}

func (m *GroupNotice) decode(r *codec.Reader) {
	copy(m.Group[:], r.Fixed(32))
	n := r.Count(MaxNoticeOps)
	for range n {
		m.Ops = append(m.Ops, codec.Clone(r.Bytes16(MaxOpSize)))
	}
}

func (m *GroupNotice) check() error {
	if len(m.Ops) == 0 || len(m.Ops) > MaxNoticeOps {
		return fmt.Errorf("group notice of %d ops, want 1 to %d", len(m.Ops), MaxNoticeOps)
	}
	for _, op := range m.Ops {
		if len(op) == 0 || len(op) > MaxOpSize {
			return fmt.Errorf("group op of %d bytes, want 1 to %d", len(op), MaxOpSize)
		}
	}
	return nil
}

// GroupKeys is a group engine's export of recent epoch secrets and
// receiving chains, handed to a new device in the history transfer.
type GroupKeys struct {
	Group GroupID
	Clock Clock
	Keys  []byte
}

// Kind implements Message.
func (*GroupKeys) Kind() Kind { return KindGroupKeys }

func (m *GroupKeys) encode(w *codec.Writer) {
	w.Fixed(m.Group[:])
	m.Clock.encode(w)
	w.Bytes32(m.Keys)
}

func (m *GroupKeys) decode(r *codec.Reader) {
	copy(m.Group[:], r.Fixed(32))
	m.Clock = readClock(r)
	m.Keys = codec.Clone(r.Bytes32(MaxGroupKeysSize))
}

func (m *GroupKeys) check() error {
	if len(m.Keys) == 0 || len(m.Keys) > MaxGroupKeysSize {
		return fmt.Errorf("group keys of %d bytes", len(m.Keys))
	}
	return checkClock(m.Clock, "group keys")
}

// Setting sets Key to Value (empty: unset).
type Setting struct {
	Key   string
	Clock Clock
	Value []byte
}

// Kind implements Message.
func (*Setting) Kind() Kind { return KindSetting }

func (m *Setting) encode(w *codec.Writer) {
	w.String16(m.Key)
	m.Clock.encode(w)
	w.Bytes16(m.Value)
}

func (m *Setting) decode(r *codec.Reader) {
	m.Key = r.String16(MaxSettingKey)
	m.Clock = readClock(r)
	m.Value = codec.Clone(r.Bytes16(MaxSettingValue))
}

func (m *Setting) check() error {
	if err := checkSettingKey(m.Key); err != nil {
		return err
	}
	if len(m.Value) > MaxSettingValue {
		return fmt.Errorf("setting value of %d bytes", len(m.Value))
	}
	return checkClock(m.Clock, "setting")
}

// checkSettingKey accepts 1 to MaxSettingKey bytes of [a-z0-9._/-].
func checkSettingKey(k string) error {
	if k == "" || len(k) > MaxSettingKey {
		return fmt.Errorf("setting key must be 1 to %d bytes", MaxSettingKey)
	}
	for i := range len(k) {
		c := k[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '/' || c == '-') {
			return fmt.Errorf("setting key holds %q", c)
		}
	}
	return nil
}

// DeviceList carries the account's signed device list.
type DeviceList struct {
	List *identity.DeviceList
}

// Kind implements Message.
func (*DeviceList) Kind() Kind { return KindDeviceList }

func (m *DeviceList) encode(w *codec.Writer) {
	if m.List == nil {
		w.U16(0)
		return
	}
	w.Bytes16(m.List.Marshal())
}

func (m *DeviceList) decode(r *codec.Reader) {
	b := r.Bytes16(identity.MaxDeviceListSize)
	if r.Err() != nil {
		return
	}
	l, err := identity.ParseDeviceList(b)
	if err != nil {
		r.Fail(err)
		return
	}
	m.List = l
}

func (m *DeviceList) check() error {
	if m.List == nil {
		return fmt.Errorf("no device list")
	}
	return nil
}

// DeviceInfo is one device's name and card entry (its prekey bundle,
// PeerID, addresses and mailboxes, as crypto/card encodes them). Only the
// device itself writes its own.
type DeviceInfo struct {
	Device identity.DeviceID
	Clock  Clock
	Name   string
	Entry  []byte
}

// Kind implements Message.
func (*DeviceInfo) Kind() Kind { return KindDeviceInfo }

func (m *DeviceInfo) encode(w *codec.Writer) {
	w.Fixed(m.Device[:])
	m.Clock.encode(w)
	w.String16(m.Name)
	w.Bytes32(m.Entry)
}

func (m *DeviceInfo) decode(r *codec.Reader) {
	copy(m.Device[:], r.Fixed(identity.DeviceIDSize))
	m.Clock = readClock(r)
	m.Name = r.String16(MaxDeviceNameSize)
	m.Entry = codec.Clone(r.Bytes32(MaxDeviceEntrySize))
}

func (m *DeviceInfo) check() error {
	if err := checkClock(m.Clock, "device info"); err != nil {
		return err
	}
	if len(m.Entry) > MaxDeviceEntrySize {
		return fmt.Errorf("device entry too large")
	}
	return checkName(m.Name, true)
}

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
