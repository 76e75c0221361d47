// Package x25519 validates X25519 public keys received from other parties
// and computes Diffie-Hellman shared secrets that are never all zero.
//
// A received key is accepted only if it is 32 bytes, canonical (u below
// 2^255-19 with the top bit clear), a point on Curve25519 rather than its
// twist, and free of any small-order (torsion) component. The last check
// matters because X25519 clamps scalars to multiples of 8: a key with an
// order-8 point added has different bytes but gives the same shared
// secret, which would defeat any cache keyed on key bytes.
package x25519

import (
	"crypto/ecdh"
	"crypto/subtle"
	"errors"
)

// KeySize is the size of an X25519 public key.
const KeySize = 32

// ErrInvalidKey is returned for any rejected public key and for an
// all-zero shared secret.
var ErrInvalidKey = errors.New("x25519: invalid public key")

// GenerateKey returns a fresh private key from crypto/rand.
func GenerateKey() *ecdh.PrivateKey {
	k, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		panic("x25519: " + err.Error())
	}
	return k
}

// ParsePublicKey validates b as described in the package comment.
func ParsePublicKey(b []byte) (*ecdh.PublicKey, error) {
	if err := Check(b); err != nil {
		return nil, err
	}
	return ecdh.X25519().NewPublicKey(b)
}

// DH returns X25519(priv, pub), rejecting an all-zero result.
func DH(priv *ecdh.PrivateKey, pub *ecdh.PublicKey) ([]byte, error) {
	s, err := priv.ECDH(pub)
	if err != nil {
		// crypto/ecdh reports an all-zero output as an error.
		return nil, ErrInvalidKey
	}
	// Belt and braces: never hand an all-zero secret to a KDF.
	if subtle.ConstantTimeCompare(s, make([]byte, len(s))) == 1 {
		return nil, ErrInvalidKey
	}
	return s, nil
}
