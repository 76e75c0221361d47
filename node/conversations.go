package node

import (
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/node/group"
)

// The conversation list: contacts and groups together (requests are not
// conversations), each with its last message and unread count, computed
// from the tail of its messages (see convTailLocked), and this device's
// settings for it, kept in the convprefs table (autofetch.go): muted,
// pinned and archived are device-local and do not sync.

type (
	// Conversation is an entry of the conversation list.
	Conversation = apitypes.Conversation
	// LastMessage is what the list shows of a conversation's last message.
	LastMessage = apitypes.LastMessage
	// MessageQuery asks for a page of a conversation.
	MessageQuery = apitypes.MessageQuery
	// ConversationSettings changes a conversation's settings.
	ConversationSettings = apitypes.SetConversationParams
)

// maxTailScan bounds the records read per conversation to count its
// unread messages: counts stop at this many records back.
const maxTailScan = 100

var errStopScan = errors.New("stop scan")

// convTail is what the tail of a conversation says.
type convTail struct {
	last   *msgRec // the newest message (a notice only if nothing else)
	lastIn uint64  // sequence number of the newest incoming message
	unread int     // incoming messages not read and not deleted
}

// convTailLocked reads a conversation backwards from its newest record
// until an incoming message that was read: MarkRead marks every message
// read, so what lies before it is read too. Its cost is the number of
// unread messages plus the outgoing ones after the last one read, at
// most maxTailScan records.
func (n *Node) convTailLocked(key []byte) (convTail, error) {
	var ct convTail
	var notice *msgRec
	err := n.tabs.messages.ScanSeqReverse(key, 0, ^uint64(0), maxTailScan, func(seq uint64, v []byte) error {
		var m msgRec
		if err := decodeMsgRec(v, &m); err != nil {
			return err
		}
		switch {
		case m.Dir == dirSystem:
			if notice == nil {
				notice = &m
			}
			return nil
		case ct.last == nil:
			ct.last = &m
		}
		if m.Dir != "in" {
			return nil
		}
		if ct.lastIn == 0 {
			ct.lastIn = seq
		}
		if m.State == StateRead {
			return errStopScan
		}
		if !m.Deleted {
			ct.unread++
		}
		return nil
	})
	if errors.Is(err, errStopScan) {
		err = nil
	}
	if ct.last == nil {
		ct.last = notice
	}
	return ct, err
}

func preview(m *msgRec) string {
	text := m.Text
	if strings.TrimSpace(text) == "" && m.File != nil {
		text = m.File.Name
	}
	text = strings.Join(strings.Fields(text), " ")
	if utf8.RuneCountInString(text) > apitypes.PreviewRunes {
		r := []rune(text)
		text = string(r[:apitypes.PreviewRunes-1]) + "…"
	}
	return text
}

func (n *Node) convPrefsLocked(key []byte) (convPrefs, error) {
	var p convPrefs
	if err := n.getJSON(n.tabs.convPrefs, key, &p); err != nil && !errors.Is(err, store.ErrNotFound) {
		return p, err
	}
	return p, nil
}

// conversationLocked builds the list entry of the conversation with key;
// c or gs names it.
func (n *Node) conversationLocked(key []byte, c *contact, gs *groupState) (Conversation, error) {
	var cv Conversation
	if gs != nil {
		id := gs.eng.ID()
		cv.Group, cv.Name = hex.EncodeToString(id[:]), gs.eng.Name()
	} else {
		cv.Contact, cv.Name = c.rec.Name, c.rec.Name
		cv.Presence = n.presenceOfLocked(c.account(), n.now())
	}
	ct, err := n.cachedTailLocked(key)
	if err != nil {
		return cv, err
	}
	p, err := n.convPrefsLocked(key)
	if err != nil {
		return cv, err
	}
	cv.Unread, cv.Muted, cv.Pinned = ct.unread, p.Muted, p.Pinned
	// A new incoming message brings an archived conversation back,
	// unless it is muted (as Signal does).
	cv.Archived = p.Archived && (p.Muted || ct.lastIn <= p.ArchivedSeq)
	if m := ct.last; m != nil {
		cv.Last = &LastMessage{ID: m.ID, Direction: m.Dir, Sender: m.Sender, Preview: preview(m), Time: m.Time, Deleted: m.Deleted}
		if m.Deleted {
			cv.Last.Preview = ""
		}
	}
	return cv, nil
}

// Conversations lists the conversations, archived ones instead when
// archived is set: pinned first, then the most recent activity first.
func (n *Node) Conversations(archived bool) ([]Conversation, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := []Conversation{}
	add := func(key []byte, c *contact, gs *groupState) error {
		cv, err := n.conversationLocked(key, c, gs)
		if err != nil {
			return err
		}
		if cv.Archived == archived {
			out = append(out, cv)
		}
		return nil
	}
	for acc, c := range n.contacts {
		if c.rec.Request {
			continue
		}
		if err := add(acc[:], c, nil); err != nil {
			return nil, err
		}
	}
	for id, gs := range n.groups {
		if n.groupViewLocked(gs).Pending {
			continue // an invitation: listGroups shows it
		}
		if err := add(convKey(id), nil, gs); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, func(a, b Conversation) int {
		if a.Pinned != b.Pinned {
			if a.Pinned {
				return -1
			}
			return 1
		}
		return cmp.Or(lastTime(b).Compare(lastTime(a)), strings.Compare(a.Name, b.Name), strings.Compare(a.Group, b.Group))
	})
	return out, nil
}

func lastTime(c Conversation) time.Time {
	if c.Last == nil {
		return time.Time{}
	}
	return c.Last.Time
}

// SetConversation changes this device's settings for the conversation
// with a contact or a group (those given; nil leaves one as it is) and
// returns its list entry.
func (n *Node) SetConversation(s ConversationSettings) (Conversation, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return Conversation{}, ErrClosed
	}
	key, c, gs, err := n.convLocked(s.Contact, s.Group)
	if err != nil {
		return Conversation{}, err
	}
	p, err := n.convPrefsLocked(key)
	if err != nil {
		return Conversation{}, err
	}
	if s.Muted != nil {
		p.Muted = *s.Muted
	}
	if s.Pinned != nil {
		p.Pinned = *s.Pinned
	}
	if s.Archived != nil {
		p.Archived, p.ArchivedSeq = *s.Archived, 0
		if p.Archived {
			last, _, err := n.tabs.messages.LastSeq(key)
			if err != nil {
				return Conversation{}, err
			}
			p.ArchivedSeq = last
		}
	}
	b := n.db.Batch()
	putJSON(b, n.tabs.convPrefs, key, &p)
	if err := n.commit(b); err != nil {
		return Conversation{}, fmt.Errorf("node: store: %w", err)
	}
	return n.conversationLocked(key, c, gs)
}

// convLocked finds the conversation with a contact or a group (exactly
// one of the two named): its key, and the contact or the group.
func (n *Node) convLocked(contactName, groupRef string) ([]byte, *contact, *groupState, error) {
	switch {
	case (contactName == "") == (groupRef == ""):
		return nil, nil, nil, errors.New("name a contact or a group")
	case groupRef != "":
		gs, err := n.resolveGroupLocked(groupRef)
		if err != nil {
			return nil, nil, nil, err
		}
		return convKey(gs.eng.ID()), nil, gs, nil
	}
	c, err := n.contactByNameLocked(contactName)
	if err != nil {
		return nil, nil, nil, err
	}
	acc := c.account()
	return acc[:], c, nil, nil
}

// viewByKeyLocked shows a record of the conversation with key as the
// API does.
func (n *Node) viewByKeyLocked(key []byte, m *msgRec) Message {
	if isGroupConv(key) {
		if gs := n.groups[group.GroupID(key[1:])]; gs != nil {
			return n.groupMsgView(m, gs)
		}
		v := m.view("")
		v.Group = hex.EncodeToString(key[1:])
		return v
	}
	return m.view(n.nameOfLocked(key))
}

// GetMessage returns one message by its ID, from any conversation (not
// a request's).
func (n *Node) GetMessage(idHex string) (Message, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	id, err := parseMsgID(idHex)
	if err != nil {
		return Message{}, err
	}
	m, ix, err := n.loadMsgLocked(id)
	if err != nil {
		return Message{}, fmt.Errorf("%w %s", ErrUnknownMessage, idHex)
	}
	if acc, err := identity.ParseAccountID(ix.Account); err == nil {
		if c := n.contacts[acc]; c == nil || c.rec.Request {
			return Message{}, fmt.Errorf("%w %s", ErrUnknownMessage, idHex)
		}
	}
	return n.viewByKeyLocked(ix.Account, m), nil
}

// MessagePage returns a page of the conversation with a contact or a
// group, oldest first: the messages before q.Before and/or after q.After
// (message IDs of the conversation), at most q.Limit (0: all) — the
// newest of the range, or with only After, the oldest.
func (n *Node) MessagePage(q MessageQuery) ([]Message, error) {
	if q.Limit < 0 {
		return nil, errors.New("limit must not be negative")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	key, _, _, err := n.convLocked(q.Contact, q.Group)
	if err != nil {
		return nil, err
	}
	from, to := uint64(0), ^uint64(0)
	cursor := func(idHex string) (uint64, error) {
		id, err := parseMsgID(idHex)
		if err != nil {
			return 0, err
		}
		_, ix, err := n.loadMsgLocked(id)
		if err != nil || string(ix.Account) != string(key) {
			return 0, fmt.Errorf("%w %s in this conversation", ErrUnknownMessage, idHex)
		}
		return ix.Seq, nil
	}
	out := []Message{}
	if q.Before != "" {
		seq, err := cursor(q.Before)
		if err != nil {
			return nil, err
		}
		if seq == 0 {
			return out, nil
		}
		to = seq - 1
	}
	if q.After != "" {
		seq, err := cursor(q.After)
		if err != nil {
			return nil, err
		}
		if seq == ^uint64(0) {
			return out, nil
		}
		from = seq + 1
	}
	fn := func(seq uint64, v []byte) error {
		var m msgRec
		if err := decodeMsgRec(v, &m); err != nil {
			return err
		}
		out = append(out, n.viewByKeyLocked(key, &m))
		if q.Limit > 0 && len(out) >= q.Limit {
			return errStopScan
		}
		return nil
	}
	if q.After != "" && q.Before == "" {
		err = n.tabs.messages.ScanSeq(key, from, to, fn)
	} else {
		err = n.tabs.messages.ScanSeqReverse(key, from, to, q.Limit, fn)
		slices.Reverse(out)
	}
	if errors.Is(err, errStopScan) {
		err = nil
	}
	return out, err
}

// MarkGroupRead marks every incoming message of a group read on this
// device and, unless read receipts are off, tells their senders
// (groupreads.go).
func (n *Node) MarkGroupRead(ref string) error {
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
	key := convKey(gs.eng.ID())
	type upd struct {
		id  [msgIDSize]byte
		seq uint64
	}
	var ups []upd
	err = n.tabs.messages.ScanSeq(key, 0, ^uint64(0), func(seq uint64, v []byte) error {
		var m msgRec
		if err := decodeMsgRec(v, &m); err != nil {
			return err
		}
		if (m.Dir == "in" || m.Dir == dirSystem) && m.State != StateRead {
			if id, err := parseMsgID(m.ID); err == nil {
				ups = append(ups, upd{id, seq})
			}
		}
		return nil
	})
	if err != nil || len(ups) == 0 {
		return err
	}
	t := n.newTxnLocked()
	bySender := map[identity.AccountID][][msgIDSize]byte{}
	for _, u := range ups {
		m, _, err := n.loadMsgLocked(u.id)
		if err != nil {
			continue
		}
		m.State = StateRead
		n.updateMsgLocked(t, u.id, indexRec{Account: key, Seq: u.seq}, m)
		t.events = append(t.events, Event{Type: EventUpdate, Message: ptr(n.groupMsgView(m, gs))})
		if from, err := hex.DecodeString(m.From); err == nil && m.Dir == "in" && len(from) == len(identity.AccountID{}) {
			acc := identity.AccountID(from)
			bySender[acc] = append(bySender[acc], u.id)
		}
	}
	n.sendGroupReadsLocked(t, gs, bySender, now)
	n.saveSeqLocked(t)
	if err := n.commitReleasingLock(t); err != nil {
		return fmt.Errorf("node: store: %w", err)
	}
	return nil
}
