package node

// Message states for sync (docs/protocol/sync.md §18.6): derived from
// the node's records, merged and shown; read markers; group history for
// the transfer.

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"slices"
	"time"

	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/node/group"
	msync "github.com/hushnet/hush/sync"
)

// stateFromRecLocked derives the sync state of a 1:1 message record of
// contact c (not a system notice): the record authored by this account
// and device for "out", by the contact (device unknown) for "in"; an
// edit or recall by the author, and the reactions, at the record's time.
func (n *Node) stateFromRecLocked(c *contact, m *msgRec) (*msync.MessageState, error) {
	id, err := parseMsgID(m.ID)
	if err != nil {
		return nil, err
	}
	acc, own := c.account(), n.cert.Account()
	ms := recTimeMS(m)
	author, authorDev := acc, identity.DeviceID{}
	if m.Dir == "out" {
		author, authorDev = own, n.cert.DeviceID()
	}
	ptr, from := n.attachmentOfLocked(m)
	if m.Dir == "in" {
		authorDev = from
	}
	st := recordState(contactConv(acc), id, m, author, authorDev)
	st.Record.Attachment = ptr
	for emoji, who := range m.Reactions {
		for _, w := range who {
			e := msync.ReactionEntry{Actor: acc, Emoji: emoji, Clock: derivedClock(ms, identity.DeviceID{}), Present: true}
			if w == "me" {
				e.Actor, e.Clock = own, derivedClock(ms, n.cert.DeviceID())
			}
			i, found := slices.BinarySearchFunc(st.Reactions, e, reactionCompare)
			if !found {
				st.Reactions = slices.Insert(st.Reactions, i, e)
			}
		}
	}
	return st, nil
}

// recordState derives a message's sync state from a node record, by
// author (from its device, if known): the record, an own message's
// state, and the author's edit or recall at the record's time. Reactions
// are the caller's.
func recordState(conv msync.Conversation, id [msgIDSize]byte, m *msgRec, author identity.AccountID, authorDev identity.DeviceID) *msync.MessageState {
	ms := recTimeMS(m)
	rec := &msync.Record{Conv: conv, ID: id, Author: author, AuthorDevice: authorDev, TimeMS: ms, Text: m.Text}
	if m.ReplyTo != "" {
		if r, err := parseMsgID(m.ReplyTo); err == nil {
			rec.ReplyTo = r
		}
	}
	st := &msync.MessageState{Conv: conv, ID: id, Record: rec}
	if m.Dir == "out" {
		st.Status = stateOfRec(m.State)
	}
	at := derivedClock(ms, authorDev)
	if m.Edited {
		st.Edits = []msync.EditEntry{{Actor: author, Clock: at, Text: m.Text}}
	}
	if m.Deleted {
		st.Deletes = []msync.DeleteEntry{{Actor: author, Clock: at}}
	}
	return st
}

// reactionCompare orders reaction entries by (actor, emoji), as
// MessageState keeps them.
func reactionCompare(a, b msync.ReactionEntry) int {
	return cmp.Or(bytes.Compare(a.Actor[:], b.Actor[:]), cmp.Compare(a.Emoji, b.Emoji))
}

// msgStateLocked returns the state of message id in conversation conv:
// the stored one, else one derived from the node's record, else an empty
// one. ok is false when the ID belongs to a record the state cannot
// describe (another conversation, a notice, or a contact not known).
func (n *Node) msgStateLocked(t *txn, id [msgIDSize]byte, conv msync.Conversation) (st *msync.MessageState, stored, ok bool, err error) {
	if st, err = n.storedMsgStateLocked(t, id); err != nil || st != nil {
		return st, st != nil, err == nil, err
	}
	m, ix, err := n.loadMsgLocked(id)
	if errors.Is(err, ErrUnknownMessage) {
		return &msync.MessageState{Conv: conv, ID: id}, false, true, nil
	}
	if err != nil {
		return nil, false, false, err
	}
	c := n.contacts[conv.ID]
	if c == nil || !bytes.Equal(ix.Account, conv.ID[:]) || m.Dir == dirSystem {
		return nil, false, false, nil
	}
	st, err = n.stateFromRecLocked(c, m)
	return st, false, err == nil, err
}

// timeSeqLocked is where a message that comes from another device goes
// in its conversation: its time decides, not its arrival, because the
// history transfer sends the newest first. The sequence number is
//
//	seq = time_ms<<14 | id[0]<<6 | id[1]>>2
//
// (stepped up past a number another message already holds), and n.seq
// is raised to it, so that messages made here afterwards (nextSeqLocked)
// sort after it. Messages stored before any sync keep their small
// arrival numbers, so on a device with its own history a synced message
// sorts after them whatever its time.
func (n *Node) timeSeqLocked(t *txn, acc []byte, ms uint64, id [msgIDSize]byte) uint64 {
	seq := ms<<14 | uint64(id[0])<<6 | uint64(id[1]>>2)
	for {
		if !t.seqs[seq] {
			if _, err := n.tabs.messages.GetSeq(acc, seq); err != nil {
				break
			}
		}
		seq++
	}
	if t.seqs == nil {
		t.seqs = map[uint64]bool{}
	}
	t.seqs[seq] = true
	n.seq = max(n.seq, seq)
	return seq
}

// pendingSeq is where message id sits in its contact's pending list.
func pendingSeq(id [msgIDSize]byte) uint64 { return binary.BigEndian.Uint64(id[:8]) }

// renderMsgLocked makes the node's record of a message show its merged
// state st: it creates the record (at timeSeqLocked's place) or updates
// it, and emits EventMessage or EventUpdate. A message whose record is
// not known yet shows nothing; one of a contact not known yet is noted
// as pending (releasePendingLocked shows it once the contact is added).
// Only the author's edits and recalls show; reactions show for this
// account ("me") and the contact. An outgoing message's state only
// rises; an incoming one is read once the conversation's read marker
// covers it.
func (n *Node) renderMsgLocked(t *txn, st *msync.MessageState) error {
	if st.Record == nil || st.Conv.Kind != msync.ConvContact {
		return nil
	}
	acc, own := identity.AccountID(st.Conv.ID), n.cert.Account()
	c := n.contacts[acc]
	if c == nil {
		return t.b.PutSeq(n.syncTable(), syncKey(skPending, acc[:]), pendingSeq(st.ID), st.ID[:])
	}
	author := st.Record.Author
	if author != own && author != acc {
		return nil // not a 1:1 message of this conversation
	}
	id := [msgIDSize]byte(st.ID)
	m, ix, err := n.loadMsgLocked(id)
	isNew := errors.Is(err, ErrUnknownMessage)
	if isNew && (n.goneLocallyLocked(id) || n.expiredLocked(id)) {
		return nil // deleted on this device only, or expired here (timers.go): it stays deleted
	}
	switch {
	case isNew:
		m = &msgRec{ID: hex.EncodeToString(id[:]), Dir: "in", State: StateReceived,
			Time: time.UnixMilli(int64(st.Record.TimeMS)).UTC()}
		if author == own {
			m.Dir, m.State = "out", StateSent
		}
		if st.Record.ReplyTo != (msync.MessageID{}) {
			m.ReplyTo = hex.EncodeToString(st.Record.ReplyTo[:])
		}
		if st.Record.Attachment != nil && !st.Deleted() {
			m.File = n.offerFileLocked(t, acc[:], id, st.Record.AuthorDevice, st.Record.Attachment)
		}
	case err != nil:
		return err
	case !bytes.Equal(ix.Account, acc[:]) || m.Dir == dirSystem:
		return nil
	}
	old := m.marshal()
	m.Text, _ = st.Text()
	m.Deleted = st.Deleted()
	m.Edited = slices.ContainsFunc(st.Edits, func(e msync.EditEntry) bool { return e.Actor == author })
	m.Reactions = nil
	for emoji, actors := range st.ShownReactions() {
		for _, a := range actors {
			switch identity.AccountID(a) {
			case own:
				applyReaction(m, emoji, "me", false)
			case acc:
				applyReaction(m, emoji, c.rec.Name, false)
			}
		}
	}
	switch m.Dir {
	case "out":
		if want := recStateOf(st.Status); want.Rank() > m.State.Rank() {
			m.State = want
		}
	case "in":
		if m.State != StateRead {
			mk, err := n.storedMarkerLocked(t, st.Conv)
			if err != nil {
				return err
			}
			if mk != nil && markerCompare(st.Record.TimeMS, st.ID, mk.TimeMS, mk.ID) <= 0 {
				m.State = StateRead
			}
		}
	}
	if isNew {
		ix = indexRec{Account: acc[:], Seq: n.timeSeqLocked(t, acc[:], st.Record.TimeMS, id)}
		n.putMsgLocked(t, id, ix, m)
		t.events = append(t.events, Event{Type: EventMessage, Message: ptr(m.view(c.rec.Name))})
		return nil
	}
	if bytes.Equal(old, m.marshal()) {
		return nil
	}
	n.updateMsgLocked(t, id, ix, m)
	t.events = append(t.events, Event{Type: EventUpdate, Message: ptr(m.view(c.rec.Name))})
	return nil
}

// releasePendingLocked shows the messages that waited for contact acc
// (renderMsgLocked), now that it is known. Pending notes written in t
// itself are not seen (they are in the batch, not the store); the
// history transfer sends contacts before messages, so none are.
func (n *Node) releasePendingLocked(t *txn, acc identity.AccountID) error {
	key := syncKey(skPending, acc[:])
	var ids [][msgIDSize]byte
	var seqs []uint64
	err := n.syncTable().ScanSeq(key, 0, ^uint64(0), func(seq uint64, v []byte) error {
		if len(v) == msgIDSize {
			ids, seqs = append(ids, [msgIDSize]byte(v)), append(seqs, seq)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, id := range ids {
		t.b.DeleteSeq(n.syncTable(), key, seqs[i])
		st, err := n.storedMsgStateLocked(t, id)
		if err != nil {
			return err
		}
		if st != nil && st.Conv == contactConv(acc) {
			if err := n.renderMsgLocked(t, st); err != nil {
				return err
			}
		}
	}
	return nil
}

// groupHistoryLocked adds a group conversation's messages (not the
// notices) to a snapshot: each as its record, with the author's edit or
// recall as the record shows it, and an own message's state. Reactions
// are left out (group records name reactors by display name). A group
// message needs no merge later: the group itself carries what happens
// to it to every member device.
func (n *Node) groupHistoryLocked(gid group.GroupID, sinceMS uint64, add func(msync.Message)) error {
	conv := msync.Conversation{Kind: msync.ConvGroup, ID: gid}
	own := n.cert.Account()
	return n.tabs.messages.ScanSeq(convKey(gid), 0, ^uint64(0), func(_ uint64, v []byte) error {
		var m msgRec
		if err := decodeMsgRec(v, &m); err != nil {
			return err
		}
		id, err := parseMsgID(m.ID)
		if err != nil || m.Dir == dirSystem || recTimeMS(&m) < sinceMS {
			return nil
		}
		author, authorDev := own, n.cert.DeviceID()
		if m.Dir == "in" {
			from, err := hex.DecodeString(m.From)
			if err != nil || len(from) != identity.AccountIDSize {
				return nil
			}
			author, authorDev = identity.AccountID(from), identity.DeviceID{}
		}
		ptr, from := n.attachmentOfLocked(&m)
		if m.Dir == "in" {
			authorDev = from
		}
		st := recordState(conv, id, &m, author, authorDev)
		st.Record.Attachment = ptr
		add(st)
		return nil
	})
}

// renderGroupMsgLocked stores a group message from the history transfer
// where every member stores it (groupSeqLocked: the author's time and
// bits of its ID), once: a message already here changes nothing.
func (n *Node) renderGroupMsgLocked(t *txn, d *msync.MessageState) (bool, error) {
	if d.Record == nil {
		return false, nil
	}
	id := [msgIDSize]byte(d.ID)
	if _, _, err := n.loadMsgLocked(id); err == nil {
		return false, nil
	} else if !errors.Is(err, ErrUnknownMessage) {
		return false, err
	}
	gid := group.GroupID(d.Conv.ID)
	r := d.Record
	m := &msgRec{ID: hex.EncodeToString(id[:]), Dir: "in", State: StateReceived,
		Time: time.UnixMilli(int64(r.TimeMS)).UTC(), Sender: n.memberNameLocked(r.Author), From: r.Author.Hex()}
	if r.Author == n.cert.Account() {
		m.Dir, m.State, m.Sender, m.From = "out", recStateOf(max(d.Status, msync.StateSent)), "me", ""
	}
	if r.ReplyTo != (msync.MessageID{}) {
		m.ReplyTo = hex.EncodeToString(r.ReplyTo[:])
	}
	m.Text, m.Edited = d.Text()
	m.Deleted = d.Deleted()
	if r.Attachment != nil && !m.Deleted {
		m.File = n.offerFileLocked(t, convKey(gid), id, r.AuthorDevice, r.Attachment)
	}
	key := convKey(gid)
	ix := indexRec{Account: key, Seq: n.groupSeqLocked(t, key, &payload{ID: id, TimeMS: r.TimeMS})}
	n.putMsgLocked(t, id, ix, m)
	if gs := n.groups[gid]; gs != nil {
		t.events = append(t.events, Event{Type: EventMessage, Message: ptr(n.groupMsgView(m, gs))})
	}
	return true, nil
}

// mergeMsgLocked merges d into its message's state and, if that changed
// anything, stores the state and shows it.
func (n *Node) mergeMsgLocked(t *txn, d *msync.MessageState) (bool, error) {
	if d.Conv.Kind == msync.ConvGroup {
		return n.renderGroupMsgLocked(t, d)
	}
	if d.Conv.Kind != msync.ConvContact {
		return false, nil
	}
	if d.Record != nil && d.Record.Author != n.cert.Account() && d.Record.Author != d.Conv.ID {
		return false, nil // a 1:1 message is this account's or the contact's
	}
	cur, _, ok, err := n.msgStateLocked(t, [msgIDSize]byte(d.ID), d.Conv)
	if err != nil || !ok {
		return false, err
	}
	merged := cur.Clone()
	if !merged.Merge(d) {
		return false, nil
	}
	if err := n.putSyncLocked(t, syncKey(skMessage, d.ID[:]), merged); err != nil {
		return false, err
	}
	return true, n.renderMsgLocked(t, merged)
}

// applyMarkerLocked raises a conversation's read marker to m and marks
// the incoming messages it covers read, with EventUpdate events. It
// sends no read receipt: the device that read them did.
func (n *Node) applyMarkerLocked(t *txn, m *msync.ReadMarker) (bool, error) {
	if m.Conv.Kind != msync.ConvContact {
		return false, nil
	}
	if raised, err := n.saveMarkerLocked(t, m); !raised || err != nil {
		return false, err
	}
	acc := identity.AccountID(m.Conv.ID)
	c := n.contacts[acc]
	if c == nil {
		return true, nil
	}
	// The store's records, and those written in t (not in the store yet).
	var ids [][msgIDSize]byte
	err := n.tabs.messages.ScanSeq(acc[:], 0, ^uint64(0), func(_ uint64, v []byte) error {
		var r msgRec
		if err := decodeMsgRec(v, &r); err != nil {
			return err
		}
		if id, err := parseMsgID(r.ID); err == nil {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	ids = append(ids, t.msgs...)
	seen := map[[msgIDSize]byte]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		r, ix, err := n.loadMsgLocked(id)
		if err != nil || !bytes.Equal(ix.Account, acc[:]) || r.Dir != "in" || r.State == StateRead {
			continue
		}
		if markerCompare(recTimeMS(r), msync.MessageID(id), m.TimeMS, m.ID) > 0 {
			continue
		}
		r.State = StateRead
		n.updateMsgLocked(t, id, ix, r)
		t.events = append(t.events, Event{Type: EventUpdate, Message: ptr(r.view(c.rec.Name))})
	}
	return true, nil
}

// saveMarkerLocked raises a conversation's stored read marker to m and
// reports whether it rose.
func (n *Node) saveMarkerLocked(t *txn, m *msync.ReadMarker) (bool, error) {
	cur, err := n.storedMarkerLocked(t, m.Conv)
	if err != nil {
		return false, err
	}
	if cur != nil && markerCompare(m.TimeMS, m.ID, cur.TimeMS, cur.ID) <= 0 {
		return false, nil
	}
	return true, n.putSyncLocked(t, syncKey(skMarker, convBytes(m.Conv)), m)
}
