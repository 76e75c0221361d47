package identity

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"fmt"
	"math"
	"time"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/suite"
	"github.com/hushnet/hush/crypto/x25519"
)

// labelDeviceCert domain-separates device certificate signatures.
const labelDeviceCert = "hush/v1/device-cert"

// Capability bits of a device certificate.
const (
	// CapPQRequired says the device accepts only post-quantum (PQXDH)
	// session setup; peers must never fall back to X3DH. Always set in v1.
	CapPQRequired uint32 = 1 << 0

	// capKnown is every bit defined in v1; others are rejected.
	capKnown = CapPQRequired
)

// Encoded sizes of a device certificate.
const (
	typedKeySize = 1 + 32
	certBodySize = 2 + AccountIDSize + DeviceIDSize + 3*typedKeySize + 4 + 8 // 161
	CertSize     = certBodySize + SignatureSize                              // 225
)

// DeviceCert is an account's signed statement that a device with the given
// keys belongs to it. A *DeviceCert always carries a valid signature by
// Account() and valid X25519 keys.
type DeviceCert struct {
	account  AccountID
	device   DeviceID
	signing  ed25519.PublicKey
	identity *ecdh.PublicKey
	mailbox  *ecdh.PublicKey
	caps     uint32
	created  uint64
	enc      []byte // full encoding, body ‖ signature
}

// certFields are the raw fields of a certificate body, before validation.
type certFields struct {
	account  AccountID
	device   DeviceID
	signing  []byte
	identity []byte
	mailbox  []byte
	caps     uint32
	created  uint64
}

func (f *certFields) body() []byte {
	w := codec.NewWriter(certBodySize)
	w.U8(suite.Version)
	w.U8(suite.ID)
	w.Fixed(f.account[:])
	w.Fixed(f.device[:])
	w.Fixed(suite.TypedKey(suite.KeyEd25519, f.signing))
	w.Fixed(suite.TypedKey(suite.KeyX25519, f.identity))
	w.Fixed(suite.TypedKey(suite.KeyX25519, f.mailbox))
	w.U32(f.caps)
	w.U64(f.created)
	return w.Bytes()
}

// unixSeconds converts now to the u64 stored in certificates and lists.
func unixSeconds(now time.Time) (uint64, error) {
	s := now.Unix()
	if s < 0 {
		return 0, fmt.Errorf("identity: time %v before 1970", now)
	}
	return uint64(s), nil
}

// Certify signs a certificate for d, created at now, with capabilities
// CapPQRequired.
func (a *Account) Certify(d *Device, now time.Time) (*DeviceCert, error) {
	created, err := unixSeconds(now)
	if err != nil {
		return nil, err
	}
	f := certFields{
		account:  a.id,
		device:   d.id,
		signing:  d.SigningPublic(),
		identity: d.identity.PublicKey().Bytes(),
		mailbox:  d.mailbox.PublicKey().Bytes(),
		caps:     CapPQRequired,
		created:  created,
	}
	body := f.body()
	enc := append(body, ed25519.Sign(a.priv, signedMessage(labelDeviceCert, body))...)
	return ParseDeviceCert(enc)
}

// ParseDeviceCert decodes a certificate, checks every field and verifies
// the signature by the account key it names. Callers must still check that
// Account() is the account they expect.
func ParseDeviceCert(b []byte) (*DeviceCert, error) {
	if len(b) != CertSize {
		return nil, fmt.Errorf("%w: device cert of %d bytes, want %d", ErrMalformed, len(b), CertSize)
	}
	r := codec.NewReader(b)
	v, s := r.U8(), r.U8()
	if v != suite.Version || s != suite.ID {
		return nil, fmt.Errorf("%w: device cert version %d suite %d", ErrUnsupportedVersion, v, s)
	}
	var f certFields
	copy(f.account[:], r.Fixed(AccountIDSize))
	copy(f.device[:], r.Fixed(DeviceIDSize))
	sk := r.Fixed(typedKeySize)
	ik := r.Fixed(typedKeySize)
	mk := r.Fixed(typedKeySize)
	f.caps = r.U32()
	f.created = r.U64()
	sig := r.Fixed(SignatureSize)
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: device cert: %w", ErrMalformed, err)
	}
	if sk[0] != suite.KeyEd25519 || ik[0] != suite.KeyX25519 || mk[0] != suite.KeyX25519 {
		return nil, fmt.Errorf("%w: device cert key type bytes %#x %#x %#x", ErrMalformed, sk[0], ik[0], mk[0])
	}
	f.signing, f.identity, f.mailbox = sk[1:], ik[1:], mk[1:]
	if f.caps&^capKnown != 0 {
		return nil, fmt.Errorf("%w: device cert unknown capability bits %#x", ErrMalformed, f.caps&^capKnown)
	}
	if f.caps&CapPQRequired == 0 {
		return nil, fmt.Errorf("%w: device cert lacks the PQ-required capability", ErrMalformed)
	}
	if f.created > math.MaxInt64 {
		return nil, fmt.Errorf("%w: device cert created_at out of range", ErrMalformed)
	}
	body := b[:certBodySize]
	if !ed25519.Verify(ed25519.PublicKey(f.account[:]), signedMessage(labelDeviceCert, body), sig) {
		return nil, ErrBadSignature
	}
	// The signature is good; the remaining checks catch an account that
	// signed something invalid.
	if DeviceIDOf(f.signing) != f.device {
		return nil, fmt.Errorf("%w: device cert device id does not match its signing key", ErrMalformed)
	}
	idk, err := x25519.ParsePublicKey(f.identity)
	if err != nil {
		return nil, fmt.Errorf("%w: device cert identity key: %w", ErrMalformed, err)
	}
	mbk, err := x25519.ParsePublicKey(f.mailbox)
	if err != nil {
		return nil, fmt.Errorf("%w: device cert mailbox key: %w", ErrMalformed, err)
	}
	return &DeviceCert{
		account:  f.account,
		device:   f.device,
		signing:  ed25519.PublicKey(codec.Clone(f.signing)),
		identity: idk,
		mailbox:  mbk,
		caps:     f.caps,
		created:  f.created,
		enc:      codec.Clone(b),
	}, nil
}

// Marshal returns the canonical encoding (a fresh copy).
func (c *DeviceCert) Marshal() []byte { return codec.Clone(c.enc) }

// Account returns the account that signed the certificate.
func (c *DeviceCert) Account() AccountID { return c.account }

// DeviceID returns the certified device's ID.
func (c *DeviceCert) DeviceID() DeviceID { return c.device }

// SigningKey returns the device's Ed25519 public key (a fresh copy).
func (c *DeviceCert) SigningKey() ed25519.PublicKey { return codec.Clone(c.signing) }

// IdentityKey returns the device's validated X25519 identity key.
func (c *DeviceCert) IdentityKey() *ecdh.PublicKey { return c.identity }

// MailboxKey returns the device's validated X25519 mailbox key.
func (c *DeviceCert) MailboxKey() *ecdh.PublicKey { return c.mailbox }

// Capabilities returns the capability bits.
func (c *DeviceCert) Capabilities() uint32 { return c.caps }

// PQRequired reports whether CapPQRequired is set (always, in v1).
func (c *DeviceCert) PQRequired() bool { return c.caps&CapPQRequired != 0 }

// CreatedAt returns the creation time (second precision).
func (c *DeviceCert) CreatedAt() time.Time { return time.Unix(int64(c.created), 0) }

// Equal reports whether c and o have the same encoding.
func (c *DeviceCert) Equal(o *DeviceCert) bool {
	return c != nil && o != nil && bytes.Equal(c.enc, o.enc)
}
