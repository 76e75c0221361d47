package node

import (
	"context"
	"fmt"
	"slices"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/hushnet/hush/internal/gossip"
	"github.com/hushnet/hush/node/gate"
	"github.com/hushnet/hush/node/group"
	"github.com/hushnet/hush/relay"
)

// Run starts the libp2p host and the delivery loops and serves until ctx
// is done; then it stops everything it started and returns. The store
// stays open until Close.
func (n *Node) Run(ctx context.Context) error {
	key, err := n.hostKey()
	if err != nil {
		return err
	}
	var relays []peer.AddrInfo
	for _, addr := range n.cfg.Relays {
		ri, err := relay.ParseRelayAddr(addr)
		if err != nil {
			return err
		}
		relays = append(relays, ri)
	}
	n.mu.Lock()
	asked := n.cfg.ListenAddrs
	if len(asked) == 0 {
		asked = DefaultListenAddrs
	}
	listen := asked
	remembered := slices.Equal(asked, n.settings.ListenAsked) && len(n.settings.ListenAddrs) > 0
	if remembered {
		listen = n.settings.ListenAddrs
	}
	n.mu.Unlock()
	hcfg := HostConfig{Key: key, ListenAddrs: listen, NoMDNS: n.cfg.NoMDNS, StaticRelays: relays, Logger: n.log,
		ConnLow: n.cfg.Resources.ConnLow, ConnHigh: n.cfg.Resources.ConnHigh,
		MemoryLimit: n.cfg.Resources.MemoryLimit, MaxConns: n.cfg.Resources.MaxConns}
	h, err := newHost(hcfg)
	if err != nil && remembered {
		// Last run's ports are taken: pick new ones (contacts learn them
		// from the next card we send).
		n.log.Warn("previous listen ports unavailable, choosing new ones", "err", err)
		hcfg.ListenAddrs = asked
		h, err = newHost(hcfg)
	}
	if err != nil {
		return err
	}
	defer h.Close()

	runCtx := n.loops.Start(ctx)
	defer n.loops.Stop() // on an early return; a second Stop does nothing
	h.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		n.peerConnected(c)
		n.presence.connected(c.RemotePeer())
	}})

	// GossipSub runs on a guard that keeps group topics to their members'
	// devices and relays (docs/protocol/groups.md §16.11).
	guard := gossip.NewGuard(h, gossip.Members)
	ps, err := pubsub.NewGossipSub(runCtx, guard, append(group.PubSubOptions(), guard.Options()...)...)
	if err != nil {
		return fmt.Errorf("node: gossipsub: %w", err)
	}

	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	n.host, n.ps, n.guard, n.guardTable = h, ps, guard, nil
	for _, c := range n.contacts {
		n.learnAddrsLocked(c.card)
	}
	for _, c := range n.peers { // group members who are not contacts
		n.learnAddrsLocked(c)
	}
	n.learnAddrsLocked(n.siblingsLocked()) // this account's other devices
	if err := n.loadOutboxLocked(); err != nil {
		n.mu.Unlock()
		return fmt.Errorf("node: load outbox: %w", err)
	}
	if err := n.loadGapsLocked(); err != nil { // the gap trackers' timers resume
		n.mu.Unlock()
		return fmt.Errorf("node: load gap trackers: %w", err)
	}
	n.settings.ListenAddrs = boundAddrs(h.Network().ListenAddresses())
	n.settings.ListenAsked = asked
	b := n.db.Batch()
	putJSON(b, n.tabs.identity, idSettings, &n.settings)
	if err := b.Commit(); err != nil {
		n.mu.Unlock()
		return err
	}
	for _, q := range n.queues {
		n.kickLocked(q)
	}
	n.guardBatchLocked(func() {
		for _, gs := range n.groups {
			n.syncTopicsLocked(gs)
		}
	})
	n.loops.Go(n.groupLoop)
	n.loops.Go(n.groupInbox)
	caughtUp := gate.New[peer.ID]()
	for _, ri := range relays {
		caughtUp.Add(ri.ID)
		if n.mailboxes[ri.ID] == nil {
			n.link.Add(ri.ID)
		}
	}
	caughtUp.Seal()
	n.link.Seal()
	n.caughtUp = caughtUp
	n.drained = gate.New[peer.ID]()
	for _, ri := range relays {
		n.drained.Add(ri.ID)
	}
	n.drained.Seal()
	n.loops.Go(func(ctx context.Context) { // relays that do not answer do not hold direct delivery for long
		select {
		case <-time.After(catchUpMax):
		case <-ctx.Done():
		}
		caughtUp.Open()
	})
	for i, ri := range relays {
		h.Peerstore().AddAddrs(ri.ID, ri.Addrs, peerstore.PermanentAddrTTL)
		addr := n.cfg.Relays[i]
		n.loops.Go(func(ctx context.Context) { n.mailboxLoop(ctx, ri, addr) })
	}
	n.mu.Unlock()
	// Served from here on: the host, the catch-up gate and the card a
	// reply may carry all exist now.
	h.SetStreamHandler(ProtocolMsg, n.handleMsgStream)
	h.SetStreamHandler(ProtocolSync, n.handleSyncStream)
	h.SetStreamHandler(ProtocolFile, n.handleFileStream)
	n.loops.Go(n.resumeFetches)
	n.loops.Go(n.expiryLoop)                              // deletes what expired while the node was off first
	n.loops.Go(func(context.Context) { n.searchIndex() }) // warm: built from the store once per unlock
	n.loops.Go(n.linksLoop)
	n.loops.Go(n.resumeLoop)
	n.loops.Go(n.pruneLoop)
	n.loops.Go(n.presenceLoop)
	n.loops.Go(func(ctx context.Context) { // the other devices learn this one's route
		if n.WaitLink(ctx) == nil {
			if err := n.publishDevice(); err != nil {
				n.log.Warn("device entry not sent to the other devices", "err", err)
			}
		}
	})

	if !n.cfg.NoMDNS {
		stop, err := startMDNS(h, n.log)
		if err != nil {
			n.log.Warn("LAN discovery unavailable", "err", err)
		} else {
			defer stop()
		}
	}
	close(n.ready)
	<-ctx.Done()
	n.presenceGoodbye() // contacts that have this device's status learn it went offline

	h.RemoveStreamHandler(ProtocolMsg)
	h.RemoveStreamHandler(ProtocolSync)
	h.RemoveStreamHandler(ProtocolFile)
	n.mu.Lock()
	for _, gs := range n.groups {
		for name, jt := range gs.topics {
			jt.cancel()
			delete(gs.topics, name)
		}
	}
	n.mu.Unlock()
	n.loops.Stop() // cancels the run and waits for every loop
	n.mu.Lock()
	n.host, n.ps, n.guard = nil, nil, nil
	for _, q := range n.queues {
		q.running = false
	}
	n.mu.Unlock()
	return nil
}

// boundAddrs turns the listener's resolved addresses into config strings.
func boundAddrs(addrs []ma.Multiaddr) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}

// peerConnected wakes the delivery loops waiting for that peer.
func (n *Node) peerConnected(c network.Conn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, q := range n.queues {
		if pid, ok := n.peerOfLocked(id); ok && pid == c.RemotePeer() {
			q.directFailed = time.Time{} // it is back: deliver directly again
			select {
			case q.wake <- struct{}{}:
			default:
			}
		}
	}
}

// SetTyping tells a contact this user is (or stopped) typing. Typing
// indicators are never retried: one that cannot go within a few seconds
// is dropped.
func (n *Node) SetTyping(contactName string, typing bool) error {
	now := n.now()
	n.mu.Lock()
	c, err := n.contactByNameLocked(contactName)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	if err := n.sendableLocked(c); err != nil {
		n.mu.Unlock()
		return err
	}
	p := &payload{Type: ptTyping, ID: newMessageID(), TimeMS: uint64(now.UnixMilli())}
	if typing {
		p.Flags = flagOn
	}
	t := n.newTxnLocked()
	if err := n.encryptToLocked(t, c, p, false, now); err != nil {
		n.dropQueuedLocked(t.queued)
		n.mu.Unlock()
		return err
	}
	for _, e := range t.queued {
		e.Ephemeral = true
	}
	n.saveSeqLocked(t)
	err = n.commitReleasingLock(t)
	n.mu.Unlock()
	return err
}
