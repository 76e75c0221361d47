// Package senderkey implements hush group messaging with sender keys, in
// the manner of Signal's Sender Keys (research §1.6).
//
// Each member device, for each group epoch, owns a SenderKey: a random
// chain ID, a 32-byte chain key advanced by the HMAC-SHA-256 chain step
// (suite.ChainStep) once per message, and an Ed25519 signing key. The
// device sends the chain's Distribution to every other current member over
// the pairwise Double Ratchet sessions; each member keeps a Receiver per
// group holding, per sender device, at most MaxStates chains.
//
// A group message is a clear header (version, suite, group ID, epoch,
// sender device, chain ID, iteration), an XChaCha20-Poly1305 ciphertext of
// the plaintext under HKDF(message key, "hush/v1/group-msg") with the header
// as associated data, and an Ed25519 signature by the chain's signing key
// over all of it. A receiver verifies the signature before touching the
// chain, so a member who knows another member's chain key (every member
// does) still cannot forge that member's messages; it then derives keys on
// a staged copy and commits only when the AEAD opens.
//
// Removing a member starts a new epoch: every remaining device creates a
// fresh SenderKey and distributes it only to the remaining devices, and
// receivers drop the old epoch with RemoveEpochsBefore once a short grace
// window has passed. Sender keys give forward secrecy per message (keys are
// deleted once used) but no post-compromise security until the next epoch
// or rotation. The specification is docs/protocol/senderkey.md.
package senderkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/suite"
)

// labelGroupMsg is the HKDF info that turns a chain message key into the
// XChaCha20-Poly1305 key of one group message.
const labelGroupMsg = "hush/v1/group-msg"

// Sizes and limits.
const (
	GroupIDSize  = 32
	DeviceIDSize = 16
	// HeaderSize is version, suite, group ID, epoch, sender device, chain
	// ID and iteration.
	HeaderSize = 1 + 1 + GroupIDSize + 8 + DeviceIDSize + 4 + 4
	// SignatureSize is the Ed25519 signature that ends every message.
	SignatureSize = ed25519.SignatureSize
	// MessageOverhead is what a message adds to its plaintext.
	MessageOverhead = HeaderSize + suite.NonceSizeX + 4 + suite.TagSize + SignatureSize
	// MaxMessageSize is the largest group message accepted (well under
	// GossipSub's 1 MiB); MaxPlaintext is the largest plaintext that fits.
	MaxMessageSize = 64 << 10
	MaxPlaintext   = MaxMessageSize - MessageOverhead
	// DistributionSize is the encoded size of a Distribution.
	DistributionSize = 1 + 1 + GroupIDSize + 8 + DeviceIDSize + 4 + 4 + 32 + ed25519.PublicKeySize

	// MaxForwardJump is how far ahead of a chain a message's iteration may
	// be; MaxSkippedKeys bounds the message keys kept per chain for
	// messages not yet received (oldest evicted first).
	MaxForwardJump = 2000
	MaxSkippedKeys = 2000
	// MaxStates is how many chains a Receiver keeps per sender device
	// (libsignal MAX_SENDER_KEY_STATES); the oldest is dropped.
	MaxStates = 5
	// MaxSenders bounds the sender devices one Receiver tracks.
	MaxSenders = 1000
)

// State record tags, after version and suite, so a stored SenderKey and a
// stored Receiver (or a Distribution) are never confused.
const (
	tagSenderKeyState byte = 'S'
	tagReceiverState  byte = 'R'
)

// Errors. ErrDecrypt is the single error for a bad signature or a failed
// AEAD; the others describe the clear header or the caller's state.
var (
	ErrDecrypt        = errors.New("senderkey: cannot decrypt")
	ErrDuplicate      = errors.New("senderkey: duplicate or expired message")
	ErrUnknownChain   = errors.New("senderkey: unknown sender chain or epoch")
	ErrTooFarAhead    = errors.New("senderkey: message too far ahead of chain")
	ErrChainExhausted = errors.New("senderkey: sender chain exhausted")
	ErrMalformed      = errors.New("senderkey: malformed")
	ErrVersion        = errors.New("senderkey: unknown version or suite")
	ErrTooLarge       = errors.New("senderkey: too large")
	ErrWrongGroup     = errors.New("senderkey: wrong group")
	ErrEpochClosed    = errors.New("senderkey: epoch no longer accepted")
	ErrChainConflict  = errors.New("senderkey: chain ID reused with another signing key")
	ErrTooManySenders = errors.New("senderkey: too many sender devices")
)

// Sender identifies who sent a decrypted group message: the device whose
// signing key verified it, and the epoch of its chain.
type Sender struct {
	Device [DeviceIDSize]byte
	Epoch  uint64
}

// Distribution hands a sender chain to another member. It travels inside
// a pairwise Double Ratchet session, which encrypts and authenticates it;
// the receiving node must check that Device is the session's remote device
// before calling Receiver.Add.
type Distribution struct {
	GroupID    [GroupIDSize]byte
	Epoch      uint64
	Device     [DeviceIDSize]byte
	ChainID    uint32
	Iteration  uint32
	ChainKey   [32]byte
	SigningKey [ed25519.PublicKeySize]byte
}

// MarshalBinary encodes d (DistributionSize bytes).
func (d *Distribution) MarshalBinary() ([]byte, error) {
	w := codec.NewWriter(DistributionSize)
	w.U8(suite.Version)
	w.U8(suite.ID)
	w.Fixed(d.GroupID[:])
	w.U64(d.Epoch)
	w.Fixed(d.Device[:])
	w.U32(d.ChainID)
	w.U32(d.Iteration)
	w.Fixed(d.ChainKey[:])
	w.Fixed(d.SigningKey[:])
	return w.Bytes(), nil
}

// ParseDistribution decodes a Distribution, rejecting other versions,
// other lengths and trailing bytes.
func ParseDistribution(b []byte) (*Distribution, error) {
	if len(b) > DistributionSize {
		return nil, fmt.Errorf("%w: distribution of %d bytes, want %d", ErrMalformed, len(b), DistributionSize)
	}
	r := codec.NewReader(b)
	if err := readVersion(r); err != nil {
		return nil, fmt.Errorf("distribution: %w", err)
	}
	d := new(Distribution)
	copy(d.GroupID[:], r.Fixed(GroupIDSize))
	d.Epoch = r.U64()
	copy(d.Device[:], r.Fixed(DeviceIDSize))
	d.ChainID = r.U32()
	d.Iteration = r.U32()
	copy(d.ChainKey[:], r.Fixed(32))
	copy(d.SigningKey[:], r.Fixed(ed25519.PublicKeySize))
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: distribution: %v", ErrMalformed, err)
	}
	return d, nil
}

// readVersion reads and checks the version and suite bytes.
func readVersion(r *codec.Reader) error {
	v, s := r.U8(), r.U8()
	if err := r.Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if v != suite.Version || s != suite.ID {
		return fmt.Errorf("%w: version %d suite %d", ErrVersion, v, s)
	}
	return nil
}

// SenderKey is the sending side of one chain: one sender device in one
// group epoch. It is safe for concurrent use. The caller persists it
// (MarshalBinary) after every Encrypt and before sending the message,
// unless a stored reservation (Reserve) covers the message's iteration.
type SenderKey struct {
	mu        sync.Mutex
	groupID   [GroupIDSize]byte
	epoch     uint64
	device    [DeviceIDSize]byte
	chainID   uint32
	chainKey  [32]byte
	iteration uint32 // iteration of chainKey: the next message's
	signing   ed25519.PrivateKey

	// A reservation (reserve.go): the chain as the stored state gives
	// it, markCK at iteration mark; stored is the highest mark confirmed
	// stored. Not serialised: a loaded chain starts at the stored mark.
	mark, stored uint32
	markCK       [32]byte
}

// NewSenderKey returns a fresh chain for device in group epoch: random
// chain ID, chain key and Ed25519 signing key, iteration 0.
func NewSenderKey(groupID [GroupIDSize]byte, epoch uint64, device [DeviceIDSize]byte) (*SenderKey, error) {
	sk := &SenderKey{groupID: groupID, epoch: epoch, device: device}
	var id [4]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("senderkey: random chain ID: %w", err)
	}
	sk.chainID = binary.BigEndian.Uint32(id[:])
	if _, err := rand.Read(sk.chainKey[:]); err != nil {
		return nil, fmt.Errorf("senderkey: random chain key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("senderkey: signing key: %w", err)
	}
	sk.signing = priv
	return sk, nil
}

// GroupID, Epoch, Device, ChainID and Iteration describe the chain;
// Iteration is the iteration the next message will carry.
func (sk *SenderKey) GroupID() [GroupIDSize]byte { return sk.groupID }

// Epoch returns the chain's group epoch.
func (sk *SenderKey) Epoch() uint64 { return sk.epoch }

// Device returns the sending device ID.
func (sk *SenderKey) Device() [DeviceIDSize]byte { return sk.device }

// ChainID returns the chain's random ID.
func (sk *SenderKey) ChainID() uint32 { return sk.chainID }

// Iteration returns the iteration the next message will carry, so the node
// can rotate after a number of messages.
func (sk *SenderKey) Iteration() uint32 {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	return sk.iteration
}

// Distribution returns the chain's current state for a member joining the
// chain now: it can decrypt this chain's messages from the current
// iteration on, never earlier ones.
func (sk *SenderKey) Distribution() *Distribution {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	d := &Distribution{
		GroupID:   sk.groupID,
		Epoch:     sk.epoch,
		Device:    sk.device,
		ChainID:   sk.chainID,
		Iteration: sk.iteration,
		ChainKey:  sk.chainKey,
	}
	copy(d.SigningKey[:], sk.signing.Public().(ed25519.PublicKey))
	return d
}

// header holds the clear fields of a group message.
type header struct {
	groupID   [GroupIDSize]byte
	epoch     uint64
	device    [DeviceIDSize]byte
	chainID   uint32
	iteration uint32
}

func (h *header) append(w *codec.Writer) {
	w.U8(suite.Version)
	w.U8(suite.ID)
	w.Fixed(h.groupID[:])
	w.U64(h.epoch)
	w.Fixed(h.device[:])
	w.U32(h.chainID)
	w.U32(h.iteration)
}

// messageKey turns a chain message key into the AEAD key.
func messageKey(mk []byte) []byte { return suite.HKDF(mk, nil, labelGroupMsg, 32) }

// Encrypt seals plaintext as the chain's next message and advances the
// chain. It returns ErrChainExhausted once iteration 2^32-2 has been used
// (the node must have rotated long before).
func (sk *SenderKey) Encrypt(plaintext []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("%w: plaintext of %d bytes, limit %d", ErrTooLarge, len(plaintext), MaxPlaintext)
	}
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if sk.signing == nil {
		return nil, fmt.Errorf("%w: uninitialised sender key", ErrMalformed)
	}
	if sk.iteration == math.MaxUint32 {
		return nil, ErrChainExhausted
	}
	next, mk := suite.ChainStep(sk.chainKey[:])
	h := header{sk.groupID, sk.epoch, sk.device, sk.chainID, sk.iteration}
	w := codec.NewWriter(MessageOverhead + len(plaintext))
	h.append(w)
	hdr := w.Bytes()[:HeaderSize:HeaderSize]
	sealed := suite.Seal(messageKey(mk), plaintext, hdr)
	w.Fixed(sealed[:suite.NonceSizeX])
	w.Bytes32(sealed[suite.NonceSizeX:])
	msg := w.Bytes()
	msg = append(msg, ed25519.Sign(sk.signing, msg)...)
	copy(sk.chainKey[:], next)
	sk.iteration++
	if sk.iteration == sk.mark { // the live chain caught up with the reservation
		clear(sk.markCK[:])
		sk.mark, sk.stored = 0, 0
	}
	return msg, nil
}

// MarshalBinary encodes the sending state, including the chain key and the
// signing key seed: store it encrypted.
func (sk *SenderKey) MarshalBinary() ([]byte, error) {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if sk.signing == nil {
		return nil, fmt.Errorf("%w: uninitialised sender key", ErrMalformed)
	}
	w := codec.NewWriter(senderKeyStateSize)
	w.U8(suite.Version)
	w.U8(suite.ID)
	w.U8(tagSenderKeyState)
	w.Fixed(sk.groupID[:])
	w.U64(sk.epoch)
	w.Fixed(sk.device[:])
	w.U32(sk.chainID)
	ck, it := &sk.chainKey, sk.iteration
	if sk.mark > sk.iteration { // reserved: the chain at the mark (reserve.go)
		ck, it = &sk.markCK, sk.mark
	}
	w.U32(it)
	w.Fixed(ck[:])
	w.Fixed(sk.signing.Seed())
	return w.Bytes(), nil
}

const senderKeyStateSize = 3 + GroupIDSize + 8 + DeviceIDSize + 4 + 4 + 32 + ed25519.SeedSize

// UnmarshalBinary replaces sk with a state from MarshalBinary. On error sk
// is unchanged.
func (sk *SenderKey) UnmarshalBinary(b []byte) error {
	if len(b) != senderKeyStateSize {
		return fmt.Errorf("%w: sender key state of %d bytes, want %d", ErrMalformed, len(b), senderKeyStateSize)
	}
	r := codec.NewReader(b)
	if err := readVersion(r); err != nil {
		return fmt.Errorf("sender key state: %w", err)
	}
	if tag := r.U8(); tag != tagSenderKeyState {
		return fmt.Errorf("%w: sender key state tag %#x", ErrMalformed, tag)
	}
	var n SenderKey
	copy(n.groupID[:], r.Fixed(GroupIDSize))
	n.epoch = r.U64()
	copy(n.device[:], r.Fixed(DeviceIDSize))
	n.chainID = r.U32()
	n.iteration = r.U32()
	copy(n.chainKey[:], r.Fixed(32))
	seed := r.Fixed(ed25519.SeedSize)
	if err := r.Done(); err != nil {
		return fmt.Errorf("%w: sender key state: %v", ErrMalformed, err)
	}
	sk.mu.Lock()
	defer sk.mu.Unlock()
	sk.groupID, sk.epoch, sk.device, sk.chainID = n.groupID, n.epoch, n.device, n.chainID
	sk.iteration, sk.chainKey = n.iteration, n.chainKey
	clear(sk.markCK[:])
	sk.mark, sk.stored = 0, 0
	sk.signing = ed25519.NewKeyFromSeed(seed)
	return nil
}
