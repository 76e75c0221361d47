package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/node/group"
	msync "github.com/hushnet/hush/sync"
)

// This file is the node's side of the account's other devices
// (docs/protocol/sync.md §18.3, §18.5, §18.7): what each of them
// published about itself, the routing to them, sync messages out and the
// device list's changes (link, revoke). Linking itself is in link.go and
// join.go.

// JoinOptions configures JoinDevice.
type JoinOptions struct {
	// Code is the link code `hush device link` printed on the existing
	// device (text form). A home whose transfer was interrupted resumes
	// without one.
	Code string
	// Name is this device's name, 1 to 64 bytes (default
	// DefaultDeviceName).
	Name string
	// HistoryDays limits the messages transferred to the last N days;
	// 0 means all.
	HistoryDays uint32
	// Now, if set, is the clock the history window counts back from
	// (tests; default time.Now).
	Now func() time.Time
	// Passphrase protects the new store (empty: a 0600 key file).
	Passphrase []byte
	// KDF overrides the Argon2id costs (tests).
	KDF KDFParams
	// Progress, if set, is called as history items are stored.
	Progress func(p HistoryProgress)
}

// Device errors the API and CLI branch on.
var (
	ErrUnknownDevice = errors.New("unknown device (see `hush device list`)")
	ErrRevokeSelf    = errors.New("a device cannot revoke itself; run `hush device revoke` on another device of the account")
	ErrRevoked       = errors.New("this device was removed from its account (revoked on another device)")
	ErrNoAccountKey  = errors.New("this device does not hold the account key")
	// ErrDeviceListFull: the account has identity.MaxDevices devices.
	ErrDeviceListFull = msync.ErrDeviceListFull
)

// Records in the identity table about linking.
var (
	idLinkTicket = []byte("linkticket") // the new device's resume ticket (until the transfer completes)
	idLinkCode   = []byte("linkcode")   // where the existing device is reached (the code, secret zeroed)
	idTransfer   = []byte("transfer")   // the history transfer's state (msync.TransferState)
	idRevoked    = []byte("revoked")    // this device learnt it was revoked
	idListPrev   = []byte("listprev")   // the list the current one replaced (the base of a fork)
)

// maxHeldSync bounds the sync messages held for one device whose card
// entry has not arrived yet (a new device that has not run yet).
const maxHeldSync = 20000

// ownDevices is what this device knows about the account's other
// devices. Node.mu guards it.
type ownDevices struct {
	infos    map[identity.DeviceID]*msync.DeviceInfo // as each device published itself
	siblings *card.Card                              // routing card of the other devices (nil: rebuild)
	infoSent string                                  // key of this device's entry as last published
	offer    *msync.Offer                            // the current link code, if any
	linking  bool                                    // a link or resume is being served
	revoked  bool
	// linkFails counts failed link handshakes per peer (link.go).
	linkFails linkFailures
	// farewell routes the last message to devices revoked during this
	// run: the new list, so that an honest one deletes its account key.
	farewell map[identity.DeviceID]*card.Card
}

func (n *Node) loadDevicesLocked() error {
	n.own.infos = make(map[identity.DeviceID]*msync.DeviceInfo)
	err := n.tabs.devices.Scan(func(id, v []byte) error {
		m, err := msync.Parse(v)
		if err != nil {
			return fmt.Errorf("node: stored device info: %w", err)
		}
		info, ok := m.(*msync.DeviceInfo)
		if !ok {
			return errors.New("node: stored device info of another kind")
		}
		n.own.infos[info.Device] = info
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := n.tabs.identity.Get(idRevoked); err == nil {
		n.own.revoked = true
	}
	if b, err := n.tabs.identity.Get(idLinkSent); err == nil {
		n.own.infoSent = string(b)
	}
	return nil
}

// idLinkSent records the key of the entry this device last published.
var idLinkSent = []byte("infosent")

// entryOf returns the card entry a device published, if any.
func entryOf(info *msync.DeviceInfo) *card.Device {
	if info == nil || len(info.Entry) == 0 {
		return nil
	}
	c, err := card.ParseStored(info.Entry)
	if err != nil {
		return nil
	}
	return c.Device(info.Device)
}

// otherEntriesLocked returns the card entries of the other listed
// devices that published one.
func (n *Node) otherEntriesLocked() []card.Device {
	var out []card.Device
	for _, d := range n.list.Devices() {
		id := d.DeviceID()
		if id == n.cert.DeviceID() {
			continue
		}
		if e := entryOf(n.own.infos[id]); e != nil {
			out = append(out, *e)
		}
	}
	return out
}

// hasOtherDevicesLocked reports whether the account lists a device
// besides this one.
func (n *Node) hasOtherDevicesLocked() bool { return n.list.Len() > 1 }

// siblingsLocked returns a card that routes to the account's other
// devices: the current list and the entries they published. It is for
// this device's own use (outbox, sessions) and is never sent: it is not
// signed.
func (n *Node) siblingsLocked() *card.Card {
	if n.own.siblings == nil || n.own.siblings.List != n.list {
		n.own.siblings = &card.Card{Name: n.profile.Name, List: n.list, Devices: n.otherEntriesLocked()}
	}
	return n.own.siblings
}

// ownChangedLocked drops what was built from the list and the entries.
func (n *Node) ownChangedLocked() {
	n.own.siblings = nil
	n.ownCard = nil
}

// syncOutLocked tells the account's other devices about a change made
// here, in transaction t: the message is encrypted to each of them and
// queued in the outbox with t (docs/protocol/sync.md §18.5). With no
// other device it does nothing. A device whose entry (prekeys, route)
// has not arrived yet gets it held, and sent when the entry comes.
func (n *Node) syncOutLocked(t *txn, m msync.Message, now time.Time) {
	if !n.hasOtherDevicesLocked() || n.own.revoked {
		return
	}
	data, err := msync.Marshal(m)
	if err != nil {
		n.log.Warn("sync message not sent", "kind", m.Kind().String(), "err", err)
		return
	}
	n.publishInfoLocked(t, now)
	n.syncBytesLocked(t, data, nil, now)
}

// syncBytesLocked sends an encoded sync message to the other devices (or
// only one).
func (n *Node) syncBytesLocked(t *txn, data []byte, only *identity.DeviceID, now time.Time) {
	sib := n.siblingsLocked()
	for _, d := range n.list.Devices() {
		id := d.DeviceID()
		if id == n.cert.DeviceID() || (only != nil && id != *only) {
			continue
		}
		if sib.Device(id) == nil {
			n.holdSyncLocked(t, id, data)
			continue
		}
		p := &payload{Type: ptSync, ID: newMessageID(), TimeMS: uint64(now.UnixMilli()), Data: data}
		if err := n.encryptToCardLocked(t, sib, "your other device", &id, p, false, now); err != nil {
			n.log.Warn("sync message not queued", "err", err)
		}
	}
}

// holdSyncLocked keeps a sync message for a device without an entry.
func (n *Node) holdSyncLocked(t *txn, id identity.DeviceID, data []byte) {
	seq := n.nextSeqLocked()
	t.b.PutSeq(n.tabs.syncHeld, id[:], seq, data)
	if seq > maxHeldSync { // drop the oldest beyond the bound
		n.tabs.syncHeld.ScanSeq(id[:], 0, seq-maxHeldSync, func(s uint64, _ []byte) error {
			t.b.DeleteSeq(n.tabs.syncHeld, id[:], s)
			return nil
		})
	}
}

// releaseHeldSyncLocked sends what was held for a device that now has an
// entry.
func (n *Node) releaseHeldSyncLocked(t *txn, id identity.DeviceID, now time.Time) {
	n.tabs.syncHeld.ScanSeq(id[:], 0, ^uint64(0), func(seq uint64, v []byte) error {
		n.syncBytesLocked(t, v, &id, now)
		t.b.DeleteSeq(n.tabs.syncHeld, id[:], seq)
		return nil
	})
}

// ownInfoLocked returns this device's DeviceInfo as it stands: its name
// and a card of the account naming only this device (its prekey bundle,
// peer, addresses and mailboxes), with a fresh clock.
func (n *Node) ownInfoLocked(t *txn, now time.Time) (*msync.DeviceInfo, error) {
	if n.account == nil {
		return nil, ErrNoAccountKey
	}
	var c *card.Card
	var err error
	if n.host != nil {
		c, err = buildCard(n.account, n.profile.Name, n.list, n.cert, n.local.Prekeys, n.host.ID(), n.host.Addrs(), n.ownMailboxesLocked(), nil, now)
	} else {
		c, err = buildCard(n.account, n.profile.Name, n.list, n.cert, n.local.Prekeys, "", nil, nil, nil, now)
	}
	if err != nil {
		return nil, err
	}
	return &msync.DeviceInfo{Device: n.cert.DeviceID(), Clock: n.tickLocked(t, now), Name: n.deviceNameLocked(), Entry: c.Marshal()}, nil
}

// entryKey digests what this device's published entry says: the list,
// its route and prekey bundle as the card c has them, and its name.
func entryKey(c *card.Card, self identity.DeviceID, name string) string {
	h := sha256.New()
	list := c.List.Hash()
	h.Write(list[:])
	if d := c.Device(self); d != nil {
		h.Write(d.PeerID)
		for _, a := range d.Addrs {
			h.Write(a)
		}
		for _, m := range d.Mailboxes {
			h.Write(m.Relay)
			h.Write(m.DepositID)
		}
		if d.Bundle != nil {
			h.Write(d.Bundle.Marshal())
		}
	}
	h.Write([]byte(name))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func (n *Node) deviceNameLocked() string {
	if n.profile.DeviceName == "" {
		return "device"
	}
	return n.profile.DeviceName
}

// publishInfoLocked sends this device's entry to the other devices if it
// changed since it was last sent.
func (n *Node) publishInfoLocked(t *txn, now time.Time) {
	if !n.hasOtherDevicesLocked() || n.host == nil || n.own.revoked {
		return
	}
	// The cached card says whether the entry changed (cheap); only then
	// is the entry signed anew and its clock ticked.
	own, err := n.ownCardLocked(now)
	if err != nil {
		return
	}
	key := entryKey(own, n.cert.DeviceID(), n.deviceNameLocked())
	if key == n.own.infoSent {
		return
	}
	info, err := n.ownInfoLocked(t, now)
	if err != nil {
		return
	}
	data, err := msync.Marshal(info)
	if err != nil {
		return
	}
	prev := n.own.infoSent
	n.own.infoSent = key
	t.undo(func() { n.own.infoSent = prev })
	t.b.Put(n.tabs.identity, idLinkSent, []byte(key))
	n.syncBytesLocked(t, data, nil, now)
}

// PublishDevice sends this device's entry to the account's other devices
// if it changed (Run calls it once the link is complete).
func (n *Node) publishDevice() error {
	now := n.now()
	n.mu.Lock()
	if !n.hasOtherDevicesLocked() || n.closed {
		n.mu.Unlock()
		return nil
	}
	t := n.newTxnLocked()
	n.publishInfoLocked(t, now)
	n.saveSeqLocked(t)
	return n.commitReleasingLockUnlock(t)
}

// commitReleasingLockUnlock commits t and releases n.mu.
func (n *Node) commitReleasingLockUnlock(t *txn) error {
	err := n.commitReleasingLock(t)
	n.mu.Unlock()
	return err
}

// applyDeviceInfoLocked merges a device's entry (from that device, or
// from the history transfer).
func (n *Node) applyDeviceInfoLocked(t *txn, info *msync.DeviceInfo, now time.Time) bool {
	if info.Device == n.cert.DeviceID() {
		return false // this device's own entry is made here
	}
	n.observeClockLocked(t, info.Clock)
	old := n.own.infos[info.Device]
	if old != nil && (old.Clock.Compare(info.Clock) > 0 || (old.Clock == info.Clock && bytes.Compare(old.Entry, info.Entry) >= 0)) {
		return false
	}
	if len(info.Entry) > 0 && entryOf(info) == nil {
		return false // an entry that does not parse is not stored
	}
	data, err := msync.Marshal(info)
	if err != nil {
		return false
	}
	t.b.Put(n.tabs.devices, info.Device[:], data)
	n.own.infos[info.Device] = info
	t.undo(func() {
		if old == nil {
			delete(n.own.infos, info.Device)
		} else {
			n.own.infos[info.Device] = old
		}
		n.ownChangedLocked()
	})
	n.ownChangedLocked()
	if n.list.Contains(info.Device) {
		sib := n.siblingsLocked()
		n.learnAddrsLocked(sib)
		if q := n.queues[info.Device]; q != nil {
			n.kickLocked(q)
		}
		if old == nil || entryOf(old) == nil {
			n.releaseHeldSyncLocked(t, info.Device, now)
		}
		n.releaseHeldLocked(t, n.cert.Account(), now) // group messages for it
		if _, err := n.tabs.identity.Get(groupAddKey(info.Device)); err == nil && entryOf(info) != nil {
			// This device linked it: now that it can be reached, it
			// joins the account's groups.
			t.b.Delete(n.tabs.identity, groupAddKey(info.Device))
			n.groupDevicesLocked(t, now)
		}
	}
	return true
}

// applyDeviceListLocked adopts a newer list of this account (from
// another device, a contact's copy of the own card, or the history
// transfer). A list without this device means it was revoked.
func (n *Node) applyDeviceListLocked(t *txn, list *identity.DeviceList, now time.Time) bool {
	if list.Account() != n.cert.Account() {
		return false
	}
	if list.Version() == n.list.Version() && list.Hash() != n.list.Hash() {
		return n.repairForkLocked(t, list, now)
	}
	if list.Version() <= n.list.Version() {
		return false
	}
	if err := list.Follows(n.list); err != nil {
		n.log.Warn("device list refused", "err", err)
		return false
	}
	old := n.list
	n.list = list
	t.undo(func() { n.list = old; n.ownChangedLocked() })
	t.b.Put(n.tabs.identity, idList, list.Marshal())
	t.b.Put(n.tabs.identity, idListPrev, old.Marshal())
	n.ownChangedLocked()
	if !list.Contains(n.cert.DeviceID()) {
		n.revokedLocked(t)
		return true
	}
	for _, d := range old.Devices() {
		if id := d.DeviceID(); !list.Contains(id) {
			n.endOwnDeviceLocked(t, id)
			t.events = append(t.events, Event{Type: EventDevice, Device: &DeviceEvent{Phase: "revoked", ID: id.Hex(), Name: n.nameOfDeviceLocked(id)}})
		}
	}
	for _, d := range list.Devices() {
		if id := d.DeviceID(); !old.Contains(id) {
			t.events = append(t.events, Event{Type: EventDevice, Device: &DeviceEvent{Phase: "linked", ID: id.Hex(), Name: n.nameOfDeviceLocked(id)}})
		}
	}
	for _, c := range n.contacts {
		n.routeChangedLocked(c.card)
	}
	return true
}

// repairForkLocked repairs a forked device list (docs/protocol/sync.md
// §18.3): other, of the current list's version with another hash, was
// signed by a device that linked or revoked a device while apart from
// this one. Both sides sign the same repaired list (ResolveFork is
// deterministic), which this device adopts and sends to the others.
func (n *Node) repairForkLocked(t *txn, other *identity.DeviceList, now time.Time) bool {
	if n.account == nil {
		n.log.Warn("forked device list: this device cannot repair it (no account key)")
		return false
	}
	var base *identity.DeviceList
	if b, err := n.tabs.identity.Get(idListPrev); err == nil {
		if l, err := identity.ParseDeviceList(b); err == nil && l.Hash() == n.list.PrevHash() {
			base = l
		}
	}
	if base == nil && n.list.Version() > 1 {
		n.log.Warn("forked device list: the list both replace is not kept; not repaired")
		return false
	}
	repaired, err := msync.ResolveFork(n.account, base, n.list, other)
	if err != nil {
		n.log.Warn("forked device list not repaired", "err", err)
		return false
	}
	if !n.applyDeviceListLocked(t, repaired, now) {
		return false
	}
	n.groupDevicesLocked(t, now)
	n.syncOutLocked(t, &msync.DeviceList{List: repaired}, now)
	n.log.Info("forked device list repaired")
	return true
}

// groupAddKey marks, in the identity table, a device this device linked
// whose entry has not arrived: when it does, the device joins the
// account's groups (groupDevicesLocked).
func groupAddKey(id identity.DeviceID) []byte { return append([]byte("groupadd/"), id[:]...) }

// groupDevicesLocked puts the account's devices as the current list has
// them into every group this device is in (group op Devices,
// docs/protocol/groups.md): an added device gets the group's Welcome and
// every member's sender key; a dropped one starts a new epoch without
// it. Only the device that changed the list calls it.
func (n *Node) groupDevicesLocked(t *txn, now time.Time) {
	for _, gs := range n.groups {
		if !gs.eng.IsMember() {
			continue
		}
		fx, err := gs.eng.SetDevices(n.list, nil)
		if err != nil {
			if !errors.Is(err, group.ErrBadOp) {
				n.log.Warn("group not told of the account's devices", "err", err)
			}
			continue
		}
		if err := n.saveGroupLocked(t, gs); err != nil {
			continue
		}
		n.effectsLocked(t, gs, fx, now)
		g := n.groupViewLocked(gs)
		t.events = append(t.events, Event{Type: EventGroup, Group: &g})
	}
}

// endOwnDeviceLocked ends what this device had with a device dropped
// from the account: sessions, queued messages, held sync messages and
// its entry.
func (n *Node) endOwnDeviceLocked(t *txn, id identity.DeviceID) {
	n.endDeviceLocked(t, id)
	n.tabs.syncHeld.ScanSeq(id[:], 0, ^uint64(0), func(seq uint64, _ []byte) error {
		t.b.DeleteSeq(n.tabs.syncHeld, id[:], seq)
		return nil
	})
	t.b.Delete(n.tabs.devices, id[:])
	delete(n.own.infos, id)
}

// revokedLocked is what an honest device does when it learns it was
// removed from its account: it deletes the account key and every
// session, and from then on refuses to send.
func (n *Node) revokedLocked(t *txn) {
	n.own.revoked = true
	n.account = nil
	t.b.Delete(n.tabs.identity, idAccount)
	t.b.Put(n.tabs.identity, idRevoked, []byte{1})
	for id := range n.sets {
		t.b.Delete(n.tabs.sessions, id[:])
	}
	n.tabs.sessions.Scan(func(id, _ []byte) error {
		t.b.Delete(n.tabs.sessions, id)
		return nil
	})
	clear(n.sets)
	t.events = append(t.events, Event{Type: EventDevice, Device: &DeviceEvent{Phase: "revoked", ID: n.cert.DeviceID().Hex(), Name: n.deviceNameLocked()}})
	n.log.Warn("this device was removed from its account: account key and sessions deleted")
}

func (n *Node) nameOfDeviceLocked(id identity.DeviceID) string {
	if id == n.cert.DeviceID() {
		return n.deviceNameLocked()
	}
	if info := n.own.infos[id]; info != nil {
		return info.Name
	}
	return ""
}

// Devices lists the account's devices, this one first.
func (n *Node) Devices() ([]Device, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Device
	for _, d := range n.list.Devices() {
		id := d.DeviceID()
		out = append(out, Device{ID: id.Hex(), Name: n.nameOfDeviceLocked(id), This: id == n.cert.DeviceID(), Added: d.CreatedAt().UTC()})
	}
	slices.SortStableFunc(out, func(a, b Device) int {
		if a.This != b.This {
			if a.This {
				return -1
			}
			return 1
		}
		return a.Added.Compare(b.Added)
	})
	return out, nil
}

// findDeviceLocked resolves a hex device ID, or a unique prefix of at
// least 8 hex digits, on the current list.
func (n *Node) findDeviceLocked(s string) (identity.DeviceID, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if _, err := hex.DecodeString(s[:len(s)&^1]); err != nil || len(s) < 8 {
		return identity.DeviceID{}, fmt.Errorf("%w: %q is not a device ID (8 to 32 hex digits)", ErrUnknownDevice, s)
	}
	var found []identity.DeviceID
	for _, d := range n.list.Devices() {
		if strings.HasPrefix(d.DeviceID().Hex(), s) {
			found = append(found, d.DeviceID())
		}
	}
	switch len(found) {
	case 0:
		return identity.DeviceID{}, fmt.Errorf("%w %s", ErrUnknownDevice, s)
	case 1:
		return found[0], nil
	}
	return identity.DeviceID{}, fmt.Errorf("%w: %s names %d devices; give more digits", ErrUnknownDevice, s, len(found))
}

// RevokeDevice removes a device (by its hex ID, or a unique prefix of
// at least 8 hex digits) from the account (docs/protocol/sync.md §18.7):
// the account signs a list without it, the other devices get the list,
// every contact gets the new card at once (in a message that shows
// nothing), and the sessions with it end. The revoked device gets the new
// list last (farewellLocked), so that an honest one deletes its account
// key.
func (n *Node) RevokeDevice(idText string) error {
	now := n.now()
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	if err := n.canChangeListLocked(); err != nil {
		n.mu.Unlock()
		return err
	}
	id, err := n.findDeviceLocked(idText)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	if id == n.cert.DeviceID() {
		n.mu.Unlock()
		return ErrRevokeSelf
	}
	var keep []*identity.DeviceCert
	for _, d := range n.list.Devices() {
		if d.DeviceID() != id {
			keep = append(keep, d)
		}
	}
	list, err := n.account.NewDeviceList(n.list, keep, now)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	entry, before := n.siblingsLocked().Device(id), n.list
	t := n.newTxnLocked()
	if !n.applyDeviceListLocked(t, list, now) {
		n.mu.Unlock()
		return errors.New("node: device list not updated")
	}
	n.groupDevicesLocked(t, now) // each group starts an epoch without it
	if entry != nil {
		n.farewellLocked(t, id, entry, before, list, now)
	}
	n.syncOutLocked(t, &msync.DeviceList{List: list}, now)
	for _, c := range n.contacts {
		if c.rec.Request || n.sendableLocked(c) != nil {
			continue
		}
		p := &payload{Type: ptTyping, ID: newMessageID(), TimeMS: uint64(now.UnixMilli())}
		if err := n.encryptToLocked(t, c, p, false, now); err != nil {
			n.log.Debug("new card not sent to a contact", "err", err)
		}
	}
	n.saveSeqLocked(t)
	return n.commitReleasingLockUnlock(t)
}

// farewellLocked sends the new list to a device just revoked, over a
// fresh session from its published entry: an honest device then deletes
// its account key (revokedLocked). The route lives in memory only: after
// a restart the entry is dropped with the other orphans.
func (n *Node) farewellLocked(t *txn, id identity.DeviceID, entry *card.Device, before, list *identity.DeviceList, now time.Time) {
	data, err := msync.Marshal(&msync.DeviceList{List: list})
	if err != nil {
		return
	}
	if n.own.farewell == nil {
		n.own.farewell = make(map[identity.DeviceID]*card.Card)
	}
	c := &card.Card{Name: n.profile.Name, List: before, Devices: []card.Device{*entry}}
	n.own.farewell[id] = c
	p := &payload{Type: ptSync, ID: newMessageID(), TimeMS: uint64(now.UnixMilli()), Data: data}
	if err := n.encryptToCardLocked(t, c, "the revoked device", &id, p, false, now); err != nil {
		n.log.Debug("farewell not queued", "err", err)
	}
}

// canChangeListLocked says whether this device may sign a new list.
func (n *Node) canChangeListLocked() error {
	if n.own.revoked {
		return ErrRevoked
	}
	if n.account == nil {
		return ErrNoAccountKey
	}
	return nil
}

// receiveSyncLocked applies a sync message from another device of this
// account (from: the device it came from).
func (n *Node) receiveSyncLocked(t *txn, from identity.DeviceID, data []byte, now time.Time) {
	m, err := msync.Parse(data)
	if err != nil {
		n.log.Debug("malformed sync message", "err", err)
		return
	}
	if info, ok := m.(*msync.DeviceInfo); ok && info.Device != from {
		return // a device speaks only for itself
	}
	if _, err := n.mergeSyncLocked(t, m, now); err != nil {
		n.log.Debug("sync message not applied", "kind", m.Kind().String(), "err", err)
	}
}

// mergeSyncLocked merges one sync message, from another device or from
// the history transfer: the device list and entries here, the rest by
// applySyncLocked (syncstate.go).
func (n *Node) mergeSyncLocked(t *txn, m msync.Message, now time.Time) (bool, error) {
	switch m := m.(type) {
	case *msync.DeviceList:
		return n.applyDeviceListLocked(t, m.List, now), nil
	case *msync.DeviceInfo:
		return n.applyDeviceInfoLocked(t, m, now), nil
	case *msync.Setting:
		if m.Key == settingProfileName {
			return n.applyProfileNameLocked(t, m), nil
		}
		if strings.HasPrefix(m.Key, settingTimerPrefix) {
			return n.applyTimerSettingLocked(t, m), nil
		}
		if strings.HasPrefix(m.Key, settingBlockPrefix) {
			return n.applyBlockSettingLocked(t, m, now)
		}
	}
	return n.applySyncLocked(t, m, now)
}

// applyProfileNameLocked takes the account's display name from another
// device, last writer wins.
func (n *Node) applyProfileNameLocked(t *txn, m *msync.Setting) bool {
	n.observeClockLocked(t, m.Clock)
	name, err := checkName(string(m.Value))
	if err != nil || m.Clock.Lamport <= n.profile.NameClock {
		return false
	}
	prev := n.profile
	n.profile.Name, n.profile.NameClock = name, m.Clock.Lamport
	t.undo(func() { n.profile = prev; n.ownChangedLocked() })
	putJSON(t.b, n.tabs.identity, idProfile, &n.profile)
	n.ownChangedLocked()
	return true
}
