package node

// Typing indicators in groups (docs/protocol/groups.md §16.12): a typing
// payload (type 7) sent as an ephemeral topic message
// (group.SealEphemeral): signed by the device, never stored, repaired or
// kept by a relay, and shown as a typing event with the group's ID.

import (
	"context"
	"crypto/ed25519"
	"errors"
	"time"

	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/node/group"
)

const (
	// groupTypingEvery is the sender's rate limit: at most one "typing"
	// per group this often (a client may call on every key press).
	groupTypingEvery = 3 * time.Second
	// groupTypingFresh is how far a receiver's clock may be from an
	// indicator's: an older (or further ahead) one is dropped, so a
	// replayed indicator shows nothing.
	groupTypingFresh = 30 * time.Second
)

// SetGroupTyping tells a group's members this user is (or stopped)
// typing. Best effort: a member that misses it never sees it.
func (n *Node) SetGroupTyping(ref string, typing bool) error {
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	gs, err := n.resolveGroupLocked(ref)
	if err != nil {
		return err
	}
	if !gs.eng.IsMember() {
		return errors.New("accept the invitation first")
	}
	switch {
	case typing && now.Sub(gs.typedAt) < groupTypingEvery:
		return nil // the last one still shows
	case !typing && gs.typedAt.IsZero():
		return nil // nothing to stop
	}
	p := &payload{Type: ptTyping, ID: newMessageID(), TimeMS: uint64(now.UnixMilli())}
	if typing {
		p.Flags = flagOn
	}
	gs.changes++
	topic, data, err := gs.eng.SealEphemeral(p.marshal(), p.TimeMS, n.device.Sign)
	if errors.Is(err, group.ErrNotReady) {
		return ErrGroupNotReady
	}
	if err != nil {
		return err
	}
	if typing {
		gs.typedAt = now
	} else {
		gs.typedAt = time.Time{}
	}
	pubs := []publication{{topic: topic, data: data}}
	n.loops.Go(func(ctx context.Context) { n.publishAll(ctx, pubs) })
	return nil
}

// groupEphemeralLocked handles an ephemeral topic message: a member's
// typing indicator becomes an event, nothing else.
func (n *Node) groupEphemeralLocked(t *txn, m topicMsg, now time.Time) {
	key := func(acc identity.AccountID, dev identity.DeviceID) ed25519.PublicKey {
		cc, _ := n.cardOfAccountLocked(acc)
		if acc == n.cert.Account() {
			cc = n.siblingsLocked()
		}
		if cc == nil {
			return nil
		}
		if d := cc.List.Device(dev); d != nil {
			return d.SigningKey()
		}
		return nil
	}
	var em *group.Ephemeral
	var gs *groupState
	for _, cand := range n.topicCandidatesLocked(m) {
		if e, err := cand.eng.OpenEphemeral(m.data, key); err == nil {
			em, gs = e, cand
			break
		}
	}
	if em == nil || em.Account == n.cert.Account() {
		return // not ours, or this account's own (this device's echo)
	}
	if d := time.UnixMilli(int64(em.TimeMS)).Sub(now); d > groupTypingFresh || d < -groupTypingFresh {
		return
	}
	p, err := parsePayload(em.Body)
	if err != nil || p.Type != ptTyping {
		return
	}
	on := p.Flags&flagOn != 0
	id := gs.eng.ID()
	t.events = append(t.events, Event{Type: EventTyping, Typing: &on, From: n.memberNameLocked(em.Account), GroupID: groupIDHex(id)})
}

// topicCandidatesLocked lists the groups a topic message may be for: the
// one whose topic it came on (or that a relay named) first, then the
// others.
func (n *Node) topicCandidatesLocked(m topicMsg) []*groupState {
	var first *groupState
	if m.topic != "" {
		for _, gs := range n.groups {
			if gs.topics[m.topic] != nil {
				first = gs
				break
			}
		}
	}
	if first == nil {
		first = n.groups[m.group]
	}
	out := make([]*groupState, 0, len(n.groups))
	if first != nil {
		out = append(out, first)
	}
	for _, gs := range n.groups {
		if gs != first {
			out = append(out, gs)
		}
	}
	return out
}
