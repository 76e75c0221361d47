package node

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/node/group"
	msync "github.com/hushnet/hush/sync"
)

// This file is the node's synced state (docs/protocol/sync.md §18.5,
// §18.6, §18.10 items 4–6): the Lamport clock, the conversion of the
// node's records into sync objects (the history transfer's Source is a
// Replica built from them) and the merge of sync messages from the
// account's other devices into the node's records (the transfer's
// Target, and continuous sync).
//
// The node's records stay what the API shows; next to them, the
// "syncstate" table keeps the merged sync state of every object a sync
// message touched, so that merges are idempotent and order-independent
// as §18.6 requires (the per-actor clocks of edits and reactions, the
// OR-set of a contact, a read marker):
//
//	'm' ‖ message ID   msync.MessageState
//	'c' ‖ account ID   msync.ContactState
//	'r' ‖ conv         msync.ReadMarker
//	's' ‖ setting key  msync.Setting
//	'p' ‖ account ID   sequenced (seq: the message ID's first 8 bytes):
//	                   message IDs whose state is stored but whose contact
//	                   is not known yet (pending; shown once it is)
//
// An object that no sync message touched has no stored state: its state
// is derived from the node's record when needed (stateFromRecLocked,
// contactStateLocked). A derived state knows no clocks: an edit,
// recall or reaction of a record counts as made at the record's time,
// so any change made later (by any device) wins over it. Contacts always
// keep their state once added or changed here (AddContact, VerifyContact,
// RemoveContact), so that a remove takes away exactly the adds it saw.
//
// Groups are out of scope for now: group conversations, GroupNotice and
// GroupKeys are left alone (Apply reports no change), and a snapshot
// holds no group.

// idLamport is the identity-table record holding the Lamport clock
// (u64 big-endian).
var idLamport = []byte("lamport")

// Key prefixes of the syncstate table.
const (
	skMessage = 'm'
	skContact = 'c'
	skMarker  = 'r'
	skSetting = 's'
	skPending = 'p'
)

// settingReadReceipts is the one synced setting: "on" or "off".
const settingReadReceipts = "read_receipts"

// syncState is the node's in-memory sync bookkeeping: the Lamport clock,
// loaded lazily from the store. Two transactions may be in flight at
// once (commitReleasingLock releases the lock), so the clock cannot be
// read back from the store alone without handing out a value twice.
// Guarded by the node's mu.
type syncState struct {
	lamport uint64
	loaded  bool
}

// syncs returns n's sync bookkeeping.
func (n *Node) syncs() *syncState { return &n.syncClock }

// lamportLocked returns the highest clock value made or seen here.
func (n *Node) lamportLocked() uint64 {
	s := n.syncs()
	if !s.loaded {
		b, err := n.tabs.identity.Get(idLamport)
		switch {
		case err == nil && len(b) == 8:
			s.lamport, s.loaded = binary.BigEndian.Uint64(b), true
		case err == nil || errors.Is(err, store.ErrNotFound):
			s.loaded = true
		}
		// On a read error the clock is read again next time; meanwhile
		// ticks still never go below the wall clock.
	}
	return s.lamport
}

// setLamportLocked raises the clock to l, in memory and in t's batch.
func (n *Node) setLamportLocked(t *txn, l uint64) {
	n.syncs().lamport = l
	t.b.Put(n.tabs.identity, idLamport, binary.BigEndian.AppendUint64(nil, l))
}

// tickLocked returns a fresh clock for a change this device makes, in t:
// L = max(L+1, now in ms), so values read as times and a change made
// after seeing another has a greater clock whatever the wall clocks say.
func (n *Node) tickLocked(t *txn, now time.Time) msync.Clock {
	l := max(n.lamportLocked()+1, uint64(max(now.UnixMilli(), 0)))
	l = min(l, msync.MaxLamport-1)
	n.setLamportLocked(t, l)
	return msync.Clock{Lamport: l, Device: n.cert.DeviceID()}
}

// observeClockLocked raises the clock to at least c's value, in t.
func (n *Node) observeClockLocked(t *txn, c msync.Clock) {
	if c.Lamport >= msync.MaxLamport || c.Lamport <= n.lamportLocked() {
		return
	}
	n.setLamportLocked(t, c.Lamport)
}

// observeAllLocked observes every clock m carries.
func (n *Node) observeAllLocked(t *txn, m msync.Message) {
	var clocks []msync.Clock
	dots := func(v msync.VersionVector) {
		for _, d := range v {
			clocks = append(clocks, msync.Clock{Lamport: d.Lamport, Device: d.Device})
		}
	}
	switch m := m.(type) {
	case *msync.Edit:
		clocks = append(clocks, m.Clock)
	case *msync.Delete:
		clocks = append(clocks, m.Clock)
	case *msync.Reaction:
		clocks = append(clocks, m.Clock)
	case *msync.MessageState:
		for _, e := range m.Edits {
			clocks = append(clocks, e.Clock)
		}
		for _, e := range m.Deletes {
			clocks = append(clocks, e.Clock)
		}
		for _, e := range m.Reactions {
			clocks = append(clocks, e.Clock)
		}
	case *msync.ContactAdd:
		clocks = append(clocks, m.Clock)
	case *msync.ContactRemove:
		clocks = append(clocks, m.Clock)
		dots(m.Seen)
	case *msync.ContactVerify:
		clocks = append(clocks, m.Clock)
	case *msync.ContactState:
		clocks = append(clocks, m.InfoClock, m.VerifiedClock)
		dots(m.Added)
		dots(m.Removed)
	case *msync.Setting:
		clocks = append(clocks, m.Clock)
	case *msync.DeviceInfo:
		clocks = append(clocks, m.Clock)
	case *msync.GroupKeys:
		clocks = append(clocks, m.Clock)
	}
	for _, c := range clocks {
		n.observeClockLocked(t, c)
	}
}

// syncTable returns the table of merged sync state (created on first
// use; db.Table is cheap after that).
func (n *Node) syncTable() *store.Table { return n.tabs.syncState }

// syncKey is a syncstate-table key: a prefix and an object key.
func syncKey(prefix byte, k []byte) []byte {
	return append([]byte{prefix}, k...)
}

// convBytes encodes a conversation as a key: kind ‖ ID.
func convBytes(c msync.Conversation) []byte {
	return append([]byte{byte(c.Kind)}, c.ID[:]...)
}

// getSyncLocked returns the stored sync object under key, as written in
// t if t wrote it, else as committed; nil if there is none.
func (n *Node) getSyncLocked(t *txn, key []byte) (msync.Message, error) {
	var b []byte
	if v, ok := t.syncRecs[string(key)]; ok {
		b = v
	} else {
		var err error
		b, err = n.syncTable().Get(key)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
	m, err := msync.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("node: stored sync state: %w", err)
	}
	return m, nil
}

// putSyncLocked writes a sync object under key in t.
func (n *Node) putSyncLocked(t *txn, key []byte, m msync.Message) error {
	b, err := msync.Marshal(m)
	if err != nil {
		return err
	}
	t.b.Put(n.syncTable(), key, b)
	if t.syncRecs == nil {
		t.syncRecs = map[string][]byte{}
	}
	t.syncRecs[string(key)] = b
	return nil
}

// storedMsgStateLocked returns a message's stored state, or nil.
func (n *Node) storedMsgStateLocked(t *txn, id [msgIDSize]byte) (*msync.MessageState, error) {
	m, err := n.getSyncLocked(t, syncKey(skMessage, id[:]))
	if m == nil || err != nil {
		return nil, err
	}
	st, ok := m.(*msync.MessageState)
	if !ok {
		return nil, fmt.Errorf("node: stored sync state of message %x is a %s", id, m.Kind())
	}
	return st, nil
}

// storedContactStateLocked returns a contact's stored state, or nil.
func (n *Node) storedContactStateLocked(t *txn, acc identity.AccountID) (*msync.ContactState, error) {
	m, err := n.getSyncLocked(t, syncKey(skContact, acc[:]))
	if m == nil || err != nil {
		return nil, err
	}
	st, ok := m.(*msync.ContactState)
	if !ok {
		return nil, fmt.Errorf("node: stored sync state of contact %s is a %s", acc.Hex(), m.Kind())
	}
	return st, nil
}

// storedMarkerLocked returns a conversation's read marker, or nil.
func (n *Node) storedMarkerLocked(t *txn, c msync.Conversation) (*msync.ReadMarker, error) {
	m, err := n.getSyncLocked(t, syncKey(skMarker, convBytes(c)))
	if m == nil || err != nil {
		return nil, err
	}
	rm, ok := m.(*msync.ReadMarker)
	if !ok {
		return nil, fmt.Errorf("node: stored read marker is a %s", m.Kind())
	}
	return rm, nil
}

// contactConv is the sync name of the 1:1 conversation with acc.
func contactConv(acc identity.AccountID) msync.Conversation {
	return msync.Conversation{Kind: msync.ConvContact, ID: [32]byte(acc)}
}

// markerCompare orders read markers (and messages) by (time_ms, ID).
func markerCompare(ams uint64, aid msync.MessageID, bms uint64, bid msync.MessageID) int {
	return cmp.Or(cmp.Compare(ams, bms), bytes.Compare(aid[:], bid[:]))
}

// recTimeMS is a record's time in Unix milliseconds (0 if before 1970).
func recTimeMS(m *msgRec) uint64 { return uint64(max(m.Time.UnixMilli(), 0)) }

// derivedClock is the clock of a change a derived state knows of but
// not when it was made: the record's time (at least 1).
func derivedClock(ms uint64, dev identity.DeviceID) msync.Clock {
	return msync.Clock{Lamport: min(max(ms, 1), msync.MaxLamport-1), Device: dev}
}

// stateOfRec maps an outgoing record's state to the synced delivery
// state: queued counts as sent (another device shows it as sent), failed
// as nothing.
func stateOfRec(s MessageState) msync.DeliveryState {
	switch s {
	case StateQueued, StateSent:
		return msync.StateSent
	case StateDelivered:
		return msync.StateDelivered
	case StateRead:
		return msync.StateRead
	}
	return 0
}

// recStateOf is stateOfRec's inverse for a record shown here (0: sent).
func recStateOf(s msync.DeliveryState) MessageState {
	switch s {
	case msync.StateDelivered:
		return StateDelivered
	case msync.StateRead:
		return StateRead
	}
	return StateSent
}

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
	st := recordState(contactConv(acc), id, m, author, authorDev)
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
		st := recordState(conv, id, &m, author, authorDev)
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

// contactStateLocked returns a contact's state: the stored one, else one
// derived from the address book (an add by this device at the time the
// contact was added, which also set the name, card and verified flag),
// else an empty one.
func (n *Node) contactStateLocked(t *txn, acc identity.AccountID) (*msync.ContactState, error) {
	st, err := n.storedContactStateLocked(t, acc)
	if err != nil || st != nil {
		return st, err
	}
	c := n.contacts[acc]
	if c == nil || c.rec.Request {
		return &msync.ContactState{Account: acc}, nil
	}
	return n.derivedContactState(c), nil
}

// firstAdd is when a contact was first added, as every device shows it:
// the earliest add clock of its state, read as Unix milliseconds.
func firstAdd(added msync.VersionVector, now time.Time) time.Time {
	if len(added) == 0 {
		return now.UTC()
	}
	first := added[0].Lamport
	for _, d := range added[1:] {
		first = min(first, d.Lamport)
	}
	return time.UnixMilli(int64(first)).UTC()
}

// derivedContactState is the state of a contact no sync touched.
func (n *Node) derivedContactState(c *contact) *msync.ContactState {
	at := derivedClock(uint64(max(c.rec.Added.UnixMilli(), 0)), n.cert.DeviceID())
	st := &msync.ContactState{Account: c.account(),
		Added:     msync.VersionVector{{Device: at.Device, Lamport: at.Lamport}},
		InfoClock: at, Name: c.rec.Name, Card: c.rec.Card}
	if c.rec.Verified {
		st.VerifiedClock, st.Verified = at, true
	}
	return st
}

// applyContactLocked merges d into its contact's state and, if that
// changed anything, stores the state and makes the address book show it.
func (n *Node) applyContactLocked(t *txn, d *msync.ContactState, now time.Time) (bool, error) {
	if d.Account == n.cert.Account() {
		return false, nil
	}
	cur, err := n.contactStateLocked(t, d.Account)
	if err != nil {
		return false, err
	}
	merged := cur.Clone()
	if !merged.Merge(d) {
		return false, nil
	}
	if err := n.putSyncLocked(t, syncKey(skContact, d.Account[:]), merged); err != nil {
		return false, err
	}
	return true, n.renderContactLocked(t, merged, now)
}

// renderContactLocked makes the address book show a contact's merged
// state: present (some add no remove saw) or not, its name (a name
// another contact has, or one like it, is kept as it was, or made free
// for a new contact as freeNameLocked does), its card (if it parses
// and is newer) and whether it is verified. A removed contact goes with
// its history, as RemoveContact does.
func (n *Node) renderContactLocked(t *txn, st *msync.ContactState, now time.Time) error {
	acc := st.Account
	c := n.contacts[acc]
	if !st.Present() {
		if c != nil {
			n.deleteContactLocked(t.b, c)
			t.undo(func() { n.contacts[acc] = c })
			t.events = append(t.events, Event{Type: EventContact, Contact: ptr(c.view())})
		}
		return nil
	}
	if len(st.Card) == 0 {
		return nil // an add whose card is not known yet
	}
	cc, err := card.ParseStored(st.Card)
	if err != nil || cc.Account() != acc {
		return nil // a card that does not parse, or another account's: not shown
	}
	name, err := checkName(st.Name)
	if err != nil {
		name = "contact"
	}
	if c == nil {
		if n.lookalikeLocked(name, nil) != nil {
			name = n.freeNameLocked(name)
		}
		nc := &contact{rec: contactRec{Name: name, Card: cc.Marshal(), Verified: st.Verified, Added: firstAdd(st.Added, now)}, card: cc}
		n.contacts[acc] = nc
		t.undo(func() { delete(n.contacts, acc) })
		n.saveContact(t.b, nc)
		t.events = append(t.events, Event{Type: EventContact, Contact: ptr(nc.view())})
		n.routeChangedLocked(cc)
		return n.releasePendingLocked(t, acc)
	}
	prev := c.rec
	prevCard := c.card
	t.undo(func() { c.rec, c.card = prev, prevCard })
	if cardNewer(cc, c.card) {
		c.card, c.rec.Card = cc, cc.Marshal()
	}
	if name != c.rec.Name && n.lookalikeLocked(name, c) == nil {
		c.rec.Name = name
	}
	c.rec.Request = false
	if st.Verified != c.rec.Verified {
		c.rec.Verified = st.Verified
		if st.Verified {
			c.rec.KeyChanged, c.rec.Blocked = false, false
		}
	}
	if c.rec.Name == prev.Name && bytes.Equal(c.rec.Card, prev.Card) && c.rec.Verified == prev.Verified &&
		c.rec.Request == prev.Request && c.rec.Blocked == prev.Blocked {
		return nil
	}
	n.saveContact(t.b, c)
	t.events = append(t.events, Event{Type: EventContact, Contact: ptr(c.view())})
	if c.card != prevCard {
		n.routeChangedLocked(c.card)
	}
	if prev.Request {
		return n.releasePendingLocked(t, acc)
	}
	return nil
}

// applySettingLocked keeps the last writer's value of a synced setting
// and applies it; read_receipts ("on", "off") is the only one, others
// are left alone.
func (n *Node) applySettingLocked(t *txn, s *msync.Setting) (bool, error) {
	if s.Key != settingReadReceipts {
		return false, nil
	}
	key := syncKey(skSetting, []byte(s.Key))
	cur, err := n.getSyncLocked(t, key)
	if err != nil {
		return false, err
	}
	if cs, ok := cur.(*msync.Setting); ok && cmp.Or(s.Clock.Compare(cs.Clock), bytes.Compare(s.Value, cs.Value)) <= 0 {
		return false, nil
	}
	if err := n.putSyncLocked(t, key, s); err != nil {
		return false, err
	}
	off := string(s.Value) == "off"
	if off != n.settings.NoReadReceipts {
		prev := n.settings.NoReadReceipts
		t.undo(func() { n.settings.NoReadReceipts = prev })
		n.settings.NoReadReceipts = off
		putJSON(t.b, n.tabs.identity, idSettings, &n.settings)
	}
	return true, nil
}

// applySyncLocked applies one sync message from another device of this
// account (continuous sync) or from a history transfer chunk, in t, and
// reports whether it changed anything. It is idempotent and
// order-independent: every object merges by the rules of §18.6
// (MessageState.Merge, ContactState.Merge, max for read markers,
// last-writer-wins for settings), and the node's records show the
// merged state. Events for what changed go into t.events. An error
// (a malformed message, a Transcript of another author, a store read
// failing) means t must be dropped, not committed.
//
// Handled: Transcript and Incoming (a message sent from, or received by,
// another device), Edit, Delete, Reaction, Status, MessageState,
// ReadMarker (no read receipt is sent), ContactAdd, ContactRemove,
// ContactVerify, ContactState, and the read_receipts Setting. A message
// of a contact not known yet waits for the contact. DeviceList and
// DeviceInfo are the network side's; groups are out of scope: those
// report no change.
func (n *Node) applySyncLocked(t *txn, m msync.Message, now time.Time) (changed bool, err error) {
	if _, err := msync.Marshal(m); err != nil {
		return false, err // what Parse would refuse
	}
	own := n.cert.Account()
	n.observeAllLocked(t, m)
	seq := n.seq
	defer func() {
		if n.seq != seq {
			n.saveSeqLocked(t.b)
		}
	}()
	switch m := m.(type) {
	case *msync.Transcript:
		if m.Author != own {
			return false, fmt.Errorf("%w: a transcript must be authored by the account", msync.ErrWrongAccount)
		}
		r := m.Record
		return n.mergeMsgLocked(t, &msync.MessageState{Conv: r.Conv, ID: r.ID, Record: &r})
	case *msync.Incoming:
		r := m.Record
		return n.mergeMsgLocked(t, &msync.MessageState{Conv: r.Conv, ID: r.ID, Record: &r})
	case *msync.Edit:
		return n.mergeMsgLocked(t, &msync.MessageState{Conv: m.Conv, ID: m.Target,
			Edits: []msync.EditEntry{{Actor: m.Actor, Clock: m.Clock, Text: m.Text}}})
	case *msync.Delete:
		return n.mergeMsgLocked(t, &msync.MessageState{Conv: m.Conv, ID: m.Target,
			Deletes: []msync.DeleteEntry{{Actor: m.Actor, Clock: m.Clock}}})
	case *msync.Reaction:
		return n.mergeMsgLocked(t, &msync.MessageState{Conv: m.Conv, ID: m.Target,
			Reactions: []msync.ReactionEntry{{Actor: m.Actor, Emoji: m.Emoji, Clock: m.Clock, Present: !m.Remove}}})
	case *msync.Status:
		return n.mergeMsgLocked(t, &msync.MessageState{Conv: m.Conv, ID: m.Target, Status: m.State})
	case *msync.MessageState:
		return n.mergeMsgLocked(t, m)
	case *msync.ReadMarker:
		return n.applyMarkerLocked(t, m)
	case *msync.ContactAdd:
		return n.applyContactLocked(t, &msync.ContactState{Account: m.Account,
			Added:     msync.VersionVector{{Device: m.Clock.Device, Lamport: m.Clock.Lamport}},
			InfoClock: m.Clock, Name: m.Name, Card: m.Card}, now)
	case *msync.ContactRemove:
		return n.applyContactLocked(t, &msync.ContactState{Account: m.Account, Removed: m.Seen}, now)
	case *msync.ContactVerify:
		return n.applyContactLocked(t, &msync.ContactState{Account: m.Account, VerifiedClock: m.Clock, Verified: m.Verified}, now)
	case *msync.ContactState:
		return n.applyContactLocked(t, m, now)
	case *msync.Setting:
		return n.applySettingLocked(t, m)
	case *msync.DeviceList, *msync.DeviceInfo:
		// TODO(network side): the account's device list and the devices'
		// card entries are node/devices.go's.
		return false, nil
	case *msync.GroupNotice, *msync.GroupKeys:
		return false, nil // groups: out of scope for now
	}
	return false, nil
}

// syncTarget is the history transfer's Target on the new device: each
// item is applied in the transaction of the chunk it came in.
type syncTarget struct {
	n   *Node
	t   *txn
	now time.Time
}

// Apply implements msync.Target; the node's lock must be held.
func (s *syncTarget) Apply(m msync.Message) (bool, error) {
	return s.n.mergeSyncLocked(s.t, m, s.now)
}

// syncLocalLocked records, in t, a change made on this device (or
// learnt from a contact) in the stored sync state, then sends it to the
// account's other devices. A message's state is updated only if it has
// one (else the record is its whole state); a contact's is always kept;
// a read marker only rises.
func (n *Node) syncLocalLocked(t *txn, m msync.Message, now time.Time) {
	if err := n.recordLocalLocked(t, m); err != nil {
		n.log.Warn("sync state not updated", "kind", m.Kind().String(), "err", err)
	}
	n.syncOutLocked(t, m, now)
}

// recordLocalLocked is syncLocalLocked's part in the store.
func (n *Node) recordLocalLocked(t *txn, m msync.Message) error {
	var d *msync.MessageState
	switch m := m.(type) {
	case *msync.Edit:
		d = &msync.MessageState{Conv: m.Conv, ID: m.Target, Edits: []msync.EditEntry{{Actor: m.Actor, Clock: m.Clock, Text: m.Text}}}
	case *msync.Delete:
		d = &msync.MessageState{Conv: m.Conv, ID: m.Target, Deletes: []msync.DeleteEntry{{Actor: m.Actor, Clock: m.Clock}}}
	case *msync.Reaction:
		d = &msync.MessageState{Conv: m.Conv, ID: m.Target,
			Reactions: []msync.ReactionEntry{{Actor: m.Actor, Emoji: m.Emoji, Clock: m.Clock, Present: !m.Remove}}}
	case *msync.Status:
		// Not recorded: the record holds the state, and a snapshot takes
		// the higher of the two (one store read less per receipt).
		return nil
	case *msync.ReadMarker:
		_, err := n.saveMarkerLocked(t, m) // its messages are read here already
		return err
	case *msync.ContactAdd:
		return n.recordContactLocked(t, &msync.ContactState{Account: m.Account,
			Added:     msync.VersionVector{{Device: m.Clock.Device, Lamport: m.Clock.Lamport}},
			InfoClock: m.Clock, Name: m.Name, Card: m.Card})
	case *msync.ContactRemove:
		return n.recordContactLocked(t, &msync.ContactState{Account: m.Account, Removed: m.Seen})
	case *msync.ContactVerify:
		return n.recordContactLocked(t, &msync.ContactState{Account: m.Account, VerifiedClock: m.Clock, Verified: m.Verified})
	case *msync.Setting:
		return n.putSyncLocked(t, syncKey(skSetting, []byte(m.Key)), m)
	}
	if d == nil {
		return nil // a Transcript or Incoming: the record is the state
	}
	st, err := n.storedMsgStateLocked(t, [msgIDSize]byte(d.ID))
	if err != nil || st == nil {
		return err
	}
	if st.Merge(d) {
		return n.putSyncLocked(t, syncKey(skMessage, d.ID[:]), st)
	}
	return nil
}

// recordContactLocked merges a local change into a contact's state and
// stores it (without touching the address book, which the caller did).
func (n *Node) recordContactLocked(t *txn, d *msync.ContactState) error {
	st, err := n.contactStateLocked(t, d.Account)
	if err != nil {
		return err
	}
	st.Merge(d)
	return n.putSyncLocked(t, syncKey(skContact, d.Account[:]), st)
}

// syncContactAddLocked tells the other devices that contact c was added
// or its name or card changed here.
func (n *Node) syncContactAddLocked(t *txn, c *contact, now time.Time) msync.Clock {
	clock := n.tickLocked(t, now)
	n.syncLocalLocked(t, &msync.ContactAdd{Account: c.account(), Clock: clock, Name: c.rec.Name, Card: c.rec.Card}, now)
	return clock
}

// syncContactRemoveLocked tells the other devices that contact c is
// removed here: the remove takes away the adds this device saw. It must
// be called before c leaves the address book.
func (n *Node) syncContactRemoveLocked(t *txn, c *contact, now time.Time) {
	st, err := n.contactStateLocked(t, c.account())
	if err != nil {
		n.log.Warn("sync state not read", "err", err)
		st = n.derivedContactState(c)
	}
	n.syncLocalLocked(t, &msync.ContactRemove{Account: c.account(), Clock: n.tickLocked(t, now),
		Seen: slices.Clone(st.Added)}, now)
}

// syncMessageLocked tells the other devices about a 1:1 change in the
// conversation with acc: a text or reply sent here (Transcript), one
// received (Incoming), or an edit, recall or reaction by actor.
func (n *Node) syncMessageLocked(t *txn, acc identity.AccountID, actor identity.AccountID, p *payload, now time.Time) {
	conv := contactConv(acc)
	var m msync.Message
	switch p.Type {
	case ptText:
		r := msync.Record{Conv: conv, ID: p.ID, Author: actor, TimeMS: p.TimeMS, ReplyTo: p.Target, Text: p.Text}
		if actor == n.cert.Account() {
			r.AuthorDevice = n.cert.DeviceID()
			m = &msync.Transcript{Record: r}
		} else {
			m = &msync.Incoming{Record: r}
		}
	case ptEdit:
		m = &msync.Edit{Conv: conv, Target: p.Target, Actor: actor, Clock: n.actionClockLocked(t, actor, p, now), Text: p.Text}
	case ptDelete:
		m = &msync.Delete{Conv: conv, Target: p.Target, Actor: actor, Clock: n.actionClockLocked(t, actor, p, now)}
	case ptReaction:
		m = &msync.Reaction{Conv: conv, Target: p.Target, Actor: actor, Clock: n.actionClockLocked(t, actor, p, now),
			Emoji: p.Text, Remove: p.Flags&flagRemove != 0}
	default:
		return
	}
	n.syncLocalLocked(t, m, now)
}

// actionClockLocked is the clock of an edit, delete or reaction: the
// author's, as its payload carries it (sync.md §18.10 item 7); for a
// payload without one (an older version), its time in milliseconds; for
// one made here without one, a fresh tick.
func (n *Node) actionClockLocked(t *txn, actor identity.AccountID, p *payload, now time.Time) msync.Clock {
	switch {
	case !p.Clock.IsZero():
		n.observeClockLocked(t, p.Clock)
		return p.Clock
	case actor == n.cert.Account():
		return n.tickLocked(t, now)
	}
	return msync.Clock{Lamport: max(p.TimeMS, 1)}
}

// snapshotLocked returns this account's synced state as a replica: the
// history transfer's Source (msync.NewProducer). It holds the device
// list, the read_receipts setting, every contact of the address book
// (message requests left out) and every stored contact state (removed
// ones too, so the removal carries), every 1:1 message (not the system
// notices) from sinceMS (Unix ms; 0: all) on, and a read marker per
// conversation. Groups are left out for now. An object whose state does
// not encode (a record from an older version over today's limits) is
// left out.
func (n *Node) snapshotLocked(sinceMS uint64) (*msync.Replica, error) {
	r := msync.NewReplica(n.cert.Account())
	add := func(m msync.Message) {
		if _, err := r.Apply(m); err != nil {
			n.log.Debug("snapshot: object left out", "kind", m.Kind().String(), "err", err)
		}
	}
	if n.list != nil {
		add(&msync.DeviceList{List: n.list})
	}
	stored := struct {
		msgs     map[msync.MessageID]*msync.MessageState
		contacts map[identity.AccountID]*msync.ContactState
		markers  map[msync.Conversation]*msync.ReadMarker
		settings map[string]*msync.Setting
	}{map[msync.MessageID]*msync.MessageState{}, map[identity.AccountID]*msync.ContactState{},
		map[msync.Conversation]*msync.ReadMarker{}, map[string]*msync.Setting{}}
	err := n.syncTable().Scan(func(_, v []byte) error {
		m, err := msync.Parse(v)
		if err != nil {
			return fmt.Errorf("node: stored sync state: %w", err)
		}
		switch m := m.(type) {
		case *msync.MessageState:
			stored.msgs[m.ID] = m
		case *msync.ContactState:
			stored.contacts[m.Account] = m
		case *msync.ReadMarker:
			stored.markers[m.Conv] = m
		case *msync.Setting:
			stored.settings[m.Key] = m
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if s := stored.settings[settingReadReceipts]; s != nil {
		add(s)
	} else if n.settings.NoReadReceipts {
		add(&msync.Setting{Key: settingReadReceipts, Clock: derivedClock(1, n.cert.DeviceID()), Value: []byte("off")})
	}
	for _, s := range stored.contacts {
		add(s)
	}
	for acc, c := range n.contacts {
		if c.rec.Request {
			continue
		}
		if stored.contacts[acc] == nil {
			add(n.derivedContactState(c))
		}
		conv := contactConv(acc)
		var marker *msync.ReadMarker
		err := n.tabs.messages.ScanSeq(acc[:], 0, ^uint64(0), func(_ uint64, v []byte) error {
			var m msgRec
			if err := decodeMsgRec(v, &m); err != nil {
				return err
			}
			if m.Dir == dirSystem {
				return nil
			}
			id, err := parseMsgID(m.ID)
			if err != nil {
				return nil
			}
			ms := recTimeMS(&m)
			if m.Dir == "in" && m.State == StateRead && (marker == nil || markerCompare(ms, id, marker.TimeMS, marker.ID) > 0) {
				marker = &msync.ReadMarker{Conv: conv, TimeMS: ms, ID: id}
			}
			st := stored.msgs[id]
			delete(stored.msgs, id)
			if st == nil {
				if st, err = n.stateFromRecLocked(c, &m); err != nil {
					return nil
				}
			} else if m.Dir == "out" {
				st.Status = max(st.Status, stateOfRec(m.State)) // recordLocalLocked leaves Status to the record
			}
			if st.Record != nil && st.Record.TimeMS < sinceMS {
				return nil
			}
			add(st)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if marker != nil {
			add(marker)
		}
	}
	for gid := range n.groups {
		if err := n.groupHistoryLocked(gid, sinceMS, add); err != nil {
			return nil, err
		}
	}
	for _, mk := range stored.markers {
		add(mk)
	}
	for _, st := range stored.msgs { // waiting for their contact
		if st.Conv.Kind == msync.ConvContact && (st.Record == nil || st.Record.TimeMS >= sinceMS) {
			add(st)
		}
	}
	return r, nil
}
