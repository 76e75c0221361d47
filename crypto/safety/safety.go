// Package safety computes the safety number two hush users compare to
// verify each other's account keys: libsignal's numeric fingerprint
// (iterated SHA-512, 60 digits) over the two Ed25519 account IDs, with
// hush's own version prefix so a hush number never looks like a Signal
// one. It also gives the scannable (QR) form, which compares the full
// 32-byte fingerprints instead of the digits.
//
// The number depends only on the two account keys: adding or revoking a
// device does not change it. The construction is specified in
// docs/protocol/identity.md.
package safety

import (
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/suite"
)

// Parameters of hush safety numbers.
const (
	// Version is the fingerprint version hashed first into every
	// fingerprint and written first in the scannable form. libsignal uses
	// 0x0000.
	Version uint16 = 0x0001
	// Iterations is the number of SHA-512 invocations per fingerprint.
	Iterations = 5200
	// Digits is the length of a safety number.
	Digits = 60
	// FingerprintSize is how much of each fingerprint the scannable form
	// carries.
	FingerprintSize = 32
	// ScannableSize is the length of the scannable form.
	ScannableSize = 2 + 2*FingerprintSize
)

// Errors returned by VerifyScanned.
var (
	ErrMalformed = errors.New("safety: malformed scanned code")
	ErrVersion   = errors.New("safety: scanned code has an unsupported version")
	ErrMismatch  = errors.New("safety: scanned code does not match")
)

// fingerprint is libsignal's per-party fingerprint: H0 = SHA-512(version ‖
// key ‖ stableID ‖ key), H(i) = SHA-512(H(i-1) ‖ key), returning the last
// of iterations hashes.
func fingerprint(version uint16, key, stableID []byte, iterations int) [sha512.Size]byte {
	buf := make([]byte, 0, 2+2*len(key)+len(stableID))
	buf = binary.BigEndian.AppendUint16(buf, version)
	buf = append(buf, key...)
	buf = append(buf, stableID...)
	buf = append(buf, key...)
	h := sha512.Sum512(buf)
	next := make([]byte, sha512.Size+len(key))
	copy(next[sha512.Size:], key)
	for i := 1; i < iterations; i++ {
		copy(next, h[:])
		h = sha512.Sum512(next)
	}
	return h
}

// encodeDigits turns the first 30 bytes of a fingerprint into 30 digits:
// six 5-byte big-endian integers, each mod 100000, zero padded to 5 digits.
func encodeDigits(fp []byte) string {
	var sb strings.Builder
	sb.Grow(30)
	for i := range 6 {
		var x uint64
		for _, c := range fp[5*i : 5*i+5] {
			x = x<<8 | uint64(c)
		}
		fmt.Fprintf(&sb, "%05d", x%100000)
	}
	return sb.String()
}

// display joins two parties' 30-digit strings in sorted order.
func display(fpA, fpB []byte) string {
	a, b := encodeDigits(fpA), encodeDigits(fpB)
	if b < a {
		a, b = b, a
	}
	return a + b
}

// partyFingerprint is the hush fingerprint of one account: key is the
// typed key 0x02 ‖ account ID and the stable ID the 32-byte account ID.
func partyFingerprint(id identity.AccountID) [sha512.Size]byte {
	return fingerprint(Version, suite.TypedKey(suite.KeyEd25519, id[:]), id[:], Iterations)
}

// Number returns the 60-digit safety number of accounts a and b. It is
// symmetric: Number(a, b) == Number(b, a).
func Number(a, b identity.AccountID) string {
	fa, fb := partyFingerprint(a), partyFingerprint(b)
	return display(fa[:], fb[:])
}

// Format splits a number into groups of five digits separated by single
// spaces, as shown to users (12 groups for a safety number).
func Format(n string) string {
	var sb strings.Builder
	for i := 0; i < len(n); i += 5 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(n[i:min(i+5, len(n))])
	}
	return sb.String()
}

// Scannable returns the form local's device shows as a QR code:
// u16 Version ‖ fingerprint(local)[:32] ‖ fingerprint(remote)[:32].
func Scannable(local, remote identity.AccountID) []byte {
	fl, fr := partyFingerprint(local), partyFingerprint(remote)
	w := codec.NewWriter(ScannableSize)
	w.U16(Version)
	w.Fixed(fl[:FingerprintSize])
	w.Fixed(fr[:FingerprintSize])
	return w.Bytes()
}

// VerifyScanned checks a code scanned from remote's screen, which remote
// made with Scannable(remote, local). It returns nil only if the version
// matches and both fingerprints equal the ones local computes, compared in
// constant time.
func VerifyScanned(local, remote identity.AccountID, scanned []byte) error {
	r := codec.NewReader(scanned)
	v := r.U16()
	theirLocal := r.Fixed(FingerprintSize)
	theirRemote := r.Fixed(FingerprintSize)
	if err := r.Done(); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if v != Version {
		return fmt.Errorf("%w: %#04x", ErrVersion, v)
	}
	fl, fr := partyFingerprint(local), partyFingerprint(remote)
	ok := subtle.ConstantTimeCompare(theirLocal, fr[:FingerprintSize]) &
		subtle.ConstantTimeCompare(theirRemote, fl[:FingerprintSize])
	if ok != 1 {
		return ErrMismatch
	}
	return nil
}
