package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	mrand "math/rand/v2"
	"slices"
	"time"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/node/group"
)

// Anti-entropy and timers of the group runner: digests exchanged with
// members, repairs, the periodic loop.

// antiEntropyLocked runs the digest exchange (docs/protocol/groups.md
// §16.6) over pairwise sessions: ask → have → want → repair.
func (n *Node) antiEntropyLocked(t *txn, acc identity.AccountID, dev identity.DeviceID, p *payload, now time.Time) {
	switch p.Type {
	case ptSyncAsk:
		ask, ok := parseSyncAsk(p.Data)
		if !ok {
			return
		}
		gs := n.groups[ask.group]
		if gs == nil || !n.isMemberDeviceLocked(gs, acc, dev) {
			return
		}
		// Only what the asker lacks: the cards it named, the op log if
		// it differs, and the digest (small) for messages.
		var cards [][]byte
		for _, a := range ask.missingCards {
			if cc, _ := n.cardOfAccountLocked(a); cc != nil {
				cards = append(cards, cc.Marshal())
			} else if a == n.cert.Account() {
				if own, err := n.ownCardLocked(now); err == nil {
					cards = append(cards, own.Marshal())
				}
			}
		}
		if len(cards) > 0 {
			n.sendGroupPairwiseLocked(t, acc, dev, &payload{Type: ptDirectory, Data: encodeCards(cards)}, now)
		}
		if opsDigest(gs.eng.Ops()) != ask.ops {
			n.sendListLocked(t, acc, dev, ptOps, gs.eng.Ops(), now)
		}
		n.sendGroupPairwiseLocked(t, acc, dev, &payload{Type: ptHave, Data: gs.eng.Have()}, now)
		n.sendGroupTimerLocked(t, gs, acc, dev, now) // for one away longer than the repair store reaches
	case ptHave:
		for _, gs := range n.groups {
			if !n.isMemberDeviceLocked(gs, acc, dev) {
				continue
			}
			refs, err := gs.eng.Missing(p.Data)
			if err != nil || len(refs) == 0 {
				continue
			}
			want, err := group.MarshalRefs(gs.eng.ID(), refs)
			if err == nil {
				n.sendGroupPairwiseLocked(t, acc, dev, &payload{Type: ptWant, Data: want}, now)
			}
		}
	case ptWant:
		id, refs, err := group.ParseRefs(p.Data)
		if err != nil {
			return
		}
		gs := n.groups[id]
		if gs == nil || !n.isMemberDeviceLocked(gs, acc, dev) {
			return
		}
		n.sendListLocked(t, acc, dev, ptRepair, gs.eng.Want(refs), now)
	case ptRepair:
		for _, w := range decodeCards(p.Data) {
			n.groupWireLocked(t, w, now)
		}
	case ptOps:
		for _, b := range decodeCards(p.Data) {
			gid, err := opGroup(b)
			if err != nil {
				continue
			}
			gs := n.groups[gid]
			if gs == nil {
				continue
			}
			fx, err := gs.eng.ApplyOp(b)
			if err != nil {
				continue
			}
			n.saveGroupLocked(t, gs)
			n.effectsLocked(t, gs, fx, now)
			g := n.groupViewLocked(gs)
			t.events = append(t.events, Event{Type: EventGroup, Group: &g})
		}
	}
}

// opGroup returns the group an encoded op belongs to.
func opGroup(b []byte) (group.GroupID, error) {
	o, err := group.ParseOp(b)
	if err != nil {
		return group.GroupID{}, err
	}
	return o.Group, nil
}

// sendListLocked sends items (ops or wire messages) pairwise in chunks
// that fit a payload.
func (n *Node) sendListLocked(t *txn, acc identity.AccountID, dev identity.DeviceID, typ payloadType, items [][]byte, now time.Time) {
	for len(items) > 0 {
		k := min(len(items), maxRepairBatch)
		chunk := encodeCards(items[:k]) // the list encoding stops at the size cap
		sent := len(decodeCards(chunk))
		if sent == 0 {
			return
		}
		n.sendGroupPairwiseLocked(t, acc, dev, &payload{Type: typ, Data: chunk}, now)
		items = items[sent:]
	}
}

func (n *Node) isMemberLocked(gs *groupState, acc identity.AccountID) bool {
	st := gs.eng.State()
	_, ok := st.Member(acc)
	return ok
}

// isMemberDeviceLocked reports whether dev is one of member acc's
// devices in the group: a device its account dropped (revoked) gets no
// answer from anti-entropy.
func (n *Node) isMemberDeviceLocked(gs *groupState, acc identity.AccountID, dev identity.DeviceID) bool {
	st := gs.eng.State()
	m, ok := st.Member(acc)
	return ok && slices.Contains(m.Devices, dev)
}

// inAnyGroupLocked reports whether acc is a member of, or invited to, a
// group this device is in.
func (n *Node) inAnyGroupLocked(acc identity.AccountID) bool {
	for _, gs := range n.groups {
		if n.isMemberLocked(gs, acc) {
			return true
		}
		for _, m := range gs.eng.State().Invited {
			if m.Account == acc {
				return true
			}
		}
	}
	return false
}

// askSyncLocked asks every other member device for its digest of a group.
//
// It asks syncPeers member devices chosen at random, not all of them, so a
// round costs O(members) messages in the whole group, not O(members²).
func (n *Node) askSyncLocked(t *txn, gs *groupState, now time.Time) {
	gs.lastAsk = now
	st := gs.eng.State()
	ask := syncAsk{group: gs.eng.ID(), ops: opsDigest(gs.eng.Ops())}
	type target struct {
		acc identity.AccountID
		dev identity.DeviceID
	}
	var targets []target
	for _, m := range append(st.Members, st.Invited...) {
		if m.Account != n.cert.Account() {
			if cc, _ := n.cardOfAccountLocked(m.Account); cc == nil && len(ask.missingCards) < maxMissingCards {
				ask.missingCards = append(ask.missingCards, m.Account)
			}
		}
	}
	for _, m := range st.Members {
		for _, d := range m.Devices {
			if d != n.cert.DeviceID() {
				targets = append(targets, target{m.Account, d})
			}
		}
	}
	mrand.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
	data := ask.marshal()
	for _, tg := range targets[:min(len(targets), syncPeers)] {
		n.sendGroupPairwiseLocked(t, tg.acc, tg.dev, &payload{Type: ptSyncAsk, Data: data}, now)
	}
}

// Anti-entropy request sizes.
const (
	syncPeers       = 3   // member devices asked per round
	maxMissingCards = 200 // accounts whose cards one request asks for
)

// syncAsk is a sync-ask payload: the group, a digest of the asker's op
// log and the members whose cards it lacks.
type syncAsk struct {
	group        group.GroupID
	ops          [32]byte
	missingCards []identity.AccountID
}

func (a *syncAsk) marshal() []byte {
	w := codec.NewWriter(66 + 32*len(a.missingCards))
	w.Fixed(a.group[:])
	w.Fixed(a.ops[:])
	w.U16(uint16(len(a.missingCards)))
	for _, acc := range a.missingCards {
		w.Fixed(acc[:])
	}
	return w.Bytes()
}

func parseSyncAsk(b []byte) (syncAsk, bool) {
	var a syncAsk
	r := codec.NewReader(b)
	copy(a.group[:], r.Fixed(len(a.group)))
	copy(a.ops[:], r.Fixed(len(a.ops)))
	n := r.Count(maxMissingCards)
	for range n {
		var acc identity.AccountID
		copy(acc[:], r.Fixed(len(acc)))
		a.missingCards = append(a.missingCards, acc)
	}
	return a, r.Done() == nil
}

// opsDigest summarises an op log, so two members see at once whether
// their logs differ.
func opsDigest(ops [][]byte) [32]byte {
	h := sha256.New()
	for _, o := range ops {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(o))))
		h.Write(o)
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// askSyncNow runs an anti-entropy request for one group in its own
// transaction.
func (n *Node) askSyncNow(id group.GroupID) {
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	gs := n.groups[id]
	if gs == nil || n.closed || !gs.eng.IsMember() {
		return
	}
	t := n.newTxnLocked()
	n.askSyncLocked(t, gs, now)
	n.saveSeqLocked(t)
	n.commitForJobReleasingLock(t, "group sync")
}

// flushGroups saves unsaved engines in their own transaction, lazily
// like the messages whose receipt changed them (onGroupWires).
func (n *Node) flushGroups() {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.newTxnLocked()
	t.b.Lazy()
	n.flushGroupsLocked(t)
	// An unsaved engine only advanced its receiving chains and replay
	// cache (groupWireLocked): its topics and members are as they were, so
	// the commit need not resubscribe every group and rebuild the guard's
	// table (the group tick does that for grace windows that end).
	t.groupsChanged = false
	if t.b.Len() > 0 {
		n.commitForJobReleasingLock(t, "group flush")
	}
}

// groupLoop runs the engines' timers and the periodic anti-entropy round.
func (n *Node) groupLoop(ctx context.Context) {
	every := n.cfg.GroupSync
	if every <= 0 {
		every = groupSyncEvery
	}
	period := min(groupTick, every)
	tick := time.NewTimer(0)
	defer tick.Stop()
	last := time.Now()
	first := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if first {
			tick.Reset(mrand.N(period)) // then at a random point of the period, as for flushes
		} else {
			tick.Reset(period)
		}
		n.mu.Lock()
		now := time.Now()
		t := n.newTxnLocked()
		n.guardBatchLocked(func() {
			for _, gs := range n.groups {
				if gs.eng.Tick() {
					n.saveGroupLocked(t, gs)
				}
				n.syncTopicsLocked(gs)
				if gs.eng.IsMember() && (first || now.Sub(last) >= every) {
					n.askSyncLocked(t, gs, now)
				}
			}
		})
		if first || now.Sub(last) >= every {
			last, first = now, false
		}
		if t.b.Len() > 0 || len(t.queued) > 0 || len(t.publish) > 0 {
			n.saveSeqLocked(t)
			n.commitForJobReleasingLock(t, "group timers")
		}
		n.mu.Unlock()
	}
}
