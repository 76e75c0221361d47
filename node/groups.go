package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/internal/store"
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
	eng      *group.Engine
	topics   map[string]*joinedTopic // subscribed topics (current and grace)
	lastAsk  time.Time               // last anti-entropy request
	unsaved  bool                    // receive-side changes not saved yet (see groupWireLocked)
	logSaved uint64                  // the engine's LogVersion the groupops record holds (0: none yet)
	wireSeq  uint64                  // last groupwire sequence number written
	typedAt  time.Time               // when this device last said it is typing (group_typing.go)
	// changes counts the engine's saves and seals: a txn that opened
	// messages with the engine reads it back from the store after a
	// failed commit only if none came after its own (reopenGroupsLocked).
	changes uint64
}

// groupFlushEvery bounds how long receive-side engine changes stay
// unsaved.
const groupFlushEvery = time.Second

// flushGroupsLocked saves engines with unsaved receive-side changes.
func (n *Node) flushGroupsLocked(t *txn) {
	for _, gs := range n.groups {
		if gs.unsaved {
			n.saveEngineLocked(t, gs)
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

// isGroupConv reports whether conv is a group's conversation key
// (convKey), not a contact's account ID: by its length as well as its
// first byte, since one account ID in 256 starts with 'g'.
func isGroupConv(conv []byte) bool { return len(conv) == 1+len(group.GroupID{}) && conv[0] == 'g' }

func (n *Node) groupConfig() group.Config {
	var devs []identity.DeviceID
	for _, d := range n.list.Devices() {
		devs = append(devs, d.DeviceID())
	}
	return group.Config{Account: n.account, Device: n.cert.DeviceID(), DeviceList: n.list, Devices: devs}
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
		eng, logSaved, err := n.loadEngine(id, v)
		if err != nil {
			// A group stored by an older version (the op format changed
			// when ops began to carry signed device lists) or a damaged
			// record: the node starts without it and leaves the record as
			// it is, so nothing is lost that a later version could read.
			n.log.Warn("a stored group cannot be read by this version; it is kept on disk and not shown", "err", err)
			return nil
		}
		gs := &groupState{eng: eng, topics: map[string]*joinedTopic{}, logSaved: logSaved}
		if gs.wireSeq, err = n.restoreWires(eng); err != nil {
			return err
		}
		n.groups[eng.ID()] = gs
		return nil
	})
}

// restoreWires gives eng the wire messages stored for its group and
// returns the last one's sequence number.
func (n *Node) restoreWires(eng *group.Engine) (last uint64, err error) {
	id := eng.ID()
	var wires [][]byte
	if err := n.tabs.groupWire.ScanSeq(id[:], 0, math.MaxUint64, func(seq uint64, w []byte) error {
		wires = append(wires, w)
		last = seq
		return nil
	}); err != nil {
		return 0, fmt.Errorf("node: stored group messages: %w", err)
	}
	eng.Restore(wires)
	return last, nil
}

// reopenGroupsLocked reads back from the store, after t's commit failed,
// the engines of the groups t opened messages with (groupWireLocked):
// opening a message moved the engine past it (its seen ranges, its
// receiving chain), so without this the member would never take it
// again, from anti-entropy or a relay, and it would be lost. The engine
// is then as after a restart (the messages it saw since its last save
// are asked for again, and the stored ones dropped as copies). An engine
// saved or used to seal since t's changes is left as it is: what it
// sent may rest on that state.
func (n *Node) reopenGroupsLocked(t *txn) {
	for _, o := range t.opened {
		gs := o.gs
		id := gs.eng.ID()
		if n.groups[id] != gs || gs.changes != o.changes {
			continue
		}
		v, err := n.tabs.groups.Get(id[:])
		if err != nil {
			n.log.Warn("a group not read again after a failed commit", "err", err)
			continue
		}
		eng, logSaved, err := n.loadEngine(id[:], v)
		if err != nil {
			n.log.Warn("a group not read again after a failed commit", "err", err)
			continue
		}
		wireSeq, err := n.restoreWires(eng)
		if err != nil {
			n.log.Warn("a group not read again after a failed commit", "err", err)
			continue
		}
		gs.eng, gs.logSaved, gs.wireSeq, gs.unsaved = eng, logSaved, wireSeq, false
		gs.changes++
	}
}

// loadEngine restores a group's engine from its groups record: state
// with the op log in groupops (saveGroupLocked), or a whole engine as
// versions before the split saved it, whose next save writes both. It
// returns the log version the stored log matches (0: none stored).
func (n *Node) loadEngine(id, v []byte) (*group.Engine, uint64, error) {
	if !group.IsState(v) {
		eng, err := group.Unmarshal(n.groupConfig(), v)
		return eng, 0, err
	}
	log, err := n.tabs.groupOps.Get(id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, 0, err
	}
	eng, err := group.UnmarshalParts(n.groupConfig(), v, log)
	if err != nil {
		return nil, 0, err
	}
	return eng, eng.LogVersion(), nil
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

// saveGroupLocked writes the engine into t and marks the groups changed
// (the commit resubscribes to their topics and rebuilds the guard's
// table). Every engine call that succeeded is saved before its effects
// leave.
func (n *Node) saveGroupLocked(t *txn, gs *groupState) error {
	t.groupsChanged = true
	return n.saveEngineLocked(t, gs)
}

// saveEngineLocked writes the engine into t: its state in the groups
// table and, when the op log changed since it was last written, the log
// in groupops, in the same batch. An engine call that cannot change the
// group's topics or members (Seal, Open of a message that is not an op)
// is saved with it alone.
func (n *Node) saveEngineLocked(t *txn, gs *groupState) error {
	gs.unsaved = false
	gs.changes++
	n.journalLocked(t, gs)
	b, err := gs.eng.MarshalState()
	if err != nil {
		return err
	}
	id := gs.eng.ID()
	if v := gs.eng.LogVersion(); v != gs.logSaved {
		if err := t.b.Put(n.tabs.groupOps, id[:], gs.eng.MarshalLog()); err != nil {
			return err
		}
		// Noted only once committed: a save made while this commit is
		// under way writes the log again rather than count on it.
		t.committed = append(t.committed, func() { gs.logSaved = v })
	}
	return t.b.Put(n.tabs.groups, id[:], b)
}

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
	n.mu.Lock()
	defer n.mu.Unlock()
	gs, err := n.groupTxnLocked(ref, fn)
	if err != nil || gs == nil {
		return Group{}, err
	}
	n.syncTopicsLocked(gs)
	return n.groupViewLocked(gs), nil
}

// groupSendTxn is groupTxn for sending (SendGroup, SendGroupFile): a
// message changes neither the group's topics nor its view, so the
// caller, who waits, is not made to resubscribe and build the view, and
// the publication, which waits for the lock, goes out sooner.
func (n *Node) groupSendTxn(ref string, fn func(t *txn, gs *groupState, now time.Time) error) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, err := n.groupTxnLocked(ref, fn)
	return err
}

// groupTxnLocked runs fn on the group ref names (none for "") in one
// transaction and commits it.
func (n *Node) groupTxnLocked(ref string, fn func(t *txn, gs *groupState, now time.Time) error) (*groupState, error) {
	now := n.now()
	if n.closed {
		return nil, ErrClosed
	}
	if n.account == nil {
		return nil, errors.New("groups need the account key on this device")
	}
	var gs *groupState
	if ref != "" {
		var err error
		if gs, err = n.resolveGroupLocked(ref); err != nil {
			return nil, err
		}
	}
	t := n.newTxnLocked()
	if err := fn(t, gs, now); err != nil {
		n.dropQueuedLocked(t.queued)
		return nil, err
	}
	n.saveSeqLocked(t)
	if err := n.commitReleasingLock(t); err != nil {
		return nil, err
	}
	return gs, nil
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
func (n *Node) CreateGroup(name string) (Group, error) { return n.CreateGroupTxn(name, "") }

// CreateGroupTxn is CreateGroup with a client transaction ID: a retry
// with the same ID returns the group the first call created (txnids.go).
func (n *Node) CreateGroupTxn(name, txnID string) (Group, error) {
	name, err := checkName(name)
	if err != nil {
		return Group{}, err
	}
	if g, ok := n.groupOfTxn(txnID); ok {
		return g, nil
	}
	var created *groupState
	_, err = n.groupTxn("", func(t *txn, _ *groupState, now time.Time) error {
		if n.txnTakenLocked(txnGroup, txnID) {
			return errTxnRace
		}
		eng, err := group.Create(n.groupConfig(), name)
		if err != nil {
			return err
		}
		created = &groupState{eng: eng, topics: map[string]*joinedTopic{}}
		n.groups[eng.ID()] = created
		t.undo(func() { delete(n.groups, eng.ID()) })
		gid := eng.ID()
		n.putTxnLocked(t, txnGroup, txnID, hex.EncodeToString(gid[:]))
		fx := eng.Flush() // the account's other devices: their Welcome, secret and key
		if err := n.saveGroupLocked(t, created); err != nil {
			return err
		}
		n.effectsLocked(t, created, fx, now)
		return nil
	})
	if errors.Is(err, errTxnRace) {
		if g, ok := n.groupOfTxn(txnID); ok {
			return g, nil
		}
	}
	if err != nil {
		return Group{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.syncTopicsLocked(created)
	g := n.groupViewLocked(created)
	n.publishLocked([]Event{{Type: EventGroup, Group: &g}})
	return g, nil
}

// InviteToGroup invites a contact (admins only). The contact sees the
// invitation in its group list and accepts or declines it.
func (n *Node) InviteToGroup(ref, contactName string) (Group, error) {
	return n.groupTxn(ref, func(t *txn, gs *groupState, now time.Time) error {
		c, err := n.contactByNameLocked(contactName)
		if err != nil {
			return err
		}
		var devs []identity.DeviceID
		for _, d := range c.card.List.Devices() {
			devs = append(devs, d.DeviceID())
		}
		fx, err := gs.eng.Invite(c.card.List)
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
			n.sendGroupTimerLocked(t, gs, c.account(), d, now) // the invitee's messages disappear from the start
		}
		return n.publishGroupPayloadLocked(t, gs, &payload{Type: ptCard, Data: c.card.Marshal()}, now)
	})
}

// memberCardsLocked lists the cards this device knows for a group's
// members, its own included.
func (n *Node) memberCardsLocked(gs *groupState) [][]byte {
	own, err := n.ownCardLocked(n.now())
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
	// A message under an iteration the stored engine already covers may
	// be published before t is committed (groups.md §16.13).
	early := gs.eng.SendReserved()
	gs.changes++
	wire, _, err := gs.eng.Seal(p.marshal())
	if errors.Is(err, group.ErrNotReady) {
		return ErrGroupNotReady
	}
	if err != nil {
		return err
	}
	fx := gs.eng.Flush() // a sender key Seal rotated goes to every member
	early = early && len(fx.Publish) == 0 && len(fx.Pairwise) == 0
	// Sealing moves this device's chain, never the group's topics or
	// members: the commit need not resubscribe or rebuild the guard. The
	// engine is written with t when the message was not covered or the
	// reservation runs low; else with the next lazy save.
	if !early || gs.eng.ReserveLow() {
		res := gs.eng.Reserve() // 64 iterations past the next one
		if err := n.saveEngineLocked(t, gs); err != nil {
			return err
		}
		t.committed = append(t.committed, func() { gs.eng.Confirm(res) })
	} else {
		gs.unsaved = true
	}
	n.effectsLocked(t, gs, fx, now)
	before := len(t.publish)
	n.queuePublishLocked(t, gs, wire)
	t.publishEarly = early && before == 0 && len(t.publish) == 1
	return nil
}

// queuePublishLocked seals a wire message for its epoch's topic
// (Engine.SealTopic) and queues it in t, to go out after the commit.
func (n *Node) queuePublishLocked(t *txn, gs *groupState, wire []byte) {
	gs.changes++
	topic, data, err := gs.eng.SealTopic(wire)
	if err != nil {
		n.log.Debug("group message not published", "err", err)
		return // anti-entropy delivers it
	}
	t.publishEarly = false // only publishGroupPayloadLocked's own may go early
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
		// Devices linked since the inviter last saw this account's list
		// follow in a Devices op.
		if fx, err := gs.eng.SetDevices(n.list, nil); err == nil {
			if err := n.saveGroupLocked(t, gs); err != nil {
				return err
			}
			n.effectsLocked(t, gs, fx, now)
		}
		n.askSyncLocked(t, gs, now) // catch up on what happened since the invitation
		return nil
	})
}

// DeclineGroup declines a pending invitation and forgets the group.
func (n *Node) DeclineGroup(ref string) error {
	_, err := n.groupTxn(ref, func(t *txn, gs *groupState, now time.Time) error {
		n.partLocked(gs) // while this device still has the topics: its last op goes out on them
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
		n.partLocked(gs) // while this device still has the topics: its last op goes out on them
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
	t.b.Delete(n.tabs.groupOps, id[:])
	for seq := gs.wireSeq; seq > 0 && seq+keepWires > gs.wireSeq; seq-- {
		t.b.DeleteSeq(n.tabs.groupWire, id[:], seq)
	}
	delete(n.groups, id)
	for _, jt := range gs.topics {
		jt.cancel()
	}
	gs.topics = nil
	n.topicsChangedLocked()
	n.guardChangedLocked()
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
	name, err := checkName(name)
	if err != nil {
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
	err := n.groupSendTxn(req.Group, func(t *txn, gs *groupState, now time.Time) error {
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
	if n.readViewWanted(gs, m) {
		n.readersLocked(gs, m, &v)
	}
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
		if err := decodeMsgRec(v, &m); err != nil {
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
