// Package ratchet implements hush's Double Ratchet (Signal specification
// revision 1, 2016-11-20) for one session between two devices.
//
// A session starts from the 32-byte shared key of a PQXDH handshake: the
// initiator calls NewInitiator with the responder's signed prekey, which
// is the responder's first ratchet key pair (NewResponder). Every message
// is a cleartext Header followed by XChaCha20-Poly1305 output under a
// fresh message key; the session's associated data and the header are
// authenticated with it.
//
// Decryption is transactional (DR §3.5): a message that fails for any
// reason leaves the session exactly as it was, so callers persist the
// session only after Decrypt succeeds, and persist it after Encrypt before
// the message leaves the device, unless a stored reservation (Reserve)
// already covers the message's index. Skipped message keys are bounded
// (MaxSkip, MaxStoredKeys, MaxOldChains) and expire after
// SkippedKeyLifetime. The wire format and every KDF label are specified
// in docs/protocol/ratchet.md.
//
// A Session is not safe for concurrent use.
package ratchet

import (
	"crypto/ecdh"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hushnet/hush/crypto/suite"
	"github.com/hushnet/hush/crypto/x25519"
)

// Domain-separation labels (HKDF info strings).
const (
	// labelRatchet is KDF_RK's info: HKDF(salt = rk, ikm = dh_out) → rk' ‖ ck.
	labelRatchet = "hush/v1/ratchet"
	// labelMessage turns a message key into the AEAD key.
	labelMessage = "hush/v1/msg"
)

// Limits.
const (
	// MaxSkip is the largest number of message keys one received message
	// may make the session skip in one chain (DR §3.5 MAX_SKIP). It is
	// checked before any key is derived.
	MaxSkip = 2000
	// MaxStoredKeys caps the skipped message keys kept per session; the
	// oldest are evicted first.
	MaxStoredKeys = 2000
	// MaxOldChains caps the previous receiving chains remembered (for
	// their skipped keys and for duplicate detection); the oldest chain
	// is forgotten with its keys.
	MaxOldChains = 5
	// SkippedKeyLifetime is how long a skipped message key is kept.
	SkippedKeyLifetime = 30 * 24 * time.Hour
	// MaxPlaintext is the largest plaintext Encrypt accepts (252 KiB): a
	// prekey message carrying it still fits the largest envelope body.
	MaxPlaintext = 252 << 10
	// MaxAD is the largest associated data a session binds.
	MaxAD = 4096
)

// Errors callers branch on. Any authentication failure is ErrDecrypt and
// says nothing more.
var (
	ErrDecrypt           = errors.New("ratchet: message authentication failed")
	ErrDuplicate         = errors.New("ratchet: message already decrypted")
	ErrTooManySkipped    = errors.New("ratchet: message skips too many keys")
	ErrExpired           = errors.New("ratchet: message key expired")
	ErrMalformed         = errors.New("ratchet: malformed message")
	ErrCounterExhausted  = errors.New("ratchet: message counter exhausted, start a new session")
	ErrNoSendingChain    = errors.New("ratchet: cannot send before receiving the first message")
	ErrPlaintextTooLarge = errors.New("ratchet: plaintext too large")
	ErrInvalidState      = errors.New("ratchet: invalid session state")
	ErrInvalidArgument   = errors.New("ratchet: invalid argument")
)

type key = [suite.KeySize]byte

// skippedKey is a stored message key of a receiving chain.
type skippedKey struct {
	n  uint32
	mk key
	at int64 // unix seconds when stored
}

// oldChain is a previous receiving chain: its ratchet key, how many
// messages the sender said it held (PN) and its remaining skipped keys.
type oldChain struct {
	dh     key
	length uint32
	keys   []skippedKey // ascending n
}

// Session is one side of a Double Ratchet session.
type Session struct {
	ad []byte
	rk key

	dhs    *ecdh.PrivateKey
	dhsPub key

	dhr    key // remote ratchet key; valid if hasDHr
	hasDHr bool
	cks    key // sending chain key; valid if hasCKs
	hasCKs bool
	ckr    key // receiving chain key; valid if hasCKr
	hasCKr bool

	ns, nr, pn uint32

	// A reservation (Reserve): the sending chain as the stored state
	// gives it, ahead of the live one, so messages below mark may leave
	// before the state that counts them is stored. markCK is CKs advanced
	// to mark; stored is the highest mark the caller confirmed stored
	// (Confirm). Both are for the current sending chain only and are not
	// serialised: a loaded session starts at the stored mark.
	mark, stored uint32
	markCK       key

	skipped []skippedKey // current receiving chain, ascending n
	old     []oldChain   // previous receiving chains, oldest first

	// derivations counts KDF_RK and KDF_CK calls; tests use it to check
	// that cheap rejections derive nothing. Not serialised.
	derivations int
}

// NewInitiator starts a session as the PQXDH initiator (DR §3.3
// RatchetInitAlice): sk is the 32-byte session key, remoteRatchet the
// responder's signed prekey and ad the associated data bound into every
// message. It performs the first DH ratchet step, so the initiator can
// send at once.
func NewInitiator(sk []byte, remoteRatchet *ecdh.PublicKey, ad []byte) (*Session, error) {
	if err := checkInit(sk, ad); err != nil {
		return nil, err
	}
	if remoteRatchet == nil || remoteRatchet.Curve() != ecdh.X25519() {
		return nil, fmt.Errorf("%w: remote ratchet key is not an X25519 key", ErrInvalidArgument)
	}
	remote, err := x25519.ParsePublicKey(remoteRatchet.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%w: remote ratchet key: %w", ErrInvalidArgument, err)
	}
	s := &Session{ad: slices.Clone(ad)}
	copy(s.dhr[:], remote.Bytes())
	s.hasDHr = true
	s.setSendingKey(x25519.GenerateKey())
	dh, err := x25519.DH(s.dhs, remote)
	if err != nil {
		return nil, fmt.Errorf("%w: remote ratchet key: %w", ErrInvalidArgument, err)
	}
	s.rk, s.cks = s.kdfRK((*key)(sk), dh)
	clear(dh)
	s.hasCKs = true
	return s, nil
}

// NewResponder starts a session as the PQXDH responder (DR §3.3
// RatchetInitBob): ownRatchet is the signed prekey pair the initiator
// used. The responder can send only after its first Decrypt.
func NewResponder(sk []byte, ownRatchet *ecdh.PrivateKey, ad []byte) (*Session, error) {
	if err := checkInit(sk, ad); err != nil {
		return nil, err
	}
	if ownRatchet == nil || ownRatchet.Curve() != ecdh.X25519() {
		return nil, fmt.Errorf("%w: own ratchet key is not an X25519 key", ErrInvalidArgument)
	}
	s := &Session{ad: slices.Clone(ad)}
	copy(s.rk[:], sk)
	s.setSendingKey(ownRatchet)
	return s, nil
}

func checkInit(sk, ad []byte) error {
	if len(sk) != suite.KeySize {
		return fmt.Errorf("%w: session key of %d bytes, want %d", ErrInvalidArgument, len(sk), suite.KeySize)
	}
	if len(ad) > MaxAD {
		return fmt.Errorf("%w: associated data of %d bytes, limit %d", ErrInvalidArgument, len(ad), MaxAD)
	}
	return nil
}

func (s *Session) setSendingKey(k *ecdh.PrivateKey) {
	s.dhs = k
	copy(s.dhsPub[:], k.PublicKey().Bytes())
}

// kdfRK is KDF_RK: HKDF-SHA-256(salt = rk, ikm = dhOut, info =
// labelRatchet, L = 64) split into the next root key and a chain key.
func (s *Session) kdfRK(rk *key, dhOut []byte) (newRK, ck key) {
	s.derivations++
	out := suite.HKDF(dhOut, rk[:], labelRatchet, 2*suite.KeySize)
	copy(newRK[:], out)
	copy(ck[:], out[suite.KeySize:])
	clear(out)
	return newRK, ck
}

// kdfCK is KDF_CK (suite.ChainStep): it advances *ck and returns the
// message key.
func (s *Session) kdfCK(ck *key) (mk key) {
	s.derivations++
	next, m := suite.ChainStep(ck[:])
	copy(ck[:], next)
	copy(mk[:], m)
	clear(next)
	clear(m)
	return mk
}

// aeadKey derives the XChaCha20-Poly1305 key from a message key.
func aeadKey(mk *key) []byte {
	return suite.HKDF(mk[:], nil, labelMessage, suite.KeySize)
}

// associatedData returns AD ‖ header.
func (s *Session) associatedData(header []byte) []byte {
	out := make([]byte, 0, len(s.ad)+len(header))
	return append(append(out, s.ad...), header...)
}

// RatchetPublicKey returns the session's current sending ratchet public
// key, the key the next message's header carries.
func (s *Session) RatchetPublicKey() []byte { return slices.Clone(s.dhsPub[:]) }

// CanSend reports whether Encrypt can be called: false for a responder
// that has not yet decrypted a message.
func (s *Session) CanSend() bool { return s.hasCKs && s.ns < reservedCounter }

// StoredKeys reports how many skipped message keys the session holds.
func (s *Session) StoredKeys() int {
	n := len(s.skipped)
	for i := range s.old {
		n += len(s.old[i].keys)
	}
	return n
}

// Encrypt seals plaintext as the next message of the sending chain and
// advances the chain. The result is Header ‖ nonce ‖ ciphertext ‖ tag.
// Once 2^32-1 messages have been sent in one chain it returns
// ErrCounterExhausted; only a new session (a new PQXDH handshake) helps,
// although any received reply with a new ratchet key also starts a new
// chain.
func (s *Session) Encrypt(plaintext []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrPlaintextTooLarge, len(plaintext), MaxPlaintext)
	}
	if !s.hasCKs {
		return nil, ErrNoSendingChain
	}
	if s.ns >= reservedCounter {
		return nil, ErrCounterExhausted
	}
	mk := s.kdfCK(&s.cks)
	h := Header{RatchetKey: s.dhsPub, PN: s.pn, N: s.ns}
	s.ns++
	if s.mark == s.ns { // the live chain caught up with the reservation
		clear(s.markCK[:])
		s.mark, s.stored = 0, 0
	}
	out := h.appendTo(make([]byte, 0, Overhead+len(plaintext)))
	k := aeadKey(&mk)
	clear(mk[:])
	sealed := suite.Seal(k, plaintext, s.associatedData(out))
	clear(k)
	return append(out, sealed...), nil
}

// Decrypt opens a message with the current time as the clock for
// skipped-key expiry. See DecryptAt.
func (s *Session) Decrypt(message []byte) ([]byte, error) {
	return s.DecryptAt(message, time.Now())
}

// change kinds a successful decryption applies.
const (
	useSkipped = iota + 1 // use and delete s.skipped[idx]
	useOld                // use and delete s.old[chain].keys[idx]
	advance               // advance the current receiving chain
	newChain              // DH ratchet step to a new remote ratchet key
)

// pending is everything a decryption would change, applied only after
// the AEAD opened.
type pending struct {
	kind       int
	chain, idx int
	ckr        key
	nr         uint32
	newKeys    []skippedKey // skipped in the (new) receiving chain
	prevKeys   []skippedKey // skipped at the end of the previous chain
	pn         uint32
	dhr        key
	remote     *ecdh.PublicKey
	rk         key
}

// DecryptAt opens a message, using now to stamp newly skipped keys and to
// expire old ones. On any error the session is unchanged. Errors:
// ErrMalformed (bad framing, version, counters or ratchet key),
// ErrTooManySkipped (the message would skip more than MaxSkip keys),
// ErrDuplicate (the message's key was already used: a replay),
// ErrExpired (its skipped key is past SkippedKeyLifetime) and ErrDecrypt
// for everything else.
func (s *Session) DecryptAt(message []byte, now time.Time) ([]byte, error) {
	h, hdr, sealed, err := splitMessage(message)
	if err != nil {
		return nil, err
	}
	t := now.Unix()
	var p pending
	var mk key
	switch {
	case s.hasDHr && h.RatchetKey == s.dhr:
		if h.N < s.nr {
			i, ok := findKey(s.skipped, h.N)
			if !ok {
				return nil, ErrDuplicate
			}
			if expired(s.skipped[i].at, t) {
				return nil, ErrExpired
			}
			p.kind, p.idx, mk = useSkipped, i, s.skipped[i].mk
			break
		}
		if !s.hasCKr {
			// The initiator's first remote key has no receiving chain.
			return nil, ErrDecrypt
		}
		if h.N-s.nr > MaxSkip {
			return nil, fmt.Errorf("%w: %d keys in the current chain", ErrTooManySkipped, h.N-s.nr)
		}
		p.kind, p.ckr = advance, s.ckr
		p.newKeys, mk = s.skipTo(&p.ckr, s.nr, h.N, t)
		p.nr = h.N + 1
	default:
		for c := range s.old {
			if s.old[c].dh != h.RatchetKey {
				continue
			}
			i, ok := findKey(s.old[c].keys, h.N)
			if !ok {
				if h.N < s.old[c].length {
					return nil, ErrDuplicate
				}
				return nil, ErrDecrypt
			}
			if expired(s.old[c].keys[i].at, t) {
				return nil, ErrExpired
			}
			p.kind, p.chain, p.idx, mk = useOld, c, i, s.old[c].keys[i].mk
			break
		}
		if p.kind == useOld {
			break
		}
		// A new remote ratchet key: check every bound before any work.
		if s.hasCKr {
			if h.PN < s.nr {
				return nil, fmt.Errorf("%w: previous chain length %d below %d messages received", ErrMalformed, h.PN, s.nr)
			}
			if h.PN-s.nr > MaxSkip {
				return nil, fmt.Errorf("%w: %d keys in the previous chain", ErrTooManySkipped, h.PN-s.nr)
			}
		}
		if h.N > MaxSkip {
			return nil, fmt.Errorf("%w: %d keys in the new chain", ErrTooManySkipped, h.N)
		}
		remote, err := x25519.ParsePublicKey(h.RatchetKey[:])
		if err != nil {
			return nil, fmt.Errorf("%w: ratchet key: %w", ErrMalformed, err)
		}
		dh, err := x25519.DH(s.dhs, remote)
		if err != nil {
			return nil, fmt.Errorf("%w: ratchet key: %w", ErrMalformed, err)
		}
		p.kind, p.dhr, p.remote, p.pn = newChain, h.RatchetKey, remote, h.PN
		if s.hasCKr {
			ck := s.ckr
			p.prevKeys = s.skipOnly(&ck, s.nr, h.PN, t)
			clear(ck[:])
		}
		p.rk, p.ckr = s.kdfRK(&s.rk, dh)
		clear(dh)
		p.newKeys, mk = s.skipTo(&p.ckr, 0, h.N, t)
		p.nr = h.N + 1
	}

	k := aeadKey(&mk)
	clear(mk[:])
	pt, err := suite.Open(k, sealed, s.associatedData(hdr))
	clear(k)
	if err != nil {
		p.wipe()
		return nil, ErrDecrypt
	}
	if err := s.apply(&p, t); err != nil {
		clear(pt)
		return nil, err
	}
	return pt, nil
}

// skipOnly derives the message keys from..until-1 of the chain *ck,
// advancing it, and returns them stamped with t.
func (s *Session) skipOnly(ck *key, from, until uint32, t int64) []skippedKey {
	if until <= from {
		return nil
	}
	keys := make([]skippedKey, 0, until-from)
	for n := from; n < until; n++ {
		keys = append(keys, skippedKey{n: n, mk: s.kdfCK(ck), at: t})
	}
	return keys
}

// skipTo is skipOnly followed by the message key for n itself.
func (s *Session) skipTo(ck *key, from, n uint32, t int64) ([]skippedKey, key) {
	keys := s.skipOnly(ck, from, n, t)
	return keys, s.kdfCK(ck)
}

func (p *pending) wipe() {
	clear(p.ckr[:])
	clear(p.rk[:])
	clear(p.newKeys)
	clear(p.prevKeys)
}

// apply commits p after a successful open.
func (s *Session) apply(p *pending, t int64) error {
	switch p.kind {
	case useSkipped:
		s.skipped = slices.Delete(s.skipped, p.idx, p.idx+1)
	case useOld:
		c := &s.old[p.chain]
		c.keys = slices.Delete(c.keys, p.idx, p.idx+1)
	case advance:
		s.ckr, s.nr = p.ckr, p.nr
		s.skipped = append(s.skipped, p.newKeys...)
	case newChain:
		// The new sending chain (second half of the DH ratchet step) is
		// computed first so that nothing is changed if it fails.
		next := x25519.GenerateKey()
		dh, err := x25519.DH(next, p.remote)
		if err != nil {
			p.wipe()
			return fmt.Errorf("%w: ratchet key: %w", ErrMalformed, err)
		}
		rk, cks := s.kdfRK(&p.rk, dh)
		clear(dh)
		if s.hasCKr {
			keys := append(s.skipped, p.prevKeys...)
			s.old = append(s.old, oldChain{dh: s.dhr, length: p.pn, keys: keys})
			if len(s.old) > MaxOldChains {
				clear(s.old[0].keys)
				s.old = slices.Delete(s.old, 0, 1)
			}
		}
		s.skipped = p.newKeys
		s.dhr, s.hasDHr = p.dhr, true
		s.ckr, s.hasCKr, s.nr = p.ckr, true, p.nr
		s.pn, s.ns = s.ns, 0
		s.dropReservation()
		s.setSendingKey(next)
		s.rk, s.cks, s.hasCKs = rk, cks, true
		clear(p.rk[:])
	}
	s.evict(t)
	return nil
}

// evict drops expired keys and, oldest first, keys over MaxStoredKeys.
// Keys are stored in the order old chains (oldest first) then the current
// chain, each in ascending n, which is the order they were stored in.
func (s *Session) evict(t int64) {
	excess := s.StoredKeys() - MaxStoredKeys
	drop := func(keys []skippedKey) []skippedKey {
		i := 0
		for i < len(keys) && (excess > 0 || expired(keys[i].at, t)) {
			i++
			excess--
		}
		if i == 0 {
			return keys
		}
		clear(keys[:i])
		return keys[i:]
	}
	for c := range s.old {
		s.old[c].keys = drop(s.old[c].keys)
	}
	s.skipped = drop(s.skipped)
}

// Expire drops skipped keys older than SkippedKeyLifetime at now and
// reports how many it dropped. Decrypt does this on every success; call
// Expire (and persist) to delete keys of an idle session.
func (s *Session) Expire(now time.Time) int {
	before := s.StoredKeys()
	t := now.Unix()
	for c := range s.old {
		s.old[c].keys = slices.DeleteFunc(s.old[c].keys, func(k skippedKey) bool { return expired(k.at, t) })
	}
	s.skipped = slices.DeleteFunc(s.skipped, func(k skippedKey) bool { return expired(k.at, t) })
	return before - s.StoredKeys()
}

func expired(at, now int64) bool {
	return now-at >= int64(SkippedKeyLifetime/time.Second)
}

func findKey(keys []skippedKey, n uint32) (int, bool) {
	return slices.BinarySearchFunc(keys, n, func(k skippedKey, n uint32) int {
		switch {
		case k.n < n:
			return -1
		case k.n > n:
			return 1
		}
		return 0
	})
}
