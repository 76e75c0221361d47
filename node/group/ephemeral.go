package group

// Ephemeral topic messages (docs/protocol/groups.md §16.12): typing
// indicators. They are sealed under the epoch's topic key only, not under
// a sender key, so they take no place in a sender chain: nothing is
// stored, journaled, counted in the seen ranges or repaired, and a member
// that missed one has no gap to ask for. The sender's device key signs
// them instead. The outer kind byte says "ephemeral", so a relay keeping
// a group store does not store them.

import (
	"crypto/ed25519"
	"fmt"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/suite"
	"github.com/hushnet/hush/internal/gossip"
)

// kindTopicEphemeral is the second byte of an ephemeral topic message.
const kindTopicEphemeral byte = gossip.TagKindEphemeral

// LabelEphemeral is the identity.Device.Sign label of an ephemeral
// message.
const LabelEphemeral = "hush/v1/group-ephemeral"

// MaxEphemeralBody bounds an ephemeral message's body; minEphemeral is
// the smallest sealed content (empty body, signature, padding byte).
const (
	MaxEphemeralBody = 1024
	minEphemeral     = 32 + 8 + identity.DeviceIDSize + 8 + 2 + identity.SignatureSize + 1
)

// Ephemeral is an ephemeral message that OpenEphemeral accepted.
type Ephemeral struct {
	Account identity.AccountID
	Device  identity.DeviceID
	TimeMS  uint64 // the sender's clock; the caller drops stale ones
	Body    []byte
}

// SealEphemeral seals body for the current epoch's topic, signed by this
// device (sign: identity.Device.Sign with LabelEphemeral):
//
//	signed  = group[32] ‖ epoch u64 ‖ device[16] ‖ time u64 ‖ body bytes16<1024>
//	message = Version ‖ 'E' ‖ nonce[24] ‖ XChaCha20-Poly1305(K_t, signed ‖ sig[64] ‖ 0x80 ‖ 0x00*, ad = topic)
func (e *Engine) SealEphemeral(body []byte, timeMS uint64, sign func(label string, msg []byte) ([]byte, error)) (topic string, data []byte, err error) {
	if len(body) > MaxEphemeralBody {
		return "", nil, fmt.Errorf("%w: ephemeral body of %d bytes", ErrTooLarge, len(body))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.inLocked() {
		return "", nil, ErrNotMember
	}
	cur := e.ro.epoch()
	if cur == nil {
		return "", nil, ErrNotReady
	}
	s, ok := e.secrets[cur.key]
	if !ok {
		return "", nil, ErrNotReady
	}
	w := codec.NewWriter(96 + len(body))
	w.Fixed(e.ro.id[:])
	w.U64(cur.n)
	w.Fixed(e.cfg.Device[:])
	w.U64(timeMS)
	w.Bytes16(body)
	signed := w.Bytes()
	sig, err := sign(LabelEphemeral, signed)
	if err != nil {
		return "", nil, err
	}
	k := e.topicKeysLocked(cur.n, s)
	inner := append(append([]byte(nil), signed...), sig...)
	return k.name, append([]byte{Version, kindTopicEphemeral}, suite.Seal(k.key, padWire(inner), []byte(k.name))...), nil
}

// IsEphemeral reports whether a topic message is framed as ephemeral.
func IsEphemeral(data []byte) bool {
	return len(data) >= 2 && data[0] == Version && data[1] == kindTopicEphemeral
}

// OpenEphemeral opens an ephemeral topic message with the topic key of
// any epoch this device holds a secret for, and checks that it names
// this group and that epoch, that its device is a current member device,
// and its signature (key returns the device's signing key as the
// caller's card for the account lists it; nil: unknown, refused).
func (e *Engine) OpenEphemeral(data []byte, key func(identity.AccountID, identity.DeviceID) ed25519.PublicKey) (*Ephemeral, error) {
	if !IsEphemeral(data) || len(data) < TopicOverhead || len(data) > MaxTopicSize {
		return nil, fmt.Errorf("%w: ephemeral message framing", ErrMalformed)
	}
	e.mu.Lock()
	var inner []byte
	var epoch uint64
	for i := len(e.ro.epochs) - 1; i >= 0 && inner == nil; i-- {
		ep := &e.ro.epochs[i]
		s, ok := e.secrets[ep.key]
		if !ok {
			continue
		}
		k := e.topicKeysLocked(ep.n, s)
		if p, err := suite.Open(k.key, data[2:], []byte(k.name)); err == nil {
			inner, epoch = p, ep.n
		}
	}
	if inner == nil {
		e.mu.Unlock()
		return nil, fmt.Errorf("%w: not sealed for a topic of this group", ErrWrongGroup)
	}
	inner, ok := unpadWire(inner)
	if !ok || len(inner) < identity.SignatureSize {
		e.mu.Unlock()
		return nil, fmt.Errorf("%w: ephemeral padding", ErrMalformed)
	}
	signed, sig := inner[:len(inner)-identity.SignatureSize], inner[len(inner)-identity.SignatureSize:]
	r := codec.NewReader(signed)
	var gid GroupID
	copy(gid[:], r.Fixed(len(gid)))
	ep := r.U64()
	var dev identity.DeviceID
	copy(dev[:], r.Fixed(len(dev)))
	em := &Ephemeral{Device: dev, TimeMS: r.U64(), Body: codec.Clone(r.Bytes16(MaxEphemeralBody))}
	if err := r.Done(); err != nil {
		e.mu.Unlock()
		return nil, fmt.Errorf("%w: ephemeral message: %v", ErrMalformed, err)
	}
	if gid != e.ro.id || ep != epoch {
		e.mu.Unlock()
		return nil, ErrWrongGroup
	}
	acc, member := e.ro.memberOfDevice(dev)
	e.mu.Unlock()
	if !member {
		return nil, ErrNotMember
	}
	pub := key(acc, dev)
	if pub == nil || identity.Verify(pub, LabelEphemeral, signed, sig) != nil {
		return nil, ErrBadSignature
	}
	em.Account = acc
	return em, nil
}
