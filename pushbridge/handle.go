package pushbridge

import (
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hushnet/hush/pushbridge/provider"
)

// Labels.
const (
	// labelHandle is the HPKE info string of a wake handle.
	labelHandle = "hush/v1/wake-handle"
	// labelHandleKey prefixes a sealed handle when hashing it into the
	// key of its tombstone and of its in-memory state.
	labelHandleKey = "hush/v1/wake-handle-key"
)

// Wake-handle format (docs/PUSH.md): base64url without padding of
//
//	version (1 byte, 1) ‖ HPKE enc (32) ‖ HPKE ciphertext
//
// HPKE is base mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and
// ChaCha20Poly1305 to the bridge's X25519 key, info labelHandle. The
// plaintext is
//
//	kind (1: apns 1, fcm 2, webpush 3) ‖ token length (2, big endian) ‖ token ‖ zero padding
//
// padded to the smallest of handleBuckets that fits, so a handle's length
// does not tell which service or token it holds.
const (
	handleVersion = 1
	handleEncSize = 32
	handleTagSize = 16
	handleHeader  = 1 + 2
	// MaxTokenSize is the largest token a handle can hold.
	MaxTokenSize = 4096 - handleHeader
	// MaxHandleSize is the length of the longest encoded handle.
	MaxHandleSize = (1+handleEncSize+4096+handleTagSize)*4/3 + 1
)

var handleBuckets = [...]int{512, 1024, 2048, 4096}

// ErrBadHandle is the single error for a wake handle that does not open:
// malformed, forged, sealed by another bridge, or for an unknown service.
var ErrBadHandle = errors.New("pushbridge: invalid wake handle")

var kindCodes = map[provider.Kind]byte{provider.APNs: 1, provider.FCM: 2, provider.WebPush: 3}

func kindOf(code byte) (provider.Kind, bool) {
	for k, c := range kindCodes {
		if c == code {
			return k, true
		}
	}
	return "", false
}

// handleKey identifies a sealed handle without revealing it: SHA-256 of
// labelHandleKey ‖ the handle's bytes. Tombstones and per-handle state
// are keyed by it.
type handleKey [sha256.Size]byte

// sealer seals and opens wake handles with the bridge's key.
type sealer struct {
	priv hpke.PrivateKey
	pub  hpke.PublicKey
}

var (
	handleKDF  = hpke.HKDFSHA256()
	handleAEAD = hpke.ChaCha20Poly1305()
)

// newSealer makes a sealer from a 32-byte X25519 private key.
func newSealer(key []byte) (*sealer, error) {
	k, err := ecdh.X25519().NewPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pushbridge: bridge key: %w", err)
	}
	priv, err := hpke.NewDHKEMPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("pushbridge: bridge key: %w", err)
	}
	return &sealer{priv: priv, pub: priv.PublicKey()}, nil
}

// seal makes a wake handle for kind and token.
func (s *sealer) seal(kind provider.Kind, token string) (string, error) {
	code, ok := kindCodes[kind]
	if !ok {
		return "", ErrUnknownProvider
	}
	if len(token) == 0 || len(token) > MaxTokenSize {
		return "", ErrBadToken
	}
	size := handleBuckets[len(handleBuckets)-1]
	for _, b := range handleBuckets {
		if handleHeader+len(token) <= b {
			size = b
			break
		}
	}
	pt := make([]byte, size)
	pt[0] = code
	binary.BigEndian.PutUint16(pt[1:], uint16(len(token)))
	copy(pt[handleHeader:], token)
	ct, err := hpke.Seal(s.pub, handleKDF, handleAEAD, []byte(labelHandle), pt)
	if err != nil {
		return "", fmt.Errorf("pushbridge: seal handle: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(append([]byte{handleVersion}, ct...)), nil
}

// open returns the key, service and token of a handle, or ErrBadHandle.
func (s *sealer) open(h string) (handleKey, provider.Kind, string, error) {
	var key handleKey
	if len(h) > MaxHandleSize {
		return key, "", "", ErrBadHandle
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(h)
	if err != nil || len(raw) < 1+handleEncSize+handleBuckets[0]+handleTagSize || raw[0] != handleVersion {
		return key, "", "", ErrBadHandle
	}
	pt, err := hpke.Open(s.priv, handleKDF, handleAEAD, []byte(labelHandle), raw[1:])
	if err != nil || len(pt) < handleHeader {
		return key, "", "", ErrBadHandle
	}
	kind, ok := kindOf(pt[0])
	n := int(binary.BigEndian.Uint16(pt[1:]))
	if !ok || n == 0 || handleHeader+n > len(pt) {
		return key, "", "", ErrBadHandle
	}
	return keyOf(raw), kind, string(pt[handleHeader : handleHeader+n]), nil
}

func keyOf(raw []byte) handleKey {
	h := sha256.New()
	h.Write([]byte(labelHandleKey))
	h.Write(raw)
	return handleKey(h.Sum(nil))
}
