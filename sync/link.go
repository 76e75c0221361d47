package sync

import (
	"bytes"
	"fmt"
	"time"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
)

// RecordType is the first byte of a record on the link channel.
type RecordType uint8

// Record types (docs/protocol/sync.md §18.2, "Records").
const (
	RecordGrant   RecordType = 1 // R → I: the account key
	RecordEnroll  RecordType = 2 // I → R: the new device's certificate
	RecordWelcome RecordType = 3 // R → I: the new device list
	RecordWant    RecordType = 4 // I → R: history from a cursor
	RecordChunk   RecordType = 5 // R → I: a chunk of history
	RecordClose   RecordType = 6 // either: the end, with a reason
)

// Close reasons.
const (
	CloseComplete byte = 0 // the transfer is complete
	CloseDeclined byte = 1 // the user declined the link
	CloseFull     byte = 2 // the account has the most devices it may have
	CloseError    byte = 3 // anything else
)

// TypeOf returns the type of a record.
func TypeOf(record []byte) (RecordType, error) {
	if len(record) == 0 || record[0] < byte(RecordGrant) || record[0] > byte(RecordClose) {
		return 0, fmt.Errorf("%w: unknown record type", ErrMalformed)
	}
	return RecordType(record[0]), nil
}

// recordBody returns the body of a record of type t.
func recordBody(record []byte, t RecordType) ([]byte, error) {
	got, err := TypeOf(record)
	if err != nil {
		return nil, err
	}
	if got != t {
		return nil, fmt.Errorf("%w: record type %d, want %d", ErrMalformed, got, t)
	}
	return record[1:], nil
}

// MarshalGrant encodes the grant record: the account's private key.
func MarshalGrant(a *identity.Account) ([]byte, error) {
	k, err := a.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return append([]byte{byte(RecordGrant)}, k...), nil
}

// ParseGrant decodes a grant record and checks that the key is the
// account's whose list the responder offered.
func ParseGrant(record []byte, want identity.AccountID) (*identity.Account, error) {
	b, err := recordBody(record, RecordGrant)
	if err != nil {
		return nil, err
	}
	if len(b) != identity.AccountPrivateSize {
		return nil, fmt.Errorf("%w: grant of %d bytes", ErrMalformed, len(b))
	}
	a, err := identity.ParseAccount(b)
	if err != nil {
		return nil, fmt.Errorf("%w: grant: %w", ErrMalformed, err)
	}
	if a.Public() != want {
		return nil, fmt.Errorf("%w: the granted key is not the offered account's", ErrWrongAccount)
	}
	return a, nil
}

// MarshalEnroll encodes the enroll record: the new device's certificate.
func MarshalEnroll(c *identity.DeviceCert) []byte {
	return append([]byte{byte(RecordEnroll)}, c.Marshal()...)
}

// ParseEnroll decodes an enroll record (the certificate's signature and
// keys are checked; CheckEnroll checks the rest).
func ParseEnroll(record []byte) (*identity.DeviceCert, error) {
	b, err := recordBody(record, RecordEnroll)
	if err != nil {
		return nil, err
	}
	if len(b) != identity.CertSize {
		return nil, fmt.Errorf("%w: enroll of %d bytes", ErrMalformed, len(b))
	}
	c, err := identity.ParseDeviceCert(b)
	if err != nil {
		return nil, fmt.Errorf("%w: enroll: %w", ErrMalformed, err)
	}
	return c, nil
}

// CheckEnroll checks, on the responder, the certificate the new device
// made for itself against the handshake: the account is current's, the
// X25519 identity key is the Noise static the device proved it holds, the
// signing and mailbox keys are the ones it proposed, and current (the
// account's list as it is now) has room and does not hold it yet.
func (c *Channel) CheckEnroll(cert *identity.DeviceCert, current *identity.DeviceList) error {
	p := c.Proposal()
	if p == nil || c.mode != modeLink {
		return fmt.Errorf("%w: enroll before a completed link handshake", ErrState)
	}
	if cert.Account() != current.Account() {
		return fmt.Errorf("%w: the certificate is signed by another account", ErrWrongAccount)
	}
	if !bytes.Equal(cert.IdentityKey().Bytes(), c.remote[:]) ||
		!bytes.Equal(cert.SigningKey(), p.SigningKey) ||
		!bytes.Equal(cert.MailboxKey().Bytes(), p.MailboxKey) {
		return fmt.Errorf("%w: the certificate's keys are not the ones proposed in the handshake", ErrMalformed)
	}
	if current.Contains(cert.DeviceID()) {
		return ErrDeviceExists
	}
	if current.Len() >= identity.MaxDevices {
		return ErrDeviceListFull
	}
	return nil
}

// NextList is what the responder does after CheckEnroll: the account signs
// current plus the new device as the next list version.
func NextList(acct *identity.Account, current *identity.DeviceList, cert *identity.DeviceCert, now time.Time) (*identity.DeviceList, error) {
	return acct.NewDeviceList(current, append(current.Devices(), cert), now)
}

// MarshalWelcome encodes the welcome record: the new device list.
func MarshalWelcome(l *identity.DeviceList) []byte {
	w := codec.NewWriter(3 + identity.MaxDeviceListSize)
	w.U8(byte(RecordWelcome))
	w.Bytes16(l.Marshal())
	return w.Bytes()
}

// ParseWelcome decodes a welcome record.
func ParseWelcome(record []byte) (*identity.DeviceList, error) {
	b, err := recordBody(record, RecordWelcome)
	if err != nil {
		return nil, err
	}
	r := codec.NewReader(b)
	lb := r.Bytes16(identity.MaxDeviceListSize)
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: welcome: %w", ErrMalformed, err)
	}
	l, err := identity.ParseDeviceList(lb)
	if err != nil {
		return nil, fmt.Errorf("%w: welcome: %w", ErrMalformed, err)
	}
	return l, nil
}

// CheckWelcome checks, on the new device, the list the responder signed:
// it is the offered account's, it follows the offered list (no rollback,
// the hash chain unbroken), and it holds mine byte for byte.
func (c *Channel) CheckWelcome(list *identity.DeviceList, mine *identity.DeviceCert) error {
	if !c.initiator || !c.Done() || c.mode != modeLink {
		return fmt.Errorf("%w: welcome before a completed link handshake", ErrState)
	}
	if list.Account() != c.offerList.Account() {
		return fmt.Errorf("%w: welcome list", ErrWrongAccount)
	}
	if err := list.Follows(c.offerList); err != nil {
		return fmt.Errorf("sync: welcome list: %w", err)
	}
	got := list.Device(mine.DeviceID())
	if got == nil || !got.Equal(mine) {
		return fmt.Errorf("%w: the welcome list does not hold this device's certificate", ErrMalformed)
	}
	return nil
}

// MarshalClose encodes a close record.
func MarshalClose(reason byte) []byte { return []byte{byte(RecordClose), reason} }

// ParseClose decodes a close record.
func ParseClose(record []byte) (byte, error) {
	b, err := recordBody(record, RecordClose)
	if err != nil {
		return 0, err
	}
	if len(b) != 1 || b[0] > CloseError {
		return 0, fmt.Errorf("%w: close record", ErrMalformed)
	}
	return b[0], nil
}
