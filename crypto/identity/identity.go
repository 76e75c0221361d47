// Package identity holds hush's long-term identity keys and the two
// structures the account key signs: the device certificate, which binds a
// device's signing, identity-DH and mailbox keys to the account, and the
// device list, a hash-chained, strictly versioned list of the account's
// current devices.
//
// An Account is the Ed25519 key people verify (see package
// github.com/hushnet/hush/crypto/safety); its public half is the AccountID.
// A Device holds the per-device Ed25519 signing key and two X25519 keys.
// DeviceCert and DeviceList values can only be obtained from Certify,
// NewDeviceList or the Parse functions, so every value in hand has a valid
// signature and valid keys. The encodings are specified in
// docs/protocol/identity.md.
package identity

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/suite"
)

// Sentinel errors. Parse failures wrap ErrMalformed (or one of the more
// specific sentinels below) with the field and reason; signature failures
// are ErrBadSignature and carry no detail.
var (
	ErrMalformed          = errors.New("identity: malformed encoding")
	ErrUnsupportedVersion = errors.New("identity: unsupported version or suite")
	ErrBadSignature       = errors.New("identity: signature verification failed")
	ErrWrongAccount       = errors.New("identity: wrong account")
	ErrRollback           = errors.New("identity: device list rollback")
	ErrBrokenChain        = errors.New("identity: device list hash chain broken")
	ErrDuplicateDevice    = errors.New("identity: duplicate device")
	ErrTooManyDevices     = errors.New("identity: too many devices")
	ErrNoDevices          = errors.New("identity: device list is empty")
	ErrReservedLabel      = errors.New("identity: label reserved or not a hush/v1 label")
)

// Key kinds written after the version and suite bytes of a private-key
// encoding, so an account blob can never be parsed as a device blob.
const (
	kindAccount byte = 0x01
	kindDevice  byte = 0x02
)

// Sizes of the encodings in this package.
const (
	AccountIDSize      = ed25519.PublicKeySize // 32
	DeviceIDSize       = 16
	AccountPrivateSize = 3 + ed25519.SeedSize           // 35
	DevicePrivateSize  = 3 + ed25519.SeedSize + 32 + 32 // 99
	SignatureSize      = ed25519.SignatureSize          // 64
)

// labelDeviceID domain-separates the device ID hash.
const labelDeviceID = "hush/v1/device-id"

// labelPrefix is the prefix every signing label must carry.
const labelPrefix = "hush/v1/"

// AccountID is an account's Ed25519 public key: the identity people verify.
type AccountID [AccountIDSize]byte

// ParseAccountID copies a 32-byte account key. It does not check that the
// bytes are a valid Ed25519 point; a bad key simply never verifies.
func ParseAccountID(b []byte) (AccountID, error) {
	var id AccountID
	if len(b) != AccountIDSize {
		return id, fmt.Errorf("%w: account id of %d bytes, want %d", ErrMalformed, len(b), AccountIDSize)
	}
	copy(id[:], b)
	return id, nil
}

// String returns a short form (the first 8 hex digits) safe for logs.
func (id AccountID) String() string { return hex.EncodeToString(id[:4]) }

// Hex returns the full key in lower-case hex.
func (id AccountID) Hex() string { return hex.EncodeToString(id[:]) }

// PublicKey returns the key as an ed25519.PublicKey (a fresh copy).
func (id AccountID) PublicKey() ed25519.PublicKey { return ed25519.PublicKey(codec.Clone(id[:])) }

// IsZero reports whether id is all zero (unset).
func (id AccountID) IsZero() bool { return id == AccountID{} }

// DeviceID names a device: the first 16 bytes of
// SHA-256("hush/v1/device-id" ‖ 0x02 ‖ signing public key).
type DeviceID [DeviceIDSize]byte

// DeviceIDOf computes the device ID of an Ed25519 signing public key.
func DeviceIDOf(signingKey ed25519.PublicKey) DeviceID {
	h := sha256.New()
	h.Write([]byte(labelDeviceID))
	h.Write(suite.TypedKey(suite.KeyEd25519, signingKey))
	var id DeviceID
	copy(id[:], h.Sum(nil))
	return id
}

// String returns a short form (the first 8 hex digits) safe for logs.
func (id DeviceID) String() string { return hex.EncodeToString(id[:4]) }

// Hex returns the full ID in lower-case hex.
func (id DeviceID) Hex() string { return hex.EncodeToString(id[:]) }

// Account is an account identity key pair. Its only jobs are to certify
// devices, sign device lists and sign other account-level statements
// through Sign.
type Account struct {
	priv ed25519.PrivateKey
	id   AccountID
}

// NewAccount generates a fresh account key from crypto/rand.
func NewAccount() (*Account, error) {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("identity: generate account key: %w", err)
	}
	return accountFromSeed(priv.Seed()), nil
}

func accountFromSeed(seed []byte) *Account {
	priv := ed25519.NewKeyFromSeed(seed)
	a := &Account{priv: priv}
	copy(a.id[:], priv.Public().(ed25519.PublicKey))
	return a
}

// Public returns the account ID.
func (a *Account) Public() AccountID { return a.id }

// MarshalBinary encodes the private key for the encrypted store:
// version ‖ suite ‖ 0x01 ‖ 32-byte Ed25519 seed. The result is secret.
func (a *Account) MarshalBinary() ([]byte, error) {
	w := codec.NewWriter(AccountPrivateSize)
	w.U8(suite.Version)
	w.U8(suite.ID)
	w.U8(kindAccount)
	w.Fixed(a.priv.Seed())
	return w.Bytes(), nil
}

// ParseAccount decodes a MarshalBinary encoding.
func ParseAccount(b []byte) (*Account, error) {
	r := codec.NewReader(b)
	if err := readHeader(r, kindAccount, "account key"); err != nil {
		return nil, err
	}
	seed := r.Fixed(ed25519.SeedSize)
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: account key: %w", ErrMalformed, err)
	}
	return accountFromSeed(seed), nil
}

// Sign signs msg under a caller-chosen label for account-level statements
// (a contact card, say). The label must start with "hush/v1/" and must not
// be one this package uses itself. See Verify.
func (a *Account) Sign(label string, msg []byte) ([]byte, error) {
	if err := checkLabel(label); err != nil {
		return nil, err
	}
	return ed25519.Sign(a.priv, signedMessage(label, msg)), nil
}

// Device is one device's private keys: an Ed25519 signing key, an X25519
// identity key (PQXDH DH positions) and an X25519 mailbox key (sealed
// envelopes).
type Device struct {
	signing  ed25519.PrivateKey
	identity *ecdh.PrivateKey
	mailbox  *ecdh.PrivateKey
	id       DeviceID
}

// NewDevice generates fresh device keys from crypto/rand.
func NewDevice() (*Device, error) {
	_, sk, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("identity: generate device signing key: %w", err)
	}
	ik, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("identity: generate device identity key: %w", err)
	}
	mk, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("identity: generate device mailbox key: %w", err)
	}
	return newDevice(sk, ik, mk), nil
}

func newDevice(sk ed25519.PrivateKey, ik, mk *ecdh.PrivateKey) *Device {
	return &Device{
		signing:  sk,
		identity: ik,
		mailbox:  mk,
		id:       DeviceIDOf(sk.Public().(ed25519.PublicKey)),
	}
}

// ID returns the device ID.
func (d *Device) ID() DeviceID { return d.id }

// SigningKey returns the device's Ed25519 private key. Prefer Sign, which
// domain-separates; the raw key is for formats that specify their own.
func (d *Device) SigningKey() ed25519.PrivateKey { return d.signing }

// SigningPublic returns the device's Ed25519 public key.
func (d *Device) SigningPublic() ed25519.PublicKey { return d.signing.Public().(ed25519.PublicKey) }

// IdentityKey returns the device's X25519 identity key.
func (d *Device) IdentityKey() *ecdh.PrivateKey { return d.identity }

// MailboxKey returns the device's X25519 mailbox key.
func (d *Device) MailboxKey() *ecdh.PrivateKey { return d.mailbox }

// Sign signs msg with the device key under label; see Account.Sign.
func (d *Device) Sign(label string, msg []byte) ([]byte, error) {
	if err := checkLabel(label); err != nil {
		return nil, err
	}
	return ed25519.Sign(d.signing, signedMessage(label, msg)), nil
}

// MarshalBinary encodes the private keys for the encrypted store:
// version ‖ suite ‖ 0x02 ‖ Ed25519 seed[32] ‖ X25519 identity[32] ‖
// X25519 mailbox[32]. The result is secret.
func (d *Device) MarshalBinary() ([]byte, error) {
	w := codec.NewWriter(DevicePrivateSize)
	w.U8(suite.Version)
	w.U8(suite.ID)
	w.U8(kindDevice)
	w.Fixed(d.signing.Seed())
	w.Fixed(d.identity.Bytes())
	w.Fixed(d.mailbox.Bytes())
	return w.Bytes(), nil
}

// ParseDevice decodes a MarshalBinary encoding.
func ParseDevice(b []byte) (*Device, error) {
	r := codec.NewReader(b)
	if err := readHeader(r, kindDevice, "device key"); err != nil {
		return nil, err
	}
	seed := r.Fixed(ed25519.SeedSize)
	ikb := r.Fixed(32)
	mkb := r.Fixed(32)
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: device key: %w", ErrMalformed, err)
	}
	ik, err := ecdh.X25519().NewPrivateKey(ikb)
	if err != nil {
		return nil, fmt.Errorf("%w: device identity key", ErrMalformed)
	}
	mk, err := ecdh.X25519().NewPrivateKey(mkb)
	if err != nil {
		return nil, fmt.Errorf("%w: device mailbox key", ErrMalformed)
	}
	return newDevice(ed25519.NewKeyFromSeed(seed), ik, mk), nil
}

// Verify checks a signature made by Account.Sign or Device.Sign with the
// same label. It returns ErrBadSignature on any failure.
func Verify(pub ed25519.PublicKey, label string, msg, sig []byte) error {
	if checkLabel(label) != nil || len(pub) != ed25519.PublicKeySize || len(sig) != SignatureSize {
		return ErrBadSignature
	}
	if !ed25519.Verify(pub, signedMessage(label, msg), sig) {
		return ErrBadSignature
	}
	return nil
}

// maxLabel bounds signing labels so they always fit a u16 length prefix.
const maxLabel = 255

// checkLabel accepts "hush/v1/..." labels other than this package's own.
func checkLabel(label string) error {
	if len(label) <= len(labelPrefix) || len(label) > maxLabel || label[:len(labelPrefix)] != labelPrefix {
		return ErrReservedLabel
	}
	switch label {
	case labelDeviceCert, labelDeviceList, labelDeviceID:
		return ErrReservedLabel
	}
	return nil
}

// signedMessage is the byte string every signature in hush covers:
// u16 len(label) ‖ label ‖ msg. The length prefix keeps labels prefix-free.
func signedMessage(label string, msg []byte) []byte {
	w := codec.NewWriter(2 + len(label) + len(msg))
	w.String16(label)
	w.Fixed(msg)
	return w.Bytes()
}

// readHeader reads and checks version ‖ suite ‖ kind.
func readHeader(r *codec.Reader, kind byte, what string) error {
	v, s, k := r.U8(), r.U8(), r.U8()
	if err := r.Err(); err != nil {
		return fmt.Errorf("%w: %s header: %w", ErrMalformed, what, err)
	}
	if v != suite.Version || s != suite.ID {
		return fmt.Errorf("%w: %s version %d suite %d", ErrUnsupportedVersion, what, v, s)
	}
	if k != kind {
		return fmt.Errorf("%w: %s kind byte %d", ErrMalformed, what, k)
	}
	return nil
}
