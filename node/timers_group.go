package node

// Disappearing messages in groups (docs/protocol/groups.md §16.12): any
// member sets the group's timer with a group message of type 20 on the
// topic (sender key, so it is stored and repaired like a text); every
// member device keeps the latest (by time, then the longer). A member
// that was away longer than the repair store reaches, or joined after
// the change, learns the timer pairwise (type 23) from the members it
// asks to sync, and from the admin that invites it. Group texts carry
// their time to live (extension tag 5) as 1:1 texts do, and expire
// through the same timers table.

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/node/group"
)

// setGroupTimer sets a group's timer (secs, 0: off) and tells the
// members.
func (n *Node) setGroupTimer(ref string, secs uint32) (time.Duration, error) {
	_, err := n.groupTxn(ref, func(t *txn, gs *groupState, _ time.Time) error {
		if !gs.eng.IsMember() {
			return errors.New("accept the invitation first")
		}
		now := n.now()
		key := convKey(gs.eng.ID())
		ct := convTimer{Secs: secs, AtMS: max(uint64(now.UnixMilli()), n.timers.conv[string(key)].AtMS+1)}
		p := &payload{Type: ptTimer, ID: newMessageID(), TimeMS: ct.AtMS, Data: binary.BigEndian.AppendUint32(nil, secs)}
		if err := n.publishGroupPayloadLocked(t, gs, p, now); err != nil {
			return err
		}
		n.setConvTimerLocked(t, key, ct)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return time.Duration(secs) * time.Second, nil
}

// GroupTimer returns a group's timer (0: off).
func (n *Node) GroupTimer(ref string) (time.Duration, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	gs, err := n.resolveGroupLocked(ref)
	if err != nil {
		return 0, err
	}
	return time.Duration(n.timerSecsLocked(convKey(gs.eng.ID()))) * time.Second, nil
}

// applyGroupTimerLocked takes a member's change of a group's timer from
// the topic (type 20: data = u32 seconds, time = when it changed).
func (n *Node) applyGroupTimerLocked(t *txn, gs *groupState, p *payload) {
	r := codec.NewReader(p.Data)
	secs := r.U32()
	if r.Done() != nil || time.Duration(secs)*time.Second > MaxTimer {
		return
	}
	n.setConvTimerLocked(t, convKey(gs.eng.ID()), convTimer{Secs: secs, AtMS: p.TimeMS})
}

// sendGroupTimerLocked tells one member device the group's timer as this
// device holds it (type 23), if it was ever set.
func (n *Node) sendGroupTimerLocked(t *txn, gs *groupState, acc identity.AccountID, dev identity.DeviceID, now time.Time) {
	ct, ok := n.timers.conv[string(convKey(gs.eng.ID()))]
	if !ok {
		return
	}
	id := gs.eng.ID()
	w := codec.NewWriter(44)
	w.Fixed(id[:])
	w.U32(ct.Secs)
	w.U64(ct.AtMS)
	n.sendGroupPairwiseLocked(t, acc, dev, &payload{Type: ptGroupTimer, Data: w.Bytes()}, now)
}

// applyGroupTimerPairwiseLocked takes a group's timer from a member
// device (type 23): the latest wins, as on the topic.
func (n *Node) applyGroupTimerPairwiseLocked(t *txn, acc identity.AccountID, dev identity.DeviceID, p *payload) {
	r := codec.NewReader(p.Data)
	var gid group.GroupID
	copy(gid[:], r.Fixed(len(gid)))
	secs, at := r.U32(), r.U64()
	if r.Done() != nil || time.Duration(secs)*time.Second > MaxTimer {
		return
	}
	gs := n.groups[gid]
	if gs == nil || !n.isMemberDeviceLocked(gs, acc, dev) {
		return
	}
	n.setConvTimerLocked(t, convKey(gid), convTimer{Secs: secs, AtMS: at})
}

// ownGroupMsgLocked reports whether a stored message is a group message
// this account sent from another of its devices.
func (n *Node) ownGroupMsgLocked(ix indexRec, m *msgRec) bool {
	return isGroupConv(ix.Account) && m.Dir == "in" && m.From == n.cert.Account().Hex()
}
