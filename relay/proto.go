// Package relay is hush's store-and-forward mailbox service,
// /hush/mailbox/1 (docs/RELAY.md): the protocol messages, the server a
// community runs (hush-relay) and the client a node uses. Mailboxes hold
// sealed envelopes for offline devices; deposits carry no sender identity;
// owners fetch or subscribe with a signed challenge and acknowledge to
// delete. The relay's group store also files the messages of the group
// topics an owner watches into its mailbox.
package relay

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/internal/gossip"
	"github.com/hushnet/hush/internal/wire"
)

// ProtocolID is the mailbox protocol.
const ProtocolID = "/hush/mailbox/1"

// Sizes of identifiers and fields.
const (
	IDSize        = 32 // mailbox and deposit IDs
	MessageIDSize = 16
	NonceSize     = 32
	MaxInviteSize = 256
	MaxBundleSize = 4096 // an encoded prekey bundle (pqxdh.MaxBundleSize is 3539)
	MaxOneTime    = 100  // one-time bundles per PutPrekeys
	MaxErrorText  = 256
	// MaxWatchTopics caps the group topics of one Watch, and so the
	// topics one mailbox watches.
	MaxWatchTopics = 64
	// MaxFrame caps every frame on the protocol: the larger of the largest
	// Deposit/Deliver (envelope plus room for the message fields) and a
	// full PutPrekeys (100 one-time bundles of MaxBundleSize).
	MaxFrame = max(envelope.MaxEnvelopeSize+512, maxPutPrekeys)
	// maxPutPrekeys is kind ‖ mailbox ‖ time ‖ last resort ‖ count ‖
	// one-time bundles ‖ sig at their maximum sizes.
	maxPutPrekeys = 1 + IDSize + 8 + (2 + MaxBundleSize) + 2 + MaxOneTime*(2+MaxBundleSize) + 64
)

// Signature labels (identity-style: u16 length ‖ label ‖ message).
const (
	labelCreate     = "hush/v1/mailbox-create"
	labelSubscribe  = "hush/v1/mailbox-subscribe"
	labelPrekeys    = "hush/v1/mailbox-prekeys"
	labelDelete     = "hush/v1/mailbox-delete"
	labelWatch      = "hush/v1/mailbox-watch"
	labelSetWake    = "hush/v1/mailbox-wake"
	labelAddPrekeys = "hush/v1/mailbox-add-prekeys"
	labelPoW        = "hush/v1/mailbox-pow"
)

// Kind is a message kind on the wire.
type Kind = wire.Kind

// Message kinds (docs/RELAY.md "Messages").
const (
	KindCreate      Kind = 1
	KindCreated     Kind = 2
	KindDeposit     Kind = 3
	KindReceipt     Kind = 4
	KindHello       Kind = 5
	KindChallenge   Kind = 6
	KindSubscribe   Kind = 7
	KindDeliver     Kind = 8
	KindAck         Kind = 9
	KindDrained     Kind = 10
	KindPutPrekeys  Kind = 11
	KindGetPrekeys  Kind = 12
	KindPrekeys     Kind = 13
	KindOK          Kind = 14
	KindError       Kind = 15
	KindPing        Kind = 16
	KindDelete      Kind = 17
	KindWatch       Kind = 18
	KindSetWake     Kind = 19
	KindAddPrekeys  Kind = 20
	KindPrekeyCount Kind = 21
	KindDepositMany Kind = 22
	KindReceipts    Kind = 23
)

// MaxDepositMany caps the envelopes of one DepositMany. The frame cap
// (MaxFrame) bounds their bytes.
const MaxDepositMany = 256

// ID is a mailbox or deposit ID.
type ID [IDSize]byte

// MessageID names one stored envelope.
type MessageID [MessageIDSize]byte

// ErrorCode is the code of an Error message.
type ErrorCode uint16

// Error codes (docs/RELAY.md "Error codes").
const (
	CodeBadRequest     ErrorCode = 1
	CodeAuth           ErrorCode = 2
	CodeNotFound       ErrorCode = 3
	CodeQuota          ErrorCode = 4
	CodeTooLarge       ErrorCode = 5
	CodeRateLimited    ErrorCode = 6
	CodeFull           ErrorCode = 7
	CodeCreationClosed ErrorCode = 8
	CodeInternal       ErrorCode = 9
	CodeUnsupported    ErrorCode = 10
)

// Sentinel errors, one per code; a *RemoteError matches its sentinel with
// errors.Is.
var (
	ErrBadRequest     = errors.New("relay: bad request")
	ErrAuth           = errors.New("relay: authentication failed")
	ErrNotFound       = errors.New("relay: no such mailbox")
	ErrQuota          = errors.New("relay: mailbox full (quota)")
	ErrTooLarge       = errors.New("relay: envelope too large")
	ErrRateLimited    = errors.New("relay: rate limited, retry later")
	ErrFull           = errors.New("relay: relay storage full")
	ErrCreationClosed = errors.New("relay: mailbox creation refused")
	ErrInternal       = errors.New("relay: relay failed to store")
	ErrUnsupported    = errors.New("relay: not offered by this relay")
)

var codeErrors = map[ErrorCode]error{
	CodeBadRequest: ErrBadRequest, CodeAuth: ErrAuth, CodeNotFound: ErrNotFound,
	CodeQuota: ErrQuota, CodeTooLarge: ErrTooLarge, CodeRateLimited: ErrRateLimited,
	CodeFull: ErrFull, CodeCreationClosed: ErrCreationClosed, CodeInternal: ErrInternal,
	CodeUnsupported: ErrUnsupported,
}

// RemoteError is an Error message received from a relay.
type RemoteError struct {
	Code    ErrorCode
	Message string
}

func (e *RemoteError) Error() string {
	if s := codeErrors[e.Code]; s != nil {
		return fmt.Sprintf("%v: %s", s, e.Message)
	}
	return fmt.Sprintf("relay: error %d: %s", e.Code, e.Message)
}

// Is matches the sentinel of the code.
func (e *RemoteError) Is(target error) bool { return codeErrors[e.Code] == target }

// CodeOf returns the wire code for err (CodeInternal if unknown).
func CodeOf(err error) ErrorCode {
	for c, s := range codeErrors {
		if errors.Is(err, s) {
			return c
		}
	}
	return CodeInternal
}

// knownKinds is every kind a decoder accepts.
var knownKinds = wire.NewKindSet(KindCreate, KindCreated, KindDeposit, KindReceipt, KindHello,
	KindChallenge, KindSubscribe, KindDeliver, KindAck, KindDrained, KindPutPrekeys,
	KindGetPrekeys, KindPrekeys, KindOK, KindError, KindPing, KindDelete, KindWatch, KindSetWake,
	KindAddPrekeys, KindPrekeyCount, KindDepositMany, KindReceipts)

// Create asks for a new mailbox.
type Create struct {
	Owner  ed25519.PublicKey
	Time   uint64
	Invite []byte
	Nonce  uint64 // proof of work
	Sig    []byte
}

// Created answers Create.
type Created struct {
	Mailbox     ID
	Deposit     ID
	MaxMessages uint32
	MaxBytes    uint64
	TTLSeconds  uint64
}

// Deposit stores an envelope in the mailbox behind a deposit ID.
type Deposit struct {
	Deposit  ID
	Envelope []byte
}

// Receipt confirms a durable deposit.
type Receipt struct{ Message MessageID }

// DepositItem is one envelope of a DepositMany and the deposit ID of the
// mailbox it goes into.
type DepositItem struct {
	Deposit  ID
	Envelope []byte
}

// DepositMany stores several envelopes, in order, each in the mailbox
// behind its deposit ID (docs/RELAY.md "Deposits in batches"). The relay
// answers with Receipts, one result per item in the same order, once
// every stored item is on disk.
type DepositMany struct{ Items []DepositItem }

// ItemResult is the outcome of one DepositMany item: Code 0 and the
// message ID when it was stored, else the error code (as an Error
// message's) and a zero ID.
type ItemResult struct {
	Code    ErrorCode
	Message MessageID
}

// Err returns nil for a stored item, else the *RemoteError of its code.
func (r ItemResult) Err() error {
	if r.Code == 0 {
		return nil
	}
	return &RemoteError{Code: r.Code, Message: codeText[r.Code]}
}

// Receipts answers DepositMany.
type Receipts struct{ Results []ItemResult }

// Hello opens an owner session.
type Hello struct{ Mailbox ID }

// Challenge is the nonce the owner signs.
type Challenge struct {
	Nonce [NonceSize]byte
	Time  uint64
}

// Subscribe proves ownership and starts delivery.
type Subscribe struct {
	Mailbox ID
	Nonce   [NonceSize]byte
	Live    bool
	Sig     []byte
}

// Source says how a delivered message reached the mailbox.
type Source uint8

// Sources of a Deliver.
const (
	// SourceDeposit: a sealed envelope (PROTOCOL.md §7) deposited with
	// Deposit.
	SourceDeposit Source = 0
	// SourceTopic: the data of a GossipSub message the relay saw on a
	// group topic the mailbox watches (Watch). It is the group message as
	// published (end-to-end encrypted and signed with the group sender
	// key), not an HPKE envelope.
	SourceTopic Source = 1
)

func (s Source) valid() bool { return s == SourceDeposit || s == SourceTopic }

// Deliver carries one stored message to the owner: a sealed envelope
// (SourceDeposit) or the data of a group topic message (SourceTopic),
// with the topic it was seen on, so the owner knows its group without
// trying each one.
type Deliver struct {
	Message  MessageID
	StoredAt uint64 // unix seconds
	Source   Source
	Topic    string // SourceTopic only; may be empty
	Envelope []byte
}

// Ack deletes a delivered envelope.
type Ack struct{ Message MessageID }

// PutPrekeys replaces the mailbox's prekey bundles.
type PutPrekeys struct {
	Mailbox    ID
	Time       uint64
	LastResort []byte
	OneTime    [][]byte
	Sig        []byte
}

// AddPrekeys replaces the mailbox's last-resort bundle and adds one-time
// bundles after those the relay still holds (it keeps at most its
// configured number; the excess is dropped). The relay answers with
// PrekeyCount, so the owner tops up only what was fetched: bundles the
// relay still holds were handed to nobody, and the owner keeps no
// one-time key that no relay holds and no sender fetched.
type AddPrekeys struct {
	Mailbox    ID
	Time       uint64
	LastResort []byte
	OneTime    [][]byte
	Sig        []byte
}

// PrekeyCount answers AddPrekeys: the one-time bundles the relay now
// holds for the mailbox.
type PrekeyCount struct{ OneTime uint16 }

// GetPrekeys asks for one bundle of the mailbox behind a deposit ID.
type GetPrekeys struct{ Deposit ID }

// Prekeys answers GetPrekeys.
type Prekeys struct {
	Bundle  []byte
	OneTime bool
}

// ErrorMsg is an Error message.
type ErrorMsg struct {
	Code    ErrorCode
	Message string
}

// Delete removes a mailbox and everything in it.
type Delete struct {
	Mailbox ID
	Time    uint64
	Sig     []byte
}

// Watch replaces the set of group topics the relay watches for the
// mailbox (its group store): messages seen on those topics are filed into
// the mailbox with SourceTopic. An empty list stops watching. Time must be
// later than the time of the last Watch the relay accepted for the
// mailbox.
type Watch struct {
	Mailbox ID
	Time    uint64
	Topics  []string
	Sig     []byte
}

// MaxWakeHandle caps a wake handle's length in bytes.
const MaxWakeHandle = 8192

// SetWake attaches a push bridge's wake handle to the mailbox (an empty
// handle detaches it): when an envelope arrives while no subscription is
// live, the relay asks its configured bridge to wake the owner's device
// (docs/RELAY.md "Wake-ups"). The handle is opaque to the relay, printable
// ASCII, at most MaxWakeHandle bytes. Time must be later than the time of
// the last SetWake the relay accepted for the mailbox.
type SetWake struct {
	Mailbox ID
	Time    uint64
	Handle  string
	Sig     []byte
}

// appendFrame appends m's frame (length prefix, then Encode(m)) to dst,
// as wire.AppendFrame(dst, Encode(m)) does (the same errors); a
// DepositMany is encoded straight into dst, without a copy of its
// envelopes first (the Depositor's frames: up to MaxFrame each).
func appendFrame(dst []byte, m any) ([]byte, error) {
	v, ok := m.(*DepositMany)
	if !ok {
		return wire.AppendFrame(dst, Encode(m))
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, uint8(KindDepositMany))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(v.Items)))
	for _, it := range v.Items {
		dst = append(dst, it.Deposit[:]...)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(it.Envelope)))
		dst = append(dst, it.Envelope...)
	}
	n := len(dst) - start - wire.HeaderSize
	if n > wire.MaxFrame {
		return dst[:start], fmt.Errorf("%w: payload of %d bytes, limit %d", wire.ErrFrameTooLarge, n, wire.MaxFrame)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

// Encode returns the frame payload (kind ‖ body) for a message value.
func Encode(m any) []byte {
	w := codec.NewWriter(64)
	switch v := m.(type) {
	case *Create:
		w.U8(uint8(KindCreate))
		w.Fixed(v.createBody())
		w.Fixed(v.Sig)
	case *Created:
		w.U8(uint8(KindCreated))
		w.Fixed(v.Mailbox[:])
		w.Fixed(v.Deposit[:])
		w.U32(v.MaxMessages)
		w.U64(v.MaxBytes)
		w.U64(v.TTLSeconds)
	case *Deposit:
		w = codec.NewWriter(len(v.Envelope) + 40)
		w.U8(uint8(KindDeposit))
		w.Fixed(v.Deposit[:])
		w.Bytes32(v.Envelope)
	case *Receipt:
		w.U8(uint8(KindReceipt))
		w.Fixed(v.Message[:])
	case *DepositMany:
		n := 3
		for _, it := range v.Items {
			n += IDSize + 4 + len(it.Envelope)
		}
		w = codec.NewWriter(n)
		w.U8(uint8(KindDepositMany))
		w.U16(uint16(len(v.Items)))
		for _, it := range v.Items {
			w.Fixed(it.Deposit[:])
			w.Bytes32(it.Envelope)
		}
	case *Receipts:
		w = codec.NewWriter(3 + len(v.Results)*(2+MessageIDSize))
		w.U8(uint8(KindReceipts))
		w.U16(uint16(len(v.Results)))
		for _, r := range v.Results {
			w.U16(uint16(r.Code))
			w.Fixed(r.Message[:])
		}
	case *Hello:
		w.U8(uint8(KindHello))
		w.Fixed(v.Mailbox[:])
	case *Challenge:
		w.U8(uint8(KindChallenge))
		w.Fixed(v.Nonce[:])
		w.U64(v.Time)
	case *Subscribe:
		w.U8(uint8(KindSubscribe))
		w.Fixed(v.subscribeBody())
		w.Fixed(v.Sig)
	case *Deliver:
		w = codec.NewWriter(len(v.Envelope) + 32)
		w.U8(uint8(KindDeliver))
		w.Fixed(v.Message[:])
		w.U64(v.StoredAt)
		w.U8(uint8(v.Source))
		if v.Source == SourceTopic {
			writeTopic(w, v.Topic)
		}
		w.Bytes32(v.Envelope)
	case *Ack:
		w.U8(uint8(KindAck))
		w.Fixed(v.Message[:])
	case *PutPrekeys:
		w = codec.NewWriter(4096 * (1 + len(v.OneTime)))
		w.U8(uint8(KindPutPrekeys))
		w.Fixed(v.prekeysBody())
		w.Fixed(v.Sig)
	case *GetPrekeys:
		w.U8(uint8(KindGetPrekeys))
		w.Fixed(v.Deposit[:])
	case *Prekeys:
		w.U8(uint8(KindPrekeys))
		w.Bytes16(v.Bundle)
		w.Bool(v.OneTime)
	case *ErrorMsg:
		w.U8(uint8(KindError))
		w.U16(uint16(v.Code))
		msg := v.Message
		if len(msg) > MaxErrorText {
			msg = msg[:MaxErrorText]
		}
		w.String16(msg)
	case *Delete:
		w.U8(uint8(KindDelete))
		w.Fixed(v.deleteBody())
		w.Fixed(v.Sig)
	case *Watch:
		w.U8(uint8(KindWatch))
		w.Fixed(v.watchBody())
		w.Fixed(v.Sig)
	case *SetWake:
		w.U8(uint8(KindSetWake))
		w.Fixed(v.setWakeBody())
		w.Fixed(v.Sig)
	case *AddPrekeys:
		w = codec.NewWriter(4096 * (1 + len(v.OneTime)))
		w.U8(uint8(KindAddPrekeys))
		w.Fixed(v.prekeysBody())
		w.Fixed(v.Sig)
	case *PrekeyCount:
		w.U8(uint8(KindPrekeyCount))
		w.U16(v.OneTime)
	case okMsg:
		w.U8(uint8(KindOK))
	case drainedMsg:
		w.U8(uint8(KindDrained))
	case pingMsg:
		w.U8(uint8(KindPing))
	default:
		panic(fmt.Sprintf("relay: Encode of %T", m))
	}
	return w.Bytes()
}

// Bodiless messages.
type (
	okMsg      struct{}
	drainedMsg struct{}
	pingMsg    struct{}
)

// OK, Drained and Ping are the bodiless messages, for Encode.
var (
	OK      = okMsg{}
	Drained = drainedMsg{}
	Ping    = pingMsg{}
)

func (c *Create) createBody() []byte {
	w := codec.NewWriter(64 + len(c.Invite))
	w.Fixed(c.Owner)
	w.U64(c.Time)
	w.Bytes16(c.Invite)
	w.U64(c.Nonce)
	return w.Bytes()
}

func (s *Subscribe) subscribeBody() []byte {
	w := codec.NewWriter(80)
	w.Fixed(s.Mailbox[:])
	w.Fixed(s.Nonce[:])
	w.Bool(s.Live)
	return w.Bytes()
}

func (p *PutPrekeys) prekeysBody() []byte {
	return prekeysBody(p.Mailbox, p.Time, p.LastResort, p.OneTime)
}

func (p *AddPrekeys) prekeysBody() []byte {
	return prekeysBody(p.Mailbox, p.Time, p.LastResort, p.OneTime)
}

// prekeysBody is the signed body of PutPrekeys and AddPrekeys (each
// signed under its own label).
func prekeysBody(mailbox ID, t uint64, lastResort []byte, oneTime [][]byte) []byte {
	w := codec.NewWriter(4096 * (1 + len(oneTime)))
	w.Fixed(mailbox[:])
	w.U64(t)
	w.Bytes16(lastResort)
	w.U16(uint16(len(oneTime)))
	for _, b := range oneTime {
		w.Bytes16(b)
	}
	return w.Bytes()
}

func (d *Delete) deleteBody() []byte {
	w := codec.NewWriter(48)
	w.Fixed(d.Mailbox[:])
	w.U64(d.Time)
	return w.Bytes()
}

func (m *SetWake) setWakeBody() []byte {
	w := codec.NewWriter(48 + len(m.Handle))
	w.Fixed(m.Mailbox[:])
	w.U64(m.Time)
	w.String16(m.Handle)
	return w.Bytes()
}

func (m *Watch) watchBody() []byte {
	w := codec.NewWriter(48 + len(m.Topics)*(1+gossip.MaxTopicLen))
	w.Fixed(m.Mailbox[:])
	w.U64(m.Time)
	w.U16(uint16(len(m.Topics)))
	for _, t := range m.Topics {
		writeBytes8(w, []byte(t))
	}
	return w.Bytes()
}

// writeBytes8 appends b with a u8 length prefix. It panics if b is longer
// than 255 bytes: callers check their own, smaller limits first.
func writeBytes8(w *codec.Writer, b []byte) {
	if len(b) > 0xFF {
		panic("relay: bytes8 value longer than 255 bytes")
	}
	w.U8(uint8(len(b)))
	w.Fixed(b)
}

// readTopics reads a u16 count ≤ MaxWatchTopics of bytes8 group topic
// names, each of which must be a valid name (gossip.ValidTopic).
// writeTopic writes the topic of a topic message: u8 length ‖ name, the
// length 0 when unknown.
func writeTopic(w *codec.Writer, t string) {
	w.U8(uint8(len(t)))
	w.Fixed([]byte(t))
}

// readTopic reads what writeTopic wrote: empty, or a valid topic name.
func readTopic(r *codec.Reader) string {
	t := string(r.Fixed(int(r.U8())))
	if r.Err() == nil && t != "" && !gossip.ValidTopic(t) {
		r.Fail(fmt.Errorf("%w: not a group topic name", codec.ErrInvalid))
	}
	return t
}

func readTopics(r *codec.Reader) []string {
	n := r.Count(MaxWatchTopics)
	var out []string
	for range n {
		t := string(r.Fixed(int(r.U8())))
		if r.Err() != nil {
			return nil
		}
		if !gossip.ValidTopic(t) {
			r.Fail(fmt.Errorf("%w: not a group topic name", codec.ErrInvalid))
			return nil
		}
		out = append(out, t)
	}
	return out
}

// Decode parses a frame payload into one of the message types above
// (pointers), or OK, Drained or Ping. It rejects unknown kinds, oversize
// fields and trailing bytes.
func Decode(b []byte) (any, error) {
	kind, body, err := wire.DecodeMessage(b, knownKinds)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	r := codec.NewReader(body)
	var m any
	switch kind {
	case KindCreate:
		v := &Create{Owner: codec.Clone(r.Fixed(ed25519.PublicKeySize)), Time: r.U64(),
			Invite: codec.Clone(r.Bytes16(MaxInviteSize)), Nonce: r.U64()}
		v.Sig = codec.Clone(r.Fixed(ed25519.SignatureSize))
		m = v
	case KindCreated:
		v := &Created{}
		copy(v.Mailbox[:], r.Fixed(IDSize))
		copy(v.Deposit[:], r.Fixed(IDSize))
		v.MaxMessages, v.MaxBytes, v.TTLSeconds = r.U32(), r.U64(), r.U64()
		m = v
	case KindDeposit:
		v := &Deposit{}
		copy(v.Deposit[:], r.Fixed(IDSize))
		v.Envelope = r.Bytes32(envelope.MaxEnvelopeSize)
		m = v
	case KindReceipt:
		v := &Receipt{}
		copy(v.Message[:], r.Fixed(MessageIDSize))
		m = v
	case KindDepositMany:
		n := r.Count(MaxDepositMany) // 0: a probe, answered by an empty Receipts
		v := &DepositMany{Items: make([]DepositItem, 0, n)}
		for range n {
			var it DepositItem
			copy(it.Deposit[:], r.Fixed(IDSize))
			it.Envelope = r.Bytes32(envelope.MaxEnvelopeSize)
			if r.Err() != nil {
				break
			}
			v.Items = append(v.Items, it)
		}
		m = v
	case KindReceipts:
		n := r.Count(MaxDepositMany)
		v := &Receipts{Results: make([]ItemResult, 0, n)}
		for range n {
			var res ItemResult
			res.Code = ErrorCode(r.U16())
			copy(res.Message[:], r.Fixed(MessageIDSize))
			if r.Err() != nil {
				break
			}
			v.Results = append(v.Results, res)
		}
		m = v
	case KindHello:
		v := &Hello{}
		copy(v.Mailbox[:], r.Fixed(IDSize))
		m = v
	case KindChallenge:
		v := &Challenge{}
		copy(v.Nonce[:], r.Fixed(NonceSize))
		v.Time = r.U64()
		m = v
	case KindSubscribe:
		v := &Subscribe{}
		copy(v.Mailbox[:], r.Fixed(IDSize))
		copy(v.Nonce[:], r.Fixed(NonceSize))
		v.Live = r.Bool()
		v.Sig = codec.Clone(r.Fixed(ed25519.SignatureSize))
		m = v
	case KindDeliver:
		v := &Deliver{}
		copy(v.Message[:], r.Fixed(MessageIDSize))
		v.StoredAt = r.U64()
		v.Source = Source(r.U8())
		if !v.Source.valid() {
			r.Fail(fmt.Errorf("%w: source %d", codec.ErrInvalid, v.Source))
		}
		if v.Source == SourceTopic {
			v.Topic = readTopic(r)
		}
		v.Envelope = r.Bytes32(envelope.MaxEnvelopeSize)
		m = v
	case KindAck:
		v := &Ack{}
		copy(v.Message[:], r.Fixed(MessageIDSize))
		m = v
	case KindPutPrekeys:
		m = readPrekeys(r)
	case KindGetPrekeys:
		v := &GetPrekeys{}
		copy(v.Deposit[:], r.Fixed(IDSize))
		m = v
	case KindPrekeys:
		m = &Prekeys{Bundle: codec.Clone(r.Bytes16(MaxBundleSize)), OneTime: r.Bool()}
	case KindError:
		m = &ErrorMsg{Code: ErrorCode(r.U16()), Message: r.String16(MaxErrorText)}
	case KindDelete:
		v := &Delete{}
		copy(v.Mailbox[:], r.Fixed(IDSize))
		v.Time = r.U64()
		v.Sig = codec.Clone(r.Fixed(ed25519.SignatureSize))
		m = v
	case KindWatch:
		v := &Watch{}
		copy(v.Mailbox[:], r.Fixed(IDSize))
		v.Time = r.U64()
		v.Topics = readTopics(r)
		v.Sig = codec.Clone(r.Fixed(ed25519.SignatureSize))
		m = v
	case KindAddPrekeys:
		m = (*AddPrekeys)(readPrekeys(r)) // the same fields, signed under its own label
	case KindPrekeyCount:
		m = &PrekeyCount{OneTime: r.U16()}
	case KindSetWake:
		v := &SetWake{}
		copy(v.Mailbox[:], r.Fixed(IDSize))
		v.Time = r.U64()
		v.Handle = r.String16(MaxWakeHandle)
		v.Sig = codec.Clone(r.Fixed(ed25519.SignatureSize))
		m = v
	case KindOK:
		m = OK
	case KindDrained:
		m = Drained
	case KindPing:
		m = Ping
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: kind %d: %v", ErrBadRequest, kind, err)
	}
	return m, nil
}

// readPrekeys decodes the body of PutPrekeys (and of AddPrekeys, whose
// fields are the same).
func readPrekeys(r *codec.Reader) *PutPrekeys {
	v := &PutPrekeys{}
	copy(v.Mailbox[:], r.Fixed(IDSize))
	v.Time = r.U64()
	v.LastResort = codec.Clone(r.Bytes16(MaxBundleSize))
	n := r.Count(MaxOneTime)
	for range n {
		v.OneTime = append(v.OneTime, codec.Clone(r.Bytes16(MaxBundleSize)))
	}
	v.Sig = codec.Clone(r.Fixed(ed25519.SignatureSize))
	return v
}
