package ratchet

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/suite"
)

// Sizes of the message encoding.
const (
	// HeaderSize is the size of an encoded Header: version u8, suite u8,
	// ratchet public key fixed[32], PN u32, N u32.
	HeaderSize = 1 + 1 + suite.KeySize + 4 + 4

	// Overhead is what Encrypt adds to a plaintext: the header, the
	// 24-byte nonce and the 16-byte tag.
	Overhead = HeaderSize + suite.SealOverhead

	// MaxMessageSize is the largest message Decrypt looks at.
	MaxMessageSize = Overhead + MaxPlaintext

	// reservedCounter is the one counter value never used: a sender stops
	// (ErrCounterExhausted) before a message would carry it, so the
	// receiver's next-expected counter N+1 never overflows.
	reservedCounter = math.MaxUint32
)

// Header is the cleartext Double Ratchet header (DR §3.4) carried in front
// of every message and bound into its associated data.
type Header struct {
	// RatchetKey is the sender's current ratchet public key. ParseHeader
	// checks only its length: the key is validated with
	// x25519.ParsePublicKey when a DH ratchet step uses it, and otherwise
	// only compared byte for byte with keys already accepted.
	RatchetKey [suite.KeySize]byte
	// PN is the number of messages in the sender's previous sending chain.
	PN uint32
	// N is the message number in the current sending chain.
	N uint32
}

// appendHeader appends the canonical encoding of h.
func (h *Header) appendTo(b []byte) []byte {
	b = append(b, suite.Version, suite.ID)
	b = append(b, h.RatchetKey[:]...)
	b = binary.BigEndian.AppendUint32(b, h.PN)
	return binary.BigEndian.AppendUint32(b, h.N)
}

// MarshalBinary returns the HeaderSize-byte encoding of h.
func (h Header) MarshalBinary() ([]byte, error) {
	return h.appendTo(make([]byte, 0, HeaderSize)), nil
}

// ParseHeader decodes exactly one encoded header. It rejects a wrong
// version or suite byte, truncation, trailing bytes and the reserved
// counter 2^32-1.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	r := codec.NewReader(b)
	v := r.U8()
	id := r.U8()
	if r.Err() == nil && v != suite.Version {
		return h, fmt.Errorf("%w: header version %d, want %d", ErrMalformed, v, suite.Version)
	}
	if r.Err() == nil && id != suite.ID {
		return h, fmt.Errorf("%w: header suite %d, want %d", ErrMalformed, id, suite.ID)
	}
	key := r.Fixed(suite.KeySize)
	h.PN = r.U32()
	h.N = r.U32()
	if err := r.Done(); err != nil {
		return Header{}, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	copy(h.RatchetKey[:], key)
	if h.N == reservedCounter {
		return Header{}, fmt.Errorf("%w: header counter 2^32-1 is reserved", ErrMalformed)
	}
	return h, nil
}

// splitMessage checks a message's size and splits it into its parsed
// header, the header's bytes and the sealed body (nonce ‖ ct ‖ tag).
func splitMessage(msg []byte) (Header, []byte, []byte, error) {
	if len(msg) < Overhead {
		return Header{}, nil, nil, fmt.Errorf("%w: message of %d bytes, minimum %d", ErrMalformed, len(msg), Overhead)
	}
	if len(msg) > MaxMessageSize {
		return Header{}, nil, nil, fmt.Errorf("%w: message of %d bytes, limit %d", ErrMalformed, len(msg), MaxMessageSize)
	}
	h, err := ParseHeader(msg[:HeaderSize])
	if err != nil {
		return Header{}, nil, nil, err
	}
	return h, msg[:HeaderSize], msg[HeaderSize:], nil
}
