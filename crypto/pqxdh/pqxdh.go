// Package pqxdh implements hush's asynchronous session setup: the Signal
// PQXDH key agreement (X25519 + ML-KEM-1024, HKDF-SHA-256) between two
// devices, together with the signed prekeys that make it asynchronous.
//
// The publishing device keeps a PrekeyStore. It signs a medium-term X25519
// signed prekey, a last-resort ML-KEM-1024 prekey and pools of one-time
// X25519 and ML-KEM-1024 prekeys with its Ed25519 device signing key, and
// hands them out as Bundles. An initiator parses a Bundle with ParseBundle,
// which verifies every signature and expiry and refuses any bundle without
// a post-quantum prekey, then calls Initiate to get the shared key SK and
// the Initial header to send. The responder calls PrekeyStore.Respond, which
// changes no state: one-time keys are consumed and the replay cache is
// updated only by Pending.Commit, once the caller has decrypted the first
// ratchet message.
//
// The package works on raw keys: the caller supplies its X25519 identity
// key, the peer's identity and signing keys (already verified through a
// device certificate) and the associated data. The specification is
// docs/protocol/pqxdh.md.
package pqxdh

import (
	"crypto/ecdh"
	"crypto/mlkem"
	"errors"
	"fmt"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/suite"
	"github.com/hushnet/hush/crypto/x25519"
)

// kdfInfo is the HKDF info of the PQXDH key derivation (PQXDH §2.1 "info").
const kdfInfo = "hush/v1/pqxdh X25519_SHA-256_ML-KEM-1024"

// Sizes of the values exchanged in a handshake.
const (
	SKSize         = 32                             // the derived shared key
	KEMKeySize     = mlkem.EncapsulationKeySize1024 // 1568
	KEMCipherSize  = mlkem.CiphertextSize1024       // 1568
	kemSeedSize    = mlkem.SeedSize                 // 64
	signatureSize  = 64
	x25519KeySize  = x25519.KeySize
	maxClockSkew   = 3600 // seconds a prekey's creation may lie in the future
	maxKeyLifetime = 366 * 24 * 3600
)

// Sentinel errors. Parse errors wrap ErrMalformed or ErrVersion with the
// field at fault.
var (
	ErrMalformed      = errors.New("pqxdh: malformed encoding")
	ErrVersion        = errors.New("pqxdh: unsupported version or suite")
	ErrBadSignature   = errors.New("pqxdh: bad prekey signature")
	ErrExpired        = errors.New("pqxdh: prekey expired or not yet valid")
	ErrInvalidKey     = errors.New("pqxdh: invalid public key")
	ErrNoPQPrekey     = errors.New("pqxdh: bundle has no post-quantum prekey")
	ErrUnknownPrekey  = errors.New("pqxdh: unknown or consumed prekey")
	ErrReplay         = errors.New("pqxdh: replayed initial message")
	ErrReplayFull     = errors.New("pqxdh: replay cache full")
	ErrPoolFull       = errors.New("pqxdh: one-time prekey pool full")
	ErrCommitted      = errors.New("pqxdh: pending receipt already committed")
	ErrSignerMismatch = errors.New("pqxdh: signing key does not match store")
)

// InitResult is what Initiate returns.
type InitResult struct {
	// SK is the 32-byte shared key that seeds the Double Ratchet.
	SK []byte
	// Initial is the header to send with the first ratchet message.
	Initial *Initial
	// PeerSignedPrekey is the responder's signed prekey: the Double
	// Ratchet's first remote ratchet key.
	PeerSignedPrekey *ecdh.PublicKey
	// AD is a copy of the associated data passed to Initiate, for the
	// first ratchet message.
	AD []byte
}

// Initiate runs the sending side of PQXDH (PQXDH §3.3) against a bundle
// returned by ParseBundle. ownIdentity is the initiator's X25519 identity
// key, peerIdentity the responder's (from its verified device
// certificate). It uses the bundle's one-time prekeys when present and the
// last-resort ML-KEM prekey otherwise; a bundle without an ML-KEM prekey is
// refused with ErrNoPQPrekey.
func Initiate(ownIdentity *ecdh.PrivateKey, peerIdentity *ecdh.PublicKey, bundle *Bundle, ad []byte) (*InitResult, error) {
	if ownIdentity == nil || peerIdentity == nil || bundle == nil {
		return nil, fmt.Errorf("pqxdh: initiate: %w: nil key or bundle", ErrInvalidKey)
	}
	spk := bundle.SignedPrekey.Public
	if spk == nil {
		return nil, fmt.Errorf("pqxdh: initiate: %w: no signed prekey", ErrInvalidKey)
	}
	pq := &bundle.PQPrekey
	if bundle.PQOneTime != nil {
		pq = bundle.PQOneTime
	}
	if pq.Public == nil {
		return nil, ErrNoPQPrekey
	}
	ek, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("pqxdh: initiate: %w", err)
	}
	in := &Initial{
		SignedPrekeyID: bundle.SignedPrekey.ID,
		PQPrekeyID:     pq.ID,
		PQOneTime:      bundle.PQOneTime != nil,
	}
	copy(in.Ephemeral[:], ek.PublicKey().Bytes())

	ikm := make([]byte, 0, 32*5+mlkem.SharedKeySize)
	ikm = append(ikm, fPrefix[:]...)
	for _, p := range []struct {
		priv *ecdh.PrivateKey
		pub  *ecdh.PublicKey
	}{{ownIdentity, spk}, {ek, peerIdentity}, {ek, spk}} {
		if ikm, err = appendDH(ikm, p.priv, p.pub); err != nil {
			return nil, err
		}
	}
	if bundle.OneTime != nil && bundle.OneTime.Public != nil {
		if ikm, err = appendDH(ikm, ek, bundle.OneTime.Public); err != nil {
			return nil, err
		}
		in.HasOneTime = true
		in.OneTimePrekeyID = bundle.OneTime.ID
	}
	ss, ct := pq.Public.Encapsulate()
	in.Ciphertext = ct
	ikm = append(ikm, ss...)
	sk := deriveSK(ikm)
	clear(ikm)
	clear(ss)
	return &InitResult{SK: sk, Initial: in, PeerSignedPrekey: spk, AD: codec.Clone(ad)}, nil
}

// fPrefix is PQXDH §2.2's F: 32 0xFF bytes that keep the X25519 inputs
// from ever colliding with an XEdDSA-style encoding.
var fPrefix = [32]byte{
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
}

func appendDH(ikm []byte, priv *ecdh.PrivateKey, pub *ecdh.PublicKey) ([]byte, error) {
	s, err := x25519.DH(priv, pub)
	if err != nil {
		return ikm, fmt.Errorf("pqxdh: %w", ErrInvalidKey)
	}
	ikm = append(ikm, s...)
	clear(s)
	return ikm, nil
}

// deriveSK is SK = HKDF-SHA-256(salt = 32 zero bytes, ikm, kdfInfo, 32).
func deriveSK(ikm []byte) []byte {
	var salt [32]byte
	return suite.HKDF(ikm, salt[:], kdfInfo, SKSize)
}
