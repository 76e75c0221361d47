package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/node/group"
)

// Group errors.
var (
	ErrUnknownGroup   = errors.New("unknown group")
	ErrAmbiguousGroup = errors.New("several groups have this name; use the group ID")
	ErrGroupNotReady  = errors.New("the group's keys have not arrived yet; try again in a moment")
)

// Group limits.
const (
	maxRepairBatch = 200              // wire messages per repair payload
	groupSyncEvery = 30 * time.Second // anti-entropy round with online members
	groupTick      = 10 * time.Second // engine timers (epoch grace)
)

// Group, GroupMember and GroupSendRequest are the API's.
type (
	Group            = apitypes.Group
	GroupMember      = apitypes.GroupMember
	GroupSendRequest = apitypes.GroupSendRequest
)

// groupState is one group this device is in (or invited to).
type groupState struct {
	eng     *group.Engine
	topics  map[string]*joinedTopic // subscribed topics (current and grace)
	lastAsk time.Time               // last anti-entropy request
	unsaved bool                    // receive-side changes not saved yet (see groupWireLocked)
	wireSeq uint64                  // last groupwire sequence number written
}

// groupFlushEvery bounds how long receive-side engine changes stay
// unsaved.
const groupFlushEvery = time.Second

// flushGroupsLocked saves engines with unsaved receive-side changes.
func (n *Node) flushGroupsLocked(t *txn) {
	for _, gs := range n.groups {
		if gs.unsaved {
			n.saveGroupLocked(t, gs)
		}
	}
}

type joinedTopic struct {
	t      *pubsub.Topic
	cancel context.CancelFunc
}

// welcomeParts collects a Welcome sent in several pairwise parts.
type welcomeParts struct {
	parts map[int][]byte
	total int
	from  identity.AccountID
}

// convKey is the messages-table ID of a group's conversation: 'g' then
// the group ID (33 bytes, so it never collides with a 32-byte account).
func convKey(id group.GroupID) []byte { return append([]byte{'g'}, id[:]...) }

func (n *Node) groupConfig() group.Config {
	var devs []identity.DeviceID
	for _, d := range n.list.Devices() {
		devs = append(devs, d.DeviceID())
	}
	return group.Config{Account: n.account, Device: n.cert.DeviceID(), Devices: devs}
}

func (n *Node) loadGroupsLocked() error {
	if err := n.tabs.peers.Scan(func(id, v []byte) error {
		c, err := card.ParseStored(v)
		if err != nil {
			return fmt.Errorf("node: stored member card: %w", err)
		}
		n.peers[c.Account()] = c
		return nil
	}); err != nil {
		return err
	}
	if n.account == nil {
		return nil
	}
	return n.tabs.groups.Scan(func(id, v []byte) error {
		eng, err := group.Unmarshal(n.groupConfig(), v)
		if err != nil {
			return fmt.Errorf("node: stored group: %w", err)
		}
		gs := &groupState{eng: eng, topics: map[string]*joinedTopic{}}
		var wires [][]byte
		if err := n.tabs.groupWire.ScanSeq(id, 0, math.MaxUint64, func(seq uint64, w []byte) error {
			wires = append(wires, w)
			gs.wireSeq = seq
			return nil
		}); err != nil {
			return fmt.Errorf("node: stored group messages: %w", err)
		}
		eng.Restore(wires)
		n.groups[eng.ID()] = gs
		return nil
	})
}

// keepWires is how many of a group's wire messages the node keeps for
// the engine's store (group.StoreMessages).
const keepWires = group.StoreMessages

// journalLocked writes the wire messages the engine stored since the last
// call into t (table groupwire, one record each, the oldest beyond
// keepWires deleted), so the engine's own record stays small.
func (n *Node) journalLocked(t *txn, gs *groupState) {
	id := gs.eng.ID()
	for _, w := range gs.eng.TakeJournal() {
		gs.wireSeq++
		t.b.PutSeq(n.tabs.groupWire, id[:], gs.wireSeq, w)
		if gs.wireSeq > keepWires {
			t.b.DeleteSeq(n.tabs.groupWire, id[:], gs.wireSeq-keepWires)
		}
	}
}

// saveGroupLocked writes the engine into t. Every engine call that
// succeeded is saved before its effects leave.
func (n *Node) saveGroupLocked(t *txn, gs *groupState) error {
	t.groupsChanged = true
	gs.unsaved = false
	n.journalLocked(t, gs)
	b, err := gs.eng.MarshalBinary()
	if err != nil {
		return err
	}
	id := gs.eng.ID()
	return t.b.Put(n.tabs.groups, id[:], b)
}

// effectsLocked queues an engine's effects in t: publications go out
// after the commit; pairwise messages are encrypted now into the outbox.
func (n *Node) effectsLocked(t *txn, gs *groupState, fx *group.Effects, now time.Time) {
	if fx == nil {
		return
	}
	for _, w := range fx.Publish {
		n.queuePublishLocked(t, gs, w)
	}
	for _, pw := range fx.Pairwise {
		n.sendGroupPairwiseLocked(t, pw.Account, pw.Device, &payload{Type: ptGroup, Data: pw.Data}, now)
	}
}

// sendGroupPairwiseLocked encrypts a group payload for one device of an
// account (a contact or a member from the directory).
func (n *Node) sendGroupPairwiseLocked(t *txn, acc identity.AccountID, dev identity.DeviceID, p *payload, now time.Time) {
	if acc == n.cert.Account() && dev == n.cert.DeviceID() {
		return
	}
	cc, name := n.cardOfAccountLocked(acc)
	if cc == nil {
		// The member's card has not arrived yet (it comes with the
		// directory or with its first message): hold the message.
		n.holdPairwiseLocked(acc, dev, p)
		return
	}
	if d := cc.Device(dev); d == nil || !cc.List.Contains(dev) {
		// The card we hold does not list this device (or gives it no
		// prekeys): hold the message until a newer card does. The engine
		// counts it as sent, so dropping it would lose it for the epoch.
		n.holdPairwiseLocked(acc, dev, p)
		return
	}
	p.ID, p.TimeMS = newMessageID(), uint64(now.UnixMilli())
	if err := n.encryptToCardLocked(t, cc, name, &dev, p, false, now); err != nil {
		n.log.Debug("group pairwise message not queued", "err", err)
	}
}

func (n *Node) holdPairwiseLocked(acc identity.AccountID, dev identity.DeviceID, p *payload) {
	if len(n.heldPairwise[acc]) < maxHeldPairwise {
		n.heldPairwise[acc] = append(n.heldPairwise[acc], heldPW{dev: dev, p: p})
	} else {
		n.log.Warn("group message for a member whose card is missing dropped: too many held", "held", maxHeldPairwise)
	}
}

// releaseHeldLocked sends the group messages held for an account whose
// card just arrived or changed (as a member, a contact or a request);
// those its card still cannot carry are held again.
func (n *Node) releaseHeldLocked(t *txn, acc identity.AccountID, now time.Time) {
	held := n.heldPairwise[acc]
	delete(n.heldPairwise, acc)
	for _, h := range held {
		n.sendGroupPairwiseLocked(t, acc, h.dev, h.p, now)
	}
}

// cardOfAccountLocked returns a contact's or a directory member's card.
func (n *Node) cardOfAccountLocked(acc identity.AccountID) (*card.Card, string) {
	if c := n.contacts[acc]; c != nil {
		return c.card, c.rec.Name
	}
	if c := n.peers[acc]; c != nil {
		return c, c.Name
	}
	return nil, ""
}

// memberNameLocked is how a member is shown: the contact name, else the
// card's display name, else a short account ID.
func (n *Node) memberNameLocked(acc identity.AccountID) string {
	if acc == n.cert.Account() {
		return "me"
	}
	if c := n.contacts[acc]; c != nil {
		return c.rec.Name
	}
	if c := n.peers[acc]; c != nil {
		return c.Name + " (" + acc.String() + ")"
	}
	return acc.String()
}

// learnCardLocked adds a group member's card to the directory (unless it
// is a contact) so pairwise sessions can start with it.
func (n *Node) learnCardLocked(t *txn, b []byte, now time.Time) {
	for _, known := range n.peers { // the same card again (it rides on every prekey message): nothing to do
		if bytes.Equal(known.Marshal(), b) {
			return
		}
	}
	for _, c := range n.contacts {
		if bytes.Equal(c.rec.Card, b) {
			return
		}
	}
	c, err := card.Parse(b, now)
	if err != nil {
		c, err = card.ParseStored(b) // old prekeys: still good for its addresses
		if err != nil {
			return
		}
	}
	acc := c.Account()
	if acc == n.cert.Account() || n.contacts[acc] != nil {
		return
	}
	if old := n.peers[acc]; old != nil && !cardNewer(c, old) {
		return
	}
	n.peers[acc] = c
	t.b.Put(n.tabs.peers, acc[:], c.Marshal())
	n.routeChangedLocked(c)
	n.releaseHeldLocked(t, acc, now)
}

// heldPW is a pairwise group message waiting for its recipient's card.
type heldPW struct {
	dev identity.DeviceID
	p   *payload
}

// maxHeldPairwise bounds the messages held per unknown member.
const maxHeldPairwise = 64

// groupView builds the API view of a group.
func (n *Node) groupViewLocked(gs *groupState) Group {
	st := gs.eng.State()
	g := Group{ID: hex.EncodeToString(st.ID[:]), Name: st.Name, Epoch: st.Epoch}
	switch {
	case gs.eng.IsMember():
	case slices.ContainsFunc(st.Invited, func(m group.Member) bool { return m.Account == n.cert.Account() }):
		g.Pending = true
	default:
		g.Removed = true
	}
	for _, m := range st.Members {
		me := m.Account == n.cert.Account()
		if me && m.Admin {
			g.Admin = true
		}
		g.Members = append(g.Members, GroupMember{Name: n.memberNameLocked(m.Account), Account: m.Account.Hex(), Admin: m.Admin, Me: me})
	}
	for _, m := range st.Invited {
		g.Members = append(g.Members, GroupMember{Name: n.memberNameLocked(m.Account), Account: m.Account.Hex(),
			Me: m.Account == n.cert.Account(), Invited: true})
	}
	return g
}

// resolveGroupLocked finds a group by name (when unambiguous) or ID.
func (n *Node) resolveGroupLocked(ref string) (*groupState, error) {
	var byName []*groupState
	for id, gs := range n.groups {
		if hex.EncodeToString(id[:]) == strings.ToLower(ref) {
			return gs, nil
		}
		if gs.eng.Name() == ref {
			byName = append(byName, gs)
		}
	}
	switch len(byName) {
	case 0:
		return nil, fmt.Errorf("%w %q", ErrUnknownGroup, ref)
	case 1:
		return byName[0], nil
	}
	return nil, fmt.Errorf("%w (%q)", ErrAmbiguousGroup, ref)
}

// groupTxn runs fn on a group under the lock, then saves the engine,
// commits and sends the effects.
func (n *Node) groupTxn(ref string, fn func(t *txn, gs *groupState, now time.Time) error) (Group, error) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return Group{}, ErrClosed
	}
	if n.account == nil {
		return Group{}, errors.New("groups need the account key on this device")
	}
	var gs *groupState
	if ref != "" {
		var err error
		if gs, err = n.resolveGroupLocked(ref); err != nil {
			return Group{}, err
		}
	}
	t := n.newTxnLocked()
	if err := fn(t, gs, now); err != nil {
		n.dropQueuedLocked(t.queued)
		return Group{}, err
	}
	n.saveSeqLocked(t.b)
	if err := n.finishLocked(t); err != nil {
		return Group{}, err
	}
	if gs == nil {
		return Group{}, nil
	}
	n.syncTopicsLocked(gs)
	return n.groupViewLocked(gs), nil
}

// groupOp runs one membership operation: the engine call, then the save
// and the effects, in one transaction.
func (n *Node) groupOp(ref string, op func(gs *groupState) (*group.Effects, error)) (Group, error) {
	return n.groupTxn(ref, func(t *txn, gs *groupState, now time.Time) error {
		fx, err := op(gs)
		if err != nil {
			return err
		}
		if err := n.saveGroupLocked(t, gs); err != nil {
			return err
		}
		n.effectsLocked(t, gs, fx, now)
		return nil
	})
}

// CreateGroup creates a group with this account as its only member and
// admin.
func (n *Node) CreateGroup(name string) (Group, error) {
	if err := checkName(name); err != nil {
		return Group{}, err
	}
	var created *groupState
	_, err := n.groupTxn("", func(t *txn, _ *groupState, now time.Time) error {
		eng, err := group.Create(n.groupConfig(), name)
		if err != nil {
			return err
		}
		created = &groupState{eng: eng, topics: map[string]*joinedTopic{}}
		n.groups[eng.ID()] = created
		t.undo(func() { delete(n.groups, eng.ID()) })
		return n.saveGroupLocked(t, created)
	})
	if err != nil {
		return Group{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.syncTopicsLocked(created)
	g := n.groupViewLocked(created)
	n.events.publish(Event{Type: EventGroup, Group: &g})
	return g, nil
}

// InviteToGroup invites a contact (admins only). The contact sees the
// invitation in its group list and accepts or declines it.
func (n *Node) InviteToGroup(ref, contactName string) (Group, error) {
	return n.groupTxn(ref, func(t *txn, gs *groupState, now time.Time) error {
		c, err := n.byNameLocked(contactName)
		if err != nil {
			return err
		}
		var devs []identity.DeviceID
		for _, d := range c.card.List.Devices() {
			devs = append(devs, d.DeviceID())
		}
		fx, err := gs.eng.Invite(c.account(), devs)
		if err != nil {
			return err
		}
		if err := n.saveGroupLocked(t, gs); err != nil {
			return err
		}
		n.effectsLocked(t, gs, fx, now)
		// The invitee gets the cards of the members, so it can open
		// sessions with them; the members get the invitee's card.
		cards := n.memberCardsLocked(gs)
		for _, d := range devs {
			n.sendGroupPairwiseLocked(t, c.account(), d, &payload{Type: ptDirectory, Data: encodeCards(cards)}, now)
		}
		return n.publishGroupPayloadLocked(t, gs, &payload{Type: ptCard, Data: c.card.Marshal()}, now)
	})
}

// memberCardsLocked lists the cards this device knows for a group's
// members, its own included.
func (n *Node) memberCardsLocked(gs *groupState) [][]byte {
	own, err := n.ownCardLocked(time.Now())
	var out [][]byte
	if err == nil {
		out = append(out, own.Marshal())
	}
	st := gs.eng.State()
	for _, m := range append(st.Members, st.Invited...) {
		if cc, _ := n.cardOfAccountLocked(m.Account); cc != nil {
			out = append(out, cc.Marshal())
		}
	}
	return out
}

func encodeCards(cards [][]byte) []byte {
	w := codec.NewWriter(4096 * len(cards))
	total := 0
	var kept [][]byte
	for _, c := range cards {
		if total+len(c)+4 > maxDataSize-8 {
			break
		}
		total += len(c) + 4
		kept = append(kept, c)
	}
	w.U16(uint16(len(kept)))
	for _, c := range kept {
		w.Bytes32(c)
	}
	return w.Bytes()
}

func decodeCards(b []byte) [][]byte {
	r := codec.NewReader(b)
	n := r.Count(group.MaxMembers)
	var out [][]byte
	for range n {
		out = append(out, r.Bytes32(card.MaxCardSize))
	}
	if r.Done() != nil {
		return nil
	}
	return out
}

// publishGroupPayloadLocked seals a node payload with this device's
// sender key and queues it for the group topic.
func (n *Node) publishGroupPayloadLocked(t *txn, gs *groupState, p *payload, now time.Time) error {
	if p.TimeMS == 0 {
		p.ID, p.TimeMS = newMessageID(), n.groupClockLocked(now)
	}
	wire, _, err := gs.eng.Seal(p.marshal())
	if errors.Is(err, group.ErrNotReady) {
		return ErrGroupNotReady
	}
	if err != nil {
		return err
	}
	if err := n.saveGroupLocked(t, gs); err != nil {
		return err
	}
	n.queuePublishLocked(t, gs, wire)
	return nil
}

// queuePublishLocked seals a wire message for its epoch's topic
// (Engine.SealTopic) and queues it in t, to go out after the commit.
func (n *Node) queuePublishLocked(t *txn, gs *groupState, wire []byte) {
	topic, data, err := gs.eng.SealTopic(wire)
	if err != nil {
		n.log.Debug("group message not published", "err", err)
		return // anti-entropy delivers it
	}
	t.publish = append(t.publish, publication{topic: topic, data: data})
}

// AcceptGroup accepts a pending invitation.
func (n *Node) AcceptGroup(ref string) (Group, error) {
	return n.groupTxn(ref, func(t *txn, gs *groupState, now time.Time) error {
		fx, err := gs.eng.Accept()
		if errors.Is(err, group.ErrNotInvited) && n.groupViewLocked(gs).Removed {
			return fmt.Errorf("%w: you were removed from %q; only an admin's new invitation lets you back in", err, gs.eng.Name())
		}
		if err != nil {
			return err
		}
		if err := n.saveGroupLocked(t, gs); err != nil {
			return err
		}
		n.effectsLocked(t, gs, fx, now)
		n.askSyncLocked(t, gs, now) // catch up on what happened since the invitation
		return nil
	})
}

// DeclineGroup declines a pending invitation and forgets the group.
func (n *Node) DeclineGroup(ref string) error {
	_, err := n.groupTxn(ref, func(t *txn, gs *groupState, now time.Time) error {
		fx, err := gs.eng.Decline()
		if err != nil {
			return err
		}
		n.effectsLocked(t, gs, fx, now)
		n.forgetGroupLocked(t, gs)
		return nil
	})
	return err
}

// LeaveGroup leaves a group and forgets it (its history is kept).
func (n *Node) LeaveGroup(ref string) error {
	_, err := n.groupTxn(ref, func(t *txn, gs *groupState, now time.Time) error {
		fx, err := gs.eng.Leave()
		if err != nil {
			return err
		}
		n.effectsLocked(t, gs, fx, now)
		n.forgetGroupLocked(t, gs)
		return nil
	})
	return err
}

func (n *Node) forgetGroupLocked(t *txn, gs *groupState) {
	id := gs.eng.ID()
	t.b.Delete(n.tabs.groups, id[:])
	for seq := gs.wireSeq; seq > 0 && seq+keepWires > gs.wireSeq; seq-- {
		t.b.DeleteSeq(n.tabs.groupWire, id[:], seq)
	}
	delete(n.groups, id)
	for _, jt := range gs.topics {
		jt.cancel()
	}
	gs.topics = nil
	n.topicsChangedLocked()
}

// RemoveFromGroup removes a member (admins only). It starts a new epoch:
// new keys and a new topic that the removed member cannot know.
func (n *Node) RemoveFromGroup(ref, member string) (Group, error) {
	return n.groupOp(ref, func(gs *groupState) (*group.Effects, error) {
		acc, err := n.memberByNameLocked(gs, member)
		if err != nil {
			return nil, err
		}
		return gs.eng.Remove(acc)
	})
}

// PromoteInGroup makes a member an admin (admins only).
func (n *Node) PromoteInGroup(ref, member string) (Group, error) {
	return n.groupOp(ref, func(gs *groupState) (*group.Effects, error) {
		acc, err := n.memberByNameLocked(gs, member)
		if err != nil {
			return nil, err
		}
		return gs.eng.Promote(acc)
	})
}

// RenameGroup renames a group (admins only).
func (n *Node) RenameGroup(ref, name string) (Group, error) {
	if err := checkName(name); err != nil {
		return Group{}, err
	}
	return n.groupOp(ref, func(gs *groupState) (*group.Effects, error) { return gs.eng.Rename(name) })
}

// memberByNameLocked finds a group member by contact name, shown name or
// account hex.
func (n *Node) memberByNameLocked(gs *groupState, name string) (identity.AccountID, error) {
	st := gs.eng.State()
	for _, m := range append(st.Members, st.Invited...) {
		if n.memberNameLocked(m.Account) == name || m.Account.Hex() == strings.ToLower(name) {
			return m.Account, nil
		}
		if c := n.contacts[m.Account]; c != nil && c.rec.Name == name {
			return m.Account, nil
		}
	}
	return identity.AccountID{}, fmt.Errorf("%w: no member %q", ErrUnknownContact, name)
}

// Groups lists the groups, pending invitations included, sorted by name.
func (n *Node) Groups() ([]Group, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Group, 0, len(n.groups))
	for _, gs := range n.groups {
		out = append(out, n.groupViewLocked(gs))
	}
	slices.SortFunc(out, func(a, b Group) int { return strings.Compare(a.Name+a.ID, b.Name+b.ID) })
	return out, nil
}

// SendGroup sends a message to a group: the same kinds as 1:1.
func (n *Node) SendGroup(ctx context.Context, req GroupSendRequest) (Message, error) {
	var out Message
	_, err := n.groupTxn(req.Group, func(t *txn, gs *groupState, now time.Time) error {
		if !gs.eng.IsMember() {
			return errors.New("accept the invitation first")
		}
		var err error
		out, err = n.sendLocked(t, conversation{key: convKey(gs.eng.ID()), group: gs},
			outgoing{Kind: req.Kind, Text: req.Text, Target: req.Target, Remove: req.Remove, TxnID: req.TxnID}, now)
		return err
	})
	return out, err
}

func (n *Node) groupMsgView(m *msgRec, gs *groupState) Message {
	v := m.view(gs.eng.Name())
	id := gs.eng.ID()
	v.Group = hex.EncodeToString(id[:])
	return v
}

// GroupMessages returns the last limit messages of a group (0: all),
// oldest first.
func (n *Node) GroupMessages(ref string, limit int) ([]Message, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	gs, err := n.resolveGroupLocked(ref)
	if err != nil {
		return nil, err
	}
	return n.scanConversationLocked(convKey(gs.eng.ID()), limit, func(m *msgRec) Message { return n.groupMsgView(m, gs) })
}

// scanConversationLocked reads the last limit records (0: all) of a
// conversation, oldest first.
func (n *Node) scanConversationLocked(key []byte, limit int, view func(*msgRec) Message) ([]Message, error) {
	out := []Message{}
	fn := func(seq uint64, v []byte) error {
		var m msgRec
		if err := jsonUnmarshal(v, &m); err != nil {
			return err
		}
		out = append(out, view(&m))
		return nil
	}
	if limit <= 0 {
		return out, n.tabs.messages.ScanSeq(key, 0, ^uint64(0), fn)
	}
	err := n.tabs.messages.ScanSeqReverse(key, 0, ^uint64(0), limit, fn)
	slices.Reverse(out)
	return out, err
}

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
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	t := n.newTxnLocked()
	for _, m := range batch {
		if wire := n.openTopicLocked(m); wire != nil {
			n.groupWireLocked(t, wire, now)
		}
	}
	n.saveSeqLocked(t.b)
	if !durable && len(t.queued) == 0 && len(t.publish) == 0 && !t.groupsChanged {
		t.b.Lazy()
	}
	return n.finishLocked(t) // afterCommitLocked resubscribes if an op changed the topics
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
	// An ordinary message only advances the receiving chains and the
	// replay cache: the engine is saved lazily (flushGroupsLocked), since
	// after a crash a message seen again is dropped by its payload ID.
	// Anything with effects (an op, keys to send) is saved now.
	if rec.Op != nil || len(rec.Effects.Publish) > 0 || len(rec.Effects.Pairwise) > 0 {
		if err := n.saveGroupLocked(t, gs); err != nil {
			return
		}
	} else {
		gs.unsaved = true
		n.journalLocked(t, gs)
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
	n.applyGroupPayloadLocked(t, gs, rec.Account, p, now)
}

// applyGroupPayloadLocked applies a message from a group member.
func (n *Node) applyGroupPayloadLocked(t *txn, gs *groupState, from identity.AccountID, p *payload, now time.Time) {
	switch p.Type {
	case ptCard:
		n.learnCardLocked(t, p.Data, now)
	default:
		n.applyContentLocked(t, conversation{key: convKey(gs.eng.ID()), group: gs}, from, n.memberNameLocked(from), p)
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
			n.welcomeLocked(t, gid, part, parts, acc, p.Data, now)
			return
		}
		gid, err := group.PairwiseGroup(p.Data)
		if err != nil {
			return
		}
		gs := n.groups[gid]
		if gs == nil {
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
	}
}

// welcomeLocked collects Welcome parts; the last one creates the pending
// group (an invitation the user accepts or declines).
func (n *Node) welcomeLocked(t *txn, gid group.GroupID, part, parts int, from identity.AccountID, data []byte, now time.Time) {
	if n.groups[gid] != nil {
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
}

// antiEntropyLocked runs the digest exchange (docs/protocol/groups.md
// §16.6) over pairwise sessions: ask → have → want → repair.
func (n *Node) antiEntropyLocked(t *txn, acc identity.AccountID, dev identity.DeviceID, p *payload, now time.Time) {
	switch p.Type {
	case ptSyncAsk:
		ask, ok := parseSyncAsk(p.Data)
		if !ok {
			return
		}
		gs := n.groups[ask.group]
		if gs == nil || !n.isMemberLocked(gs, acc) {
			return
		}
		// Only what the asker lacks: the cards it named, the op log if
		// it differs, and the digest (small) for messages.
		var cards [][]byte
		for _, a := range ask.missingCards {
			if cc, _ := n.cardOfAccountLocked(a); cc != nil {
				cards = append(cards, cc.Marshal())
			} else if a == n.cert.Account() {
				if own, err := n.ownCardLocked(now); err == nil {
					cards = append(cards, own.Marshal())
				}
			}
		}
		if len(cards) > 0 {
			n.sendGroupPairwiseLocked(t, acc, dev, &payload{Type: ptDirectory, Data: encodeCards(cards)}, now)
		}
		if opsDigest(gs.eng.Ops()) != ask.ops {
			n.sendListLocked(t, acc, dev, ptOps, gs.eng.Ops(), now)
		}
		n.sendGroupPairwiseLocked(t, acc, dev, &payload{Type: ptHave, Data: gs.eng.Have()}, now)
	case ptHave:
		for _, gs := range n.groups {
			refs, err := gs.eng.Missing(p.Data)
			if err != nil || len(refs) == 0 {
				continue
			}
			want, err := group.MarshalRefs(gs.eng.ID(), refs)
			if err == nil {
				n.sendGroupPairwiseLocked(t, acc, dev, &payload{Type: ptWant, Data: want}, now)
			}
		}
	case ptWant:
		id, refs, err := group.ParseRefs(p.Data)
		if err != nil {
			return
		}
		gs := n.groups[id]
		if gs == nil || !n.isMemberLocked(gs, acc) {
			return
		}
		n.sendListLocked(t, acc, dev, ptRepair, gs.eng.Want(refs), now)
	case ptRepair:
		for _, w := range decodeCards(p.Data) {
			n.groupWireLocked(t, w, now)
		}
	case ptOps:
		for _, b := range decodeCards(p.Data) {
			gid, err := opGroup(b)
			if err != nil {
				continue
			}
			gs := n.groups[gid]
			if gs == nil {
				continue
			}
			fx, err := gs.eng.ApplyOp(b)
			if err != nil {
				continue
			}
			n.saveGroupLocked(t, gs)
			n.effectsLocked(t, gs, fx, now)
			g := n.groupViewLocked(gs)
			t.events = append(t.events, Event{Type: EventGroup, Group: &g})
		}
	}
}

// opGroup returns the group an encoded op belongs to.
func opGroup(b []byte) (group.GroupID, error) {
	o, err := group.ParseOp(b)
	if err != nil {
		return group.GroupID{}, err
	}
	return o.Group, nil
}

// sendListLocked sends items (ops or wire messages) pairwise in chunks
// that fit a payload.
func (n *Node) sendListLocked(t *txn, acc identity.AccountID, dev identity.DeviceID, typ payloadType, items [][]byte, now time.Time) {
	for len(items) > 0 {
		k := min(len(items), maxRepairBatch)
		chunk := encodeCards(items[:k]) // the list encoding stops at the size cap
		sent := len(decodeCards(chunk))
		if sent == 0 {
			return
		}
		n.sendGroupPairwiseLocked(t, acc, dev, &payload{Type: typ, Data: chunk}, now)
		items = items[sent:]
	}
}

func (n *Node) isMemberLocked(gs *groupState, acc identity.AccountID) bool {
	st := gs.eng.State()
	_, ok := st.Member(acc)
	return ok
}

// askSyncLocked asks every other member device for its digest of a group.
//
// It asks syncPeers member devices chosen at random, not all of them, so a
// round costs O(members) messages in the whole group, not O(members²).
func (n *Node) askSyncLocked(t *txn, gs *groupState, now time.Time) {
	gs.lastAsk = now
	st := gs.eng.State()
	ask := syncAsk{group: gs.eng.ID(), ops: opsDigest(gs.eng.Ops())}
	type target struct {
		acc identity.AccountID
		dev identity.DeviceID
	}
	var targets []target
	for _, m := range append(st.Members, st.Invited...) {
		if m.Account != n.cert.Account() {
			if cc, _ := n.cardOfAccountLocked(m.Account); cc == nil && len(ask.missingCards) < maxMissingCards {
				ask.missingCards = append(ask.missingCards, m.Account)
			}
		}
	}
	for _, m := range st.Members {
		for _, d := range m.Devices {
			if d != n.cert.DeviceID() {
				targets = append(targets, target{m.Account, d})
			}
		}
	}
	mrand.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
	data := ask.marshal()
	for _, tg := range targets[:min(len(targets), syncPeers)] {
		n.sendGroupPairwiseLocked(t, tg.acc, tg.dev, &payload{Type: ptSyncAsk, Data: data}, now)
	}
}

// Anti-entropy request sizes.
const (
	syncPeers       = 3   // member devices asked per round
	maxMissingCards = 200 // accounts whose cards one request asks for
)

// syncAsk is a sync-ask payload: the group, a digest of the asker's op
// log and the members whose cards it lacks.
type syncAsk struct {
	group        group.GroupID
	ops          [32]byte
	missingCards []identity.AccountID
}

func (a *syncAsk) marshal() []byte {
	w := codec.NewWriter(66 + 32*len(a.missingCards))
	w.Fixed(a.group[:])
	w.Fixed(a.ops[:])
	w.U16(uint16(len(a.missingCards)))
	for _, acc := range a.missingCards {
		w.Fixed(acc[:])
	}
	return w.Bytes()
}

func parseSyncAsk(b []byte) (syncAsk, bool) {
	var a syncAsk
	r := codec.NewReader(b)
	copy(a.group[:], r.Fixed(len(a.group)))
	copy(a.ops[:], r.Fixed(len(a.ops)))
	n := r.Count(maxMissingCards)
	for range n {
		var acc identity.AccountID
		copy(acc[:], r.Fixed(len(acc)))
		a.missingCards = append(a.missingCards, acc)
	}
	return a, r.Done() == nil
}

// opsDigest summarises an op log, so two members see at once whether
// their logs differ.
func opsDigest(ops [][]byte) [32]byte {
	h := sha256.New()
	for _, o := range ops {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(o))))
		h.Write(o)
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// publication is a group wire message to publish after its commit.
type publication struct {
	topic string
	data  []byte
}

// publishAll sends publications; it runs after their commit, without the
// lock. Members that are offline get them from their relays' group store
// or by anti-entropy when they return.
func (n *Node) publishAll(pubs []publication) {
	n.mu.Lock()
	ctx := n.runCtx
	handles := make([]*pubsub.Topic, len(pubs))
	for i, p := range pubs {
		handles[i] = n.topicLocked(p.topic)
	}
	n.mu.Unlock()
	if ctx == nil {
		return // not running: anti-entropy repairs it later
	}
	for i, p := range pubs {
		if handles[i] != nil {
			if err := handles[i].Publish(ctx, p.data); err != nil {
				n.log.Debug("group publish failed", "err", err)
			}
		}
	}
}

// topicLocked returns the joined handle of a topic. A topic this device
// no longer subscribes to (the last op after leaving) is joined for the
// publication only.
func (n *Node) topicLocked(name string) *pubsub.Topic {
	if n.ps == nil || name == "" {
		return nil
	}
	for _, gs := range n.groups {
		if jt := gs.topics[name]; jt != nil {
			return jt.t
		}
	}
	if tp := n.tempTopics[name]; tp != nil {
		return tp
	}
	tp, err := n.ps.Join(name)
	if err != nil {
		return nil
	}
	n.tempTopics[name] = tp
	ctx := n.runCtx
	n.wg.Add(1)
	go func() { // leave it once the message had time to go out
		defer n.wg.Done()
		select {
		case <-time.After(30 * time.Second):
		case <-ctx.Done():
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.tempTopics[name] == tp {
			delete(n.tempTopics, name)
			tp.Close()
		}
	}()
	return tp
}

// syncTopicsLocked subscribes to the group's current topics and leaves
// the ones it no longer uses; on joining a topic it connects to the
// members' devices so the mesh forms.
func (n *Node) syncTopicsLocked(gs *groupState) {
	if n.ps == nil || n.runCtx == nil || gs.topics == nil {
		return
	}
	want := map[string]bool{}
	if gs.eng.IsMember() {
		for _, name := range gs.eng.Topics() {
			want[name] = true
		}
	}
	for name, jt := range gs.topics {
		if !want[name] {
			jt.cancel()
			delete(gs.topics, name)
			n.topicsChangedLocked()
		}
	}
	joined := false
	for name := range want {
		if gs.topics[name] != nil {
			continue
		}
		if err := n.ps.RegisterTopicValidator(name, group.Validator); err != nil {
			n.log.Debug("group topic validator", "err", err)
		}
		tp := n.tempTopics[name] // joined for a publication: adopt it
		delete(n.tempTopics, name)
		var err error
		if tp == nil {
			tp, err = n.ps.Join(name)
		}
		if err != nil {
			n.log.Debug("join group topic", "err", err)
			continue
		}
		sub, err := tp.Subscribe()
		if err != nil {
			tp.Close()
			continue
		}
		ctx, cancel := context.WithCancel(n.runCtx)
		gs.topics[name] = &joinedTopic{t: tp, cancel: func() {
			cancel()
			sub.Cancel()
			tp.Close()
			n.ps.UnregisterTopicValidator(name)
		}}
		n.wg.Add(1)
		go n.readTopic(ctx, gs.eng.ID(), sub)
		joined = true
	}
	n.connectRelaysLocked(gs)
	if joined {
		n.topicsChangedLocked()
		n.connectMembersLocked(gs)
		// Whatever was published before this subscription is fetched
		// from the members.
		n.wg.Add(1)
		go n.askSyncNow(gs.eng.ID())
	}
}

// askSyncNow runs an anti-entropy request for one group in its own
// transaction.
func (n *Node) askSyncNow(id group.GroupID) {
	defer n.wg.Done()
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	gs := n.groups[id]
	if gs == nil || n.closed || !gs.eng.IsMember() {
		return
	}
	t := n.newTxnLocked()
	n.askSyncLocked(t, gs, now)
	n.saveSeqLocked(t.b)
	n.finishLocked(t)
}

// flushGroups saves unsaved engines in their own transaction, lazily
// like the messages whose receipt changed them (onGroupWires).
func (n *Node) flushGroups() {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.newTxnLocked()
	t.b.Lazy()
	n.flushGroupsLocked(t)
	if t.b.Len() > 0 {
		n.finishLocked(t)
	}
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
	defer n.wg.Done()
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
	defer n.wg.Done()
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

// connectMembersLocked dials the members' devices and their relays in
// the background (on joining a topic, and with each anti-entropy round).
func (n *Node) connectMembersLocked(gs *groupState) {
	if n.host == nil || n.runCtx == nil {
		return
	}
	var peers []peer.AddrInfo
	for _, m := range gs.eng.State().Members {
		for _, d := range m.Devices {
			if pid, ok := n.peerOfLocked(d); ok && pid != n.host.ID() {
				peers = append(peers, peer.AddrInfo{ID: pid})
			}
		}
	}
	n.dialLocked(peers)
	n.connectRelaysLocked(gs)
}

// connectRelaysLocked dials the relays the members' cards list, at most
// maxGroupRelays, each at most once per relayRedial. A member's relay
// keeps a group store for it (docs/RELAY.md): it must be in the topic's
// mesh while the member is away, so members stay connected to it (the
// connections are protected from the connection manager). It runs
// whenever the groups change, so a new member's relay is dialed as soon
// as its card is known.
func (n *Node) connectRelaysLocked(gs *groupState) {
	if n.host == nil || n.runCtx == nil || !gs.eng.IsMember() {
		return
	}
	now := time.Now()
	seen := map[peer.ID]bool{}
	var dial []peer.AddrInfo
	for _, m := range gs.eng.State().Members {
		for _, d := range m.Devices {
			cc := n.cardOfDeviceLocked(d)
			if cc == nil {
				continue
			}
			cd := cc.Device(d)
			if cd == nil {
				continue
			}
			for _, mb := range cd.Mailboxes {
				ri, _, err := relayInfo(mb)
				if err != nil || seen[ri.ID] || len(seen) == maxGroupRelays {
					continue
				}
				seen[ri.ID] = true
				if n.host.Network().Connectedness(ri.ID) == network.Connected || now.Sub(n.relayDialed[ri.ID]) < relayRedial {
					continue
				}
				n.relayDialed[ri.ID] = now
				n.host.ConnManager().Protect(ri.ID, groupRelayTag)
				dial = append(dial, ri)
			}
		}
	}
	n.dialLocked(dial)
}

// dialLocked connects to peers that are not connected, in the background.
func (n *Node) dialLocked(peers []peer.AddrInfo) {
	h, ctx := n.host, n.runCtx
	if h == nil || ctx == nil {
		return
	}
	for _, pi := range peers {
		if h.Network().Connectedness(pi.ID) == network.Connected {
			continue
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			cctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			h.Connect(cctx, pi)
		}()
	}
}

// maxGroupRelays caps the member relays a node stays connected to for
// one group; groupRelayTag protects those connections from the
// connection manager.
const (
	maxGroupRelays = 32
	groupRelayTag  = "hush-group-relay"
	relayRedial    = 10 * time.Second
)

// groupLoop runs the engines' timers and the periodic anti-entropy round.
func (n *Node) groupLoop(ctx context.Context) {
	defer n.wg.Done()
	every := n.cfg.GroupSync
	if every <= 0 {
		every = groupSyncEvery
	}
	period := min(groupTick, every)
	tick := time.NewTimer(0)
	defer tick.Stop()
	last := time.Now()
	first := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if first {
			tick.Reset(mrand.N(period)) // then at a random point of the period, as for flushes
		} else {
			tick.Reset(period)
		}
		n.mu.Lock()
		now := time.Now()
		t := n.newTxnLocked()
		for _, gs := range n.groups {
			if gs.eng.Tick() {
				n.saveGroupLocked(t, gs)
			}
			n.syncTopicsLocked(gs)
			if gs.eng.IsMember() && (first || now.Sub(last) >= every) {
				n.askSyncLocked(t, gs, now)
			}
		}
		if first || now.Sub(last) >= every {
			last, first = now, false
		}
		if t.b.Len() > 0 || len(t.queued) > 0 || len(t.publish) > 0 {
			n.saveSeqLocked(t.b)
			n.finishLocked(t)
		}
		n.mu.Unlock()
	}
}
