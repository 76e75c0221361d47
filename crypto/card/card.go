// Package card is the hush contact card and its hush:// link: a display
// name, the account's signed device list and, per device, a PQXDH prekey
// bundle, transport hints (libp2p peer ID and addresses) and mailbox
// deposit addresses on relays. The whole card is signed by the account
// key, so a link can be passed over any channel; opening it twice gives
// the same contact.
//
// Transport hints and mailbox fields are opaque bytes here (multiaddrs,
// peer IDs and relay deposit capabilities are defined by the node and
// relay packages); this package only bounds their sizes and signs them.
package card

import (
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/pqxdh"
	"github.com/hushnet/hush/crypto/suite"
)

// labelCard separates card signatures from every other account signature.
const labelCard = "hush/v1/card"

// Scheme is the URI scheme of contact links.
const Scheme = "hush://"

// Limits, checked before allocating.
const (
	MaxNameSize      = 64  // bytes of UTF-8 display name
	MaxPeerIDSize    = 128 // bytes of a libp2p peer ID
	MaxAddrs         = 8   // transport addresses per device
	MaxAddrSize      = 256 // bytes per binary multiaddr
	MaxMailboxes     = 4   // relay mailboxes per device
	MaxRelayAddrSize = 512 // bytes of a relay's binary multiaddr
	MaxDepositSize   = 64  // bytes of a deposit ID or capability
	MaxCardSize      = 64 << 10
	// MaxLinkSize is the longest link ParseLink reads.
	MaxLinkSize = len(Scheme) + (MaxCardSize*8+4)/5
)

// Sentinel errors; parse errors wrap one of them with the field at fault.
var (
	ErrNotLink      = errors.New("card: not a hush:// link")
	ErrMalformed    = errors.New("card: malformed contact card")
	ErrVersion      = errors.New("card: unsupported card version")
	ErrBadSignature = errors.New("card: bad card signature")
	ErrTooLarge     = errors.New("card: contact card too large")
)

// Mailbox is a deposit address on a relay.
type Mailbox struct {
	Relay      []byte // the relay's binary multiaddr, including /p2p/<id>
	DepositID  []byte // the unlinkable ID senders deposit to
	Capability []byte // the deposit capability (access key) senders present
}

// Device is one device's entry in a card.
type Device struct {
	ID        identity.DeviceID
	Bundle    *pqxdh.Bundle
	PeerID    []byte   // libp2p peer ID bytes (transport identity, not the messaging one)
	Addrs     [][]byte // binary multiaddrs where the device listens
	Mailboxes []Mailbox

	bundle []byte // encoding, as signed
}

// Card is a parsed, verified contact card.
type Card struct {
	Name    string
	List    *identity.DeviceList
	Created time.Time
	Devices []Device

	enc []byte
}

// New builds and signs a card. Every device must be in list, which must
// belong to a.
func New(a *identity.Account, name string, list *identity.DeviceList, devices []Device, now time.Time) (*Card, error) {
	if list.Account() != a.Public() {
		return nil, fmt.Errorf("card: device list belongs to another account")
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	if len(devices) == 0 || len(devices) > identity.MaxDevices {
		return nil, fmt.Errorf("%w: %d devices", ErrMalformed, len(devices))
	}
	w := codec.NewWriter(4096)
	w.U8(suite.Version)
	w.U8(suite.ID)
	w.String16(name)
	w.Bytes32(list.Marshal())
	w.U64(uint64(now.Unix()))
	w.U16(uint16(len(devices)))
	for i := range devices {
		d := &devices[i]
		if !list.Contains(d.ID) {
			return nil, fmt.Errorf("%w: device %s not in the device list", ErrMalformed, d.ID)
		}
		if d.Bundle == nil {
			return nil, fmt.Errorf("%w: device %s has no prekey bundle", ErrMalformed, d.ID)
		}
		if err := d.checkSizes(); err != nil {
			return nil, err
		}
		w.Fixed(d.ID[:])
		w.Bytes16(d.Bundle.Marshal())
		w.Bytes16(d.PeerID)
		w.U16(uint16(len(d.Addrs)))
		for _, addr := range d.Addrs {
			w.Bytes16(addr)
		}
		w.U16(uint16(len(d.Mailboxes)))
		for _, m := range d.Mailboxes {
			w.Bytes16(m.Relay)
			w.Bytes16(m.DepositID)
			w.Bytes16(m.Capability)
		}
	}
	sig, err := a.Sign(labelCard, w.Bytes())
	if err != nil {
		return nil, fmt.Errorf("card: sign: %w", err)
	}
	w.Fixed(sig)
	if w.Len() > MaxCardSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, w.Len(), MaxCardSize)
	}
	return Parse(w.Bytes(), now)
}

func (d *Device) checkSizes() error {
	switch {
	case len(d.PeerID) > MaxPeerIDSize:
		return fmt.Errorf("%w: peer ID of %d bytes", ErrTooLarge, len(d.PeerID))
	case len(d.Addrs) > MaxAddrs:
		return fmt.Errorf("%w: %d addresses, limit %d", ErrTooLarge, len(d.Addrs), MaxAddrs)
	case len(d.Mailboxes) > MaxMailboxes:
		return fmt.Errorf("%w: %d mailboxes, limit %d", ErrTooLarge, len(d.Mailboxes), MaxMailboxes)
	}
	for _, a := range d.Addrs {
		if len(a) > MaxAddrSize {
			return fmt.Errorf("%w: address of %d bytes", ErrTooLarge, len(a))
		}
	}
	for _, m := range d.Mailboxes {
		if len(m.Relay) > MaxRelayAddrSize || len(m.DepositID) > MaxDepositSize || len(m.Capability) > MaxDepositSize {
			return fmt.Errorf("%w: mailbox field over limit", ErrTooLarge)
		}
	}
	return nil
}

func checkName(name string) error {
	if len(name) == 0 || len(name) > MaxNameSize {
		return fmt.Errorf("%w: name must be 1 to %d bytes", ErrMalformed, MaxNameSize)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: name is not UTF-8", ErrMalformed)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: name contains a control character", ErrMalformed)
		}
	}
	return nil
}

// Parse decodes a card and verifies it at time now: the account signature
// over the whole card, the device list, and each device's prekey bundle
// under that device's certified signing key (including prekey expiry).
func Parse(b []byte, now time.Time) (*Card, error) { return parse(b, &now) }

// ParseStored parses a card that was verified with Parse when it arrived
// and kept since: every signature is checked again, but prekey validity is
// judged at the card's creation time, so an old card still loads. Callers
// must re-check prekey expiry (pqxdh.ParseBundle) before starting a
// session from it.
func ParseStored(b []byte) (*Card, error) { return parse(b, nil) }

func parse(b []byte, at *time.Time) (*Card, error) {
	if len(b) > MaxCardSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxCardSize)
	}
	if len(b) < 2+identity.SignatureSize {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrMalformed, len(b))
	}
	r := codec.NewReader(b)
	if v, s := r.U8(), r.U8(); v != suite.Version || s != suite.ID {
		return nil, fmt.Errorf("%w: version %d suite %d", ErrVersion, v, s)
	}
	c := &Card{}
	c.Name = r.String16(MaxNameSize)
	listBytes := r.Bytes32(identity.MaxDeviceListSize)
	created := r.U64()
	n := r.Count(identity.MaxDevices)
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := checkName(c.Name); err != nil {
		return nil, err
	}
	list, err := identity.ParseDeviceList(listBytes)
	if err != nil {
		return nil, fmt.Errorf("card: device list: %w", err)
	}
	c.List = list
	if created > 1<<62 {
		return nil, fmt.Errorf("%w: creation time out of range", ErrMalformed)
	}
	c.Created = time.Unix(int64(created), 0)
	now := c.Created
	if at != nil {
		now = *at
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: no devices", ErrMalformed)
	}
	seen := make(map[identity.DeviceID]bool, n)
	for range n {
		var d Device
		copy(d.ID[:], r.Fixed(identity.DeviceIDSize))
		d.bundle = r.Bytes16(pqxdh.MaxBundleSize)
		d.PeerID = codec.Clone(r.Bytes16(MaxPeerIDSize))
		na := r.Count(MaxAddrs)
		for range na {
			d.Addrs = append(d.Addrs, codec.Clone(r.Bytes16(MaxAddrSize)))
		}
		nm := r.Count(MaxMailboxes)
		for range nm {
			d.Mailboxes = append(d.Mailboxes, Mailbox{
				Relay:      codec.Clone(r.Bytes16(MaxRelayAddrSize)),
				DepositID:  codec.Clone(r.Bytes16(MaxDepositSize)),
				Capability: codec.Clone(r.Bytes16(MaxDepositSize)),
			})
		}
		if err := r.Err(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		cert := list.Device(d.ID)
		if cert == nil {
			return nil, fmt.Errorf("%w: device %s not in the device list", ErrMalformed, d.ID)
		}
		if seen[d.ID] {
			return nil, fmt.Errorf("%w: device %s listed twice", ErrMalformed, d.ID)
		}
		seen[d.ID] = true
		d.bundle = codec.Clone(d.bundle)
		bundle, err := pqxdh.ParseBundle(d.bundle, cert.SigningKey(), now)
		if err != nil {
			return nil, fmt.Errorf("card: device %s prekeys: %w", d.ID, err)
		}
		d.Bundle = bundle
		c.Devices = append(c.Devices, d)
	}
	signed := len(b) - r.Remaining()
	sig := r.Fixed(identity.SignatureSize)
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := identity.Verify(list.Account().PublicKey(), labelCard, b[:signed], sig); err != nil {
		return nil, ErrBadSignature
	}
	c.enc = codec.Clone(b)
	return c, nil
}

// Account is the card owner's account ID (what the safety number covers).
func (c *Card) Account() identity.AccountID { return c.List.Account() }

// Marshal returns the signed encoding.
func (c *Card) Marshal() []byte { return codec.Clone(c.enc) }

// Device returns the entry for id, or nil.
func (c *Card) Device(id identity.DeviceID) *Device {
	for i := range c.Devices {
		if c.Devices[i].ID == id {
			return &c.Devices[i]
		}
	}
	return nil
}

var linkEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Link returns the card as a hush:// link: the scheme, then the card in
// unpadded upper-case base32 (RFC 4648), which is also the compact
// alphanumeric mode of a QR code once the scheme is upper-cased.
func (c *Card) Link() string { return Scheme + linkEncoding.EncodeToString(c.enc) }

// ParseLink parses and verifies a hush:// link. Surrounding white space is
// ignored and the base32 part is case-insensitive.
func ParseLink(s string, now time.Time) (*Card, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxLinkSize {
		return nil, fmt.Errorf("%w: link of %d characters, limit %d", ErrTooLarge, len(s), MaxLinkSize)
	}
	if len(s) < len(Scheme) || !strings.EqualFold(s[:len(Scheme)], Scheme) {
		return nil, ErrNotLink
	}
	b, err := linkEncoding.DecodeString(strings.ToUpper(s[len(Scheme):]))
	if err != nil {
		return nil, fmt.Errorf("%w: the link is damaged or cut short (%v)", ErrMalformed, err)
	}
	return Parse(b, now)
}
