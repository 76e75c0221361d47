package session

import (
	"crypto/subtle"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/pqxdh"
	"github.com/hushnet/hush/crypto/ratchet"
)

// Session recovery (docs/protocol/recovery.md): a device that cannot
// decrypt a message names it, in the reset it sends, by its ratchet
// header; the sender accepts the reset only if the header's ratchet key
// is one it sends with now.

// MessageHeader returns the ratchet header of an envelope body from a
// remote device (a ratchet message, or the ratchet message inside a
// prekey message) without decrypting anything. ok is false when the
// body is malformed.
func MessageHeader(in *envelope.Inner) (h ratchet.Header, ok bool) {
	msg := in.Body
	if in.Kind == envelope.KindPrekeyMessage {
		r := codec.NewReader(in.Body)
		r.Bytes16(identity.CertSize)
		r.Bytes16(pqxdh.MaxInitialSize)
		msg = r.Bytes32(ratchet.MaxMessageSize)
		if r.Done() != nil {
			return h, false
		}
	} else if in.Kind != envelope.KindMessage {
		return h, false
	}
	if len(msg) < ratchet.HeaderSize {
		return h, false
	}
	h, err := ratchet.ParseHeader(msg[:ratchet.HeaderSize])
	return h, err == nil
}

// HasRatchetKey reports whether key is the current sending ratchet key
// of one of the set's sessions.
func (s *Set) HasRatchetKey(key []byte) bool {
	for _, e := range s.sessions {
		if subtle.ConstantTimeCompare(e.r.RatchetPublicKey(), key) == 1 {
			return true
		}
	}
	return false
}
