package node

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/node/shortlink"
	msync "github.com/hushnet/hush/sync"
)

// payloadVersion is the version of the plaintext inside a ratchet message.
const payloadVersion byte = 1

// payloadType says what a payload does (docs/protocol/messaging.md).
type payloadType uint8

const (
	ptText     payloadType = 1 // text, optionally a reply (target set)
	ptEdit     payloadType = 2 // replace the text of target
	ptDelete   payloadType = 3 // recall target for everyone
	ptReaction payloadType = 4 // add (or, with flagRemove, remove) an emoji on target
	ptDelivery payloadType = 5 // delivery receipt for ids
	ptRead     payloadType = 6 // read receipt for ids
	ptTyping   payloadType = 7 // typing indicator (flagOn)

	// Group traffic (docs/protocol/messaging.md "Groups").
	ptGroup     payloadType = 8  // pairwise: node/group engine data (Data)
	ptDirectory payloadType = 9  // pairwise: contact cards of a group's members (Data)
	ptCard      payloadType = 10 // on a group topic: a new member's card (Data)
	ptSyncAsk   payloadType = 11 // pairwise: "send me your digest of group Target"
	ptHave      payloadType = 12 // pairwise: a group digest (Data)
	ptWant      payloadType = 13 // pairwise: refs of group messages wanted (Data)
	ptRepair    payloadType = 14 // pairwise: group wire messages answering a Want (Data)
	ptOps       payloadType = 15 // pairwise: signed group ops (Data), for members who missed some

	// Between devices of one account (docs/protocol/sync.md §18.5).
	ptSync payloadType = 16 // a sync message (Data), only from a device on the account's list

	// The sender's profile (docs/protocol/addresses.md §20.7): its display
	// name (Text) and avatar (Data: a JPEG, or empty), to contacts and to
	// the account's other devices (profile.go). Types 17 and 18 are
	// session recovery's (recovery.go).
	ptProfile payloadType = 19

	// A contact's disappearing-messages timer (docs/protocol/messaging.md
	// "Disappearing messages"): data = u32 seconds (0: off), time = when
	// it was set (the latest wins).
	ptTimer payloadType = 20

	// Presence (docs/protocol/presence.md): flags say opted in
	// (presOptIn), whether the payload carries a status (presStatus) and
	// online or gone offline (presOnline); time is the status's "last
	// active" (0 without a status). Only ever sent on a live direct
	// connection, never deposited (outRec.DirectOnly).
	ptPresence payloadType = 21

	// Group read receipts and timers, pairwise (docs/protocol/groups.md
	// §16.12): a member's read receipt for the messages of one sender
	// (Data = group ID, IDs), to that sender's devices; and a group's
	// timer as a member holds it (Data = group ID ‖ u32 seconds ‖ u64
	// when set), answering a sync request and to an invitee.
	ptGroupRead  payloadType = 22
	ptGroupTimer payloadType = 23
)

const (
	flagRemove = 0x01 // reaction taken back
	flagOn     = 0x01 // typing started

	presOptIn  = 0x01 // presence: the sender has presence on
	presStatus = 0x02 // presence: the payload carries a status (the sender knows the receiver opted in)
	presOnline = 0x04 // presence: with presStatus, online (else gone offline at time)
)

// Payload limits.
const (
	msgIDSize        = 16
	maxReceiptIDs    = 1000
	maxReactionBytes = 64
	maxDataSize      = 240 << 10 // fits a ratchet plaintext (252 KiB) with the other fields
)

var errPayload = errors.New("malformed message payload")

// payload is the plaintext of one ratchet message between two devices.
type payload struct {
	Type   payloadType
	ID     [msgIDSize]byte
	TimeMS uint64
	Target [msgIDSize]byte // zero if none
	Text   string
	Flags  uint8
	IDs    [][msgIDSize]byte // receipts
	Card   []byte            // sender's contact card, on the first messages of a session
	Data   []byte            // group payloads; for 1:1 types, the extension fields (below)
	// Counter is a 1:1 text's place among the texts this device sent in
	// the conversation (1, 2, …; 0: none, as from older versions). It
	// travels as an extension field in Data (extCounter), which older
	// versions ignore for 1:1 types.
	Counter uint64
	// Clock is the author's Lamport clock on a 1:1 edit, delete or
	// reaction (extClock; zero: none), so every device of every party
	// orders them alike (docs/protocol/sync.md §18.6).
	Clock msync.Clock
	// Attach is an attachment pointer on a text (extAttach; nil: none),
	// docs/protocol/files.md §19.1.
	Attach []byte
	// Invite is the token of the one-time invitation the sender used
	// (extInvite; zero: none), on the first messages of a session it
	// opened: docs/protocol/addresses.md §20.4.
	Invite [shortlink.TokenSize]byte
	// TTL is a text's time to live in seconds, the sender's timer when
	// it sent it (extTTL; 0: none).
	TTL uint32
}

// Extension fields of 1:1 payloads (types below ptGroup): Data holds a
// sequence of (u8 tag, bytes32 value); a tag this version does not know
// is skipped, and a malformed sequence is ignored as a whole.
const (
	extCounter byte = 1 // u64: Counter
	extClock   byte = 2 // lamport u64 ‖ device fixed[16]: Clock
	extAttach  byte = 3 // an attachment pointer: Attach
	extInvite  byte = 4 // fixed[16]: Invite
	extTTL     byte = 5 // u32 seconds: TTL (texts)
	// maxExtSize bounds one extension value: an attachment pointer
	// (≤ 10,876 bytes); the other tags are short.
	maxExtSize = 16 << 10
)

// data returns the Data field as sent: the extension fields for 1:1
// types.
func (p *payload) data() []byte {
	if p.Type >= ptGroup || (p.Counter == 0 && p.Clock.IsZero() && p.Attach == nil && p.Invite == [shortlink.TokenSize]byte{} && p.TTL == 0) {
		return p.Data
	}
	w := codec.NewWriter(48 + len(p.Attach))
	if p.Counter != 0 {
		w.U8(extCounter)
		w.U32(8)
		w.U64(p.Counter)
	}
	if !p.Clock.IsZero() {
		w.U8(extClock)
		w.U32(8 + identity.DeviceIDSize)
		w.U64(p.Clock.Lamport)
		w.Fixed(p.Clock.Device[:])
	}
	if p.Attach != nil {
		w.U8(extAttach)
		w.Bytes32(p.Attach)
	}
	if p.Invite != [shortlink.TokenSize]byte{} {
		w.U8(extInvite)
		w.Bytes32(p.Invite[:])
	}
	if p.TTL != 0 {
		w.U8(extTTL)
		w.U32(4)
		w.U32(p.TTL)
	}
	return w.Bytes()
}

// parseExtensions reads the extension fields of a 1:1 payload's Data.
func (p *payload) parseExtensions() {
	r := codec.NewReader(p.Data)
	var counter uint64
	var clock msync.Clock
	var att []byte
	var invite [shortlink.TokenSize]byte
	var ttl uint32
	for r.Err() == nil && r.Remaining() > 0 {
		tag := r.U8()
		v := r.Bytes32(maxExtSize)
		switch {
		case tag == extCounter && len(v) == 8:
			counter = codec.NewReader(v).U64()
		case tag == extClock && len(v) == 8+identity.DeviceIDSize:
			vr := codec.NewReader(v)
			clock.Lamport = vr.U64()
			copy(clock.Device[:], vr.Fixed(identity.DeviceIDSize))
			if clock.Lamport == 0 || clock.Lamport >= msync.MaxLamport {
				clock = msync.Clock{}
			}
		case tag == extAttach && p.Type == ptText:
			att = codec.Clone(v)
		case tag == extInvite && len(v) == shortlink.TokenSize:
			invite = [shortlink.TokenSize]byte(v)
		case tag == extTTL && len(v) == 4 && p.Type == ptText:
			ttl = codec.NewReader(v).U32()
		}
	}
	if r.Err() == nil {
		p.Counter, p.Clock, p.Attach, p.Invite, p.TTL = counter, clock, att, invite, ttl
	}
}

func (p *payload) marshal() []byte {
	data := p.data()
	w := codec.NewWriter(64 + len(p.Text) + len(p.Card) + len(data) + 16*len(p.IDs))
	w.U8(payloadVersion)
	w.U8(uint8(p.Type))
	w.Fixed(p.ID[:])
	w.U64(p.TimeMS)
	w.Fixed(p.Target[:])
	w.Bytes32([]byte(p.Text))
	w.U8(p.Flags)
	w.U16(uint16(len(p.IDs)))
	for _, id := range p.IDs {
		w.Fixed(id[:])
	}
	w.Bytes32(p.Card)
	w.Bytes32(data)
	return w.Bytes()
}

func parsePayload(b []byte) (*payload, error) {
	r := codec.NewReader(b)
	if v := r.U8(); r.Err() == nil && v != payloadVersion {
		return nil, fmt.Errorf("%w: version %d", errPayload, v)
	}
	p := &payload{Type: payloadType(r.U8())}
	copy(p.ID[:], r.Fixed(msgIDSize))
	p.TimeMS = r.U64()
	copy(p.Target[:], r.Fixed(msgIDSize))
	p.Text = string(r.Bytes32(MaxTextSize))
	p.Flags = r.U8()
	n := r.Count(maxReceiptIDs)
	for range n {
		var id [msgIDSize]byte
		copy(id[:], r.Fixed(msgIDSize))
		p.IDs = append(p.IDs, id)
	}
	p.Card = codec.Clone(r.Bytes32(card.MaxCardSize))
	p.Data = codec.Clone(r.Bytes32(maxDataSize))
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: %w", errPayload, err)
	}
	if p.Type < ptText || (p.Type > ptSync && !recoveryType(p.Type) && p.Type != ptProfile && p.Type != ptTimer && p.Type != ptPresence && p.Type != ptGroupRead && p.Type != ptGroupTimer) {
		return nil, fmt.Errorf("%w: type %d", errPayload, p.Type)
	}
	if !utf8.ValidString(p.Text) {
		return nil, fmt.Errorf("%w: text is not UTF-8", errPayload)
	}
	if p.Type == ptReaction && len(p.Text) > maxReactionBytes {
		return nil, fmt.Errorf("%w: reaction too long", errPayload)
	}
	if p.Type < ptGroup && len(p.Data) > 0 {
		p.parseExtensions()
	}
	return p, nil
}
