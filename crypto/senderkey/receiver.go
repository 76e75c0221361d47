package senderkey

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/suite"
)

// chainState is one sender chain as a receiver sees it.
type chainState struct {
	epoch    uint64
	chainID  uint32
	signing  [ed25519.PublicKeySize]byte
	chainKey [32]byte
	next     uint64       // iteration of chainKey; at most 2^32
	skipped  []skippedKey // ascending iteration, all below next
}

type skippedKey struct {
	iter uint32
	mk   [32]byte
}

// Receiver holds the sender chains of one group that this device can
// decrypt. It is safe for concurrent use. The caller persists it
// (MarshalBinary) after every successful Decrypt or Add; a failed call
// changes nothing.
type Receiver struct {
	mu       sync.Mutex
	groupID  [GroupIDSize]byte                    // guarded by mu
	minEpoch uint64                               // guarded by mu
	senders  map[[DeviceIDSize]byte][]*chainState // guarded by mu; newest first, ≤ MaxStates
}

// NewReceiver returns an empty Receiver for group groupID.
func NewReceiver(groupID [GroupIDSize]byte) *Receiver {
	return &Receiver{groupID: groupID, senders: make(map[[DeviceIDSize]byte][]*chainState)}
}

// GroupID returns the Receiver's group.
func (r *Receiver) GroupID() [GroupIDSize]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.groupID
}

// Add installs a chain from a Distribution. Adding a chain the Receiver
// already has (same device, epoch and chain ID and signing key) does
// nothing, so a re-delivered distribution never rewinds a chain. The
// newest MaxStates chains per device are kept.
func (r *Receiver) Add(d *Distribution) error {
	if d == nil {
		return fmt.Errorf("%w: nil distribution", ErrMalformed)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if d.GroupID != r.groupID {
		return ErrWrongGroup
	}
	if d.Epoch < r.minEpoch {
		return fmt.Errorf("%w: epoch %d, oldest accepted %d", ErrEpochClosed, d.Epoch, r.minEpoch)
	}
	states := r.senders[d.Device]
	for _, s := range states {
		if s.epoch == d.Epoch && s.chainID == d.ChainID {
			if s.signing != d.SigningKey {
				return ErrChainConflict
			}
			return nil
		}
	}
	if r.senders == nil {
		r.senders = make(map[[DeviceIDSize]byte][]*chainState)
	}
	if states == nil && len(r.senders) >= MaxSenders {
		return fmt.Errorf("%w: limit %d", ErrTooManySenders, MaxSenders)
	}
	s := &chainState{
		epoch:    d.Epoch,
		chainID:  d.ChainID,
		signing:  d.SigningKey,
		chainKey: d.ChainKey,
		next:     uint64(d.Iteration),
	}
	states = append([]*chainState{s}, states...)
	if len(states) > MaxStates {
		states = states[:MaxStates]
	}
	r.senders[d.Device] = states
	return nil
}

// RemoveEpochsBefore drops every chain of an epoch below epoch and refuses
// such chains and messages from now on. The node calls it when the grace
// window after an epoch change (a member removal) ends.
func (r *Receiver) RemoveEpochsBefore(epoch uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if epoch > r.minEpoch {
		r.minEpoch = epoch
	}
	for dev, states := range r.senders {
		states = slices.DeleteFunc(states, func(s *chainState) bool { return s.epoch < r.minEpoch })
		if len(states) == 0 {
			delete(r.senders, dev)
		} else {
			r.senders[dev] = states
		}
	}
}

// RemoveSender drops every chain of device (a revoked or removed device).
func (r *Receiver) RemoveSender(device [DeviceIDSize]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.senders, device)
}

// message is a parsed group message.
type message struct {
	header
	hdr    []byte // the encoded header: AEAD associated data
	sealed []byte // nonce ‖ ciphertext ‖ tag, as suite.Open wants
	signed []byte // everything before the signature
	sig    []byte
}

func parseMessage(b []byte) (*message, error) {
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: message of %d bytes, limit %d", ErrTooLarge, len(b), MaxMessageSize)
	}
	r := codec.NewReader(b)
	if err := readVersion(r); err != nil {
		return nil, fmt.Errorf("message: %w", err)
	}
	m := new(message)
	copy(m.groupID[:], r.Fixed(GroupIDSize))
	m.epoch = r.U64()
	copy(m.device[:], r.Fixed(DeviceIDSize))
	m.chainID = r.U32()
	m.iteration = r.U32()
	r.Fixed(suite.NonceSizeX)
	ct := r.Bytes32(MaxPlaintext + suite.TagSize)
	m.sig = r.Fixed(SignatureSize)
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: message: %v", ErrMalformed, err)
	}
	if len(ct) < suite.TagSize {
		return nil, fmt.Errorf("%w: message: ciphertext shorter than a tag", ErrMalformed)
	}
	m.hdr = b[:HeaderSize]
	m.signed = b[:len(b)-SignatureSize]
	// nonce ‖ ciphertext with the 4-byte length between them removed.
	m.sealed = make([]byte, 0, suite.NonceSizeX+len(ct))
	m.sealed = append(m.sealed, b[HeaderSize:HeaderSize+suite.NonceSizeX]...)
	m.sealed = append(m.sealed, ct...)
	return m, nil
}

// Decrypt verifies, decrypts and accounts for one group message. It looks
// up the chain by (sender device, chain ID, epoch) in this group, verifies
// the Ed25519 signature with that chain's key before anything else, derives
// the message key on a staged copy of the chain and commits only if the
// AEAD opens. Every error leaves the Receiver unchanged.
func (r *Receiver) Decrypt(msg []byte) ([]byte, Sender, error) {
	m, err := parseMessage(msg)
	if err != nil {
		return nil, Sender{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.groupID != r.groupID {
		return nil, Sender{}, ErrWrongGroup
	}
	s := r.lookupLocked(m.device, m.epoch, m.chainID)
	if s == nil {
		return nil, Sender{}, ErrUnknownChain
	}
	if !ed25519.Verify(s.signing[:], m.signed, m.sig) {
		return nil, Sender{}, ErrDecrypt
	}

	// Stage: find or derive the message key without touching s.
	var (
		mk        []byte
		skipIdx   = -1
		newCK     []byte
		newSkips  []skippedKey
		iteration = uint64(m.iteration)
	)
	if iteration < s.next {
		i, found := sort.Find(len(s.skipped), func(i int) int {
			return cmpU32(m.iteration, s.skipped[i].iter)
		})
		if !found {
			return nil, Sender{}, ErrDuplicate
		}
		skipIdx = i
		mk = s.skipped[i].mk[:]
	} else {
		if iteration-s.next > MaxForwardJump {
			return nil, Sender{}, fmt.Errorf("%w: iteration %d, chain at %d, limit %d",
				ErrTooFarAhead, iteration, s.next, MaxForwardJump)
		}
		ck := s.chainKey[:]
		for i := s.next; i < iteration; i++ {
			var k []byte
			ck, k = suite.ChainStep(ck)
			sk := skippedKey{iter: uint32(i)}
			copy(sk.mk[:], k)
			newSkips = append(newSkips, sk)
		}
		newCK, mk = suite.ChainStep(ck)
	}
	pt, err := suite.Open(messageKey(mk), m.sealed, m.hdr)
	if err != nil {
		return nil, Sender{}, ErrDecrypt
	}

	// Commit.
	if skipIdx >= 0 {
		s.skipped = slices.Delete(s.skipped, skipIdx, skipIdx+1)
	} else {
		s.skipped = append(s.skipped, newSkips...)
		if over := len(s.skipped) - MaxSkippedKeys; over > 0 {
			s.skipped = slices.Delete(s.skipped, 0, over)
		}
		copy(s.chainKey[:], newCK)
		s.next = iteration + 1
	}
	return pt, Sender{Device: m.device, Epoch: m.epoch}, nil
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (r *Receiver) lookupLocked(device [DeviceIDSize]byte, epoch uint64, chainID uint32) *chainState {
	if epoch < r.minEpoch {
		return nil
	}
	for _, s := range r.senders[device] {
		if s.epoch == epoch && s.chainID == chainID {
			return s
		}
	}
	return nil
}

// MarshalBinary encodes the Receiver, sender devices in ascending order,
// so equal states encode equally. It holds chain and message keys: store
// it encrypted.
func (r *Receiver) MarshalBinary() ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	devices := make([][DeviceIDSize]byte, 0, len(r.senders))
	for d := range r.senders {
		devices = append(devices, d)
	}
	slices.SortFunc(devices, func(a, b [DeviceIDSize]byte) int { return bytes.Compare(a[:], b[:]) })
	w := codec.NewWriter(64)
	w.U8(suite.Version)
	w.U8(suite.ID)
	w.U8(tagReceiverState)
	w.Fixed(r.groupID[:])
	w.U64(r.minEpoch)
	w.U16(uint16(len(devices)))
	for _, d := range devices {
		states := r.senders[d]
		w.Fixed(d[:])
		w.U16(uint16(len(states)))
		for _, s := range states {
			w.U64(s.epoch)
			w.U32(s.chainID)
			w.Fixed(s.signing[:])
			w.Fixed(s.chainKey[:])
			w.U64(s.next)
			w.U16(uint16(len(s.skipped)))
			for _, k := range s.skipped {
				w.U32(k.iter)
				w.Fixed(k.mk[:])
			}
		}
	}
	return w.Bytes(), nil
}

// UnmarshalBinary replaces r with a state from MarshalBinary, after checking
// every count against its limit and every invariant (devices ascending,
// 1..MaxStates distinct chains each, epochs not below the minimum, skipped
// iterations ascending and below the chain). On error r is unchanged.
func (r *Receiver) UnmarshalBinary(b []byte) error {
	rd := codec.NewReader(b)
	if err := readVersion(rd); err != nil {
		return fmt.Errorf("receiver state: %w", err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: receiver state: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	if tag := rd.U8(); tag != tagReceiverState {
		return bad("tag %#x", tag)
	}
	var groupID [GroupIDSize]byte
	copy(groupID[:], rd.Fixed(GroupIDSize))
	minEpoch := rd.U64()
	nDev := rd.Count(MaxSenders)
	senders := make(map[[DeviceIDSize]byte][]*chainState, nDev)
	var prev []byte
	for range nDev {
		devB := rd.Fixed(DeviceIDSize)
		nStates := rd.Count(MaxStates)
		if rd.Err() != nil {
			break
		}
		if prev != nil && bytes.Compare(prev, devB) >= 0 {
			return bad("devices not in ascending order")
		}
		prev = devB
		if nStates == 0 {
			return bad("device with no chains")
		}
		states := make([]*chainState, 0, nStates)
		for range nStates {
			s := new(chainState)
			s.epoch = rd.U64()
			s.chainID = rd.U32()
			copy(s.signing[:], rd.Fixed(ed25519.PublicKeySize))
			copy(s.chainKey[:], rd.Fixed(32))
			s.next = rd.U64()
			nSkip := rd.Count(MaxSkippedKeys)
			if rd.Err() != nil {
				break
			}
			if s.next > 1<<32 {
				return bad("chain iteration %d out of range", s.next)
			}
			if s.epoch < minEpoch {
				return bad("chain of epoch %d below minimum %d", s.epoch, minEpoch)
			}
			for _, o := range states {
				if o.epoch == s.epoch && o.chainID == s.chainID {
					return bad("duplicate chain")
				}
			}
			if nSkip > 0 {
				s.skipped = make([]skippedKey, 0, nSkip)
			}
			for j := range nSkip {
				var k skippedKey
				k.iter = rd.U32()
				copy(k.mk[:], rd.Fixed(32))
				if rd.Err() != nil {
					break
				}
				if uint64(k.iter) >= s.next || (j > 0 && k.iter <= s.skipped[j-1].iter) {
					return bad("skipped keys out of order")
				}
				s.skipped = append(s.skipped, k)
			}
			states = append(states, s)
		}
		var dev [DeviceIDSize]byte
		copy(dev[:], devB)
		senders[dev] = states
	}
	if err := rd.Done(); err != nil {
		return fmt.Errorf("%w: receiver state: %v", ErrMalformed, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.groupID = groupID
	r.minEpoch = minEpoch
	r.senders = senders
	return nil
}
