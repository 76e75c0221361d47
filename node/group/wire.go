package group

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/senderkey"
	"github.com/hushnet/hush/crypto/suite"
	"github.com/hushnet/hush/internal/gossip"
)

// kindGroupMsg is the second byte of every group wire message. What the
// message carries is the first byte of its plaintext, inside the AEAD and
// the signature, so it cannot be changed in transit.
const kindGroupMsg byte = 'G'

// kindTopicMsg is the second byte of a wire message sealed for its topic
// without padding (earlier versions; OpenTopic still reads it), and
// kindTopicPadded of one padded to a bucket first (SealTopic, §16.11).
const (
	kindTopicMsg    byte = gossip.TagKind
	kindTopicPadded byte = gossip.TagKindPadded
)

// topicBuckets are the lengths a padded topic message may have below
// MaxTopicSize: the envelope buckets up to 64 KiB.
var topicBuckets = [...]int{512, 1 << 10, 2 << 10, 4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10}

// padWire returns wire ‖ 0x80 ‖ 0x00*, long enough that the sealed
// topic message is a bucket length, or MaxTopicSize above the largest.
func padWire(wire []byte) []byte {
	total := MaxTopicSize
	for _, b := range topicBuckets {
		if len(wire)+1+TopicOverhead <= b {
			total = b
			break
		}
	}
	out := make([]byte, total-TopicOverhead)
	copy(out, wire)
	out[len(wire)] = 0x80
	return out
}

// TopicSize is the length of the topic message SealTopic makes of an
// application message of plaintext bytes (the argument to Seal).
func TopicSize(plaintext int) int {
	wire := 2 + senderkey.MessageOverhead + 1 + plaintext
	for _, b := range topicBuckets {
		if wire+1+TopicOverhead <= b {
			return b
		}
	}
	return MaxTopicSize
}

// unpadWire strips the 0x80 ‖ 0x00* tail of a padded wire message.
func unpadWire(p []byte) ([]byte, bool) {
	i := len(p) - 1
	for i >= 0 && p[i] == 0 {
		i--
	}
	if i < 0 || p[i] != 0x80 {
		return nil, false
	}
	return p[:i], true
}

// Inner kinds (first plaintext byte).
const (
	kindAppMsg byte = 'm' // the rest is an application payload
	kindOpMsg  byte = 'o' // the rest is an encoded Op
)

// minWire is framing plus the smallest senderkey message (one byte of
// plaintext).
const minWire = 2 + senderkey.MessageOverhead + 1

// wireHeader is the clear part of a group wire message.
type wireHeader struct {
	group     GroupID
	epoch     uint64
	device    identity.DeviceID
	chain     uint32
	iteration uint32
}

// parseWireHeader checks framing, size and the senderkey version, and
// reads the clear header. It does no cryptography.
func parseWireHeader(w []byte) (wireHeader, error) {
	var h wireHeader
	if len(w) > MaxWireSize {
		return h, fmt.Errorf("%w: message of %d bytes, limit %d", ErrTooLarge, len(w), MaxWireSize)
	}
	if len(w) < minWire || w[0] != Version || w[1] != kindGroupMsg {
		return h, fmt.Errorf("%w: group message framing", ErrMalformed)
	}
	r := codec.NewReader(w[2 : 2+senderkey.HeaderSize])
	if v, s := r.U8(), r.U8(); v != suite.Version || s != suite.ID {
		return h, fmt.Errorf("%w: group message version", ErrMalformed)
	}
	copy(h.group[:], r.Fixed(32))
	h.epoch = r.U64()
	copy(h.device[:], r.Fixed(identity.DeviceIDSize))
	h.chain = r.U32()
	h.iteration = r.U32()
	return h, r.Done()
}

func msgID(w []byte) MsgID { return sha256.Sum256(w) }

// recordLocked remembers an accepted (or sent) message: its ID for replay
// rejection, its (chain, iteration) for anti-entropy digests, and its
// bytes for answering Want.
func (e *Engine) recordLocked(id MsgID, h wireHeader, w []byte) {
	if e.rememberLocked(id, h, w) {
		e.journal = append(e.journal, w)
	}
}

// rememberLocked adds a message to the replay cache, the seen ranges and
// the store; it reports whether the store did not have it yet.
func (e *Engine) rememberLocked(id MsgID, h wireHeader, w []byte) bool {
	if _, ok := e.dedupe[id]; !ok {
		e.dedupe[id] = struct{}{}
		e.dedupeQ = append(e.dedupeQ, id)
		if len(e.dedupeQ) > DedupeWindow {
			delete(e.dedupe, e.dedupeQ[0])
			e.dedupeQ = e.dedupeQ[1:]
		}
	}
	ref := Ref{Device: h.device, Epoch: h.epoch, Chain: h.chain, Iteration: h.iteration}
	e.markSeenLocked(ref)
	return e.keepLocked(ref, w)
}

// keepLocked adds a message to the store that answers Want, evicting the
// oldest beyond StoreMessages and StoreBytes. It reports whether w was
// new.
func (e *Engine) keepLocked(ref Ref, w []byte) bool {
	if _, ok := e.store[ref]; ok {
		return false
	}
	e.store[ref] = w
	e.storeQ = append(e.storeQ, ref)
	e.storeBytes += len(w)
	for len(e.storeQ) > StoreMessages || e.storeBytes > StoreBytes {
		old := e.storeQ[0]
		e.storeBytes -= len(e.store[old])
		delete(e.store, old)
		e.storeQ = e.storeQ[1:]
	}
	return true
}

// TakeJournal returns the wire messages the engine stored (accepted or
// sent) since the previous call, oldest first. MarshalBinary leaves them
// out: the caller persists them as they come and gives them back to
// Restore after Unmarshal, so saving an engine does not rewrite its whole
// message store.
func (e *Engine) TakeJournal() [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	j := e.journal
	e.journal = nil
	return j
}

// Restore gives an unmarshaled engine back the messages TakeJournal
// returned, oldest first: they answer Want again and are rejected as
// replays. Malformed entries are skipped; the caps apply as on receipt.
func (e *Engine) Restore(wires [][]byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, w := range wires {
		if len(w) > MaxWireSize {
			continue
		}
		h, err := parseWireHeader(w)
		if err != nil || h.group != e.ro.id {
			continue
		}
		w = codec.Clone(w)
		e.rememberLocked(msgID(w), h, w)
	}
}

// Pairwise message kinds.
const (
	tagPairwise = 'P'
	pwWelcome   = 1
	pwOp        = 2
	pwSecret    = 3
	pwKey       = 4
)

type pairwiseMsg struct {
	kind    byte
	group   GroupID
	part    int
	parts   int
	ops     [][]byte
	op      []byte
	epoch   uint64
	epochID [32]byte
	secret  [32]byte
	gen     uint32
	dist    *senderkey.Distribution
}

func pairwiseHeader(kind byte, id GroupID, n int) *codec.Writer {
	w := codec.NewWriter(3 + 32 + n)
	w.U8(Version)
	w.U8(tagPairwise)
	w.U8(kind)
	w.Fixed(id[:])
	return w
}

func pairwiseOp(id GroupID, o *Op) []byte {
	w := pairwiseHeader(pwOp, id, 2+len(o.enc))
	w.Bytes16(o.enc)
	return w.Bytes()
}

func (e *Engine) secretMsg(ep *epochRec, c [32]byte) []byte {
	w := pairwiseHeader(pwSecret, e.ro.id, 72)
	w.U64(ep.n)
	w.Fixed(ep.id[:])
	w.Fixed(c[:])
	return w.Bytes()
}

func (e *Engine) keyMsg(ep *epochRec, secret [32]byte, k *ownKey) []byte {
	d, _ := k.sk.Distribution().MarshalBinary()
	w := pairwiseHeader(pwKey, e.ro.id, 76+len(d))
	w.U64(ep.n)
	w.Fixed(ep.key[:])
	w.Fixed(secret[:])
	w.U32(k.gen)
	w.Fixed(d)
	return w.Bytes()
}

// welcomeLocked splits the op log into Welcome parts of at most
// MaxWelcomeSize bytes each.
func (e *Engine) welcomeLocked() [][]byte {
	var chunks [][]*Op
	var cur []*Op
	size := 0
	for _, o := range e.ops {
		if size+2+len(o.enc) > MaxWelcomeSize-64 || len(cur) == 0xFFFF {
			chunks = append(chunks, cur)
			cur, size = nil, 0
		}
		cur = append(cur, o)
		size += 2 + len(o.enc)
	}
	chunks = append(chunks, cur)
	out := make([][]byte, len(chunks))
	for i, c := range chunks {
		w := pairwiseHeader(pwWelcome, e.ro.id, MaxWelcomeSize)
		w.U16(uint16(i))
		w.U16(uint16(len(chunks)))
		w.U16(uint16(len(c)))
		for _, o := range c {
			w.Bytes16(o.enc)
		}
		out[i] = w.Bytes()
	}
	return out
}

// maxWelcomeParts bounds a Welcome to MaxOps.
const maxWelcomeParts = MaxOps

func parsePairwise(b []byte) (*pairwiseMsg, error) {
	if len(b) > MaxWelcomeSize {
		return nil, fmt.Errorf("%w: pairwise message of %d bytes", ErrTooLarge, len(b))
	}
	r := codec.NewReader(b)
	if v, t := r.U8(), r.U8(); r.Err() == nil && (v != Version || t != tagPairwise) {
		return nil, fmt.Errorf("%w: pairwise version %d tag %#x", ErrMalformed, v, t)
	}
	p := &pairwiseMsg{kind: r.U8()}
	copy(p.group[:], r.Fixed(32))
	switch p.kind {
	case pwWelcome:
		p.part = int(r.U16())
		p.parts = int(r.U16())
		n := r.Count(MaxOps)
		for range n {
			o := r.Bytes16(maxOpSize)
			if r.Err() != nil {
				break
			}
			p.ops = append(p.ops, o)
		}
		if r.Err() == nil && (p.parts == 0 || p.part >= p.parts || p.parts > maxWelcomeParts) {
			return nil, fmt.Errorf("%w: welcome part %d of %d", ErrMalformed, p.part, p.parts)
		}
	case pwOp:
		p.op = r.Bytes16(maxOpSize)
	case pwSecret, pwKey:
		p.epoch = r.U64()
		copy(p.epochID[:], r.Fixed(32))
		copy(p.secret[:], r.Fixed(32))
		if p.kind == pwKey {
			p.gen = r.U32()
			d, err := senderkey.ParseDistribution(r.Fixed(senderkey.DistributionSize))
			if err != nil && r.Err() == nil {
				return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
			}
			p.dist = d
		}
	default:
		return nil, fmt.Errorf("%w: pairwise kind %d", ErrMalformed, p.kind)
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: pairwise: %v", ErrMalformed, err)
	}
	return p, nil
}

// WelcomeInfo reads the group ID and part numbers of a Welcome, so the
// node can collect every part before calling Join. ok is false for other
// pairwise kinds.
func WelcomeInfo(b []byte) (id GroupID, part, parts int, ok bool) {
	p, err := parsePairwise(b)
	if err != nil || p.kind != pwWelcome {
		return id, 0, 0, false
	}
	return p.group, p.part, p.parts, true
}

// PairwiseGroup returns the group a pairwise group message is for, so the
// node can route it to the right Engine.
func PairwiseGroup(b []byte) (GroupID, error) {
	p, err := parsePairwise(b)
	if err != nil {
		return GroupID{}, err
	}
	return p.group, nil
}

// ErrIncomplete is returned by Join when Welcome parts are missing.
var ErrIncomplete = errors.New("group: welcome incomplete")

// Join builds the engine of a group from every part of a Welcome (in any
// order): the one an inviter sends each invitee device, or the one a
// device of this account sends a device it added (SetDevices). The log
// must start with the group's create op; this account must be invited,
// or a member with this device among its devices (ErrNotMember).
func Join(cfg Config, welcome [][]byte) (*Engine, error) {
	var parts [][][]byte
	var id GroupID
	for i, b := range welcome {
		p, err := parsePairwise(b)
		if err != nil {
			return nil, err
		}
		if p.kind != pwWelcome {
			return nil, fmt.Errorf("%w: not a welcome", ErrMalformed)
		}
		if i == 0 {
			id = p.group
			parts = make([][][]byte, p.parts)
		}
		if p.group != id || p.parts != len(parts) {
			return nil, fmt.Errorf("%w: welcome parts disagree", ErrMalformed)
		}
		parts[p.part] = p.ops
	}
	var ops []*Op
	for _, part := range parts {
		if part == nil {
			return nil, ErrIncomplete
		}
		for _, b := range part {
			o, err := ParseOp(b)
			if err != nil {
				return nil, err
			}
			ops = append(ops, o)
		}
	}
	if len(ops) == 0 || ops[0].Kind != OpCreate || ops[0].Group != id {
		return nil, fmt.Errorf("%w: welcome does not start with a create op", ErrMalformed)
	}
	return joinOps(cfg, ops)
}

func joinOps(cfg Config, ops []*Op) (*Engine, error) {
	e, err := newEngine(cfg, ops[0].Group, ops[0].hash)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.loadOpsLocked(ops); err != nil {
		return nil, err
	}
	if e.ro.invited[e.self] == nil && e.ro.members[e.self] == nil {
		return nil, ErrNotInvited
	}
	if e.ro.members[e.self] != nil && !e.inLocked() {
		return nil, fmt.Errorf("%w: this device is not among its account's devices in the group", ErrNotMember)
	}
	e.reconcileLocked(new(Effects))
	return e, nil
}

// loadOpsLocked replays a whole log at once (Join, Unmarshal).
func (e *Engine) loadOpsLocked(ops []*Op) error {
	if len(ops) > MaxOps {
		return ErrTooMany
	}
	sorted := make([]*Op, 0, len(ops))
	for _, o := range ops {
		if o.Group != e.ro.id {
			return ErrWrongGroup
		}
		if e.opSet[o.hash] {
			continue
		}
		e.opSet[o.hash] = true
		sorted = append(sorted, o)
	}
	slicesSortOps(sorted)
	for _, o := range sorted {
		_ = e.ro.apply(o) // an op that does not apply stays in the log, inert
	}
	if len(e.ro.epochs) == 0 {
		return fmt.Errorf("%w: log without its create op", ErrMalformed)
	}
	e.ops = sorted
	e.logVersion++
	e.curID = e.ro.epoch().key
	e.epochStart = e.cfg.Now()
	return nil
}

// WireGroup returns the group a wire (topic) message belongs to, so a
// node holding several groups can route it to the right Engine.
func WireGroup(wire []byte) (GroupID, error) {
	h, err := parseWireHeader(wire)
	if err != nil {
		return GroupID{}, err
	}
	return h.group, nil
}
