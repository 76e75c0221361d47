package group

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/senderkey"
)

const (
	tagEngine        = 'G' // 'E' also held the message store; 'F' had no device lists in ops nor key generations
	tagEngineState   = 'H' // tagEngine without the op log (MarshalState)
	tagEngineLog     = 'L' // the op log alone (MarshalLog)
	maxSent          = MaxMembers * MaxDevicesPerMember
	maxReceiverState = 64 << 20
	maxSenderKeyEnc  = 256
	maxKeyMsg        = 512 // a pairwise Key message is 241 bytes
)

func writeDevices(w *codec.Writer, set map[identity.DeviceID]bool) {
	ds := make([]identity.DeviceID, 0, len(set))
	for d := range set {
		ds = append(ds, d)
	}
	slices.SortFunc(ds, func(a, b identity.DeviceID) int { return bytes.Compare(a[:], b[:]) })
	w.U16(uint16(len(ds)))
	for _, d := range ds {
		w.Fixed(d[:])
	}
}

func readDevices(r *codec.Reader) map[identity.DeviceID]bool {
	n := r.Count(maxSent)
	set := make(map[identity.DeviceID]bool, n)
	for range n {
		var d identity.DeviceID
		copy(d[:], r.Fixed(identity.DeviceIDSize))
		set[d] = true
	}
	return set
}

func sortedIDs[V any](m map[[32]byte]V) [][32]byte {
	ids := make([][32]byte, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

// MarshalBinary encodes the engine: op log, secrets, this device's sender
// keys, the receiver and the seen ranges. It holds keys: store it
// encrypted. Held (parked) messages are not saved, nor are the stored
// messages and their replay cache: those go out through TakeJournal and
// come back through Restore.
//
// MarshalState and MarshalLog encode the same in two parts, so a caller
// that saves the engine after every message (each Seal, and the
// receiving chains) need not rewrite the op log, which changes only with
// membership and is most of the bytes (about 600 per op).
func (e *Engine) MarshalBinary() ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.marshalLocked(true)
}

// MarshalState encodes the engine without its op log (MarshalLog); the
// two together restore it (UnmarshalParts).
func (e *Engine) MarshalState() ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.marshalLocked(false)
}

// MarshalLog encodes the op log alone: Version ‖ 'L' ‖ group ID ‖ u16 n
// ‖ op bytes16·n. LogVersion says when it changed.
func (e *Engine) MarshalLog() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	size := 2 + 32 + 2
	for _, o := range e.ops {
		size += 2 + len(o.enc)
	}
	w := codec.NewWriter(size)
	w.U8(Version)
	w.U8(tagEngineLog)
	w.Fixed(e.ro.id[:])
	writeOps(w, e.ops)
	return w.Bytes()
}

// LogVersion changes whenever the op log does (an op inserted); a caller
// saving the parts rewrites MarshalLog only when it differs from the
// version it last wrote. It is not saved: an engine restored or joined
// starts at a version of its own.
func (e *Engine) LogVersion() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.logVersion
}

func writeOps(w *codec.Writer, ops []*Op) {
	w.U16(uint16(len(ops)))
	for _, o := range ops {
		w.Bytes16(o.enc)
	}
}

// marshalLocked encodes the engine, with its op log (tagEngine) or
// without (tagEngineState).
func (e *Engine) marshalLocked(withLog bool) ([]byte, error) {
	size := max(4096, e.marshalHint)
	if withLog {
		for _, o := range e.ops {
			size += 2 + len(o.enc)
		}
	}
	w := codec.NewWriter(size)
	w.U8(Version)
	if withLog {
		w.U8(tagEngine)
	} else {
		w.U8(tagEngineState)
	}
	w.Fixed(e.ro.id[:])
	w.Fixed(e.ro.genesis[:])
	w.Fixed(e.self[:])
	w.Fixed(e.cfg.Device[:])
	if withLog {
		writeOps(w, e.ops)
	}
	ids := sortedIDs(e.secrets)
	w.U16(uint16(len(ids)))
	for _, id := range ids {
		s := e.secrets[id]
		w.Fixed(id[:])
		w.Fixed(s[:])
	}
	ids = sortedIDs(e.contribs)
	w.U16(uint16(len(ids)))
	for _, id := range ids {
		c := e.contribs[id]
		w.Fixed(id[:])
		w.Fixed(c.dev[:])
		w.Fixed(c.c[:])
		writeDevices(w, c.sent)
	}
	ids = sortedIDs(e.own)
	w.U16(uint16(len(ids)))
	for _, id := range ids {
		k := e.own[id]
		sk, err := k.sk.MarshalBinary()
		if err != nil {
			return nil, err
		}
		w.Fixed(id[:])
		w.U64(k.n)
		w.U32(k.gen)
		w.U64(uint64(k.created.UnixNano()))
		w.Bytes16(sk)
		w.Bytes16(k.first)
		writeDevices(w, k.sent)
	}
	rb, err := e.recv.MarshalBinary()
	if err != nil {
		return nil, err
	}
	w.Bytes32(rb)
	w.Fixed(e.curID[:])
	w.U64(uint64(e.epochStart.UnixNano()))
	w.U64(e.minEpoch)
	chains := slices.SortedFunc(maps.Keys(e.seen), cmpChainRef)
	w.U16(uint16(len(chains)))
	for _, c := range chains {
		w.Fixed(c.device[:])
		w.U64(c.epoch)
		w.U32(c.chain)
		rs := e.seen[c]
		w.U16(uint16(len(rs)))
		for _, r := range rs {
			w.U32(r.from)
			w.U32(r.to)
		}
	}
	des := make([]devEpoch, 0, len(e.latest))
	for de := range e.latest {
		des = append(des, de)
	}
	slices.SortFunc(des, func(a, b devEpoch) int {
		return cmpChainRef(chainRef{a.device, a.epoch, 0}, chainRef{b.device, b.epoch, 0})
	})
	w.U16(uint16(len(des)))
	for _, de := range des {
		g := e.latest[de]
		w.Fixed(de.device[:])
		w.U64(de.epoch)
		w.U32(g.gen)
		w.U32(g.chain)
	}
	chains = slices.SortedFunc(maps.Keys(e.retired), cmpChainRef)
	w.U16(uint16(len(chains)))
	for _, c := range chains {
		w.Fixed(c.device[:])
		w.U64(c.epoch)
		w.U32(c.chain)
		w.U64(uint64(e.retired[c].UnixNano()))
	}
	if !withLog {
		e.marshalHint = max(e.marshalHint, w.Len()) // the next one in one allocation
	}
	return w.Bytes(), nil
}

// readOps reads an op log (writeOps) and checks each op (ParseOp).
func readOps(r *codec.Reader) ([]*Op, error) {
	nOps := r.Count(MaxOps)
	ops := make([]*Op, 0, nOps)
	for range nOps {
		ob := r.Bytes16(maxOpSize)
		if r.Err() != nil {
			break
		}
		o, err := ParseOp(ob)
		if err != nil {
			return nil, err
		}
		ops = append(ops, o)
	}
	return ops, nil
}

// cmpChainRef orders chains by device, epoch, then chain ID.
func cmpChainRef(a, b chainRef) int {
	return cmp.Or(bytes.Compare(a.device[:], b.device[:]), cmp.Compare(a.epoch, b.epoch), cmp.Compare(a.chain, b.chain))
}

// IsState reports whether b is engine state saved by MarshalState, which
// UnmarshalParts restores with the op log, rather than a whole engine
// saved by MarshalBinary.
func IsState(b []byte) bool { return len(b) >= 2 && b[0] == Version && b[1] == tagEngineState }

// Unmarshal restores an engine saved by MarshalBinary. cfg must name the
// same account and device. Every count is checked against its cap before
// anything is allocated; trailing bytes are rejected.
func Unmarshal(cfg Config, b []byte) (*Engine, error) {
	return unmarshal(cfg, b, nil)
}

// UnmarshalParts restores an engine saved in two parts, by MarshalState
// and MarshalLog, with the same checks as Unmarshal; the log must be the
// same group's.
func UnmarshalParts(cfg Config, state, log []byte) (*Engine, error) {
	if log == nil {
		log = []byte{} // a missing log is malformed, not a whole engine
	}
	return unmarshal(cfg, state, log)
}

// unmarshal restores an engine: from b alone (log nil, tagEngine) or
// from state b and its log.
func unmarshal(cfg Config, b, log []byte) (*Engine, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: engine state: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	want := byte(tagEngine)
	if log != nil {
		want = tagEngineState
	}
	r := codec.NewReader(b)
	if v, t := r.U8(), r.U8(); r.Err() == nil && (v != Version || t != want) {
		return nil, bad("version %d tag %#x", v, t)
	}
	var id GroupID
	var genesis [32]byte
	var self identity.AccountID
	var dev identity.DeviceID
	copy(id[:], r.Fixed(32))
	copy(genesis[:], r.Fixed(32))
	copy(self[:], r.Fixed(32))
	copy(dev[:], r.Fixed(identity.DeviceIDSize))
	if r.Err() == nil && (self != cfg.Account.Public() || dev != cfg.Device) {
		return nil, bad("saved for another account or device")
	}
	e, err := newEngine(cfg, id, genesis)
	if err != nil {
		return nil, err
	}
	var ops []*Op
	if log == nil {
		if ops, err = readOps(r); err != nil {
			return nil, err
		}
	} else if r.Err() == nil {
		lr := codec.NewReader(log)
		if v, t := lr.U8(), lr.U8(); lr.Err() == nil && (v != Version || t != tagEngineLog) {
			return nil, bad("log version %d tag %#x", v, t)
		}
		var lid GroupID
		copy(lid[:], lr.Fixed(32))
		if lr.Err() == nil && lid != id {
			return nil, bad("op log of another group")
		}
		if ops, err = readOps(lr); err != nil {
			return nil, err
		}
		if err := lr.Done(); err != nil {
			return nil, bad("op log: %v", err)
		}
	}
	nSec := r.Count(2 * keepEpochs)
	for range nSec {
		var k, s [32]byte
		copy(k[:], r.Fixed(32))
		copy(s[:], r.Fixed(32))
		e.secrets[k] = s
	}
	nCon := r.Count(2 * keepEpochs)
	for range nCon {
		var k [32]byte
		c := new(contribution)
		copy(k[:], r.Fixed(32))
		copy(c.dev[:], r.Fixed(identity.DeviceIDSize))
		copy(c.c[:], r.Fixed(32))
		c.sent = readDevices(r)
		e.contribs[k] = c
	}
	nOwn := r.Count(keepEpochs)
	for range nOwn {
		var k [32]byte
		ok := &ownKey{sk: new(senderkey.SenderKey)}
		copy(k[:], r.Fixed(32))
		ok.n = r.U64()
		ok.gen = r.U32()
		ok.created = time.Unix(0, int64(r.U64()))
		skb := r.Bytes16(maxSenderKeyEnc)
		if first := r.Bytes16(maxKeyMsg); len(first) > 0 {
			ok.first = codec.Clone(first)
		}
		ok.sent = readDevices(r)
		if r.Err() != nil {
			break
		}
		if err := ok.sk.UnmarshalBinary(skb); err != nil {
			return nil, bad("sender key: %v", err)
		}
		if ok.sk.GroupID() != id || ok.sk.Epoch() != ok.n || ok.sk.Device() != dev {
			return nil, bad("sender key for another chain")
		}
		e.own[k] = ok
	}
	rb := r.Bytes32(maxReceiverState)
	if r.Err() == nil {
		if err := e.recv.UnmarshalBinary(rb); err != nil {
			return nil, bad("receiver: %v", err)
		}
		if e.recv.GroupID() != id {
			return nil, bad("receiver of another group")
		}
	}
	var curID [32]byte
	copy(curID[:], r.Fixed(32))
	start := int64(r.U64())
	minEpoch := r.U64()
	nSeen := r.Count(MaxDigestChains)
	for range nSeen {
		var c chainRef
		copy(c.device[:], r.Fixed(identity.DeviceIDSize))
		c.epoch = r.U64()
		c.chain = r.U32()
		nr := r.Count(MaxRanges)
		rs := make([]rng, 0, nr)
		for range nr {
			x := rng{r.U32(), r.U32()}
			if r.Err() == nil && (x.from >= x.to || (len(rs) > 0 && x.from <= rs[len(rs)-1].to)) {
				return nil, bad("seen ranges out of order")
			}
			rs = append(rs, x)
		}
		e.seen[c] = rs
	}
	nLatest := r.Count(maxChainRecords)
	for range nLatest {
		var de devEpoch
		copy(de.device[:], r.Fixed(identity.DeviceIDSize))
		de.epoch = r.U64()
		e.latest[de] = genChain{r.U32(), r.U32()}
	}
	nRetired := r.Count(maxChainRecords)
	for range nRetired {
		var c chainRef
		copy(c.device[:], r.Fixed(identity.DeviceIDSize))
		c.epoch = r.U64()
		c.chain = r.U32()
		e.retired[c] = time.Unix(0, int64(r.U64()))
	}
	if err := r.Done(); err != nil {
		return nil, bad("%v", err)
	}
	if !slices.ContainsFunc(ops, func(o *Op) bool { return o.hash == genesis }) {
		return nil, bad("log does not start with its create op")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.loadOpsLocked(ops); err != nil {
		return nil, err
	}
	e.curID = curID
	e.epochStart = time.Unix(0, start)
	e.minEpoch = minEpoch
	e.reconcileLocked(nil)
	e.owed = true // what was saved unsent goes out at the next Flush
	return e, nil
}
