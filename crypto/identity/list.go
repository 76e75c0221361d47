package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/suite"
)

// labelDeviceList domain-separates device list signatures.
const labelDeviceList = "hush/v1/device-list"

// Limits of a device list.
const (
	// MaxDevices is the most devices one account may list.
	MaxDevices = 16
	// listHeaderSize is version ‖ suite ‖ account ‖ list version ‖
	// prev hash ‖ issued_at ‖ device count.
	listHeaderSize = 2 + AccountIDSize + 8 + HashSize + 8 + 2 // 84
	// MaxDeviceListSize is the largest encoding ParseDeviceList accepts.
	MaxDeviceListSize = listHeaderSize + MaxDevices*CertSize + SignatureSize // 3748
	// HashSize is the size of a device list hash.
	HashSize = sha256.Size
)

// DeviceList is an account's signed list of its current devices. Versions
// start at 1 and strictly increase; each list names the hash of the one it
// replaces. A revoked device is one that is absent from the newer list. A
// *DeviceList always carries a valid signature and valid certificates, all
// by Account(), sorted by device ID with no duplicates.
type DeviceList struct {
	account  AccountID
	version  uint64
	prevHash [HashSize]byte
	issued   uint64
	devices  []*DeviceCert
	enc      []byte
	hash     [HashSize]byte
}

// NewDeviceList signs a list of devices. With prev nil it is version 1 with
// a zero previous hash; otherwise it is prev's version plus one and names
// prev.Hash(). Every certificate must belong to a, device IDs must be
// distinct, and there must be 1 to MaxDevices of them; the list is stored
// sorted by device ID.
func (a *Account) NewDeviceList(prev *DeviceList, devices []*DeviceCert, now time.Time) (*DeviceList, error) {
	issued, err := unixSeconds(now)
	if err != nil {
		return nil, err
	}
	version := uint64(1)
	var prevHash [HashSize]byte
	if prev != nil {
		if prev.account != a.id {
			return nil, fmt.Errorf("%w: previous list belongs to %v", ErrWrongAccount, prev.account)
		}
		if prev.version >= math.MaxUint64-1 {
			return nil, fmt.Errorf("%w: list version exhausted", ErrMalformed)
		}
		version = prev.version + 1
		prevHash = prev.hash
	}
	switch {
	case len(devices) == 0:
		return nil, ErrNoDevices
	case len(devices) > MaxDevices:
		return nil, fmt.Errorf("%w: %d devices, limit %d", ErrTooManyDevices, len(devices), MaxDevices)
	}
	sorted := slices.Clone(devices)
	for _, c := range sorted {
		if c == nil {
			return nil, fmt.Errorf("%w: nil device cert", ErrMalformed)
		}
		if c.account != a.id {
			return nil, fmt.Errorf("%w: device %v is certified by %v", ErrWrongAccount, c.device, c.account)
		}
	}
	slices.SortFunc(sorted, func(x, y *DeviceCert) int { return bytes.Compare(x.device[:], y.device[:]) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].device == sorted[i-1].device {
			return nil, fmt.Errorf("%w: %v", ErrDuplicateDevice, sorted[i].device)
		}
	}
	body := listBody(a.id, version, prevHash, issued, sorted)
	enc := append(body, ed25519.Sign(a.priv, signedMessage(labelDeviceList, body))...)
	return ParseDeviceList(enc)
}

func listBody(account AccountID, version uint64, prevHash [HashSize]byte, issued uint64, devices []*DeviceCert) []byte {
	w := codec.NewWriter(listHeaderSize + len(devices)*CertSize + SignatureSize)
	w.U8(suite.Version)
	w.U8(suite.ID)
	w.Fixed(account[:])
	w.U64(version)
	w.Fixed(prevHash[:])
	w.U64(issued)
	w.U16(uint16(len(devices)))
	for _, c := range devices {
		w.Fixed(c.enc)
	}
	return w.Bytes()
}

// ParseDeviceList decodes a device list, verifies the account signature
// and every certificate, and checks that each certificate belongs to the
// list's account, that devices are sorted by ID without duplicates and
// that the version and previous hash are consistent. Callers must still
// check Account() and call Follows against the last list they accepted.
func ParseDeviceList(b []byte) (*DeviceList, error) {
	if len(b) > MaxDeviceListSize {
		return nil, fmt.Errorf("%w: device list of %d bytes, limit %d", ErrTooManyDevices, len(b), MaxDeviceListSize)
	}
	r := codec.NewReader(b)
	v, s := r.U8(), r.U8()
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("%w: device list header: %w", ErrMalformed, err)
	}
	if v != suite.Version || s != suite.ID {
		return nil, fmt.Errorf("%w: device list version %d suite %d", ErrUnsupportedVersion, v, s)
	}
	l := &DeviceList{}
	copy(l.account[:], r.Fixed(AccountIDSize))
	l.version = r.U64()
	copy(l.prevHash[:], r.Fixed(HashSize))
	l.issued = r.U64()
	n := r.Count(MaxDevices)
	if err := r.Err(); err != nil {
		if errors.Is(err, codec.ErrTooLarge) {
			return nil, fmt.Errorf("%w: device list: %w", ErrTooManyDevices, err)
		}
		return nil, fmt.Errorf("%w: device list: %w", ErrMalformed, err)
	}
	if n == 0 {
		return nil, ErrNoDevices
	}
	certs := make([][]byte, n)
	for i := range certs {
		certs[i] = r.Fixed(CertSize)
	}
	bodyLen := len(b) - r.Remaining()
	sig := r.Fixed(SignatureSize)
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: device list: %w", ErrMalformed, err)
	}
	if !ed25519.Verify(ed25519.PublicKey(l.account[:]), signedMessage(labelDeviceList, b[:bodyLen]), sig) {
		return nil, ErrBadSignature
	}
	if l.version == 0 || l.version == math.MaxUint64 {
		return nil, fmt.Errorf("%w: device list version %d out of range", ErrMalformed, l.version)
	}
	if (l.version == 1) != (l.prevHash == [HashSize]byte{}) {
		return nil, fmt.Errorf("%w: device list previous hash must be zero exactly for version 1", ErrMalformed)
	}
	if l.issued > math.MaxInt64 {
		return nil, fmt.Errorf("%w: device list issued_at out of range", ErrMalformed)
	}
	l.devices = make([]*DeviceCert, n)
	for i, cb := range certs {
		c, err := ParseDeviceCert(cb)
		if err != nil {
			return nil, fmt.Errorf("device list entry %d: %w", i, err)
		}
		if c.account != l.account {
			return nil, fmt.Errorf("%w: device list entry %d is certified by another account", ErrWrongAccount, i)
		}
		if i > 0 {
			switch bytes.Compare(l.devices[i-1].device[:], c.device[:]) {
			case 0:
				return nil, fmt.Errorf("%w: device list entry %d", ErrDuplicateDevice, i)
			case 1:
				return nil, fmt.Errorf("%w: device list entries not sorted by device id", ErrMalformed)
			}
		}
		l.devices[i] = c
	}
	l.enc = codec.Clone(b)
	l.hash = sha256.Sum256(b)
	return l, nil
}

// Follows checks that l may replace prev, the last list accepted for the
// same account. It accepts only a list of the same account with a higher
// version. When the version is exactly prev's plus one, l's previous hash
// must equal prev.Hash(). A jump of several versions is accepted (the peer
// missed the lists in between; the account signature still holds), but a
// rollback to an equal or lower version never is, even for an identical
// list: callers wanting idempotence compare Hash() first.
func (l *DeviceList) Follows(prev *DeviceList) error {
	if prev == nil {
		return fmt.Errorf("%w: no previous list", ErrBrokenChain)
	}
	if l.account != prev.account {
		return ErrWrongAccount
	}
	if l.version <= prev.version {
		return fmt.Errorf("%w: version %d does not exceed %d", ErrRollback, l.version, prev.version)
	}
	if l.version == prev.version+1 && l.prevHash != prev.hash {
		return fmt.Errorf("%w: version %d does not name the hash of version %d", ErrBrokenChain, l.version, prev.version)
	}
	return nil
}

// Hash returns SHA-256 of the full encoding, signature included.
func (l *DeviceList) Hash() [HashSize]byte { return l.hash }

// Marshal returns the canonical encoding (a fresh copy).
func (l *DeviceList) Marshal() []byte { return codec.Clone(l.enc) }

// Account returns the account that signed the list.
func (l *DeviceList) Account() AccountID { return l.account }

// Version returns the list version (1 or more).
func (l *DeviceList) Version() uint64 { return l.version }

// PrevHash returns the hash of the list this one replaces (zero for
// version 1).
func (l *DeviceList) PrevHash() [HashSize]byte { return l.prevHash }

// IssuedAt returns the signing time (second precision).
func (l *DeviceList) IssuedAt() time.Time { return time.Unix(int64(l.issued), 0) }

// Devices returns the certificates, sorted by device ID (a fresh slice).
func (l *DeviceList) Devices() []*DeviceCert { return slices.Clone(l.devices) }

// Len returns the number of devices.
func (l *DeviceList) Len() int { return len(l.devices) }

// Contains reports whether the list holds device id.
func (l *DeviceList) Contains(id DeviceID) bool { return l.Device(id) != nil }

// Device returns the certificate of device id, or nil if it is absent
// (never listed or revoked).
func (l *DeviceList) Device(id DeviceID) *DeviceCert {
	i, ok := slices.BinarySearchFunc(l.devices, id, func(c *DeviceCert, id DeviceID) int {
		return bytes.Compare(c.device[:], id[:])
	})
	if !ok {
		return nil
	}
	return l.devices[i]
}
