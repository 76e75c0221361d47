package sync

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/suite"
)

// Labels of the link code.
const (
	// labelCode prefixes the code bytes hashed into the checksum.
	labelCode = "hush/v1/link-code"
	// labelPSK is the HKDF info turning the code's secret into the Noise
	// pre-shared key.
	labelPSK = "hush/v1/link-psk"
)

// Link code format and limits (docs/protocol/sync.md §18.1).
const (
	// CodeVersion is the first byte of a link code.
	CodeVersion = 1
	// CodePrefix starts the text form. Parsing ignores its case.
	CodePrefix = "HUSH-LINK:"
	// CodeSecretSize is the size of the code's secret: 128 bits.
	CodeSecretSize = 16
	// CodeTTL is how long a code is valid.
	CodeTTL = 10 * time.Minute
	// MaxPeerIDSize bounds the PeerID in a code.
	MaxPeerIDSize = 128
	// MaxCodeAddrs and MaxAddrSize bound the addresses in a code.
	MaxCodeAddrs = 4
	MaxAddrSize  = 256
	// codeCheckSize is the size of the checksum.
	codeCheckSize = 4
	// minCodeSize is version, secret, expiry, two empty lists' headers and
	// the checksum: the LAN form.
	minCodeSize = 1 + CodeSecretSize + 8 + 2 + 2 + codeCheckSize
	// MaxCodeSize is the largest binary code.
	MaxCodeSize = 1 + CodeSecretSize + 8 + 2 + MaxPeerIDSize + 2 + MaxCodeAddrs*(2+MaxAddrSize) + codeCheckSize
	// MaxCodeText bounds the text ParseCode reads, separators included.
	MaxCodeText = 4096
)

// Errors of the link code. Callers branch on these with errors.Is.
var (
	ErrCodeMalformed = errors.New("sync: link code malformed")
	ErrCodeChecksum  = errors.New("sync: link code checksum mismatch (a typo?)")
	ErrCodeVersion   = errors.New("sync: link code of an unsupported version")
	ErrCodeExpired   = errors.New("sync: link code expired")
	ErrCodeUsed      = errors.New("sync: link code already used")
)

// codeEncoding is base32 (RFC 4648) without padding.
var codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// LinkCode is what an existing device shows and a new device reads: a
// secret and where to reach the device that holds the matching Offer.
type LinkCode struct {
	// Secret keys the link channel; it is the only secret part.
	Secret [CodeSecretSize]byte
	// Expires is when the code stops being accepted (second precision).
	Expires time.Time
	// PeerID is the existing device's libp2p PeerID in binary form, or
	// empty (the LAN form).
	PeerID []byte
	// Addrs are binary multiaddrs to reach it: its own, or a relay circuit
	// address.
	Addrs [][]byte
}

// check validates the sizes Marshal writes.
func (c *LinkCode) check() error {
	if len(c.PeerID) > MaxPeerIDSize {
		return fmt.Errorf("%w: peer ID of %d bytes, limit %d", ErrCodeMalformed, len(c.PeerID), MaxPeerIDSize)
	}
	if len(c.Addrs) > MaxCodeAddrs {
		return fmt.Errorf("%w: %d addresses, limit %d", ErrCodeMalformed, len(c.Addrs), MaxCodeAddrs)
	}
	for i, a := range c.Addrs {
		if len(a) == 0 || len(a) > MaxAddrSize {
			return fmt.Errorf("%w: address %d of %d bytes, want 1 to %d", ErrCodeMalformed, i, len(a), MaxAddrSize)
		}
	}
	if c.Expires.Unix() < 0 {
		return fmt.Errorf("%w: expiry before 1970", ErrCodeMalformed)
	}
	return nil
}

// Marshal returns the binary code, checksum included.
func (c *LinkCode) Marshal() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	w := codec.NewWriter(MaxCodeSize)
	w.U8(CodeVersion)
	w.Fixed(c.Secret[:])
	w.U64(uint64(c.Expires.Unix()))
	w.Bytes16(c.PeerID)
	w.U16(uint16(len(c.Addrs)))
	for _, a := range c.Addrs {
		w.Bytes16(a)
	}
	sum := codeChecksum(w.Bytes())
	w.Fixed(sum[:])
	return w.Bytes(), nil
}

// Text returns the text form: CodePrefix and the upper-case base32 code.
// It is also what goes into the QR code (alphanumeric mode).
func (c *LinkCode) Text() (string, error) {
	b, err := c.Marshal()
	if err != nil {
		return "", err
	}
	return CodePrefix + codeEncoding.EncodeToString(b), nil
}

// Expired reports whether the code is no longer valid at now.
func (c *LinkCode) Expired(now time.Time) bool { return !now.Before(c.Expires) }

func codeChecksum(body []byte) [codeCheckSize]byte {
	h := sha256.New()
	h.Write([]byte(labelCode))
	h.Write(body)
	var out [codeCheckSize]byte
	copy(out[:], h.Sum(nil))
	return out
}

// ParseCode reads a code in text form, as printed or as typed: surrounding
// white space is trimmed, the prefix and the letters may be in any case,
// and spaces, tabs, line breaks and '-' inside the code are ignored. It
// checks, in order, the length, the base32, the checksum, the version, the
// fields and, last, the expiry against now.
func ParseCode(text string, now time.Time) (*LinkCode, error) {
	if len(text) > MaxCodeText {
		return nil, fmt.Errorf("%w: %d characters, limit %d", ErrCodeMalformed, len(text), MaxCodeText)
	}
	text = strings.TrimSpace(text)
	if len(text) < len(CodePrefix) || !strings.EqualFold(text[:len(CodePrefix)], CodePrefix) {
		return nil, fmt.Errorf("%w: does not start with %s", ErrCodeMalformed, CodePrefix)
	}
	body := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r', '-':
			return -1
		}
		if 'a' <= r && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, text[len(CodePrefix):])
	if codeEncoding.DecodedLen(len(body)) > MaxCodeSize {
		return nil, fmt.Errorf("%w: too long", ErrCodeMalformed)
	}
	b, err := codeEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: not base32", ErrCodeMalformed)
	}
	c, err := ParseCodeBytes(b)
	if err != nil {
		return nil, err
	}
	if c.Expired(now) {
		return nil, fmt.Errorf("%w at %s", ErrCodeExpired, c.Expires.UTC().Format(time.RFC3339))
	}
	return c, nil
}

// ParseCodeBytes reads a binary code. It does not look at the expiry.
func ParseCodeBytes(b []byte) (*LinkCode, error) {
	if len(b) < minCodeSize || len(b) > MaxCodeSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d to %d", ErrCodeMalformed, len(b), minCodeSize, MaxCodeSize)
	}
	body, sum := b[:len(b)-codeCheckSize], b[len(b)-codeCheckSize:]
	want := codeChecksum(body)
	if !bytes.Equal(sum, want[:]) {
		return nil, ErrCodeChecksum
	}
	r := codec.NewReader(body)
	if v := r.U8(); v != CodeVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrCodeVersion, v, CodeVersion)
	}
	c := &LinkCode{}
	copy(c.Secret[:], r.Fixed(CodeSecretSize))
	exp := r.U64()
	c.PeerID = codec.Clone(r.Bytes16(MaxPeerIDSize))
	n := r.Count(MaxCodeAddrs)
	for range n {
		a := r.Bytes16(MaxAddrSize)
		if r.Err() == nil && len(a) == 0 {
			r.Fail(fmt.Errorf("empty address"))
		}
		c.Addrs = append(c.Addrs, codec.Clone(a))
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCodeMalformed, err)
	}
	if exp > math.MaxInt64 {
		return nil, fmt.Errorf("%w: expiry out of range", ErrCodeMalformed)
	}
	c.Expires = time.Unix(int64(exp), 0)
	if len(c.PeerID) == 0 {
		c.PeerID = nil
	}
	return c, nil
}

// psk derives the Noise pre-shared key from the code's secret.
func (c *LinkCode) psk() []byte { return suite.HKDF(c.Secret[:], nil, labelPSK, 32) }

// Offer is the existing device's side of a link code: the code and whether
// it was used. It lives only in memory, so a restart voids it. It is safe
// for concurrent use by the handshakes of one device.
type Offer struct {
	code LinkCode
	used atomic.Bool
}

// OfferConfig says what a new offer's code carries.
type OfferConfig struct {
	// PeerID is this device's libp2p PeerID (binary); empty for the LAN
	// form.
	PeerID []byte
	// Addrs are the binary multiaddrs to put in the code (at most
	// MaxCodeAddrs).
	Addrs [][]byte
	// Now is the time of creation; the code expires TTL later.
	Now time.Time
	// TTL defaults to CodeTTL.
	TTL time.Duration
	// Rand is the source of the secret; nil means crypto/rand.
	Rand io.Reader
}

// NewOffer makes a fresh code with a secret from cfg.Rand.
func NewOffer(cfg OfferConfig) (*Offer, error) {
	ttl := cfg.TTL
	if ttl <= 0 {
		ttl = CodeTTL
	}
	o := &Offer{code: LinkCode{
		Expires: cfg.Now.Add(ttl).Truncate(time.Second),
		PeerID:  codec.Clone(cfg.PeerID),
	}}
	for _, a := range cfg.Addrs {
		o.code.Addrs = append(o.code.Addrs, codec.Clone(a))
	}
	if err := o.code.check(); err != nil {
		return nil, err
	}
	rnd := cfg.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	if _, err := io.ReadFull(rnd, o.code.Secret[:]); err != nil {
		return nil, fmt.Errorf("sync: link code secret: %w", err)
	}
	return o, nil
}

// Code returns the code to show (a copy).
func (o *Offer) Code() *LinkCode {
	c := o.code
	c.PeerID = codec.Clone(o.code.PeerID)
	c.Addrs = nil
	for _, a := range o.code.Addrs {
		c.Addrs = append(c.Addrs, codec.Clone(a))
	}
	return &c
}

// Used reports whether a handshake has consumed the offer.
func (o *Offer) Used() bool { return o.used.Load() }

// Expired reports whether the offer's code is no longer valid at now.
func (o *Offer) Expired(now time.Time) bool { return o.code.Expired(now) }

// consume marks the offer used; it reports false if it already was.
func (o *Offer) consume() bool { return o.used.CompareAndSwap(false, true) }
