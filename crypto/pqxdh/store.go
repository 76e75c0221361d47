package pqxdh

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/suite"
	"github.com/hushnet/hush/crypto/x25519"
)

// replayLabel starts the replay-cache key hash input.
const replayLabel = "hush/v1/pqxdh-replay"

// Rotation, lifetimes and limits of a PrekeyStore.
const (
	// RotationPeriod is how often Rotate replaces the signed prekey and
	// the last-resort ML-KEM prekey.
	RotationPeriod = 7 * 24 * time.Hour
	// SignedPrekeyLifetime is the signed validity of a signed or
	// last-resort prekey (two rotation periods, so a cached bundle stays
	// usable across one rotation).
	SignedPrekeyLifetime = 14 * 24 * time.Hour
	// OneTimeLifetime is the signed validity of a one-time prekey.
	OneTimeLifetime = 90 * 24 * time.Hour
	// GracePeriod is how long a private prekey is kept after its signed
	// expiry, for initial messages still waiting in mailboxes.
	GracePeriod = 30 * 24 * time.Hour
	// MaxOneTimePool is the most one-time prekeys of each kind a store holds.
	MaxOneTimePool = 1000
	// MaxRetained is the most signed (and, separately, last-resort)
	// prekeys a store holds, the current one included.
	MaxRetained = 16
	// MaxReplayEntries bounds the replay cache's memory (40 bytes an
	// entry). It is a safety net, not a limit an outsider may reach: the
	// caller limits how many new sessions it accepts (the node: 20 an hour
	// from strangers, 10 from each known account), so entries, which live
	// as long as their prekeys (at most 44 days), stay well below it.
	MaxReplayEntries = 65536
)

type ecKey struct {
	pub       ECPrekey
	priv      *ecdh.PrivateKey
	handedOut bool
}

type kemKey struct {
	pub       KEMPrekey
	priv      *mlkem.DecapsulationKey1024
	handedOut bool
}

type replayEntry struct {
	hash        [32]byte
	spkID, pqID uint32
}

// PrekeyStore holds a device's private prekeys: the current signed prekey
// and last-resort ML-KEM prekey with their predecessors still in their
// grace period, the one-time prekey pools and the replay cache for initial
// messages that used no one-time key. It is safe for concurrent use.
// Every method that changes it is followed by MarshalBinary and a write
// to the encrypted store by the caller.
type PrekeyStore struct {
	signer ed25519.PrivateKey // not serialised; only its public half is

	mu         sync.Mutex
	nextID     uint32
	signed     []*ecKey  // newest first; [0] is current
	lastResort []*kemKey // newest first; [0] is current
	oneTime    []*ecKey  // in ID order
	pqOneTime  []*kemKey // in ID order
	replay     []replayEntry
	replaySet  map[[32]byte]struct{}
}

// NewPrekeyStore returns a store with a fresh signed prekey and last-resort
// ML-KEM prekey, signed by the device signing key signer, and empty
// one-time pools.
func NewPrekeyStore(signer ed25519.PrivateKey, now time.Time) (*PrekeyStore, error) {
	if len(signer) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("pqxdh: new prekey store: %w: signing key of %d bytes", ErrInvalidKey, len(signer))
	}
	s := &PrekeyStore{signer: signer, nextID: 1, replaySet: map[[32]byte]struct{}{}}
	if err := s.addRotationLocked(now.Unix()); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *PrekeyStore) allocID() (uint32, error) {
	if s.nextID == math.MaxUint32 {
		return 0, errors.New("pqxdh: prekey id space exhausted")
	}
	id := s.nextID
	s.nextID++
	return id, nil
}

func (s *PrekeyStore) newEC(kind Kind, now, lifetime int64) (*ecKey, error) {
	id, err := s.allocID()
	if err != nil {
		return nil, err
	}
	priv := x25519.GenerateKey()
	k := &ecKey{priv: priv, pub: ECPrekey{Kind: kind, ID: id, Public: priv.PublicKey(), Created: now, Expires: now + lifetime}}
	k.pub.Signature = ed25519.Sign(s.signer, k.pub.message())
	return k, nil
}

func (s *PrekeyStore) newKEM(kind Kind, now, lifetime int64) (*kemKey, error) {
	id, err := s.allocID()
	if err != nil {
		return nil, err
	}
	priv, err := mlkem.GenerateKey1024()
	if err != nil {
		return nil, fmt.Errorf("pqxdh: generate ML-KEM key: %w", err)
	}
	k := &kemKey{priv: priv, pub: KEMPrekey{Kind: kind, ID: id, Public: priv.EncapsulationKey(), Created: now, Expires: now + lifetime}}
	k.pub.Signature = ed25519.Sign(s.signer, k.pub.message())
	return k, nil
}

func (s *PrekeyStore) addRotationLocked(now int64) error {
	life := int64(SignedPrekeyLifetime / time.Second)
	spk, err := s.newEC(KindSigned, now, life)
	if err != nil {
		return err
	}
	pq, err := s.newKEM(KindPQLastResort, now, life)
	if err != nil {
		return err
	}
	s.signed = append([]*ecKey{spk}, s.signed...)
	s.lastResort = append([]*kemKey{pq}, s.lastResort...)
	return nil
}

// GenerateOneTime adds n one-time X25519 prekeys and n one-time ML-KEM
// prekeys to the pools. It fails with ErrPoolFull, adding nothing, if a
// pool would exceed MaxOneTimePool.
func (s *PrekeyStore) GenerateOneTime(n int, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 0 || len(s.oneTime)+n > MaxOneTimePool || len(s.pqOneTime)+n > MaxOneTimePool {
		return fmt.Errorf("pqxdh: generate %d one-time prekeys: %w", n, ErrPoolFull)
	}
	t, life := now.Unix(), int64(OneTimeLifetime/time.Second)
	ec := make([]*ecKey, 0, n)
	pq := make([]*kemKey, 0, n)
	saved := s.nextID
	for range n {
		e, err := s.newEC(KindOneTime, t, life)
		if err != nil {
			s.nextID = saved
			return err
		}
		k, err := s.newKEM(KindPQOneTime, t, life)
		if err != nil {
			s.nextID = saved
			return err
		}
		ec, pq = append(ec, e), append(pq, k)
	}
	s.oneTime = append(s.oneTime, ec...)
	s.pqOneTime = append(s.pqOneTime, pq...)
	return nil
}

// OneTimeHeld reports how many one-time X25519 prekeys the store holds,
// handed out or not: its pool, which MaxOneTimePool bounds.
func (s *PrekeyStore) OneTimeHeld() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.oneTime)
}

// OneTimeAvailable reports how many one-time X25519 and ML-KEM prekeys
// have not yet been handed out in a bundle, so the caller can refill.
func (s *PrekeyStore) OneTimeAvailable() (ec, pq int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.oneTime {
		if !k.handedOut {
			ec++
		}
	}
	for _, k := range s.pqOneTime {
		if !k.handedOut {
			pq++
		}
	}
	return ec, pq
}

// Rotate replaces the signed and last-resort prekeys when the current ones
// are RotationPeriod old, and deletes every private prekey (and the replay
// entries that name it) whose signed expiry is more than GracePeriod past.
// It reports whether anything changed.
func (s *PrekeyStore) Rotate(now time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rotateLocked(now.Unix())
}

func (s *PrekeyStore) rotateLocked(now int64) (bool, error) {
	changed := false
	if now >= s.signed[0].pub.Created+int64(RotationPeriod/time.Second) ||
		now >= s.lastResort[0].pub.Created+int64(RotationPeriod/time.Second) {
		if err := s.addRotationLocked(now); err != nil {
			return false, err
		}
		changed = true
	}
	grace := int64(GracePeriod / time.Second)
	keepEC := func(k *ecKey) bool { return now < k.pub.Expires+grace }
	keepKEM := func(k *kemKey) bool { return now < k.pub.Expires+grace }
	var n int
	// The current keys are always kept.
	s.signed, n = filter(s.signed, 1, MaxRetained, keepEC)
	changed = changed || n > 0
	s.lastResort, n = filter(s.lastResort, 1, MaxRetained, keepKEM)
	changed = changed || n > 0
	s.oneTime, n = filter(s.oneTime, 0, MaxOneTimePool, keepEC)
	changed = changed || n > 0
	s.pqOneTime, n = filter(s.pqOneTime, 0, MaxOneTimePool, keepKEM)
	changed = changed || n > 0

	kept := s.replay[:0]
	for _, e := range s.replay {
		if s.findSignedLocked(e.spkID) != nil && findKEM(s.lastResort, e.pqID) != nil {
			kept = append(kept, e)
		} else {
			delete(s.replaySet, e.hash)
			changed = true
		}
	}
	clear(s.replay[len(kept):])
	s.replay = kept
	return changed, nil
}

// filter keeps the first `always` elements, then those keep accepts, up to
// max elements; it reports how many it dropped.
func filter[T any](xs []T, always, max int, keep func(T) bool) ([]T, int) {
	out := xs[:0]
	for i, x := range xs {
		if i < always || (keep(x) && len(out) < max) {
			out = append(out, x)
		}
	}
	dropped := len(xs) - len(out)
	clear(xs[len(out):])
	return out, dropped
}

func (s *PrekeyStore) findSignedLocked(id uint32) *ecKey {
	for _, k := range s.signed {
		if k.pub.ID == id {
			return k
		}
	}
	return nil
}

func findEC(ks []*ecKey, id uint32) *ecKey {
	for _, k := range ks {
		if k.pub.ID == id {
			return k
		}
	}
	return nil
}

func findKEM(ks []*kemKey, id uint32) *kemKey {
	for _, k := range ks {
		if k.pub.ID == id {
			return k
		}
	}
	return nil
}

// Bundle rotates if due (see Rotate) and returns a bundle with the current
// signed and last-resort prekeys and, while the pools last, one one-time
// prekey of each kind that has not been handed out before and has not
// expired. The one-time keys are marked as handed out, so the caller must
// persist the store before publishing the bundle.
func (s *PrekeyStore) Bundle(now time.Time) (*Bundle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := now.Unix()
	if _, err := s.rotateLocked(t); err != nil {
		return nil, err
	}
	b := &Bundle{SignedPrekey: s.signed[0].pub, PQPrekey: s.lastResort[0].pub}
	for _, k := range s.oneTime {
		if !k.handedOut && t < k.pub.Expires {
			k.handedOut = true
			p := k.pub
			b.OneTime = &p
			break
		}
	}
	for _, k := range s.pqOneTime {
		if !k.handedOut && t < k.pub.Expires {
			k.handedOut = true
			p := k.pub
			b.PQOneTime = &p
			break
		}
	}
	return b, nil
}

// Pending is a successful PQXDH receipt that has not changed the store
// yet. The caller initialises the Double Ratchet with SK and SignedPrekey,
// decrypts the first message and only then calls Commit; on failure it
// drops the Pending and the store stays as it was (PQXDH §3.4).
type Pending struct {
	// SK is the 32-byte shared key.
	SK []byte
	// SignedPrekey is the private signed prekey the initiator used: the
	// responder's first Double Ratchet key pair.
	SignedPrekey *ecdh.PrivateKey

	store     *PrekeyStore
	opkID     uint32
	useOPK    bool
	pqID      uint32
	usePQOPK  bool
	replayKey *replayEntry
	done      bool
}

// Respond runs the receiving side of PQXDH (PQXDH §3.4) for an initial
// message from the device whose X25519 identity key is peerIdentity. It
// validates the ephemeral key (before anything else touches it), looks up
// the named prekeys, checks the replay cache when no one-time key was used,
// and derives SK. It changes nothing: see Pending.Commit.
//
// Unknown, expired-past-grace or already consumed prekey IDs give
// ErrUnknownPrekey; a repeated last-resort-only initial message gives
// ErrReplay.
func (s *PrekeyStore) Respond(ownIdentity *ecdh.PrivateKey, peerIdentity *ecdh.PublicKey, in *Initial, ad []byte, now time.Time) (*Pending, error) {
	if ownIdentity == nil || peerIdentity == nil || in == nil {
		return nil, fmt.Errorf("pqxdh: respond: %w: nil key or message", ErrInvalidKey)
	}
	if len(in.Ciphertext) != KEMCipherSize {
		return nil, fmt.Errorf("pqxdh: respond: %w: ML-KEM ciphertext of %d bytes", ErrMalformed, len(in.Ciphertext))
	}
	ek, err := x25519.ParsePublicKey(in.Ephemeral[:])
	if err != nil {
		return nil, fmt.Errorf("pqxdh: respond: %w: ephemeral key: %w", ErrInvalidKey, err)
	}
	t, grace := now.Unix(), int64(GracePeriod/time.Second)

	s.mu.Lock()
	spk := s.findSignedLocked(in.SignedPrekeyID)
	var opk *ecKey
	if in.HasOneTime {
		opk = findEC(s.oneTime, in.OneTimePrekeyID)
	}
	var pq *kemKey
	if in.PQOneTime {
		pq = findKEM(s.pqOneTime, in.PQPrekeyID)
	} else {
		pq = findKEM(s.lastResort, in.PQPrekeyID)
	}
	var rk *replayEntry
	if spk != nil && pq != nil && !in.HasOneTime && !in.PQOneTime {
		rk = &replayEntry{hash: replayHash(peerIdentity, in), spkID: spk.pub.ID, pqID: pq.pub.ID}
		_, seen := s.replaySet[rk.hash]
		full := len(s.replay) >= MaxReplayEntries
		if seen || full {
			s.mu.Unlock()
			if seen {
				return nil, fmt.Errorf("pqxdh: respond: %w", ErrReplay)
			}
			return nil, fmt.Errorf("pqxdh: respond: %w", ErrReplayFull)
		}
	}
	s.mu.Unlock()

	if spk == nil || (in.HasOneTime && opk == nil) || pq == nil ||
		t >= spk.pub.Expires+grace || t >= pq.pub.Expires+grace ||
		(opk != nil && t >= opk.pub.Expires+grace) {
		return nil, fmt.Errorf("pqxdh: respond: %w", ErrUnknownPrekey)
	}

	ikm := make([]byte, 0, 32*5+mlkem.SharedKeySize)
	ikm = append(ikm, fPrefix[:]...)
	for _, p := range []struct {
		priv *ecdh.PrivateKey
		pub  *ecdh.PublicKey
	}{{spk.priv, peerIdentity}, {ownIdentity, ek}, {spk.priv, ek}} {
		if ikm, err = appendDH(ikm, p.priv, p.pub); err != nil {
			return nil, err
		}
	}
	if opk != nil {
		if ikm, err = appendDH(ikm, opk.priv, ek); err != nil {
			return nil, err
		}
	}
	ss, err := pq.priv.Decapsulate(in.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("pqxdh: respond: %w: ML-KEM ciphertext", ErrMalformed)
	}
	ikm = append(ikm, ss...)
	sk := deriveSK(ikm)
	clear(ikm)
	clear(ss)
	return &Pending{
		SK: sk, SignedPrekey: spk.priv, store: s,
		opkID: in.OneTimePrekeyID, useOPK: in.HasOneTime,
		pqID: in.PQPrekeyID, usePQOPK: in.PQOneTime,
		replayKey: rk,
	}, nil
}

// replayHash is SHA-256(label ‖ typed peer identity ‖ EK_A ‖ CT ‖ u32
// SPK ID ‖ u32 PQ prekey ID), over an EK_A that already passed
// x25519.ParsePublicKey.
func replayHash(peer *ecdh.PublicKey, in *Initial) [32]byte {
	h := sha256.New()
	h.Write([]byte(replayLabel))
	h.Write(suite.TypedKey(suite.KeyX25519, peer.Bytes()))
	h.Write(in.Ephemeral[:])
	h.Write(in.Ciphertext)
	w := codec.NewWriter(8)
	w.U32(in.SignedPrekeyID)
	w.U32(in.PQPrekeyID)
	h.Write(w.Bytes())
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Commit records a receipt whose first ratchet message decrypted: it
// deletes the one-time private prekeys used, or records the replay-cache
// entry if none was used. It fails without changing anything if another
// receipt consumed the same one-time key first (ErrUnknownPrekey), if the
// same last-resort message was committed first (ErrReplay), or if Commit
// was already called (ErrCommitted); the caller must then discard the
// session. Persist the store after Commit and before acknowledging the
// mailbox item.
func (p *Pending) Commit() error {
	s := p.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.done {
		return ErrCommitted
	}
	oi, qi := -1, -1
	if p.useOPK {
		if oi = indexEC(s.oneTime, p.opkID); oi < 0 {
			return fmt.Errorf("pqxdh: commit: %w", ErrUnknownPrekey)
		}
	}
	if p.usePQOPK {
		if qi = indexKEM(s.pqOneTime, p.pqID); qi < 0 {
			return fmt.Errorf("pqxdh: commit: %w", ErrUnknownPrekey)
		}
	}
	if p.replayKey != nil {
		if _, seen := s.replaySet[p.replayKey.hash]; seen {
			return fmt.Errorf("pqxdh: commit: %w", ErrReplay)
		}
		if len(s.replay) >= MaxReplayEntries {
			return fmt.Errorf("pqxdh: commit: %w", ErrReplayFull)
		}
		s.replay = append(s.replay, *p.replayKey)
		s.replaySet[p.replayKey.hash] = struct{}{}
	}
	if oi >= 0 {
		s.oneTime = append(s.oneTime[:oi], s.oneTime[oi+1:]...)
	}
	if qi >= 0 {
		s.pqOneTime = append(s.pqOneTime[:qi], s.pqOneTime[qi+1:]...)
	}
	p.done = true
	return nil
}

func indexEC(ks []*ecKey, id uint32) int {
	for i, k := range ks {
		if k.pub.ID == id {
			return i
		}
	}
	return -1
}

func indexKEM(ks []*kemKey, id uint32) int {
	for i, k := range ks {
		if k.pub.ID == id {
			return i
		}
	}
	return -1
}

// storeHeaderSize etc. bound the store encoding.
const (
	storedECSize  = 4 + 32 + 8 + 8 + signatureSize + 1
	storedKEMSize = 4 + kemSeedSize + 8 + 8 + signatureSize + 1
)

// MarshalBinary returns the store's canonical encoding, which contains
// private keys: the caller must only write it to the encrypted store.
func (s *PrekeyStore) MarshalBinary() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := codec.NewWriter(2 + 32 + 4 + 8 + (len(s.signed)+len(s.oneTime))*storedECSize +
		(len(s.lastResort)+len(s.pqOneTime))*storedKEMSize + len(s.replay)*40)
	w.U8(suite.Version)
	w.U8(suite.ID)
	w.Fixed(s.signer.Public().(ed25519.PublicKey))
	w.U32(s.nextID)
	for _, list := range [][]*ecKey{s.signed, s.oneTime} {
		w.U16(uint16(len(list)))
		for _, k := range list {
			w.U32(k.pub.ID)
			w.Fixed(k.priv.Bytes())
			w.U64(uint64(k.pub.Created))
			w.U64(uint64(k.pub.Expires))
			w.Fixed(k.pub.Signature)
			w.Bool(k.handedOut)
		}
	}
	for _, list := range [][]*kemKey{s.lastResort, s.pqOneTime} {
		w.U16(uint16(len(list)))
		for _, k := range list {
			w.U32(k.pub.ID)
			w.Fixed(k.priv.Bytes())
			w.U64(uint64(k.pub.Created))
			w.U64(uint64(k.pub.Expires))
			w.Fixed(k.pub.Signature)
			w.Bool(k.handedOut)
		}
	}
	w.U16(uint16(len(s.replay)))
	for _, e := range s.replay {
		w.Fixed(e.hash[:])
		w.U32(e.spkID)
		w.U32(e.pqID)
	}
	return w.Bytes(), nil
}

// UnmarshalPrekeyStore decodes a store written by MarshalBinary and
// attaches the device signing key, which must be the one the store was
// created with (ErrSignerMismatch otherwise). Signatures are not
// re-verified: the encoding lives only in the authenticated store.
func UnmarshalPrekeyStore(b []byte, signer ed25519.PrivateKey) (*PrekeyStore, error) {
	if len(signer) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("pqxdh: unmarshal prekey store: %w: signing key of %d bytes", ErrInvalidKey, len(signer))
	}
	r := codec.NewReader(b)
	v, sid := r.U8(), r.U8()
	if r.Err() == nil && (v != suite.Version || sid != suite.ID) {
		return nil, fmt.Errorf("pqxdh: unmarshal prekey store: %w: version %d suite %d", ErrVersion, v, sid)
	}
	pub := r.Fixed(ed25519.PublicKeySize)
	if r.Err() == nil && !bytes.Equal(pub, signer.Public().(ed25519.PublicKey)) {
		return nil, ErrSignerMismatch
	}
	s := &PrekeyStore{signer: signer, nextID: r.U32(), replaySet: map[[32]byte]struct{}{}}
	ids := map[uint32]bool{}
	checkID := func(id uint32) {
		if r.Err() == nil && (id == 0 || id >= s.nextID || ids[id]) {
			r.Fail(fmt.Errorf("%w: prekey id %d duplicate or out of range", ErrMalformed, id))
		}
		ids[id] = true
	}
	checkWindow := func(c, e int64) {
		if r.Err() == nil && (c < 0 || e <= c || e-c > maxKeyLifetime) {
			r.Fail(fmt.Errorf("%w: validity window [%d, %d)", ErrMalformed, c, e))
		}
	}
	readEC := func(kind Kind, max int) []*ecKey {
		n := r.Count(max)
		out := make([]*ecKey, 0, n)
		for range n {
			k := &ecKey{pub: ECPrekey{Kind: kind, ID: r.U32()}}
			checkID(k.pub.ID)
			raw := r.Fixed(32)
			k.pub.Created, k.pub.Expires = readTime(r), readTime(r)
			checkWindow(k.pub.Created, k.pub.Expires)
			k.pub.Signature = codec.Clone(r.Fixed(signatureSize))
			k.handedOut = r.Bool()
			if r.Err() != nil {
				return nil
			}
			if kind == KindSigned && k.handedOut {
				r.Fail(fmt.Errorf("%w: signed prekey marked handed out", ErrMalformed))
				return nil
			}
			priv, err := ecdh.X25519().NewPrivateKey(raw)
			if err != nil {
				r.Fail(fmt.Errorf("%w: prekey %d: %w", ErrMalformed, k.pub.ID, err))
				return nil
			}
			k.priv, k.pub.Public = priv, priv.PublicKey()
			out = append(out, k)
		}
		return out
	}
	readKEM := func(kind Kind, max int) []*kemKey {
		n := r.Count(max)
		out := make([]*kemKey, 0, n)
		for range n {
			k := &kemKey{pub: KEMPrekey{Kind: kind, ID: r.U32()}}
			checkID(k.pub.ID)
			seed := r.Fixed(kemSeedSize)
			k.pub.Created, k.pub.Expires = readTime(r), readTime(r)
			checkWindow(k.pub.Created, k.pub.Expires)
			k.pub.Signature = codec.Clone(r.Fixed(signatureSize))
			k.handedOut = r.Bool()
			if r.Err() != nil {
				return nil
			}
			if kind == KindPQLastResort && k.handedOut {
				r.Fail(fmt.Errorf("%w: last-resort prekey marked handed out", ErrMalformed))
				return nil
			}
			priv, err := mlkem.NewDecapsulationKey1024(seed)
			if err != nil {
				r.Fail(fmt.Errorf("%w: ML-KEM prekey %d: %w", ErrMalformed, k.pub.ID, err))
				return nil
			}
			k.priv, k.pub.Public = priv, priv.EncapsulationKey()
			out = append(out, k)
		}
		return out
	}
	s.signed = readEC(KindSigned, MaxRetained)
	s.oneTime = readEC(KindOneTime, MaxOneTimePool)
	s.lastResort = readKEM(KindPQLastResort, MaxRetained)
	s.pqOneTime = readKEM(KindPQOneTime, MaxOneTimePool)
	if r.Err() == nil && (len(s.signed) == 0 || len(s.lastResort) == 0) {
		r.Fail(fmt.Errorf("%w: store without a current signed or last-resort prekey", ErrMalformed))
	}
	n := r.Count(MaxReplayEntries)
	if r.Err() == nil {
		s.replay = make([]replayEntry, 0, n)
	}
	for range n {
		var e replayEntry
		copy(e.hash[:], r.Fixed(32))
		e.spkID, e.pqID = r.U32(), r.U32()
		if r.Err() != nil {
			break
		}
		if _, dup := s.replaySet[e.hash]; dup || s.findSignedLocked(e.spkID) == nil || findKEM(s.lastResort, e.pqID) == nil {
			r.Fail(fmt.Errorf("%w: replay entry duplicate or for an unknown prekey", ErrMalformed))
			break
		}
		s.replay = append(s.replay, e)
		s.replaySet[e.hash] = struct{}{}
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("pqxdh: unmarshal prekey store: %w", wrapCodec(err))
	}
	return s, nil
}
