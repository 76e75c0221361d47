// Package envelope seals hush messages to a recipient device's mailbox key
// so that relays, and anyone else on the path, learn neither who sent a
// message nor which account receives it.
//
// An envelope is HPKE base mode (RFC 9180: DHKEM(X25519, HKDF-SHA256),
// HKDF-SHA256, ChaCha20Poly1305, via crypto/hpke) to the device's X25519
// mailbox public key. In clear it carries only the version and suite bytes,
// a 16-byte mailbox ID derived from the mailbox public key, and the HPKE
// encapsulated key. The sender's account and device IDs, the message kind
// and the body are inside, padded so that every envelope is exactly one of
// a few bucket sizes (512 B, 1 KiB, ... 256 KiB).
//
// Sealing authenticates nothing about the sender: anyone can seal to a
// mailbox key. The recipient must check the sender identity inside against
// the session that decrypts the body ([Inner.CheckSender]).
//
// Direct delivery and relay deposits use the same envelope, so there is one
// code path. The specification is docs/protocol/envelope.md.
package envelope

import (
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/suite"
	"github.com/hushnet/hush/crypto/x25519"
)

// Labels.
const (
	// labelMailboxID prefixes the mailbox public key when hashing it into a
	// mailbox ID.
	labelMailboxID = "hush/v1/mailbox-id"
	// labelEnvelope starts the HPKE info string.
	labelEnvelope = "hush/v1/envelope"
)

// Sizes and limits of the wire format.
const (
	// MailboxIDSize is the size of a mailbox ID.
	MailboxIDSize = 16
	// EncSize is the size of the HPKE encapsulated key (an X25519 public key).
	EncSize = 32
	// HeaderSize is the clear header: version, suite, mailbox ID, enc.
	HeaderSize = 1 + 1 + MailboxIDSize + EncSize
	// TagSize is the ChaCha20Poly1305 tag HPKE appends.
	TagSize = 16
	// Overhead is what an envelope adds around the padded inner plaintext.
	Overhead = HeaderSize + TagSize

	// AccountIDSize and DeviceIDSize are the sizes of the sender IDs inside.
	AccountIDSize = 32
	DeviceIDSize  = 16
	// innerFixed is account ‖ device ‖ kind ‖ body length.
	innerFixed = AccountIDSize + DeviceIDSize + 1 + 4

	// MinEnvelopeSize and MaxEnvelopeSize are the smallest and largest
	// bucket: every envelope is exactly one of the sizes in Buckets.
	MinEnvelopeSize = 512
	MaxEnvelopeSize = 256 << 10
	// MaxBody is the largest body that fits the largest bucket (one byte is
	// the padding terminator).
	MaxBody = MaxEnvelopeSize - Overhead - innerFixed - 1
)

// Buckets lists every permitted envelope length, smallest first: powers of
// two from MinEnvelopeSize to MaxEnvelopeSize.
var Buckets = [...]int{
	512, 1 << 10, 2 << 10, 4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10,
}

// Kind says what the body of an envelope holds.
type Kind uint8

// Kinds. Zero and values above KindSync are reserved and rejected.
const (
	// KindPrekeyMessage is a PQXDH initial message with its first Double
	// Ratchet message.
	KindPrekeyMessage Kind = 1
	// KindMessage is a Double Ratchet message in an existing session.
	KindMessage Kind = 2
	// KindSenderKey is a group (sender key) message.
	KindSenderKey Kind = 3
	// KindSync is reserved for multi-device synchronisation.
	KindSync Kind = 4
)

func (k Kind) valid() bool { return k >= KindPrekeyMessage && k <= KindSync }

// Errors. ErrOpen is the single error for every cryptographic failure; the
// others describe what anyone can see in the clear bytes.
var (
	ErrOpen           = errors.New("envelope: cannot open")
	ErrVersion        = errors.New("envelope: unknown version or suite")
	ErrTooLarge       = errors.New("envelope: too large")
	ErrMalformed      = errors.New("envelope: malformed")
	ErrWrongMailbox   = errors.New("envelope: sealed to another mailbox")
	ErrKind           = errors.New("envelope: unknown kind")
	ErrInvalidKey     = errors.New("envelope: invalid mailbox key")
	ErrSenderMismatch = errors.New("envelope: sender does not match session")
)

// Inner is the plaintext of an envelope.
type Inner struct {
	// SenderAccount is the sender's account ID (its Ed25519 account public
	// key).
	SenderAccount [AccountIDSize]byte
	// SenderDevice is the sender's device ID.
	SenderDevice [DeviceIDSize]byte
	// Kind says how to read Body.
	Kind Kind
	// Body is the protocol message, at most MaxBody bytes.
	Body []byte
}

// CheckSender returns ErrSenderMismatch unless the sender inside the
// envelope is account/device. The node calls it with the identity bound to
// the session that decrypted Body, so a forged sender is dropped.
func (in *Inner) CheckSender(account [AccountIDSize]byte, device [DeviceIDSize]byte) error {
	if in.SenderAccount != account || in.SenderDevice != device {
		return ErrSenderMismatch
	}
	return nil
}

// Header is what a relay can read from an envelope without any key.
type Header struct {
	Version   byte
	Suite     byte
	MailboxID [MailboxIDSize]byte
	// Size is the envelope length in bytes, always one of Buckets.
	Size int
}

// MailboxID returns SHA-256("hush/v1/mailbox-id" ‖ pub)[:16].
func MailboxID(pub *ecdh.PublicKey) [MailboxIDSize]byte {
	h := sha256.New()
	h.Write([]byte(labelMailboxID))
	h.Write(pub.Bytes())
	var id [MailboxIDSize]byte
	copy(id[:], h.Sum(nil))
	return id
}

// BucketSize returns the envelope length used for a body of n bytes, or
// ErrTooLarge if n > MaxBody.
func BucketSize(n int) (int, error) {
	if n < 0 || n > MaxBody {
		return 0, fmt.Errorf("%w: body of %d bytes, limit %d", ErrTooLarge, n, MaxBody)
	}
	need := Overhead + innerFixed + n + 1
	for _, b := range Buckets {
		if need <= b {
			return b, nil
		}
	}
	return 0, fmt.Errorf("%w: body of %d bytes", ErrTooLarge, n) // unreachable
}

func isBucket(n int) bool {
	for _, b := range Buckets {
		if n == b {
			return true
		}
	}
	return false
}

// info returns "hush/v1/envelope" ‖ version ‖ suite ‖ mailbox ID.
func info(id [MailboxIDSize]byte) []byte {
	b := make([]byte, 0, len(labelEnvelope)+2+MailboxIDSize)
	b = append(b, labelEnvelope...)
	b = append(b, suite.Version, suite.ID)
	return append(b, id[:]...)
}

// hpke suite 1: KEM 0x0020, KDF 0x0001, AEAD 0x0003.
var (
	kdf  = hpke.HKDFSHA256()
	aead = hpke.ChaCha20Poly1305()
)

// Seal pads in and seals it to the mailbox public key to. The result is
// exactly BucketSize(len(in.Body)) bytes.
//
// to must have been validated with x25519.ParsePublicKey when it was
// received (from the device certificate); Seal does not repeat that check,
// which costs as much as the HPKE encapsulation itself. A small-order key
// still fails here, because crypto/ecdh refuses an all-zero shared secret.
func Seal(to *ecdh.PublicKey, in *Inner) ([]byte, error) {
	if to == nil || to.Curve() != ecdh.X25519() {
		return nil, ErrInvalidKey
	}
	if in == nil {
		return nil, fmt.Errorf("%w: nil inner", ErrMalformed)
	}
	if !in.Kind.valid() {
		return nil, fmt.Errorf("%w: %d", ErrKind, in.Kind)
	}
	size, err := BucketSize(len(in.Body))
	if err != nil {
		return nil, err
	}
	w := codec.NewWriter(size - Overhead)
	w.Fixed(in.SenderAccount[:])
	w.Fixed(in.SenderDevice[:])
	w.U8(uint8(in.Kind))
	w.Bytes32(in.Body)
	pt := pad(w.Bytes(), size-Overhead)

	pk, err := hpke.NewDHKEMPublicKey(to)
	if err != nil {
		return nil, ErrInvalidKey
	}
	id := MailboxID(to)
	enc, s, err := hpke.NewSender(pk, kdf, aead, info(id))
	if err != nil {
		return nil, fmt.Errorf("envelope: hpke sender: %w", err)
	}
	out := make([]byte, 0, size)
	out = append(out, suite.Version, suite.ID)
	out = append(out, id[:]...)
	out = append(out, enc...)
	ct, err := s.Seal(out[:HeaderSize], pt)
	if err != nil {
		return nil, fmt.Errorf("envelope: hpke seal: %w", err)
	}
	out = append(out, ct...)
	if len(out) != size {
		return nil, fmt.Errorf("envelope: internal size %d, want %d", len(out), size)
	}
	return out, nil
}

// ParseHeader reads the clear header of an envelope, checking its length
// (a bucket, at most MaxEnvelopeSize), version and suite. Relays use it to
// route a deposit; it needs no key.
func ParseHeader(sealed []byte) (Header, error) {
	var h Header
	if len(sealed) > MaxEnvelopeSize {
		return h, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(sealed), MaxEnvelopeSize)
	}
	r := codec.NewReader(sealed)
	h.Version = r.U8()
	h.Suite = r.U8()
	copy(h.MailboxID[:], r.Fixed(MailboxIDSize))
	r.Fixed(EncSize)
	if err := r.Err(); err != nil {
		return Header{}, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if h.Version != suite.Version || h.Suite != suite.ID {
		return Header{}, fmt.Errorf("%w: version %d suite %d", ErrVersion, h.Version, h.Suite)
	}
	if !isBucket(len(sealed)) {
		return Header{}, fmt.Errorf("%w: length %d is not a bucket size", ErrMalformed, len(sealed))
	}
	h.Size = len(sealed)
	return h, nil
}

// Opener opens envelopes sealed to one mailbox key. It holds the key in
// the form crypto/hpke wants and the mailbox ID, both computed once; it is
// immutable and safe for concurrent use. A node keeps one Opener per
// mailbox key it holds, for as long as it holds the key.
type Opener struct {
	priv hpke.PrivateKey
	id   [MailboxIDSize]byte
}

// NewOpener prepares priv (an X25519 mailbox private key) for Open.
func NewOpener(priv *ecdh.PrivateKey) (*Opener, error) {
	if priv == nil || priv.Curve() != ecdh.X25519() {
		return nil, ErrInvalidKey
	}
	k, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return nil, ErrInvalidKey
	}
	return &Opener{priv: k, id: MailboxID(priv.PublicKey())}, nil
}

// MailboxID returns the ID of the Opener's mailbox.
func (o *Opener) MailboxID() [MailboxIDSize]byte { return o.id }

// Open checks the header, opens the envelope and strictly unpads and parses
// the inner plaintext. Every cryptographic failure, and any malformed
// plaintext, returns ErrOpen.
func (o *Opener) Open(sealed []byte) (*Inner, error) {
	h, err := ParseHeader(sealed)
	if err != nil {
		return nil, err
	}
	if h.MailboxID != o.id {
		return nil, ErrWrongMailbox
	}
	enc := sealed[HeaderSize-EncSize : HeaderSize]
	if _, err := x25519.ParsePublicKey(enc); err != nil {
		return nil, ErrOpen
	}
	r, err := hpke.NewRecipient(enc, o.priv, kdf, aead, info(h.MailboxID))
	if err != nil {
		return nil, ErrOpen
	}
	pt, err := r.Open(sealed[:HeaderSize], sealed[HeaderSize:])
	if err != nil {
		return nil, ErrOpen
	}
	in, err := parseInner(pt)
	if err != nil {
		// Authenticated but malformed: only the sender could have made it,
		// and it learns nothing from the distinction.
		return nil, ErrOpen
	}
	return in, nil
}

// Open is NewOpener(priv) then Open(sealed). Callers that open many
// envelopes keep an Opener instead.
func Open(priv *ecdh.PrivateKey, sealed []byte) (*Inner, error) {
	o, err := NewOpener(priv)
	if err != nil {
		return nil, err
	}
	return o.Open(sealed)
}

func parseInner(padded []byte) (*Inner, error) {
	b, err := unpad(padded)
	if err != nil {
		return nil, err
	}
	r := codec.NewReader(b)
	in := new(Inner)
	copy(in.SenderAccount[:], r.Fixed(AccountIDSize))
	copy(in.SenderDevice[:], r.Fixed(DeviceIDSize))
	in.Kind = Kind(r.U8())
	in.Body = codec.Clone(r.Bytes32(MaxBody))
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: inner: %v", ErrMalformed, err)
	}
	if !in.Kind.valid() {
		return nil, fmt.Errorf("%w: %d", ErrKind, in.Kind)
	}
	if in.Body == nil {
		in.Body = []byte{}
	}
	return in, nil
}

// pad returns b ‖ 0x80 ‖ zeros, n bytes in all. The caller ensures
// len(b) < n.
func pad(b []byte, n int) []byte {
	out := make([]byte, n)
	copy(out, b)
	out[len(b)] = 0x80
	return out
}

// unpad strips the zeros after the last 0x80 and the 0x80 itself. Any other
// final non-zero byte, or no terminator, is an error.
func unpad(b []byte) ([]byte, error) {
	i := len(b) - 1
	for i >= 0 && b[i] == 0 {
		i--
	}
	if i < 0 || b[i] != 0x80 {
		return nil, fmt.Errorf("%w: bad padding", ErrMalformed)
	}
	return b[:i], nil
}
