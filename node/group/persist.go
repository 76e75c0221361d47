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
func (e *Engine) MarshalBinary() ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	w := codec.NewWriter(4096)
	w.U8(Version)
	w.U8(tagEngine)
	w.Fixed(e.ro.id[:])
	w.Fixed(e.ro.genesis[:])
	w.Fixed(e.self[:])
	w.Fixed(e.cfg.Device[:])
	w.U16(uint16(len(e.ops)))
	for _, o := range e.ops {
		w.Bytes16(o.enc)
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
	return w.Bytes(), nil
}

// cmpChainRef orders chains by device, epoch, then chain ID.
func cmpChainRef(a, b chainRef) int {
	return cmp.Or(bytes.Compare(a.device[:], b.device[:]), cmp.Compare(a.epoch, b.epoch), cmp.Compare(a.chain, b.chain))
}

// Unmarshal restores an engine saved by MarshalBinary. cfg must name the
// same account and device. Every count is checked against its cap before
// anything is allocated; trailing bytes are rejected.
func Unmarshal(cfg Config, b []byte) (*Engine, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: engine state: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	r := codec.NewReader(b)
	if v, t := r.U8(), r.U8(); r.Err() == nil && (v != Version || t != tagEngine) {
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
