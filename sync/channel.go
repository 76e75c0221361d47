package sync

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/flynn/noise"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/suite"
	"github.com/hushnet/hush/crypto/x25519"
)

// Labels of the link channel.
const (
	// labelPrologue starts the Noise prologue.
	labelPrologue = "hush/v1/link"
	// labelTicketID and labelTicketKey are the HKDF infos deriving a
	// resume ticket from the handshake hash.
	labelTicketID  = "hush/v1/link-ticket-id"
	labelTicketKey = "hush/v1/link-ticket-key"
)

// Handshake modes, written into the prologue.
const (
	modeLink   byte = 0x01
	modeResume byte = 0x02
)

// Frame types on the stream (docs/protocol/sync.md §18.2, "Frames").
const (
	frameHello     byte = 0x01
	frameResume    byte = 0x02
	frameHandshake byte = 0x03
	frameTransport byte = 0x04
	frameRefusal   byte = 0x05
)

// Refusal reasons, sent in clear when the responder refuses a handshake.
const (
	// RefuseCode: the code (or ticket) was wrong, expired or used.
	RefuseCode byte = 1
	// RefuseBusy: the responder is already linking.
	RefuseBusy byte = 2
	// RefuseFull: the account already has identity.MaxDevices devices.
	RefuseFull byte = 3
)

// Channel limits.
const (
	// MaxFrameSize is the largest frame Step or Open accepts: a type byte,
	// a ticket ID and a Noise message.
	MaxFrameSize = 1 + TicketIDSize + noise.MaxMsgLen
	// MaxRecordSize bounds one record on the channel.
	MaxRecordSize = 320 << 10
	// maxFragment is the most record bytes one transport message carries:
	// a Noise message less its tag and the "more" byte.
	maxFragment = noise.MaxMsgLen - 16 - 1
	// MaxDeviceNameSize bounds a device's name.
	MaxDeviceNameSize = 64
	// MaxHistoryDays bounds the history window a new device asks for.
	MaxHistoryDays = 36500
	// TicketIDSize and TicketKeySize are the sizes of a resume ticket's
	// parts.
	TicketIDSize  = 16
	TicketKeySize = 32
	// TicketTTL is how long the existing device keeps a resume ticket.
	TicketTTL = 7 * 24 * time.Hour
)

// Errors of the link channel. ErrAuth is the single error for every
// cryptographic failure; the others are what callers branch on.
var (
	ErrAuth           = errors.New("sync: link authentication failed (wrong code?)")
	ErrRefused        = errors.New("sync: link refused by the other device")
	ErrDeviceListFull = errors.New("sync: the account already has the most devices it may have")
	ErrDeviceExists   = errors.New("sync: the device is already on the account's list")
	ErrTicket         = errors.New("sync: unknown or expired resume ticket")
	ErrState          = errors.New("sync: link channel used out of order")
	ErrMalformed      = errors.New("sync: malformed")
	ErrTooLarge       = errors.New("sync: too large")
	ErrWrongAccount   = errors.New("sync: another account")
)

// cipherSuite is Noise_XXpsk0_25519_ChaChaPoly_SHA256.
var cipherSuite = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashSHA256)

// ProtocolName is the Noise protocol name of the link channel.
const ProtocolName = "Noise_XXpsk0_25519_ChaChaPoly_SHA256"

func prologue(mode byte) []byte {
	return append([]byte(labelPrologue), CodeVersion, mode)
}

// Proposal is what a new device asks to be certified with: its keys other
// than the X25519 identity key (which is its Noise static key), its name
// and how much history it wants.
type Proposal struct {
	// SigningKey is the new device's Ed25519 public key.
	SigningKey ed25519.PublicKey
	// MailboxKey is its X25519 mailbox public key.
	MailboxKey []byte
	// Name is the device's name, 1 to MaxDeviceNameSize bytes of UTF-8.
	Name string
	// HistoryDays is how many days of messages to transfer; 0 means all.
	HistoryDays uint32
}

// Device returns the device ID the proposal's signing key gives.
func (p *Proposal) Device() identity.DeviceID { return identity.DeviceIDOf(p.SigningKey) }

func (p *Proposal) marshal() []byte {
	w := codec.NewWriter(32 + 32 + 2 + len(p.Name) + 4)
	w.Fixed(p.SigningKey)
	w.Fixed(p.MailboxKey)
	w.String16(p.Name)
	w.U32(p.HistoryDays)
	return w.Bytes()
}

func parseProposal(b []byte) (*Proposal, error) {
	r := codec.NewReader(b)
	p := &Proposal{}
	p.SigningKey = ed25519.PublicKey(codec.Clone(r.Fixed(ed25519.PublicKeySize)))
	p.MailboxKey = codec.Clone(r.Fixed(x25519.KeySize))
	p.Name = r.String16(MaxDeviceNameSize)
	p.HistoryDays = r.U32()
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: proposal: %w", ErrMalformed, err)
	}
	if _, err := x25519.ParsePublicKey(p.MailboxKey); err != nil {
		return nil, fmt.Errorf("%w: proposal mailbox key", ErrMalformed)
	}
	if err := checkName(p.Name, false); err != nil {
		return nil, fmt.Errorf("%w: proposal: %w", ErrMalformed, err)
	}
	if p.HistoryDays > MaxHistoryDays {
		return nil, fmt.Errorf("%w: proposal asks for %d days of history", ErrMalformed, p.HistoryDays)
	}
	return p, nil
}

// checkName accepts 1 to MaxDeviceNameSize bytes of UTF-8 without control
// characters (or none at all if empty is allowed).
func checkName(name string, emptyOK bool) error {
	if name == "" && emptyOK {
		return nil
	}
	if name == "" || len(name) > MaxDeviceNameSize || !utf8.ValidString(name) {
		return fmt.Errorf("name must be 1 to %d bytes of UTF-8", MaxDeviceNameSize)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return errors.New("name holds a control character")
		}
	}
	return nil
}

// Ticket lets a new device resume its history transfer after either side
// was interrupted, without the code: both sides derive it from the link
// handshake and keep it until the transfer completes. It is secret.
type Ticket struct {
	ID  [TicketIDSize]byte
	Key [TicketKeySize]byte
	// Peer is the other device's ID, and PeerStatic its Noise static key
	// (its X25519 identity key), which a resume must present again.
	Peer       identity.DeviceID
	PeerStatic [32]byte
	// Expires is when the existing device forgets the ticket; zero on the
	// new device.
	Expires time.Time
}

const ticketSize = 2 + TicketIDSize + TicketKeySize + identity.DeviceIDSize + 32 + 8

// Marshal encodes the ticket for the store: 0x01 ‖ 'K' ‖ id ‖ key ‖ peer
// ‖ peer static ‖ expires u64 (Unix seconds, 0 if none).
func (t *Ticket) Marshal() []byte {
	w := codec.NewWriter(ticketSize)
	w.U8(CodeVersion)
	w.U8('K')
	w.Fixed(t.ID[:])
	w.Fixed(t.Key[:])
	w.Fixed(t.Peer[:])
	w.Fixed(t.PeerStatic[:])
	var exp uint64
	if !t.Expires.IsZero() && t.Expires.Unix() > 0 {
		exp = uint64(t.Expires.Unix())
	}
	w.U64(exp)
	return w.Bytes()
}

// ParseTicket decodes Ticket.Marshal.
func ParseTicket(b []byte) (*Ticket, error) {
	r := codec.NewReader(b)
	if v, k := r.U8(), r.U8(); r.Err() == nil && (v != CodeVersion || k != 'K') {
		return nil, fmt.Errorf("%w: ticket header", ErrMalformed)
	}
	t := &Ticket{}
	copy(t.ID[:], r.Fixed(TicketIDSize))
	copy(t.Key[:], r.Fixed(TicketKeySize))
	copy(t.Peer[:], r.Fixed(identity.DeviceIDSize))
	copy(t.PeerStatic[:], r.Fixed(32))
	exp := r.U64()
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: ticket: %w", ErrMalformed, err)
	}
	if exp > 1<<62 {
		return nil, fmt.Errorf("%w: ticket expiry", ErrMalformed)
	}
	if exp != 0 {
		t.Expires = time.Unix(int64(exp), 0)
	}
	return t, nil
}

// InitiatorConfig configures the new device's side of a link or a resume.
type InitiatorConfig struct {
	// Device is the new device's keys; its X25519 identity key is the
	// Noise static key. Required.
	Device *identity.Device
	// Name is the device's name (link only), 1 to 64 bytes.
	Name string
	// HistoryDays is how many days of messages to ask for; 0 means all.
	HistoryDays uint32
	// Rand is the source of the ephemeral key; nil means crypto/rand.
	Rand io.Reader
}

// ResponderConfig configures the existing device's side.
type ResponderConfig struct {
	// Device is this device's keys, and List the account's current device
	// list, which must hold Device. Required.
	Device *identity.Device
	List   *identity.DeviceList
	// Now is the clock for the code's and tickets' expiry; nil means
	// time.Now.
	Now func() time.Time
	// Rand is the source of the ephemeral key; nil means crypto/rand.
	Rand io.Reader
}

// Channel is one side of the link channel: the Noise XXpsk0 handshake,
// driven by Step, then records sealed and opened with Seal and Open. It
// does no I/O. Any error is final: the channel refuses every later call
// with the same error.
type Channel struct {
	initiator bool
	mode      byte
	dev       *identity.Device
	rnd       io.Reader
	now       func() time.Time

	// Initiator: the code or ticket, the proposal to send, and what the
	// responder offered.
	code      *LinkCode
	proposal  *Proposal
	offerList *identity.DeviceList
	offerDev  identity.DeviceID

	// Responder: the offer or the ticket lookup, the current list, and
	// the proposal received.
	offer  *Offer
	lookup func([TicketIDSize]byte) (Ticket, bool)
	list   *identity.DeviceList

	ticket *Ticket // resume: the ticket in use

	hs         *noise.HandshakeState
	msgs       int // handshake messages sent or read so far
	send, recv *noise.CipherState
	done       bool
	binding    []byte
	remote     [32]byte
	err        error
	partial    []byte // a record being reassembled
}

// NewInitiator starts the new device's side of a link with a code it read.
func NewInitiator(code *LinkCode, cfg InitiatorConfig) (*Channel, error) {
	if code == nil || cfg.Device == nil {
		return nil, fmt.Errorf("%w: initiator needs a code and device keys", ErrState)
	}
	if err := checkName(cfg.Name, false); err != nil {
		return nil, fmt.Errorf("sync: device %w", err)
	}
	if cfg.HistoryDays > MaxHistoryDays {
		return nil, fmt.Errorf("sync: history of %d days, limit %d", cfg.HistoryDays, MaxHistoryDays)
	}
	d := cfg.Device
	c := &Channel{initiator: true, mode: modeLink, dev: d, rnd: cfg.Rand, code: code,
		proposal: &Proposal{
			SigningKey:  d.SigningPublic(),
			MailboxKey:  d.MailboxKey().PublicKey().Bytes(),
			Name:        cfg.Name,
			HistoryDays: cfg.HistoryDays,
		}}
	hs, err := c.newHandshake(code.psk())
	if err != nil {
		return nil, err
	}
	c.hs = hs
	return c, nil
}

// NewResumeInitiator starts the new device's side of a resume with the
// ticket it kept from the link.
func NewResumeInitiator(t Ticket, cfg InitiatorConfig) (*Channel, error) {
	if cfg.Device == nil {
		return nil, fmt.Errorf("%w: initiator needs device keys", ErrState)
	}
	c := &Channel{initiator: true, mode: modeResume, dev: cfg.Device, rnd: cfg.Rand, ticket: &t}
	hs, err := c.newHandshake(t.Key[:])
	if err != nil {
		return nil, err
	}
	c.hs = hs
	return c, nil
}

// NewResponder starts the existing device's side of a link for an offer
// it made.
func NewResponder(o *Offer, cfg ResponderConfig) (*Channel, error) {
	c, err := newResponder(cfg, modeLink)
	if err != nil {
		return nil, err
	}
	if o == nil {
		return nil, fmt.Errorf("%w: responder needs an offer", ErrState)
	}
	c.offer = o
	return c, nil
}

// NewResumeResponder starts the existing device's side of a resume;
// lookup finds a ticket it keeps by ID.
func NewResumeResponder(lookup func(id [TicketIDSize]byte) (Ticket, bool), cfg ResponderConfig) (*Channel, error) {
	c, err := newResponder(cfg, modeResume)
	if err != nil {
		return nil, err
	}
	if lookup == nil {
		return nil, fmt.Errorf("%w: responder needs a ticket lookup", ErrState)
	}
	c.lookup = lookup
	return c, nil
}

func newResponder(cfg ResponderConfig, mode byte) (*Channel, error) {
	if cfg.Device == nil || cfg.List == nil || !cfg.List.Contains(cfg.Device.ID()) {
		return nil, fmt.Errorf("%w: responder needs its keys and a list that holds it", ErrState)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Channel{mode: mode, dev: cfg.Device, rnd: cfg.Rand, now: now, list: cfg.List}, nil
}

func (c *Channel) newHandshake(psk []byte) (*noise.HandshakeState, error) {
	ik := c.dev.IdentityKey()
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:           cipherSuite,
		Random:                c.rnd,
		Pattern:               noise.HandshakeXX,
		Initiator:             c.initiator,
		Prologue:              prologue(c.mode),
		PresharedKey:          psk,
		PresharedKeyPlacement: 0,
		StaticKeypair:         noise.DHKey{Private: ik.Bytes(), Public: ik.PublicKey().Bytes()},
	})
	if err != nil {
		return nil, fmt.Errorf("sync: noise handshake: %w", err)
	}
	return hs, nil
}

// fail makes err final.
func (c *Channel) fail(err error) error {
	if c.err == nil {
		c.err = err
	}
	return c.err
}

// refuse returns a refusal frame and makes err final.
func (c *Channel) refuse(reason byte, err error) ([]byte, bool, error) {
	return []byte{frameRefusal, reason}, false, c.fail(err)
}

// Step advances the handshake. The initiator calls it first with nil and
// sends what it returns; each side then passes every frame it receives and
// sends what Step returns, if anything, until done. The responder may
// return a refusal frame together with an error: the caller sends it, then
// closes the stream.
func (c *Channel) Step(in []byte) (out []byte, done bool, err error) {
	if c.err != nil {
		return nil, false, c.err
	}
	if c.done {
		return nil, true, c.fail(fmt.Errorf("%w: handshake already done", ErrState))
	}
	if len(in) > MaxFrameSize {
		return nil, false, c.fail(fmt.Errorf("%w: frame of %d bytes", ErrTooLarge, len(in)))
	}
	if c.initiator {
		return c.stepInitiator(in)
	}
	return c.stepResponder(in)
}

func (c *Channel) stepInitiator(in []byte) ([]byte, bool, error) {
	switch c.msgs {
	case 0:
		if in != nil {
			return nil, false, c.fail(fmt.Errorf("%w: the initiator speaks first", ErrState))
		}
		msg, _, _, err := c.hs.WriteMessage(nil, nil)
		if err != nil {
			return nil, false, c.fail(fmt.Errorf("sync: write handshake: %w", err))
		}
		c.msgs = 1
		if c.mode == modeResume {
			out := append([]byte{frameResume}, c.ticket.ID[:]...)
			return append(out, msg...), false, nil
		}
		return append([]byte{frameHello}, msg...), false, nil
	case 1:
		if len(in) == 2 && in[0] == frameRefusal {
			if in[1] == RefuseFull {
				return nil, false, c.fail(fmt.Errorf("%w: %w", ErrRefused, ErrDeviceListFull))
			}
			return nil, false, c.fail(fmt.Errorf("%w (%s)", ErrRefused, refusalText(in[1])))
		}
		if len(in) < 1 || in[0] != frameHandshake {
			return nil, false, c.fail(fmt.Errorf("%w: expected handshake message 2", ErrMalformed))
		}
		payload, _, _, err := c.hs.ReadMessage(nil, in[1:])
		if err != nil {
			return nil, false, c.fail(ErrAuth)
		}
		c.msgs = 2
		if err := c.readOffer(payload); err != nil {
			return nil, false, c.fail(err)
		}
		var p []byte
		if c.mode == modeLink {
			p = c.proposal.marshal()
		}
		msg, cs1, cs2, err := c.hs.WriteMessage(nil, p)
		if err != nil || cs1 == nil {
			return nil, false, c.fail(fmt.Errorf("sync: write handshake: %v", err))
		}
		c.msgs = 3
		c.finish(cs1, cs2)
		return append([]byte{frameHandshake}, msg...), true, nil
	}
	return nil, false, c.fail(ErrState)
}

func refusalText(reason byte) string {
	switch reason {
	case RefuseCode:
		return "code not accepted: wrong, expired or already used"
	case RefuseBusy:
		return "busy with another link"
	case RefuseFull:
		return "the account has the most devices it may have"
	}
	return fmt.Sprintf("reason %d", reason)
}

// readOffer checks the responder's offer: its list, its device on it, the
// Noise static being that device's identity key, and room for one more.
func (c *Channel) readOffer(payload []byte) error {
	r := codec.NewReader(payload)
	var dev identity.DeviceID
	copy(dev[:], r.Fixed(identity.DeviceIDSize))
	lb := r.Bytes16(identity.MaxDeviceListSize)
	if err := r.Done(); err != nil {
		return fmt.Errorf("%w: offer: %w", ErrMalformed, err)
	}
	list, err := identity.ParseDeviceList(lb)
	if err != nil {
		return fmt.Errorf("%w: offer list: %w", ErrMalformed, err)
	}
	cert := list.Device(dev)
	rs := c.hs.PeerStatic()
	if cert == nil || !bytes.Equal(cert.IdentityKey().Bytes(), rs) {
		return ErrAuth
	}
	if c.mode == modeResume {
		if dev != c.ticket.Peer || !bytes.Equal(rs, c.ticket.PeerStatic[:]) {
			return ErrAuth
		}
	} else if list.Len() >= identity.MaxDevices {
		return ErrDeviceListFull
	}
	c.offerList, c.offerDev = list, dev
	copy(c.remote[:], rs)
	return nil
}

func (c *Channel) stepResponder(in []byte) ([]byte, bool, error) {
	switch c.msgs {
	case 0:
		return c.readHello(in)
	case 1:
		if len(in) < 1 || in[0] != frameHandshake {
			return nil, false, c.fail(fmt.Errorf("%w: expected handshake message 3", ErrMalformed))
		}
		payload, cs1, cs2, err := c.hs.ReadMessage(nil, in[1:])
		if err != nil || cs1 == nil {
			return nil, false, c.fail(ErrAuth)
		}
		c.msgs = 3
		rs := c.hs.PeerStatic()
		if _, err := x25519.ParsePublicKey(rs); err != nil {
			return nil, false, c.fail(ErrAuth)
		}
		if c.mode == modeResume {
			if !bytes.Equal(rs, c.ticket.PeerStatic[:]) || len(payload) != 0 {
				return nil, false, c.fail(ErrAuth)
			}
		} else {
			p, err := parseProposal(payload)
			if err != nil {
				return nil, false, c.fail(err)
			}
			if c.list.Contains(p.Device()) {
				return nil, false, c.fail(ErrDeviceExists)
			}
			c.proposal = p
		}
		copy(c.remote[:], rs)
		c.finish(cs2, cs1)
		return nil, true, nil
	}
	return nil, false, c.fail(ErrState)
}

// readHello checks the offer's or the ticket's state before any
// cryptography, then reads message 1, consumes the offer and writes
// message 2.
func (c *Channel) readHello(in []byte) ([]byte, bool, error) {
	var msg []byte
	switch {
	case c.mode == modeLink && len(in) >= 1 && in[0] == frameHello:
		if c.offer.Used() {
			return c.refuse(RefuseCode, ErrCodeUsed)
		}
		if c.offer.Expired(c.now()) {
			return c.refuse(RefuseCode, ErrCodeExpired)
		}
		hs, err := c.newHandshake(c.offer.code.psk())
		if err != nil {
			return nil, false, c.fail(err)
		}
		c.hs, msg = hs, in[1:]
	case c.mode == modeResume && len(in) >= 1+TicketIDSize && in[0] == frameResume:
		var id [TicketIDSize]byte
		copy(id[:], in[1:1+TicketIDSize])
		t, ok := c.lookup(id)
		if !ok || !t.Expires.IsZero() && !c.now().Before(t.Expires) {
			return c.refuse(RefuseCode, ErrTicket)
		}
		c.ticket = &t
		hs, err := c.newHandshake(t.Key[:])
		if err != nil {
			return nil, false, c.fail(err)
		}
		c.hs, msg = hs, in[1+TicketIDSize:]
	default:
		return nil, false, c.fail(fmt.Errorf("%w: expected handshake message 1", ErrMalformed))
	}
	if _, _, _, err := c.hs.ReadMessage(nil, msg); err != nil {
		// A failed attempt does not consume the offer: anyone who can
		// reach this device could otherwise void the user's code.
		return c.refuse(RefuseCode, ErrAuth)
	}
	if c.mode == modeLink {
		if c.list.Len() >= identity.MaxDevices {
			return c.refuse(RefuseFull, ErrDeviceListFull)
		}
		if !c.offer.consume() {
			return c.refuse(RefuseCode, ErrCodeUsed)
		}
	}
	c.msgs = 1
	w := codec.NewWriter(identity.DeviceIDSize + 2 + identity.MaxDeviceListSize)
	self := c.dev.ID()
	w.Fixed(self[:])
	w.Bytes16(c.list.Marshal())
	out, _, _, err := c.hs.WriteMessage(nil, w.Bytes())
	if err != nil {
		return nil, false, c.fail(fmt.Errorf("sync: write handshake: %w", err))
	}
	return append([]byte{frameHandshake}, out...), false, nil
}

// finish keeps the transport keys and the handshake hash.
func (c *Channel) finish(send, recv *noise.CipherState) {
	c.send, c.recv = send, recv
	c.binding = codec.Clone(c.hs.ChannelBinding())
	c.done = true
	c.hs = nil
}

// Done reports whether the handshake is complete.
func (c *Channel) Done() bool { return c.done && c.err == nil }

// Binding returns the handshake hash h (nil before the handshake is done).
func (c *Channel) Binding() []byte { return codec.Clone(c.binding) }

// RemoteStatic returns the other device's Noise static key (its X25519
// identity key), once known.
func (c *Channel) RemoteStatic() [32]byte { return c.remote }

// Offered returns, on the initiator once message 2 was read, the account's
// device list the responder showed and the responder's device ID.
func (c *Channel) Offered() (*identity.DeviceList, identity.DeviceID) {
	return c.offerList, c.offerDev
}

// Proposal returns, on the responder once the link handshake is done, what
// the new device asked for (nil otherwise).
func (c *Channel) Proposal() *Proposal {
	if c.initiator || !c.done {
		return nil
	}
	return c.proposal
}

// Ticket returns the resume ticket of a completed link handshake, seen
// from this side: Peer and PeerStatic name the other device. The
// responder's expires TicketTTL after now.
func (c *Channel) Ticket() (Ticket, error) {
	if !c.Done() || c.mode != modeLink {
		return Ticket{}, fmt.Errorf("%w: no ticket before a completed link handshake", ErrState)
	}
	t := Ticket{PeerStatic: c.remote}
	copy(t.ID[:], suite.HKDF(c.binding, nil, labelTicketID, TicketIDSize))
	copy(t.Key[:], suite.HKDF(c.binding, nil, labelTicketKey, TicketKeySize))
	if c.initiator {
		t.Peer = c.offerDev
	} else {
		t.Peer = c.proposal.Device()
		t.Expires = c.now().Add(TicketTTL).Truncate(time.Second)
	}
	return t, nil
}

// Seal encrypts one record into the transport frames to send, in order.
func (c *Channel) Seal(record []byte) ([][]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	if !c.done {
		return nil, fmt.Errorf("%w: seal before the handshake is done", ErrState)
	}
	if len(record) > MaxRecordSize {
		return nil, fmt.Errorf("%w: record of %d bytes, limit %d", ErrTooLarge, len(record), MaxRecordSize)
	}
	var frames [][]byte
	for first := true; first || len(record) > 0; first = false {
		n := min(len(record), maxFragment)
		more := byte(0)
		if n < len(record) {
			more = 1
		}
		pt := append([]byte{more}, record[:n]...)
		record = record[n:]
		out, err := c.send.Encrypt([]byte{frameTransport}, nil, pt)
		if err != nil {
			return nil, c.fail(fmt.Errorf("sync: seal: %w", err))
		}
		frames = append(frames, out)
	}
	return frames, nil
}

// Open decrypts one transport frame. It returns the record once its last
// fragment has arrived, and nil before. A frame that fails to decrypt ends
// the channel with ErrAuth.
func (c *Channel) Open(frame []byte) ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	if !c.done {
		return nil, fmt.Errorf("%w: open before the handshake is done", ErrState)
	}
	if len(frame) > 1+noise.MaxMsgLen {
		return nil, c.fail(fmt.Errorf("%w: frame of %d bytes", ErrTooLarge, len(frame)))
	}
	if len(frame) < 1 || frame[0] != frameTransport {
		return nil, c.fail(fmt.Errorf("%w: not a transport frame", ErrMalformed))
	}
	pt, err := c.recv.Decrypt(nil, nil, frame[1:])
	if err != nil || len(pt) < 1 || pt[0] > 1 {
		return nil, c.fail(ErrAuth)
	}
	if len(c.partial)+len(pt)-1 > MaxRecordSize {
		return nil, c.fail(fmt.Errorf("%w: record over %d bytes", ErrTooLarge, MaxRecordSize))
	}
	c.partial = append(c.partial, pt[1:]...)
	if pt[0] == 1 {
		return nil, nil
	}
	rec := c.partial
	c.partial = nil
	if rec == nil {
		rec = []byte{}
	}
	return rec, nil
}
