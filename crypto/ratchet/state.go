package ratchet

import (
	"crypto/ecdh"
	"fmt"
	"slices"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/suite"
	"github.com/hushnet/hush/crypto/x25519"
)

// stateVersion is the first byte of a serialised Session.
const stateVersion byte = 0x01

// Flag bits of a serialised Session.
const (
	flagDHr = 1 << iota
	flagCKs
	flagCKr
	flagsAll = flagDHr | flagCKs | flagCKr
)

// skippedKeySize is the encoded size of one skipped key: n u32, mk
// fixed[32], stored-at u64.
const skippedKeySize = 4 + suite.KeySize + 8

// MarshalBinary serialises the session for the encrypted store. The
// encoding (docs/protocol/ratchet.md) holds private keys and must only be
// stored encrypted.
func (s *Session) MarshalBinary() ([]byte, error) {
	w := codec.NewWriter(3 + 1 + 2 + len(s.ad) + 6*suite.KeySize + 12 + 2 + 2 + skippedKeySize*s.StoredKeys() + len(s.old)*(suite.KeySize+6))
	w.U8(stateVersion)
	w.U8(suite.Version)
	w.U8(suite.ID)
	var flags uint8
	if s.hasDHr {
		flags |= flagDHr
	}
	if s.hasCKs {
		flags |= flagCKs
	}
	if s.hasCKr {
		flags |= flagCKr
	}
	w.U8(flags)
	w.Bytes16(s.ad)
	w.Fixed(s.rk[:])
	w.Fixed(s.dhs.Bytes())
	w.Fixed(s.dhr[:])
	cks, ns := &s.cks, s.ns
	if s.mark > s.ns { // reserved: the chain as it will be at the mark (reserve.go)
		cks, ns = &s.markCK, s.mark
	}
	w.Fixed(cks[:])
	w.Fixed(s.ckr[:])
	w.U32(ns)
	w.U32(s.nr)
	w.U32(s.pn)
	writeKeys(w, s.skipped)
	w.U16(uint16(len(s.old)))
	for i := range s.old {
		w.Fixed(s.old[i].dh[:])
		w.U32(s.old[i].length)
		writeKeys(w, s.old[i].keys)
	}
	return w.Bytes(), nil
}

func writeKeys(w *codec.Writer, keys []skippedKey) {
	w.U16(uint16(len(keys)))
	for i := range keys {
		w.U32(keys[i].n)
		w.Fixed(keys[i].mk[:])
		w.U64(uint64(keys[i].at))
	}
}

// Unmarshal parses a session serialised by MarshalBinary. It checks every
// count against its limit before allocating, rejects trailing bytes and
// any state the protocol cannot reach, so each session has exactly one
// encoding.
func Unmarshal(b []byte) (*Session, error) {
	r := codec.NewReader(b)
	sv, v, id := r.U8(), r.U8(), r.U8()
	if r.Err() == nil && (sv != stateVersion || v != suite.Version || id != suite.ID) {
		return nil, fmt.Errorf("%w: unknown version %d/%d/%d", ErrInvalidState, sv, v, id)
	}
	flags := r.U8()
	if r.Err() == nil && flags&^flagsAll != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#x", ErrInvalidState, flags)
	}
	s := &Session{
		hasDHr: flags&flagDHr != 0,
		hasCKs: flags&flagCKs != 0,
		hasCKr: flags&flagCKr != 0,
	}
	s.ad = codec.Clone(r.Bytes16(MaxAD))
	copy(s.rk[:], r.Fixed(suite.KeySize))
	priv := codec.Clone(r.Fixed(suite.KeySize))
	copy(s.dhr[:], r.Fixed(suite.KeySize))
	copy(s.cks[:], r.Fixed(suite.KeySize))
	copy(s.ckr[:], r.Fixed(suite.KeySize))
	s.ns, s.nr, s.pn = r.U32(), r.U32(), r.U32()
	total := 0
	s.skipped = readKeys(r, &total)
	nOld := r.Count(MaxOldChains)
	if nOld > 0 {
		s.old = make([]oldChain, nOld)
	}
	for i := range s.old {
		copy(s.old[i].dh[:], r.Fixed(suite.KeySize))
		s.old[i].length = r.U32()
		s.old[i].keys = readKeys(r, &total)
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	dhs, err := ecdh.X25519().NewPrivateKey(priv)
	clear(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: ratchet private key: %w", ErrInvalidState, err)
	}
	s.setSendingKey(dhs)
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// readKeys reads a skipped-key list, keeping the running total under
// MaxStoredKeys before allocating.
func readKeys(r *codec.Reader, total *int) []skippedKey {
	n := r.Count(MaxStoredKeys - *total)
	if n == 0 || r.Err() != nil {
		return nil
	}
	if r.Remaining() < n*skippedKeySize {
		r.Fail(fmt.Errorf("%w: %d skipped keys", codec.ErrTruncated, n))
		return nil
	}
	*total += n
	keys := make([]skippedKey, n)
	for i := range keys {
		keys[i].n = r.U32()
		copy(keys[i].mk[:], r.Fixed(suite.KeySize))
		keys[i].at = int64(r.U64())
	}
	return keys
}

// validate rejects states no sequence of protocol operations produces.
func (s *Session) validate() error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrInvalidState, what) }
	var zero key
	switch {
	case s.hasCKr && !s.hasDHr:
		return bad("receiving chain without remote ratchet key")
	case s.hasCKs != s.hasDHr:
		return bad("sending chain and remote ratchet key disagree")
	case !s.hasDHr && s.dhr != zero, !s.hasCKs && s.cks != zero, !s.hasCKr && s.ckr != zero:
		return bad("absent key not zero")
	case !s.hasCKs && (s.ns != 0 || s.pn != 0):
		return bad("counters without a sending chain")
	case !s.hasCKr && (s.nr != 0 || len(s.skipped) != 0 || len(s.old) != 0):
		return bad("receiving state without a receiving chain")
	}
	if s.hasDHr {
		if _, err := x25519.ParsePublicKey(s.dhr[:]); err != nil {
			return bad("remote ratchet key invalid")
		}
	}
	if !ascending(s.skipped, s.nr) {
		return bad("skipped keys out of order")
	}
	for i := range s.old {
		if !ascending(s.old[i].keys, s.old[i].length) {
			return bad("old chain keys out of order")
		}
	}
	return nil
}

// ascending reports whether keys have strictly increasing n, all below
// limit.
func ascending(keys []skippedKey, limit uint32) bool {
	for i := range keys {
		if keys[i].n >= limit || (i > 0 && keys[i].n <= keys[i-1].n) {
			return false
		}
	}
	return true
}

// Clone returns an independent deep copy of the session, its
// reservation included.
func (s *Session) Clone() *Session {
	c := *s
	c.ad = slices.Clone(s.ad)
	c.skipped = slices.Clone(s.skipped)
	c.old = slices.Clone(s.old)
	for i := range c.old {
		c.old[i].keys = slices.Clone(s.old[i].keys)
	}
	return &c
}
