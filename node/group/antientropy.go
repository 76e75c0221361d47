package group

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
)

// Ref names one group message by its sender chain and iteration, which
// the clear senderkey header carries. A (chain, iteration) pair has exactly
// one valid message, since the chain's signing key signs it.
type Ref struct {
	Device    identity.DeviceID
	Epoch     uint64
	Chain     uint32
	Iteration uint32
}

type chainRef struct {
	device identity.DeviceID
	epoch  uint64
	chain  uint32
}

// rng is a half-open range of iterations [from, to).
type rng struct{ from, to uint32 }

func (e *Engine) markSeenLocked(r Ref) {
	c := chainRef{r.Device, r.Epoch, r.Chain}
	rs, ok := e.seen[c]
	if !ok && len(e.seen) >= MaxDigestChains {
		e.evictChainLocked()
	}
	e.seen[c] = addRange(rs, r.Iteration)
}

// markBelowLocked records iterations [0, n) of chain c as not wanted.
func (e *Engine) markBelowLocked(c chainRef, n uint32) {
	if n == 0 {
		return
	}
	rs, ok := e.seen[c]
	if !ok && len(e.seen) >= MaxDigestChains {
		e.evictChainLocked()
	}
	out := []rng{{0, n}}
	for _, r := range rs {
		switch {
		case r.to <= n:
		case r.from <= n:
			out[0].to = r.to
		default:
			out = append(out, r)
		}
	}
	e.seen[c] = trimRanges(out)
}

// evictChainLocked drops the chain of the lowest epoch (then device).
func (e *Engine) evictChainLocked() {
	var victim *chainRef
	for c := range e.seen {
		if victim == nil || c.epoch < victim.epoch || (c.epoch == victim.epoch && bytes.Compare(c.device[:], victim.device[:]) < 0) {
			v := c
			victim = &v
		}
	}
	if victim != nil {
		delete(e.seen, *victim)
	}
}

// addRange adds iteration i to sorted, disjoint, non-adjacent ranges,
// keeping at most MaxRanges (the oldest are forgotten).
func addRange(rs []rng, i uint32) []rng {
	for k := range rs {
		r := &rs[k]
		if i >= r.from && i < r.to {
			return rs
		}
		if i+1 == r.from {
			r.from = i
			return rs
		}
		if i == r.to {
			r.to = i + 1
			if k+1 < len(rs) && rs[k+1].from == r.to {
				r.to = rs[k+1].to
				rs = slices.Delete(rs, k+1, k+2)
			}
			return rs
		}
		if i < r.from {
			rs = slices.Insert(rs, k, rng{i, i + 1})
			return trimRanges(rs)
		}
	}
	return trimRanges(append(rs, rng{i, i + 1}))
}

func trimRanges(rs []rng) []rng {
	if len(rs) > MaxRanges {
		rs = slices.Delete(rs, 0, len(rs)-MaxRanges)
	}
	return rs
}

func hasIter(rs []rng, i uint32) bool {
	for _, r := range rs {
		if i >= r.from && i < r.to {
			return true
		}
	}
	return false
}

const tagDigest = 'D'

// Have returns this device's anti-entropy digest: for every sender chain
// of an epoch still accepted, the ranges of iterations it has accepted.
// Members exchange digests (on the topic or pairwise) when one comes
// online and now and then; the receiver calls Missing.
func (e *Engine) Have() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.expireLocked()
	chains := make([]chainRef, 0, len(e.seen))
	for c := range e.seen {
		if c.epoch >= e.minEpoch {
			chains = append(chains, c)
		}
	}
	slices.SortFunc(chains, cmpChainRef)
	w := codec.NewWriter(36 + 40*len(chains))
	w.U8(Version)
	w.U8(tagDigest)
	w.Fixed(e.ro.id[:])
	w.U16(uint16(len(chains)))
	for _, c := range chains {
		rs := e.seen[c]
		w.Fixed(c.device[:])
		w.U64(c.epoch)
		w.U32(c.chain)
		w.U16(uint16(len(rs)))
		for _, r := range rs {
			w.U32(r.from)
			w.U32(r.to)
		}
	}
	return w.Bytes()
}

// Missing reads a peer's digest and returns the refs the peer has that
// this device has not accepted, limited to chains it would accept now
// (current members, accepted epochs) and to MaxRefs. Send them back to
// the peer, which answers with Want.
func (e *Engine) Missing(digest []byte) ([]Ref, error) {
	r := codec.NewReader(digest)
	if v, t := r.U8(), r.U8(); r.Err() == nil && (v != Version || t != tagDigest) {
		return nil, fmt.Errorf("%w: digest version %d tag %#x", ErrMalformed, v, t)
	}
	var id GroupID
	copy(id[:], r.Fixed(32))
	type entry struct {
		c  chainRef
		rs []rng
	}
	n := r.Count(MaxDigestChains)
	entries := make([]entry, 0, n)
	for range n {
		var en entry
		copy(en.c.device[:], r.Fixed(identity.DeviceIDSize))
		en.c.epoch = r.U64()
		en.c.chain = r.U32()
		nr := r.Count(MaxRanges)
		for range nr {
			from, to := r.U32(), r.U32()
			if r.Err() == nil && from >= to {
				r.Fail(fmt.Errorf("%w: empty range", ErrMalformed))
			}
			en.rs = append(en.rs, rng{from, to})
		}
		if r.Err() != nil {
			break
		}
		entries = append(entries, en)
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: digest: %v", ErrMalformed, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if id != e.ro.id {
		return nil, ErrWrongGroup
	}
	e.expireLocked()
	cur := e.ro.epoch()
	var out []Ref
	for _, en := range entries {
		if en.c.epoch < e.minEpoch || cur == nil || en.c.epoch > cur.n {
			continue
		}
		if _, ok := e.ro.memberOfDevice(en.c.device); !ok || e.closedLocked(en.c) {
			continue
		}
		mine := e.seen[en.c]
		for _, rr := range en.rs {
			for i := uint64(rr.from); i < uint64(rr.to); i++ {
				if len(out) >= MaxRefs {
					return out, nil
				}
				if !hasIter(mine, uint32(i)) {
					out = append(out, Ref{en.c.device, en.c.epoch, en.c.chain, uint32(i)})
				}
			}
		}
	}
	return out, nil
}

// Want returns the stored wire messages for refs (those still held; at
// most MaxRefs), for the asking peer to Open.
func (e *Engine) Want(refs []Ref) [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out [][]byte
	for i, r := range refs {
		if i >= MaxRefs {
			break
		}
		if w, ok := e.store[r]; ok {
			out = append(out, w)
		}
	}
	return out
}

const tagRefs = 'W'
const refSize = identity.DeviceIDSize + 8 + 4 + 4

// MarshalRefs encodes a Want request.
func MarshalRefs(id GroupID, refs []Ref) ([]byte, error) {
	if len(refs) > MaxRefs {
		return nil, ErrTooLarge
	}
	w := codec.NewWriter(36 + refSize*len(refs))
	w.U8(Version)
	w.U8(tagRefs)
	w.Fixed(id[:])
	w.U16(uint16(len(refs)))
	for _, r := range refs {
		w.Fixed(r.Device[:])
		w.U64(r.Epoch)
		w.U32(r.Chain)
		w.U32(r.Iteration)
	}
	return w.Bytes(), nil
}

// ParseRefs decodes a Want request.
func ParseRefs(b []byte) (GroupID, []Ref, error) {
	var id GroupID
	r := codec.NewReader(b)
	if v, t := r.U8(), r.U8(); r.Err() == nil && (v != Version || t != tagRefs) {
		return id, nil, fmt.Errorf("%w: refs version %d tag %#x", ErrMalformed, v, t)
	}
	copy(id[:], r.Fixed(32))
	n := r.Count(MaxRefs)
	if r.Err() == nil && r.Remaining() != n*refSize {
		return id, nil, fmt.Errorf("%w: refs length", ErrMalformed)
	}
	refs := make([]Ref, 0, n)
	for range n {
		var x Ref
		copy(x.Device[:], r.Fixed(identity.DeviceIDSize))
		x.Epoch = r.U64()
		x.Chain = r.U32()
		x.Iteration = r.U32()
		refs = append(refs, x)
	}
	if err := r.Done(); err != nil {
		return id, nil, fmt.Errorf("%w: refs: %v", ErrMalformed, err)
	}
	return id, refs, nil
}
