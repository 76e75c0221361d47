// Package shortlink is the short contact link of
// docs/protocol/addresses.md §20.1–20.2: "HUSH:" and upper-case base32 of
// a relay's address and key and a 128-bit secret, and the sealed record
// the relay keeps under an ID derived from that secret. It is
// network-free and store-free; the node publishes and fetches records.
package shortlink

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"

	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/hushnet/hush/crypto/codec"
)

// Sizes and limits (§20.1–20.2).
const (
	Prefix       = "HUSH:"
	MaxLength    = 120 // characters of a short link
	SecretSize   = 16
	IDSize       = 16
	RelayKeySize = 32
	TokenSize    = 16
	MaxAddrSize  = 64
	MaxCardSize  = 64 << 10
	MaxLabelSize = 64
	// MaxRecordSize bounds a sealed record: the plaintext at its limits,
	// the nonce and the tag.
	MaxRecordSize = chacha20poly1305.NonceSizeX + 1 + 1 + 4 + MaxCardSize + TokenSize + 2 + MaxLabelSize + chacha20poly1305.Overhead

	version       = 1
	recordVersion = 1
)

// Kind says what a link is for.
type Kind uint8

// Link kinds.
const (
	KindAddress    Kind = 1 // reusable: contacts arrive as requests
	KindInvitation Kind = 2 // one-time: its token makes a contact at once
)

// Errors.
var (
	ErrNotShortLink = errors.New("not a short link (HUSH:…)")
	ErrMalformed    = errors.New("malformed short link")
	ErrTooLong      = errors.New("the relay's address makes the link longer than 120 characters; use the long link")
	ErrRecord       = errors.New("the relay answered with a record that does not belong to this link")
)

var encoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Link is a parsed short link.
type Link struct {
	RelayAddr ma.Multiaddr       // without /p2p
	RelayKey  [RelayKeySize]byte // the relay's Ed25519 public key
	Secret    [SecretSize]byte
}

// New makes a link with a fresh secret, naming the relay at addr (no
// /p2p component) with Ed25519 public key key.
func New(addr ma.Multiaddr, key [RelayKeySize]byte) (*Link, error) {
	l := &Link{RelayAddr: addr, RelayKey: key}
	rand.Read(l.Secret[:])
	if _, err := l.String(); err != nil {
		return nil, err
	}
	return l, nil
}

// String is the link's text; ErrTooLong if it passes MaxLength.
func (l *Link) String() (string, error) {
	a := l.RelayAddr.Bytes()
	if len(a) > MaxAddrSize {
		return "", ErrTooLong
	}
	w := codec.NewWriter(2 + len(a) + RelayKeySize + SecretSize)
	w.U8(version)
	w.U8(uint8(len(a)))
	w.Fixed(a)
	w.Fixed(l.RelayKey[:])
	w.Fixed(l.Secret[:])
	s := Prefix + encoding.EncodeToString(w.Bytes())
	if len(s) > MaxLength {
		return "", ErrTooLong
	}
	return s, nil
}

// Parse reads a short link: case-insensitive, surrounding white space
// ignored, nothing may follow.
func Parse(s string) (*Link, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	body, ok := strings.CutPrefix(s, Prefix)
	if !ok || strings.HasPrefix(body, "//") {
		return nil, ErrNotShortLink
	}
	if len(s) > MaxLength {
		return nil, fmt.Errorf("%w: %d characters, at most %d", ErrMalformed, len(s), MaxLength)
	}
	b, err := encoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	r := codec.NewReader(b)
	v := r.U8()
	alen := int(r.U8())
	if alen > MaxAddrSize {
		return nil, fmt.Errorf("%w: a relay address of %d bytes", ErrMalformed, alen)
	}
	a := r.Fixed(alen)
	var l Link
	copy(l.RelayKey[:], r.Fixed(RelayKeySize))
	copy(l.Secret[:], r.Fixed(SecretSize))
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if v != version {
		return nil, fmt.Errorf("%w: version %d", ErrMalformed, v)
	}
	if l.RelayAddr, err = ma.NewMultiaddrBytes(bytes.Clone(a)); err != nil {
		return nil, fmt.Errorf("%w: relay address: %v", ErrMalformed, err)
	}
	for _, p := range l.RelayAddr.Protocols() {
		if p.Code == ma.P_P2P {
			return nil, fmt.Errorf("%w: the relay address names a peer", ErrMalformed)
		}
	}
	return &l, nil
}

// derive is HKDF-SHA-256 of the secret (salt empty) for info.
func (l *Link) derive(info string, n int) []byte {
	out, err := hkdf.Key(sha256.New, l.Secret[:], nil, info, n)
	if err != nil {
		panic("shortlink: hkdf: " + err.Error()) // n is far below the limit
	}
	return out
}

// ID is the record's name on the relay.
func (l *Link) ID() [IDSize]byte { return [IDSize]byte(l.derive("hush link id v1", IDSize)) }

// Record is what a link points to.
type Record struct {
	Kind  Kind
	Card  []byte          // the owner's signed card (opaque here)
	Token [TokenSize]byte // an invitation's token; zero for an address
	Label string          // an invitation's label (the owner's)
}

// Seal encrypts rec under the link's key, bound to its ID.
func (l *Link) Seal(rec *Record) ([]byte, error) {
	if rec.Kind != KindAddress && rec.Kind != KindInvitation {
		return nil, fmt.Errorf("shortlink: kind %d", rec.Kind)
	}
	if len(rec.Card) == 0 || len(rec.Card) > MaxCardSize || len(rec.Label) > MaxLabelSize {
		return nil, fmt.Errorf("shortlink: a card of %d bytes or a label of %d", len(rec.Card), len(rec.Label))
	}
	w := codec.NewWriter(1 + 1 + 4 + len(rec.Card) + TokenSize + 2 + len(rec.Label))
	w.U8(recordVersion)
	w.U8(uint8(rec.Kind))
	w.Bytes32(rec.Card)
	w.Fixed(rec.Token[:])
	w.Bytes16([]byte(rec.Label))
	aead, err := chacha20poly1305.NewX(l.derive("hush link key v1", chacha20poly1305.KeySize))
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(w.Bytes())+chacha20poly1305.Overhead)
	rand.Read(nonce)
	id := l.ID()
	return aead.Seal(nonce, nonce, w.Bytes(), id[:]), nil
}

// Open decrypts and parses a record the relay served; ErrRecord if it
// is not this link's.
func (l *Link) Open(b []byte) (*Record, error) {
	if len(b) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead || len(b) > MaxRecordSize {
		return nil, ErrRecord
	}
	aead, err := chacha20poly1305.NewX(l.derive("hush link key v1", chacha20poly1305.KeySize))
	if err != nil {
		return nil, err
	}
	id := l.ID()
	pt, err := aead.Open(nil, b[:chacha20poly1305.NonceSizeX], b[chacha20poly1305.NonceSizeX:], id[:])
	if err != nil {
		return nil, ErrRecord
	}
	r := codec.NewReader(pt)
	v, k := r.U8(), Kind(r.U8())
	rec := &Record{Kind: k, Card: bytes.Clone(r.Bytes32(MaxCardSize))}
	copy(rec.Token[:], r.Fixed(TokenSize))
	rec.Label = string(r.Bytes16(MaxLabelSize))
	if err := r.Done(); err != nil || v != recordVersion || (k != KindAddress && k != KindInvitation) || len(rec.Card) == 0 {
		return nil, fmt.Errorf("%w: malformed", ErrRecord)
	}
	return rec, nil
}
