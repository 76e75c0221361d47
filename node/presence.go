package node

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/hushnet/hush/crypto/identity"
	msync "github.com/hushnet/hush/sync"
)

// Presence (docs/protocol/presence.md): opt-in, off by default. A device
// with presence on tells each contact device it is directly connected to
// that it opted in (an announce); to a device that has said the same on
// the current connection it sends its status (online, or gone offline,
// with its last active time) and refreshes it every heartbeat. Presence
// payloads go only on a live direct connection (outRec.DirectOnly):
// never to a relay mailbox, never over a relay's circuit, never retried.
// What contacts said is kept in memory only.

// DefaultPresenceHeartbeat is how often a device with presence on
// refreshes its status to the contacts it is directly connected to.
const DefaultPresenceHeartbeat = 3 * time.Minute

// presenceGoodbyeWait bounds how long the end of Run waits for the "gone
// offline" statuses to be taken.
const presenceGoodbyeWait = 2 * time.Second

// settingPresence is the synced setting of the account's presence ("on",
// "off").
const settingPresence = "presence"

// presenceLink is what this device and one contact device have told each
// other on their current direct connection; a new connection starts it
// again.
type presenceLink struct {
	told       bool // this device told it "opted in" (announce or status)
	confirmed  bool // it told this device it opted in
	statusSent bool // it has this device's status
	owed       bool // it is owed an answer now: a status (on) or an opt-out (off)
}

// deviceStatus is the last status a contact's device sent.
type deviceStatus struct {
	online bool
	at     time.Time // last active, as the device said it (never after heard)
	heard  time.Time // when it arrived, by this device's clock
}

// presenceState holds the presence of contacts and what this device told
// whom. It owns its lock, taken after Node.mu, never before; the setting
// itself is settingsRec.Presence, under Node.mu.
type presenceState struct {
	kick chan struct{} // cap 1: a round is due (setting changed, a new connection, an answer owed)

	// mu guards the maps.
	mu    sync.Mutex
	links map[identity.DeviceID]*presenceLink
	fresh map[peer.ID]bool // peers with a new connection whose links start again
	seen  map[identity.AccountID]map[identity.DeviceID]deviceStatus
	shown map[identity.AccountID]Presence // what the last presence event said, per account

	// Payloads queued, by kind, direct-only entries dropped for want of a
	// direct connection, and heartbeat rounds done (tests and figures).
	announces, statuses, optOuts, dropped, beats atomic.Int64
}

func newPresenceState() *presenceState {
	return &presenceState{
		kick:  make(chan struct{}, 1),
		links: make(map[identity.DeviceID]*presenceLink),
		fresh: make(map[peer.ID]bool),
		seen:  make(map[identity.AccountID]map[identity.DeviceID]deviceStatus),
		shown: make(map[identity.AccountID]Presence),
	}
}

func (ps *presenceState) wake() {
	select {
	case ps.kick <- struct{}{}:
	default:
	}
}

// connected notes a new connection to a peer: what its devices were told
// on an earlier one no longer holds (it may have restarted).
func (ps *presenceState) connected(pid peer.ID) {
	ps.mu.Lock()
	ps.fresh[pid] = true
	ps.mu.Unlock()
	ps.wake()
}

// linkLocked returns the link of device id (at peer pid), started again
// if the peer connected anew since.
func (ps *presenceState) linkLocked(id identity.DeviceID, pid peer.ID) *presenceLink {
	l := ps.links[id]
	if l == nil || ps.fresh[pid] {
		delete(ps.fresh, pid)
		l = &presenceLink{}
		ps.links[id] = l
	}
	return l
}

// presenceHeartbeat is the configured heartbeat.
func (n *Node) presenceHeartbeat() time.Duration {
	if n.cfg.PresenceHeartbeat > 0 {
		return n.cfg.PresenceHeartbeat
	}
	return DefaultPresenceHeartbeat
}

// presenceFresh is how long a device's "online" holds without a newer
// status: two heartbeats and a half.
func (n *Node) presenceFresh() time.Duration { return n.presenceHeartbeat() * 5 / 2 }

// SetPresence turns this account's presence on or off (default off). It
// syncs to the account's other devices. Off takes effect at once: the
// contacts that had it are told (directly, once), nothing more is sent,
// and the contacts' presence is no longer shown here either.
func (n *Node) SetPresence(on bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.now()
	prev := n.settings.Presence
	n.settings.Presence = on
	t := n.newTxnLocked()
	t.undo(func() { n.settings.Presence = prev })
	putJSON(t.b, n.tabs.identity, idSettings, &n.settings)
	n.syncLocalLocked(t, &msync.Setting{Key: settingPresence, Clock: n.tickLocked(t, now), Value: []byte(onOff(on))}, now)
	if !on {
		t.events = append(t.events, n.hidePresenceLocked()...)
	}
	err := n.commitReleasingLock(t)
	n.presence.wake()
	return err
}

// Presence reports this account's presence setting.
func (n *Node) Presence() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.settings.Presence
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// applyPresenceSettingLocked takes the setting from another device of
// the account.
func (n *Node) applyPresenceSettingLocked(t *txn, on bool) {
	if on == n.settings.Presence {
		return
	}
	prev := n.settings.Presence
	t.undo(func() { n.settings.Presence = prev })
	n.settings.Presence = on
	putJSON(t.b, n.tabs.identity, idSettings, &n.settings)
	if !on {
		t.events = append(t.events, n.hidePresenceLocked()...)
	}
	n.presence.wake()
}

// hidePresenceLocked forgets every contact's presence (this account
// turned it off) and returns the events that say so.
func (n *Node) hidePresenceLocked() []Event {
	ps := n.presence
	ps.mu.Lock()
	defer ps.mu.Unlock()
	clear(ps.seen)
	var evs []Event
	for acc := range ps.shown {
		if c := n.contacts[acc]; c != nil {
			evs = append(evs, Event{Type: EventPresence, From: c.rec.Name})
		}
	}
	clear(ps.shown)
	return evs
}

// presenceOfLocked is what this device shows of an account's presence:
// nil unless both have presence on and one of its devices sent a status.
func (n *Node) presenceOfLocked(acc identity.AccountID, now time.Time) *Presence {
	if !n.settings.Presence || n.blockedLocked(acc) {
		return nil
	}
	n.presence.mu.Lock()
	defer n.presence.mu.Unlock()
	return n.presence.visibleLocked(acc, now, n.presenceFresh())
}

func (ps *presenceState) visibleLocked(acc identity.AccountID, now time.Time, fresh time.Duration) *Presence {
	devs := ps.seen[acc]
	if len(devs) == 0 {
		return nil
	}
	var p Presence
	for _, st := range devs {
		if st.online && now.Sub(st.heard) <= fresh {
			p.Online = true
		}
		if st.at.After(p.LastSeen) {
			p.LastSeen = st.at
		}
	}
	p.LastSeen = p.LastSeen.UTC()
	return &p
}

// presenceChangedLocked adds a presence event for contact c to t if what
// this device shows of it changed (known or not, online or not).
func (n *Node) presenceChangedLocked(t *txn, c *contact, now time.Time) {
	acc := c.account()
	hidden := !n.settings.Presence || n.blockedLocked(acc)
	n.presence.mu.Lock()
	defer n.presence.mu.Unlock()
	if ev, ok := n.presence.changeLocked(acc, hidden, now, n.presenceFresh()); ok {
		ev.From = c.rec.Name
		t.events = append(t.events, ev)
	}
}

func (ps *presenceState) changeLocked(acc identity.AccountID, hidden bool, now time.Time, fresh time.Duration) (Event, bool) {
	var p *Presence
	if !hidden {
		p = ps.visibleLocked(acc, now, fresh)
	}
	prev, shown := ps.shown[acc]
	switch {
	case p == nil && !shown:
		return Event{}, false
	case p == nil:
		delete(ps.shown, acc)
		return Event{Type: EventPresence}, true
	case shown && prev.Online == p.Online && (p.Online || prev.LastSeen.Equal(p.LastSeen)):
		return Event{}, false // a heartbeat: nothing a client shows changed
	}
	ps.shown[acc] = *p
	return Event{Type: EventPresence, Presence: p}, true
}

// applyPresenceLocked takes a presence payload from contact c's device
// dev. One that came through a mailbox is stale (and was never sent so
// by this version): it is ignored, as is one from a message request.
func (n *Node) applyPresenceLocked(t *txn, c *contact, dev identity.DeviceID, p *payload, now time.Time) {
	if t.viaMailbox || c.rec.Request {
		return
	}
	pid, ok := n.peerOfLocked(dev)
	if !ok {
		return
	}
	on := n.settings.Presence
	now = n.now()
	ps := n.presence
	ps.mu.Lock()
	l := ps.linkLocked(dev, pid)
	acc := c.account()
	if p.Flags&presOptIn == 0 {
		// It turned presence off: nothing more goes to it, and what it
		// said is forgotten.
		l.confirmed, l.statusSent, l.owed = false, false, false
		delete(ps.seen[acc], dev)
		if len(ps.seen[acc]) == 0 {
			delete(ps.seen, acc)
		}
		ps.mu.Unlock()
		n.presenceChangedLocked(t, c, now)
		return
	}
	first := !l.confirmed
	l.confirmed = true
	status := p.Flags&presStatus != 0
	switch {
	case status && !on:
		l.owed = true // it believes this account is in: tell it otherwise
	case status:
		at := time.UnixMilli(int64(min(p.TimeMS, uint64(now.UnixMilli()))))
		if ps.seen[acc] == nil {
			ps.seen[acc] = make(map[identity.DeviceID]deviceStatus)
		}
		ps.seen[acc][dev] = deviceStatus{online: p.Flags&presOnline != 0, at: at, heard: now}
	}
	if on && (!status || first) {
		l.owed = true // an announce asks for an answer; a first status gets one
	}
	owed := l.owed
	ps.mu.Unlock()
	if status && on {
		n.presenceChangedLocked(t, c, now)
	}
	if owed {
		ps.wake()
	}
}

// presenceLoop sends presence when it is due: at each heartbeat, and when
// woken (the setting changed, a new connection, an answer owed).
func (n *Node) presenceLoop(ctx context.Context) {
	tick := time.NewTicker(n.presenceHeartbeat())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			n.presenceRound(true)
		case <-n.presence.kick:
			n.presenceRound(false)
		}
	}
}

// presenceSend is one presence payload to queue.
type presenceSend struct {
	c     *contact
	dev   identity.DeviceID
	flags uint8
}

// presenceRound queues what each directly connected contact device is
// due: an announce, a status (on a heartbeat, to every device that opted
// in), or an opt-out; and publishes the presence that went stale.
func (n *Node) presenceRound(heartbeat bool) {
	if heartbeat {
		defer n.presence.beats.Add(1)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.host == nil || n.closed {
		return
	}
	now := n.now()
	on := n.settings.Presence
	t := n.newTxnLocked()
	t.directOnly = true
	ps := n.presence
	ps.mu.Lock()
	var sends []presenceSend
	n.eachPresenceDeviceLocked(func(c *contact, id identity.DeviceID) {
		pid, ok := n.peerOfLocked(id)
		if !ok || !n.directConnLocked(pid) {
			delete(ps.links, id) // no connection: a new one starts again
			return
		}
		l := ps.linkLocked(id, pid)
		var flags uint8
		switch {
		case on && l.confirmed && (l.owed || !l.statusSent || heartbeat):
			flags = presOptIn | presStatus | presOnline
			l.told, l.statusSent = true, true
		case on && !l.confirmed && !l.told:
			flags = presOptIn // the announce
			l.told = true
		case !on && (l.told || l.owed):
			flags = 0 // opted out
			l.told, l.statusSent = false, false
		default:
			return
		}
		l.owed = false
		sends = append(sends, presenceSend{c: c, dev: id, flags: flags})
	})
	clear(ps.fresh) // every connected contact device has taken its own; the rest are not contacts'
	var stale []identity.AccountID
	if heartbeat {
		for acc := range ps.shown {
			stale = append(stale, acc)
		}
	}
	ps.mu.Unlock()
	for _, s := range sends {
		n.presenceToLocked(t, s, now)
	}
	for _, acc := range stale {
		if c := n.contacts[acc]; c != nil && !c.rec.Request {
			n.presenceChangedLocked(t, c, now)
			continue
		}
		ps.mu.Lock() // a removed contact: its presence goes with it
		delete(ps.seen, acc)
		delete(ps.shown, acc)
		ps.mu.Unlock()
	}
	if t.b.Len() == 0 && len(t.events) == 0 && len(t.queued) == 0 {
		return
	}
	// No saveSeqLocked: direct-only entries are never stored, so the
	// sequence numbers they took need not survive a restart.
	n.commitForJobReleasingLock(t, "presence")
}

// eachPresenceDeviceLocked calls fn for each device of each contact
// presence may go to: contacts, not requests, that can be sent to.
func (n *Node) eachPresenceDeviceLocked(fn func(c *contact, id identity.DeviceID)) {
	for _, c := range n.contacts {
		if c.rec.Request || n.sendableLocked(c) != nil {
			continue
		}
		for _, d := range c.card.List.Devices() {
			fn(c, d.DeviceID())
		}
	}
}

// presenceToLocked encrypts one presence payload for a contact device it
// has a session with, as a direct-only entry of t.
func (n *Node) presenceToLocked(t *txn, s presenceSend, now time.Time) bool {
	cert := s.c.card.List.Device(s.dev)
	if cert == nil {
		return false
	}
	set, err := n.setForLocked(cert)
	if err != nil || !set.HasSession() {
		return false // presence opens no session
	}
	p := &payload{Type: ptPresence, ID: newMessageID(), Flags: s.flags}
	if s.flags&presStatus != 0 {
		p.TimeMS = uint64(now.UnixMilli())
	}
	if err := n.encryptToCardLocked(t, s.c.card, s.c.rec.Name, &s.dev, p, false, now); err != nil {
		n.log.Debug("presence not queued", "err", err)
		return false
	}
	switch {
	case s.flags&presStatus != 0:
		n.presence.statuses.Add(1)
	case s.flags&presOptIn != 0:
		n.presence.announces.Add(1)
	default:
		n.presence.optOuts.Add(1)
	}
	return true
}

// presenceGoodbye tells the contact devices that have this device's
// status that it goes offline, directly, before Run stops: the delivery
// loops are stopping, so it writes the entries itself, waiting at most
// presenceGoodbyeWait.
func (n *Node) presenceGoodbye() {
	n.mu.Lock()
	if !n.settings.Presence || n.host == nil || n.closed {
		n.mu.Unlock()
		return
	}
	now := n.now()
	t := n.newTxnLocked()
	t.directOnly = true
	ps := n.presence
	ps.mu.Lock()
	var sends []presenceSend
	n.eachPresenceDeviceLocked(func(c *contact, id identity.DeviceID) {
		l := ps.links[id]
		if pid, ok := n.peerOfLocked(id); ok && l != nil && l.confirmed && l.statusSent && !ps.fresh[pid] && n.directConnLocked(pid) {
			sends = append(sends, presenceSend{c: c, dev: id, flags: presOptIn | presStatus})
		}
	})
	ps.mu.Unlock()
	for _, s := range sends {
		n.presenceToLocked(t, s, now)
	}
	entries := t.queued
	t.queued = nil // they go from here, not from the stopping loops
	for _, e := range entries {
		if q := n.queues[e.device]; q != nil {
			q.pending = slices.DeleteFunc(q.pending, func(p *outEntry) bool { return p == e })
		}
	}
	if t.b.Len() == 0 {
		n.mu.Unlock()
		return
	}
	err := n.commitReleasingLock(t)
	type target struct {
		pid peer.ID
		e   *outEntry
	}
	var targets []target
	for _, e := range entries {
		if pid, ok := n.peerOfLocked(e.device); ok {
			e.durable = true
			targets = append(targets, target{pid, e})
		}
	}
	n.mu.Unlock()
	if err != nil || len(targets) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), presenceGoodbyeWait)
	defer cancel()
	var wg sync.WaitGroup
	for _, tg := range targets {
		wg.Go(func() {
			s, err := n.openMsgStream(ctx, tg.pid)
			if err != nil {
				return
			}
			defer s.Reset()
			if relayedConn(s.Conn()) {
				return
			}
			stop := context.AfterFunc(ctx, func() { s.Reset() })
			defer stop()
			if err := n.deliverOnce(s, []*outEntry{tg.e}); err != nil {
				n.log.Debug("offline status not delivered", "err", err)
			}
		})
	}
	wg.Wait()
}

// directConnLocked reports whether the host has a live direct connection
// (not a relay's circuit) to pid.
func (n *Node) directConnLocked(pid peer.ID) bool {
	if n.host == nil {
		return false
	}
	for _, c := range n.host.Network().ConnsToPeer(pid) {
		if !relayedConn(c) {
			return true
		}
	}
	return false
}

// relayedConn reports whether c runs through a relay's circuit.
func relayedConn(c network.Conn) bool {
	if c.Stat().Limited {
		return true
	}
	_, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// dropDirectOnlyLocked removes q's direct-only entries (presence) from
// what it has pending, and returns batch without them: they go on a live
// direct connection or not at all.
func (n *Node) dropDirectOnlyLocked(q *peerQueue, batch []*outEntry) []*outEntry {
	before := len(q.pending)
	q.pending = deleteDirectOnly(q.pending)
	n.presence.dropped.Add(int64(before - len(q.pending)))
	return deleteDirectOnly(batch)
}

// dropDirectOnly is dropDirectOnlyLocked taking the lock.
func (n *Node) dropDirectOnly(q *peerQueue, batch []*outEntry) []*outEntry {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dropDirectOnlyLocked(q, batch)
}

func deleteDirectOnly(es []*outEntry) []*outEntry { return slices.DeleteFunc(es, isDirectOnly) }

func isDirectOnly(e *outEntry) bool { return e.DirectOnly }
