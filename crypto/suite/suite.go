// Package suite names hush's protocol version, its single cryptographic
// suite and the small helpers every protocol package shares: typed key
// encodings, HKDF-SHA-256, the HMAC-SHA-256 chain step and
// XChaCha20-Poly1305 with random nonces.
//
// Nothing here is a new primitive: each helper is a thin, length-checked
// call into the standard library or golang.org/x/crypto, kept in one place
// so the Wycheproof vectors in this package's tests cover exactly what the
// protocols call.
package suite

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"

	"golang.org/x/crypto/chacha20poly1305"
)

// Version is the protocol version byte and ID is the suite byte; both are
// written into every signed structure, KDF info and AEAD associated data.
const (
	Version byte = 0x01
	ID      byte = 0x01
)

// Type bytes for typed public-key encodings (PQXDH §2.1 EncodeEC/EncodeKEM).
const (
	KeyX25519    byte = 0x01
	KeyEd25519   byte = 0x02
	KeyMLKEM1024 byte = 0x03
)

// Sizes of suite-1 values.
const (
	KeySize      = 32 // symmetric keys, X25519 and Ed25519 public keys
	NonceSizeX   = chacha20poly1305.NonceSizeX
	TagSize      = chacha20poly1305.Overhead
	SealOverhead = NonceSizeX + TagSize // bytes Seal adds to a plaintext
)

// ErrDecrypt is the single, uninformative error for a failed open.
var ErrDecrypt = errors.New("suite: message authentication failed")

// TypedKey returns typ followed by key: the encoding used wherever a public
// key is signed or fed into a KDF.
func TypedKey(typ byte, key []byte) []byte {
	out := make([]byte, 0, 1+len(key))
	out = append(out, typ)
	return append(out, key...)
}

// HKDF derives n bytes with HKDF-SHA-256 (RFC 5869). A nil salt means a
// string of zeros, as the RFC specifies.
func HKDF(secret, salt []byte, info string, n int) []byte {
	out, err := hkdf.Key(sha256.New, secret, salt, info, n)
	if err != nil {
		// Only possible for n > 255*32, a programming error.
		panic("suite: " + err.Error())
	}
	return out
}

// ChainStep is the Double Ratchet KDF_CK (research §1.4): the message key is
// HMAC-SHA-256(ck, 0x01) and the next chain key HMAC-SHA-256(ck, 0x02).
func ChainStep(ck []byte) (next, messageKey []byte) {
	m := hmac.New(sha256.New, ck)
	m.Write([]byte{0x01})
	messageKey = m.Sum(nil)
	m.Reset()
	m.Write([]byte{0x02})
	next = m.Sum(nil)
	return next, messageKey
}

// Seal encrypts plaintext with XChaCha20-Poly1305 under a 32-byte key and a
// fresh random 24-byte nonce, returning nonce ‖ ciphertext ‖ tag.
func Seal(key, plaintext, ad []byte) []byte {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		panic("suite: Seal key must be 32 bytes")
	}
	out := make([]byte, NonceSizeX, NonceSizeX+len(plaintext)+TagSize)
	rand.Read(out[:NonceSizeX])
	return aead.Seal(out, out[:NonceSizeX], plaintext, ad)
}

// Open reverses Seal. Any failure, including a too-short input, returns
// ErrDecrypt; the nonce length is checked before the AEAD sees it.
func Open(key, sealed, ad []byte) ([]byte, error) {
	if len(key) != KeySize || len(sealed) < SealOverhead {
		return nil, ErrDecrypt
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, ErrDecrypt
	}
	pt, err := aead.Open(nil, sealed[:NonceSizeX], sealed[NonceSizeX:], ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}
