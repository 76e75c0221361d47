package pqxdh

import (
	"fmt"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/suite"
)

// Initial is the PQXDH header an initiator sends with its first ratchet
// message (PQXDH §3.3): its ephemeral key, the ML-KEM ciphertext and the
// IDs of the prekeys it used. The initiator's identity travels in its
// device certificate, outside this header.
type Initial struct {
	Ephemeral       [32]byte // EK_A, raw X25519 public key; validated by Respond
	Ciphertext      []byte   // ML-KEM-1024 ciphertext, 1568 bytes
	SignedPrekeyID  uint32
	HasOneTime      bool // an X25519 one-time prekey was used
	OneTimePrekeyID uint32
	PQPrekeyID      uint32
	PQOneTime       bool // PQPrekeyID names a one-time ML-KEM prekey
}

// Initial flag bits.
const (
	initFlagOneTime   = 0x01
	initFlagPQOneTime = 0x02
)

// Sizes of an encoded Initial without and with a one-time prekey ID.
const (
	InitialSize    = 2 + 32 + KEMCipherSize + 4 + 1 + 4
	MaxInitialSize = InitialSize + 4
)

// Marshal returns the canonical encoding of in.
func (in *Initial) Marshal() []byte {
	w := codec.NewWriter(MaxInitialSize)
	w.U8(suite.Version)
	w.U8(suite.ID)
	w.Fixed(in.Ephemeral[:])
	w.Fixed(in.Ciphertext)
	w.U32(in.SignedPrekeyID)
	var flags byte
	if in.HasOneTime {
		flags |= initFlagOneTime
	}
	if in.PQOneTime {
		flags |= initFlagPQOneTime
	}
	w.U8(flags)
	if in.HasOneTime {
		w.U32(in.OneTimePrekeyID)
	}
	w.U32(in.PQPrekeyID)
	return w.Bytes()
}

// ParseInitial decodes an Initial. It checks structure only (version,
// suite, sizes, flags, no trailing bytes); Respond validates the ephemeral
// key before using it.
func ParseInitial(b []byte) (*Initial, error) {
	if len(b) != InitialSize && len(b) != MaxInitialSize {
		return nil, fmt.Errorf("pqxdh: parse initial: %w: %d bytes", ErrMalformed, len(b))
	}
	r := codec.NewReader(b)
	if v, s := r.U8(), r.U8(); v != suite.Version || s != suite.ID {
		return nil, fmt.Errorf("pqxdh: parse initial: %w: version %d suite %d", ErrVersion, v, s)
	}
	in := &Initial{}
	copy(in.Ephemeral[:], r.Fixed(32))
	in.Ciphertext = codec.Clone(r.Fixed(KEMCipherSize))
	in.SignedPrekeyID = r.U32()
	flags := r.U8()
	if flags&^(initFlagOneTime|initFlagPQOneTime) != 0 {
		return nil, fmt.Errorf("pqxdh: parse initial: %w: flags %#x", ErrMalformed, flags)
	}
	in.HasOneTime = flags&initFlagOneTime != 0
	in.PQOneTime = flags&initFlagPQOneTime != 0
	if in.HasOneTime {
		in.OneTimePrekeyID = r.U32()
	}
	in.PQPrekeyID = r.U32()
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("pqxdh: parse initial: %w: %w", ErrMalformed, err)
	}
	return in, nil
}
