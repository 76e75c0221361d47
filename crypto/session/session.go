// Package session manages the pairwise sessions between this device and
// one remote device, after Signal's Sesame: each remote device has one
// active and a few inactive Double Ratchet sessions; a message is sent on
// the active one, accepted on any, and a session that decrypts a message
// becomes active. A session starts with PQXDH from the remote device's
// prekey bundle; until the responder first replies, every message the
// initiator sends carries the PQXDH initial message (a prekey message), so
// any one of them can start the session on the other side.
//
// The package produces and consumes envelope bodies (kinds
// KindPrekeyMessage and KindMessage); sealing them to mailbox keys is the
// caller's job (crypto/envelope). Nothing is persisted here: callers save
// the Set and the prekey store after each successful call, in one batch.
package session

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/pqxdh"
	"github.com/hushnet/hush/crypto/ratchet"
)

// labelAD prefixes the associated data bound into every session.
const labelAD = "hush/v1/session-ad"

// MaxSessions is how many sessions a Set keeps per remote device; the
// least recently used is dropped beyond it.
const MaxSessions = 4

const setVersion byte = 0x01

// Sentinel errors.
var (
	ErrNoSession     = errors.New("session: no session with this device")
	ErrDecrypt       = errors.New("session: cannot decrypt message")
	ErrMalformed     = errors.New("session: malformed message")
	ErrWrongSender   = errors.New("session: sender does not match the session")
	ErrCannotSend    = errors.New("session: session cannot send")
	ErrRemoteChanged = errors.New("session: remote device certificate changed")
)

// Local is this device's side of every session.
type Local struct {
	Cert    *identity.DeviceCert // this device's certificate
	Device  *identity.Device     // this device's private keys
	Prekeys *pqxdh.PrekeyStore   // this device's prekeys (responder side)
}

type entry struct {
	r       *ratchet.Session
	initial []byte // PQXDH initial message to repeat until the peer replies; nil after
}

// Set is every session with one remote device.
type Set struct {
	remote   *identity.DeviceCert
	sessions []*entry // sessions[0] is active
}

// NewSet returns an empty Set for the remote device.
func NewSet(remote *identity.DeviceCert) *Set { return &Set{remote: remote} }

// Remote returns the remote device's certificate.
func (s *Set) Remote() *identity.DeviceCert { return s.remote }

// HasSession reports whether a session exists to send on.
func (s *Set) HasSession() bool { return len(s.sessions) > 0 && s.sessions[0].r.CanSend() }

// Initiating reports whether the next Encrypt produces a prekey message
// (the active session was started here and the peer has not replied yet).
func (s *Set) Initiating() bool { return len(s.sessions) > 0 && s.sessions[0].initial != nil }

// ad is the associated data: both certificates, initiator first.
func ad(initiator, responder *identity.DeviceCert) []byte {
	w := codec.NewWriter(512)
	w.Fixed([]byte(labelAD))
	w.Bytes16(initiator.Marshal())
	w.Bytes16(responder.Marshal())
	h := sha256.Sum256(w.Bytes())
	return h[:]
}

// Start begins a new session with PQXDH from the remote device's bundle
// and makes it active. The next Encrypt produces a prekey message.
func (s *Set) Start(local *Local, bundle *pqxdh.Bundle) error {
	a := ad(local.Cert, s.remote)
	res, err := pqxdh.Initiate(local.Device.IdentityKey(), s.remote.IdentityKey(), bundle, a)
	if err != nil {
		return fmt.Errorf("session: start: %w", err)
	}
	r, err := ratchet.NewInitiator(res.SK, res.PeerSignedPrekey, a)
	if err != nil {
		return fmt.Errorf("session: start: %w", err)
	}
	s.push(&entry{r: r, initial: res.Initial.Marshal()})
	return nil
}

func (s *Set) push(e *entry) {
	s.sessions = append([]*entry{e}, s.sessions...)
	if len(s.sessions) > MaxSessions {
		s.sessions = s.sessions[:MaxSessions]
	}
}

func (s *Set) promote(i int) {
	if i == 0 {
		return
	}
	e := s.sessions[i]
	copy(s.sessions[1:i+1], s.sessions[:i])
	s.sessions[0] = e
}

// Encrypt seals plaintext on the active session and returns the envelope
// kind and body to send.
func (s *Set) Encrypt(local *Local, plaintext []byte) (envelope.Kind, []byte, error) {
	if len(s.sessions) == 0 {
		return 0, nil, ErrNoSession
	}
	e := s.sessions[0]
	if !e.r.CanSend() {
		return 0, nil, ErrCannotSend
	}
	msg, err := e.r.Encrypt(plaintext)
	if err != nil {
		return 0, nil, fmt.Errorf("session: %w", err)
	}
	if e.initial == nil {
		return envelope.KindMessage, msg, nil
	}
	w := codec.NewWriter(len(msg) + len(e.initial) + 512)
	w.Bytes16(local.Cert.Marshal())
	w.Bytes16(e.initial)
	w.Bytes32(msg)
	return envelope.KindPrekeyMessage, w.Bytes(), nil
}

// PrekeySender returns the sender certificate carried by a prekey message
// body, verified against its account signature, so a receiver can find
// or create the Set before calling Decrypt.
func PrekeySender(body []byte) (*identity.DeviceCert, error) {
	r := codec.NewReader(body)
	certBytes := r.Bytes16(identity.CertSize)
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	cert, err := identity.ParseDeviceCert(certBytes)
	if err != nil {
		return nil, fmt.Errorf("session: prekey message sender: %w", err)
	}
	return cert, nil
}

// Decrypt opens an envelope body from the remote device. in is the opened
// envelope; its sender must be this Set's remote device. On success the
// session that decrypted becomes active; on any failure the Set and the
// prekey store are unchanged. The caller persists both after success.
func (s *Set) Decrypt(local *Local, in *envelope.Inner, now time.Time) ([]byte, error) {
	pt, commit, err := s.DecryptUncommitted(local, in, now)
	if err != nil {
		return nil, err
	}
	if commit != nil {
		if err := commit(); err != nil {
			return nil, err
		}
	}
	return pt, nil
}

// DecryptUncommitted is Decrypt in two steps, for a caller that decides
// after reading a message whether to accept the session it opens: for a
// prekey message that opens a new session, nothing is changed until
// commit is called (which consumes the one-time prekeys or records the
// replay-cache entry, and adds the session); not calling it leaves the
// set and the prekey store as they were. For a message on an existing
// session the ratchet has advanced and commit is nil: a nil commit means
// the message opened no session.
func (s *Set) DecryptUncommitted(local *Local, in *envelope.Inner, now time.Time) (pt []byte, commit func() error, err error) {
	if err := in.CheckSender(s.remote.Account(), s.remote.DeviceID()); err != nil {
		return nil, nil, ErrWrongSender
	}
	switch in.Kind {
	case envelope.KindMessage:
		pt, err := s.decryptExisting(in.Body, now)
		return pt, nil, err
	case envelope.KindPrekeyMessage:
		return s.decryptPrekey(local, in.Body, now)
	default:
		return nil, nil, fmt.Errorf("%w: kind %d", ErrMalformed, in.Kind)
	}
}

func (s *Set) decryptExisting(msg []byte, now time.Time) ([]byte, error) {
	for i, e := range s.sessions {
		pt, err := e.r.DecryptAt(msg, now)
		if err != nil {
			if errors.Is(err, ratchet.ErrDuplicate) {
				return nil, err
			}
			continue
		}
		e.initial = nil // the peer has this session: stop sending prekey messages
		s.promote(i)
		return pt, nil
	}
	return nil, ErrDecrypt
}

func (s *Set) decryptPrekey(local *Local, body []byte, now time.Time) ([]byte, func() error, error) {
	r := codec.NewReader(body)
	certBytes := r.Bytes16(identity.CertSize)
	initBytes := r.Bytes16(pqxdh.MaxInitialSize)
	msg := r.Bytes32(ratchet.MaxMessageSize)
	if err := r.Done(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if string(certBytes) != string(s.remote.Marshal()) {
		return nil, nil, ErrRemoteChanged
	}
	// A prekey message on a session we already have (a repeat of the
	// initial message before our reply arrived) decrypts on it.
	if pt, err := s.decryptExisting(msg, now); err == nil || errors.Is(err, ratchet.ErrDuplicate) {
		return pt, nil, err
	}
	initial, err := pqxdh.ParseInitial(initBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	a := ad(s.remote, local.Cert)
	pending, err := local.Prekeys.Respond(local.Device.IdentityKey(), s.remote.IdentityKey(), initial, a, now)
	if err != nil {
		return nil, nil, fmt.Errorf("session: %w", err)
	}
	rs, err := ratchet.NewResponder(pending.SK, pending.SignedPrekey, a)
	if err != nil {
		return nil, nil, fmt.Errorf("session: %w", err)
	}
	pt, err := rs.DecryptAt(msg, now)
	if err != nil {
		return nil, nil, ErrDecrypt
	}
	commit := func() error {
		if err := pending.Commit(); err != nil {
			return fmt.Errorf("session: %w", err)
		}
		s.push(&entry{r: rs})
		return nil
	}
	return pt, commit, nil
}

// MarshalBinary encodes the Set for the encrypted store.
func (s *Set) MarshalBinary() ([]byte, error) {
	remote := s.remote.Marshal()
	states := make([][]byte, len(s.sessions))
	size := 5 + len(remote)
	for i, e := range s.sessions {
		st, err := e.r.MarshalBinary()
		if err != nil {
			return nil, err
		}
		states[i] = st
		size += 6 + len(st) + len(e.initial)
	}
	w := codec.NewWriter(size)
	w.U8(setVersion)
	w.Bytes16(remote)
	w.U16(uint16(len(s.sessions)))
	for i, e := range s.sessions {
		w.Bytes32(states[i])
		w.Bytes16(e.initial)
	}
	return w.Bytes(), nil
}

// maxStateSize bounds one serialised ratchet session.
const maxStateSize = 1 << 20

// Unmarshal decodes a Set.
func Unmarshal(b []byte) (*Set, error) {
	r := codec.NewReader(b)
	if v := r.U8(); r.Err() == nil && v != setVersion {
		return nil, fmt.Errorf("%w: set version %d", ErrMalformed, v)
	}
	certBytes := r.Bytes16(identity.CertSize)
	n := r.Count(MaxSessions)
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	cert, err := identity.ParseDeviceCert(certBytes)
	if err != nil {
		return nil, fmt.Errorf("session: stored remote: %w", err)
	}
	s := &Set{remote: cert}
	for range n {
		st := r.Bytes32(maxStateSize)
		initial := r.Bytes16(pqxdh.MaxInitialSize)
		if err := r.Err(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		rs, err := ratchet.Unmarshal(st)
		if err != nil {
			return nil, fmt.Errorf("session: stored ratchet: %w", err)
		}
		s.sessions = append(s.sessions, &entry{r: rs, initial: codec.Clone(initial)})
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return s, nil
}

// LocalMailbox is a convenience for callers: the envelope opener of this
// device's mailbox key.
func LocalMailbox(d *identity.Device) (*envelope.Opener, error) {
	return envelope.NewOpener(d.MailboxKey())
}
