package pqxdh

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/mlkem"
	"errors"
	"fmt"
	"time"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/suite"
	"github.com/hushnet/hush/crypto/x25519"
)

// prekeyLabel starts every prekey signature input.
const prekeyLabel = "hush/v1/prekey"

// Kind says what a prekey is for. It is signed with the key, so a key
// signed for one role can never be used in another.
type Kind byte

// Prekey kinds.
const (
	KindSigned       Kind = 0x01 // medium-term X25519 signed prekey (SPK)
	KindOneTime      Kind = 0x02 // one-time X25519 prekey (OPK)
	KindPQLastResort Kind = 0x03 // last-resort ML-KEM-1024 prekey (PQSPK)
	KindPQOneTime    Kind = 0x04 // one-time ML-KEM-1024 prekey (PQOPK)
)

// ECPrekey is a signed X25519 prekey: the signed prekey or a one-time
// prekey. Created and Expires are Unix seconds.
type ECPrekey struct {
	Kind      Kind
	ID        uint32
	Public    *ecdh.PublicKey
	Created   int64
	Expires   int64
	Signature []byte // Ed25519, 64 bytes
}

// KEMPrekey is a signed ML-KEM-1024 prekey: the last-resort prekey or a
// one-time prekey. Created and Expires are Unix seconds.
type KEMPrekey struct {
	Kind      Kind
	ID        uint32
	Public    *mlkem.EncapsulationKey1024
	Created   int64
	Expires   int64
	Signature []byte // Ed25519, 64 bytes
}

// Bundle is what a device publishes for one initiator: its signed prekey,
// its last-resort ML-KEM prekey and, while its pools last, one one-time
// X25519 and one one-time ML-KEM prekey. The device signing key that
// verifies it comes from the device certificate, not from the bundle.
type Bundle struct {
	SignedPrekey ECPrekey
	PQPrekey     KEMPrekey  // last resort, always present
	OneTime      *ECPrekey  // optional
	PQOneTime    *KEMPrekey // optional
}

// signedMessage is the Ed25519 input for a prekey:
// label ‖ version ‖ suite ‖ kind ‖ u32 id ‖ typed key ‖ u64 created ‖ u64 expires.
func signedMessage(kind Kind, id uint32, keyType byte, key []byte, created, expires int64) []byte {
	w := codec.NewWriter(len(prekeyLabel) + 2 + 1 + 4 + 1 + len(key) + 16)
	w.Fixed([]byte(prekeyLabel))
	w.U8(suite.Version)
	w.U8(suite.ID)
	w.U8(byte(kind))
	w.U32(id)
	w.U8(keyType)
	w.Fixed(key)
	w.U64(uint64(created))
	w.U64(uint64(expires))
	return w.Bytes()
}

func (p *ECPrekey) message() []byte {
	return signedMessage(p.Kind, p.ID, suite.KeyX25519, p.Public.Bytes(), p.Created, p.Expires)
}

func (p *KEMPrekey) message() []byte {
	return signedMessage(p.Kind, p.ID, suite.KeyMLKEM1024, p.Public.Bytes(), p.Created, p.Expires)
}

// checkTimes validates a prekey's validity window at now (Unix seconds).
func checkTimes(created, expires, now int64) error {
	if created < 0 || expires <= created || expires-created > maxKeyLifetime {
		return fmt.Errorf("%w: validity window [%d, %d)", ErrMalformed, created, expires)
	}
	if now >= expires || created > now+maxClockSkew {
		return ErrExpired
	}
	return nil
}

func writeEC(w *codec.Writer, p *ECPrekey) {
	w.U32(p.ID)
	w.Fixed(p.Public.Bytes())
	w.U64(uint64(p.Created))
	w.U64(uint64(p.Expires))
	w.Fixed(p.Signature)
}

func writeKEM(w *codec.Writer, p *KEMPrekey) {
	w.U32(p.ID)
	w.Fixed(p.Public.Bytes())
	w.U64(uint64(p.Created))
	w.U64(uint64(p.Expires))
	w.Fixed(p.Signature)
}

// readTime reads a u64 Unix time that must fit in an int64.
func readTime(r *codec.Reader) int64 {
	v := r.U64()
	if v > 1<<62 {
		r.Fail(fmt.Errorf("%w: time %d out of range", ErrMalformed, v))
		return 0
	}
	return int64(v)
}

// parseEC reads and fully verifies one X25519 prekey of the given kind.
func parseEC(r *codec.Reader, kind Kind, signer ed25519.PublicKey, now int64) *ECPrekey {
	p := &ECPrekey{Kind: kind, ID: r.U32()}
	raw := r.Fixed(x25519KeySize)
	p.Created = readTime(r)
	p.Expires = readTime(r)
	p.Signature = codec.Clone(r.Fixed(signatureSize))
	if r.Err() != nil {
		return nil
	}
	pub, err := x25519.ParsePublicKey(raw)
	if err != nil {
		r.Fail(fmt.Errorf("%w: prekey %d: %w", ErrInvalidKey, p.ID, err))
		return nil
	}
	p.Public = pub
	if !ed25519.Verify(signer, p.message(), p.Signature) {
		r.Fail(fmt.Errorf("%w: prekey %d", ErrBadSignature, p.ID))
		return nil
	}
	if err := checkTimes(p.Created, p.Expires, now); err != nil {
		r.Fail(fmt.Errorf("prekey %d: %w", p.ID, err))
		return nil
	}
	return p
}

// parseKEM reads and fully verifies one ML-KEM-1024 prekey of the given kind.
func parseKEM(r *codec.Reader, kind Kind, signer ed25519.PublicKey, now int64) *KEMPrekey {
	p := &KEMPrekey{Kind: kind, ID: r.U32()}
	raw := r.Fixed(KEMKeySize)
	p.Created = readTime(r)
	p.Expires = readTime(r)
	p.Signature = codec.Clone(r.Fixed(signatureSize))
	if r.Err() != nil {
		return nil
	}
	pub, err := mlkem.NewEncapsulationKey1024(raw)
	if err != nil {
		r.Fail(fmt.Errorf("%w: ML-KEM prekey %d: %w", ErrInvalidKey, p.ID, err))
		return nil
	}
	p.Public = pub
	if !ed25519.Verify(signer, p.message(), p.Signature) {
		r.Fail(fmt.Errorf("%w: ML-KEM prekey %d", ErrBadSignature, p.ID))
		return nil
	}
	if err := checkTimes(p.Created, p.Expires, now); err != nil {
		r.Fail(fmt.Errorf("ML-KEM prekey %d: %w", p.ID, err))
		return nil
	}
	return p
}

// Bundle flag bits.
const (
	flagOneTime   = 0x01 // an X25519 one-time prekey follows
	flagPQOneTime = 0x02 // an ML-KEM one-time prekey follows
)

const (
	ecPrekeySize  = 4 + x25519KeySize + 8 + 8 + signatureSize
	kemPrekeySize = 4 + KEMKeySize + 8 + 8 + signatureSize
	// MaxBundleSize is the size of a bundle with both one-time prekeys.
	MaxBundleSize = 2 + 2*ecPrekeySize + 1 + 2*kemPrekeySize
)

// Marshal returns the canonical encoding of b. It panics if b lacks a
// signed or last-resort prekey, as only a programming error produces one.
func (b *Bundle) Marshal() []byte {
	if b.SignedPrekey.Public == nil || b.PQPrekey.Public == nil {
		panic("pqxdh: Marshal of incomplete bundle")
	}
	w := codec.NewWriter(MaxBundleSize)
	w.U8(suite.Version)
	w.U8(suite.ID)
	writeEC(w, &b.SignedPrekey)
	writeKEM(w, &b.PQPrekey)
	var flags byte
	if b.OneTime != nil {
		flags |= flagOneTime
	}
	if b.PQOneTime != nil {
		flags |= flagPQOneTime
	}
	w.U8(flags)
	if b.OneTime != nil {
		writeEC(w, b.OneTime)
	}
	if b.PQOneTime != nil {
		writeKEM(w, b.PQOneTime)
	}
	return w.Bytes()
}

// ParseBundle decodes a bundle and verifies, at time now, every prekey's
// Ed25519 signature under signer (the device signing key from the verified
// device certificate), its validity window, and every public key (X25519
// keys through x25519.ParsePublicKey, ML-KEM keys through
// mlkem.NewEncapsulationKey1024). A bundle without the last-resort ML-KEM
// prekey cannot be encoded, so a stripped one fails here: there is no
// classical fallback.
func ParseBundle(b []byte, signer ed25519.PublicKey, now time.Time) (*Bundle, error) {
	if len(signer) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("pqxdh: parse bundle: %w: signing key of %d bytes", ErrInvalidKey, len(signer))
	}
	switch base := 2 + ecPrekeySize + kemPrekeySize + 1; len(b) {
	case base, base + ecPrekeySize, base + kemPrekeySize, base + ecPrekeySize + kemPrekeySize:
	case 2 + ecPrekeySize, 2 + ecPrekeySize + 1:
		// A signed prekey alone: the post-quantum prekey was stripped.
		return nil, fmt.Errorf("pqxdh: parse bundle: %w", ErrNoPQPrekey)
	default:
		return nil, fmt.Errorf("pqxdh: parse bundle: %w: %d bytes is no valid bundle size", ErrMalformed, len(b))
	}
	t := now.Unix()
	r := codec.NewReader(b)
	if v, s := r.U8(), r.U8(); r.Err() == nil && (v != suite.Version || s != suite.ID) {
		return nil, fmt.Errorf("pqxdh: parse bundle: %w: version %d suite %d", ErrVersion, v, s)
	}
	out := &Bundle{}
	if p := parseEC(r, KindSigned, signer, t); p != nil {
		out.SignedPrekey = *p
	}
	if p := parseKEM(r, KindPQLastResort, signer, t); p != nil {
		out.PQPrekey = *p
	}
	flags := r.U8()
	if r.Err() == nil && flags&^(flagOneTime|flagPQOneTime) != 0 {
		r.Fail(fmt.Errorf("%w: bundle flags %#x", ErrMalformed, flags))
	}
	if flags&flagOneTime != 0 {
		out.OneTime = parseEC(r, KindOneTime, signer, t)
	}
	if flags&flagPQOneTime != 0 {
		out.PQOneTime = parseKEM(r, KindPQOneTime, signer, t)
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("pqxdh: parse bundle: %w", wrapCodec(err))
	}
	return out, nil
}

// wrapCodec makes codec errors match ErrMalformed while keeping our own.
func wrapCodec(err error) error {
	for _, e := range []error{ErrMalformed, ErrVersion, ErrBadSignature, ErrExpired, ErrInvalidKey} {
		if errors.Is(err, e) {
			return err
		}
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}
