package node

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/node/group"
)

// The receive side of the group runner: topic messages are opened,
// applied by the engine and stored; pairwise group payloads (welcomes,
// sender keys, repairs) are applied here too.

// onTopicData handles one group topic message (sealed for its topic,
// group unknown: a relay filed it) and returns once it is durable.
func (n *Node) onTopicData(data []byte) error {
	return n.onGroupWires([]topicMsg{{data: data}}, true)
}

// onGroupWires handles group messages in one transaction. Unless durable
// is set, a transaction that only stores received messages (no outbox
// entry, publication or engine save) is committed lazily, without its own
// fsync (store.Batch.Lazy): a killed process loses nothing, and what a
// power loss takes, anti-entropy fetches again, since the engine's record
// of having seen those messages is lost with them. Callers that
// acknowledge the messages to someone (a relay) pass durable.
//
// It returns an error if the messages were not stored (the node is
// closing, or the commit failed): a relay must then keep them.
func (n *Node) onGroupWires(batch []topicMsg, durable bool) error {
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	t := n.newTxnLocked()
	seq := n.seq
	for _, m := range batch {
		if tap := taps.Load(); tap != nil && tap.topic != nil {
			tap.topic(n)
		}
		if group.IsEphemeral(m.data) {
			n.groupEphemeralLocked(t, m, now)
			continue
		}
		if wire := n.openTopicLocked(m); wire != nil {
			n.groupWireLocked(t, wire, now)
		}
	}
	// A group text takes its place from its sender's clock
	// (groupSeqLocked), not from n.seq: the settings record is rewritten
	// only when something in the batch did allocate a sequence number.
	if n.seq != seq {
		n.saveSeqLocked(t)
	}
	if !durable && len(t.queued) == 0 && len(t.publish) == 0 && !t.groupsChanged {
		t.b.Lazy()
	}
	return n.commitReleasingLock(t) // afterCommitLocked resubscribes if an op changed the topics
}

// openTopicLocked removes the topic layer of a topic message with the
// topic keys of its group (named, or found by its topic), or, when the
// group is not known, of each group this device is in.
func (n *Node) openTopicLocked(m topicMsg) []byte {
	if m.topic != "" {
		for id, gs := range n.groups {
			if gs.topics[m.topic] != nil { // a topic this device listens on
				m.group = id
				break
			}
		}
	}
	if gs := n.groups[m.group]; gs != nil {
		if wire, err := gs.eng.OpenTopic(m.data); err == nil {
			return wire
		}
	}
	for id, gs := range n.groups {
		if id == m.group {
			continue
		}
		if wire, err := gs.eng.OpenTopic(m.data); err == nil {
			return wire
		}
	}
	n.log.Debug("topic message for no group of ours")
	return nil
}

// groupWireLocked applies a group wire message (from a topic once its
// topic layer is removed, or repaired by anti-entropy).
func (n *Node) groupWireLocked(t *txn, data []byte, now time.Time) {
	gid, err := group.WireGroup(data)
	if err != nil {
		n.log.Debug("group message without a group", "err", err)
		return
	}
	gs := n.groups[gid]
	if gs == nil {
		n.log.Debug("message for an unknown group")
		return
	}
	rec, err := gs.eng.Open(data)
	if err != nil {
		n.log.Debug("group message dropped", "err", err)
		return
	}
	t.openedWith(gs)
	// An ordinary message only advances the receiving chains, the replay
	// cache, the seen ranges and the engine's store of recent wire
	// messages: the engine is saved lazily (flushGroupsLocked), with those
	// wire messages (journalLocked), all at once, and the message itself
	// now. After a crash the engine is as it was at its last save, its
	// store and seen ranges agreeing: a message seen again is dropped by
	// its payload ID, and one the seen ranges lack is asked for again by
	// anti-entropy. Anything with effects (an op, keys to send) is saved
	// now; only an op can change the group's topics and members.
	if rec.Op != nil {
		if err := n.saveGroupLocked(t, gs); err != nil {
			return
		}
	} else if len(rec.Effects.Publish) > 0 || len(rec.Effects.Pairwise) > 0 {
		if err := n.saveEngineLocked(t, gs); err != nil {
			return
		}
	} else {
		gs.unsaved = true
	}
	n.effectsLocked(t, gs, &rec.Effects, now)
	if rec.Op != nil {
		if rec.OpErr != nil {
			n.log.Debug("group op not applied", "err", rec.OpErr)
		}
		g := n.groupViewLocked(gs)
		t.events = append(t.events, Event{Type: EventGroup, Group: &g})
		return
	}
	if rec.OpErr != nil {
		n.log.Debug("group message not applied", "err", rec.OpErr)
		return
	}
	p, err := parsePayload(rec.Plaintext)
	if err != nil {
		return
	}
	n.applyGroupPayloadLocked(t, gs, rec.Account, rec.Device, p, now)
}

// applyGroupPayloadLocked applies a message from a group member.
func (n *Node) applyGroupPayloadLocked(t *txn, gs *groupState, from identity.AccountID, dev identity.DeviceID, p *payload, now time.Time) {
	switch p.Type {
	case ptCard:
		n.learnCardLocked(t, p.Data, now)
	case ptTimer:
		n.applyGroupTimerLocked(t, gs, p)
	case ptText, ptEdit, ptDelete, ptReaction:
		n.applyContentLocked(t, conversation{key: convKey(gs.eng.ID()), group: gs}, from, dev, n.memberNameLocked(from), p)
	}
}

// groupClockLocked returns the time stamp for an outgoing group message:
// milliseconds, strictly increasing, so this device's messages sort in
// the order it sent them on every member (groupSeqLocked).
func (n *Node) groupClockLocked(now time.Time) uint64 {
	ms := uint64(now.UnixMilli())
	if ms <= n.groupClock {
		ms = n.groupClock + 1
	}
	n.groupClock = ms
	return ms
}

// groupSeqLocked orders a group message by its sender's clock: the
// sequence is the sender's time in milliseconds, shifted, plus bits of the
// message ID. Every member stores the same message at the same place, so
// one sender's messages show in the same order everywhere, whatever order
// they arrived in (live, repaired by anti-entropy, or from a relay).
func (n *Node) groupSeqLocked(t *txn, key []byte, p *payload) uint64 {
	seq := p.TimeMS<<16 | uint64(p.ID[0])<<8 | uint64(p.ID[1])
	for {
		taken := t.seqs[seq]
		if !taken {
			if _, err := n.tabs.messages.GetSeq(key, seq); err != nil {
				break
			}
		}
		seq++
	}
	if t.seqs == nil {
		t.seqs = map[uint64]bool{}
	}
	t.seqs[seq] = true
	return seq
}

// applyGroupPairwiseLocked handles a group payload that came over a
// pairwise session from (acc, dev).
func (n *Node) applyGroupPairwiseLocked(t *txn, acc identity.AccountID, dev identity.DeviceID, p *payload, now time.Time) {
	if n.account == nil {
		return
	}
	switch p.Type {
	case ptDirectory:
		for _, c := range decodeCards(p.Data) {
			n.learnCardLocked(t, c, now)
		}
		return
	case ptGroup:
		if gid, part, parts, ok := group.WelcomeInfo(p.Data); ok {
			n.welcomeLocked(t, gid, part, parts, acc, dev, p.Data, now)
			return
		}
		gid, err := group.PairwiseGroup(p.Data)
		if err != nil {
			return
		}
		gs := n.groups[gid]
		if gs == nil {
			// A member's sender key can overtake the Welcome that makes
			// the group here (a newly linked device): keep it a while.
			n.holdEarlyLocked(gid, acc, dev, p.Data)
			return
		}
		fx, err := gs.eng.HandlePairwise(acc, dev, p.Data)
		if errors.Is(err, group.ErrParked) && now.Sub(gs.lastAsk) > 5*time.Second {
			n.askSyncLocked(t, gs, now) // it waits for an op this device missed
		} else if err != nil && !errors.Is(err, group.ErrParked) {
			n.log.Debug("group pairwise message dropped", "err", err)
			return
		}
		if err := n.saveGroupLocked(t, gs); err != nil {
			return
		}
		n.effectsLocked(t, gs, fx, now)
		g := n.groupViewLocked(gs)
		t.events = append(t.events, Event{Type: EventGroup, Group: &g})
	case ptSyncAsk, ptHave, ptWant, ptRepair, ptOps:
		n.antiEntropyLocked(t, acc, dev, p, now)
	case ptGroupRead:
		n.applyGroupReadLocked(t, acc, dev, p)
	case ptGroupTimer:
		n.applyGroupTimerPairwiseLocked(t, acc, dev, p)
	}
}

// welcomeLocked collects Welcome parts; the last one creates the pending
// group (an invitation the user accepts or declines).
func (n *Node) welcomeLocked(t *txn, gid group.GroupID, part, parts int, from identity.AccountID, dev identity.DeviceID, data []byte, now time.Time) {
	if gs := n.groups[gid]; gs != nil {
		// A group this device has (a device of it dropped and added
		// again): the Welcome's ops apply as pairwise data.
		if fx, err := gs.eng.HandlePairwise(from, dev, data); err == nil {
			if n.saveGroupLocked(t, gs) == nil {
				n.effectsLocked(t, gs, fx, now)
			}
		}
		return
	}
	w := n.welcomes[gid]
	if w == nil || w.from != from || w.total != parts {
		w = &welcomeParts{parts: map[int][]byte{}, total: parts, from: from}
		n.welcomes[gid] = w
	}
	w.parts[part] = data
	if len(w.parts) < parts {
		return
	}
	var all [][]byte
	for i := range parts {
		all = append(all, w.parts[i])
	}
	delete(n.welcomes, gid)
	eng, err := group.Join(n.groupConfig(), all)
	if err != nil {
		n.log.Debug("group welcome rejected", "err", err)
		return
	}
	gs := &groupState{eng: eng, topics: map[string]*joinedTopic{}}
	n.groups[gid] = gs
	if err := n.saveGroupLocked(t, gs); err != nil {
		return
	}
	g := n.groupViewLocked(gs)
	t.events = append(t.events, Event{Type: EventGroup, Group: &g})
	if eng.IsMember() { // a device of a member (linked later): it catches up at once
		n.askSyncLocked(t, gs, now)
	}
	early := n.earlyGroupPW[gid]
	delete(n.earlyGroupPW, gid)
	for _, e := range early {
		n.applyGroupPairwiseLocked(t, e.acc, e.dev, &payload{Type: ptGroup, Data: e.data}, now)
	}
}

// earlyPW is a pairwise group message for a group this device does not
// have yet.
type earlyPW struct {
	acc  identity.AccountID
	dev  identity.DeviceID
	data []byte
}

// Bounds on the early pairwise messages kept (in memory: a lost one
// comes again with the member's next key rotation or anti-entropy).
const (
	maxEarlyGroups = 64
	maxEarlyPerGrp = 256
)

// holdEarlyLocked keeps a pairwise message for a group not here yet.
func (n *Node) holdEarlyLocked(gid group.GroupID, acc identity.AccountID, dev identity.DeviceID, data []byte) {
	if n.earlyGroupPW == nil {
		n.earlyGroupPW = make(map[group.GroupID][]earlyPW)
	}
	held := n.earlyGroupPW[gid]
	if (held == nil && len(n.earlyGroupPW) >= maxEarlyGroups) || len(held) >= maxEarlyPerGrp {
		return
	}
	n.earlyGroupPW[gid] = append(held, earlyPW{acc: acc, dev: dev, data: data})
}

// topicMsg is a message from a group topic: sealed for the topic
// (Engine.OpenTopic), with the group whose topic it came from, or the
// topic a relay saw it on (either may be unknown).
type topicMsg struct {
	group group.GroupID
	topic string
	data  []byte
}

// readTopic feeds a subscription's messages to the group inbox.
func (n *Node) readTopic(ctx context.Context, id group.GroupID, sub *pubsub.Subscription) {
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			n.log.Debug("topic read ended", "err", err)
			return
		}
		select {
		case n.groupIn <- topicMsg{group: id, data: m.Data}:
		case <-ctx.Done():
			return
		}
	}
}

// groupInbox applies topic messages in batches: whatever has arrived is
// decrypted and stored in one transaction (one fsync), so a burst does
// not cost a commit per message.
func (n *Node) groupInbox(ctx context.Context) {
	// The first flush comes at a random point of the period, so nodes
	// started together do not all flush at once.
	flush := time.NewTimer(mrand.N(groupFlushEvery))
	defer flush.Stop()
	defer n.flushGroups()
	for {
		var batch []topicMsg
		select {
		case <-ctx.Done():
			return
		case <-flush.C:
			n.flushGroups()
			flush.Reset(groupFlushEvery)
			continue
		case d := <-n.groupIn:
			batch = append(batch, d)
		}
	more:
		for len(batch) < deliverWindow {
			select {
			case d := <-n.groupIn:
				batch = append(batch, d)
			default:
				break more
			}
		}
		n.onGroupWires(batch, false)
	}
}
