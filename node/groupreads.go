package node

// Read receipts in groups (docs/protocol/groups.md §16.12). Marking a
// group read sends, unless read receipts are off, one receipt per sender
// whose messages were read (type 22: the group ID and those message
// IDs), pairwise to that sender's member devices only: the other
// members learn nothing, and the cost is bounded by the senders read,
// not by the group's size. The sender keeps, on each message it sent, a
// bitmap of who read it over the group's reader slots (table
// groupreads: one 32-byte account per slot, given in order of first
// receipt), and shows "read by k of n" over the current members.

import (
	"encoding/hex"
	"slices"
	"time"

	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/node/group"
)

// maxReadSlots bounds a group's reader slots (so a message's bitmap is
// at most 512 bytes): members beyond it, over the group's whole life,
// are not counted.
const maxReadSlots = 4096

// readRoster is a group's reader slots: the accounts whose receipts
// came, in order of first receipt.
type readRoster struct {
	accs []identity.AccountID
	slot map[identity.AccountID]int
}

// rosterLocked returns a group's reader slots, loading them once.
func (n *Node) rosterLocked(gid group.GroupID) *readRoster {
	if r := n.readRosters[gid]; r != nil {
		return r
	}
	r := &readRoster{slot: map[identity.AccountID]int{}}
	n.tabs.groupReads.ScanSeq(gid[:], 0, maxReadSlots-1, func(seq uint64, v []byte) error {
		if acc, err := identity.ParseAccountID(v); err == nil && seq == uint64(len(r.accs)) {
			r.slot[acc] = len(r.accs)
			r.accs = append(r.accs, acc)
		}
		return nil
	})
	if n.readRosters == nil {
		n.readRosters = map[group.GroupID]*readRoster{}
	}
	n.readRosters[gid] = r
	return r
}

// readSlotLocked returns acc's slot in a group's roster, giving it the
// next one in t if it has none; -1 when the roster is full.
func (n *Node) readSlotLocked(t *txn, gid group.GroupID, acc identity.AccountID) int {
	r := n.rosterLocked(gid)
	if s, ok := r.slot[acc]; ok {
		return s
	}
	if len(r.accs) >= maxReadSlots {
		return -1
	}
	s := len(r.accs)
	r.accs = append(r.accs, acc)
	r.slot[acc] = s
	t.undo(func() { delete(n.readRosters, gid) }) // read again from the store
	t.b.PutSeq(n.tabs.groupReads, gid[:], uint64(s), acc[:])
	return s
}

func hasBit(b []byte, i int) bool { return i/8 < len(b) && b[i/8]&(1<<(i%8)) != 0 }

func withBit(b []byte, i int) []byte {
	out := make([]byte, max(len(b), i/8+1))
	copy(out, b)
	out[i/8] |= 1 << (i % 8)
	return out
}

// sendGroupReadsLocked sends the receipts for the messages just marked
// read, by sender account: one payload (up to maxReceiptIDs IDs each)
// to each of that member's devices.
func (n *Node) sendGroupReadsLocked(t *txn, gs *groupState, bySender map[identity.AccountID][][msgIDSize]byte, now time.Time) {
	if n.settings.NoReadReceipts {
		return
	}
	gid := gs.eng.ID()
	st := gs.eng.State()
	for acc, ids := range bySender {
		m, ok := st.Member(acc)
		if !ok || acc == n.cert.Account() {
			continue
		}
		for len(ids) > 0 {
			k := min(len(ids), maxReceiptIDs)
			for _, dev := range m.Devices {
				n.sendGroupPairwiseLocked(t, acc, dev, &payload{Type: ptGroupRead, Data: slices.Clone(gid[:]), IDs: ids[:k]}, now)
			}
			ids = ids[k:]
		}
	}
}

// applyGroupReadLocked takes a member's read receipt (type 22) for
// messages this account sent to the group.
func (n *Node) applyGroupReadLocked(t *txn, acc identity.AccountID, dev identity.DeviceID, p *payload) {
	if len(p.Data) != len(group.GroupID{}) || acc == n.cert.Account() {
		return
	}
	gid := group.GroupID(p.Data)
	gs := n.groups[gid]
	if gs == nil || !n.isMemberDeviceLocked(gs, acc, dev) {
		return
	}
	key := convKey(gid)
	slot := -1
	for _, id := range p.IDs {
		m, ix, err := n.loadMsgLocked(id)
		if err != nil || string(ix.Account) != string(key) || (m.Dir != "out" && !n.ownGroupMsgLocked(ix, m)) {
			continue
		}
		if slot < 0 {
			if slot = n.readSlotLocked(t, gid, acc); slot < 0 {
				return
			}
		}
		if hasBit(m.ReadBy, slot) {
			continue
		}
		up := *m
		up.ReadBy = withBit(m.ReadBy, slot)
		n.updateMsgLocked(t, id, ix, &up)
		t.events = append(t.events, Event{Type: EventUpdate, Message: ptr(n.groupMsgView(&up, gs))})
	}
}

// readersLocked fills a group message's read view: who of the current
// other members read it (names, in slot order) and how many they are.
func (n *Node) readersLocked(gs *groupState, m *msgRec, v *Message) {
	st := gs.eng.State()
	v.ReadOf = max(len(st.Members)-1, 0)
	if len(m.ReadBy) == 0 {
		return
	}
	r := n.rosterLocked(gs.eng.ID())
	for i, acc := range r.accs {
		if _, ok := st.Member(acc); ok && hasBit(m.ReadBy, i) {
			v.ReadBy = append(v.ReadBy, n.memberNameLocked(acc))
		}
	}
}

// readViewWanted reports whether a group message shows read receipts:
// one this account sent.
func (n *Node) readViewWanted(gs *groupState, m *msgRec) bool {
	if m.Dir == "out" {
		return true
	}
	id := gs.eng.ID()
	return n.ownGroupMsgLocked(indexRec{Account: convKey(id)}, m)
}

// groupIDHex is a group's ID as the API shows it.
func groupIDHex(id group.GroupID) string { return hex.EncodeToString(id[:]) }
