package node

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/internal/store"
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

// keepNewerSettingLocked stores s if it is newer than the value held
// for its key (last writer wins: the higher clock, then the higher
// value), and says whether it was.
func (n *Node) keepNewerSettingLocked(t *txn, s *msync.Setting) (bool, error) {
	key := syncKey(skSetting, []byte(s.Key))
	cur, err := n.getSyncLocked(t, key)
	if err != nil {
		return false, err
	}
	if cs, ok := cur.(*msync.Setting); ok && cmp.Or(s.Clock.Compare(cs.Clock), bytes.Compare(s.Value, cs.Value)) <= 0 {
		return false, nil
	}
	return true, n.putSyncLocked(t, key, s)
}

// applySettingLocked keeps the last writer's value of a synced setting
// and applies it: read_receipts and presence ("on", "off"); others are
// left alone.
func (n *Node) applySettingLocked(t *txn, s *msync.Setting) (bool, error) {
	if s.Key != settingReadReceipts && s.Key != settingPresence {
		return false, nil
	}
	if newer, err := n.keepNewerSettingLocked(t, s); !newer || err != nil {
		return false, err
	}
	if s.Key == settingPresence {
		n.applyPresenceSettingLocked(t, string(s.Value) == "on")
		return true, nil
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
			n.saveSeqLocked(t)
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
// received from actor's device dev (Incoming), or an edit, recall or
// reaction by actor.
func (n *Node) syncMessageLocked(t *txn, acc, actor identity.AccountID, dev identity.DeviceID, p *payload, now time.Time) {
	conv := contactConv(acc)
	var m msync.Message
	switch p.Type {
	case ptText:
		if !n.hasOtherDevicesLocked() {
			return // a transcript or copy only tells other devices, and a record is its own state
		}
		r := msync.Record{Conv: conv, ID: p.ID, Author: actor, AuthorDevice: dev, TimeMS: p.TimeMS, ReplyTo: p.Target,
			Text: p.Text, Attachment: p.Attach}
		if actor == n.cert.Account() {
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
