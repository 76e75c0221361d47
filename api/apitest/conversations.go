package apitest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hushnet/hush/node"
)

// fakeConv is a conversation's settings on this device.
type fakeConv struct {
	muted, pinned, archived bool
	archivedAt              int // messages in the conversation when it was archived
}

// convLocked finds a conversation: its key, its messages and its name.
func (b *Backend) conversationKeyLocked(contact, group string) (string, []*node.Message, *fakeGroup, error) {
	switch {
	case (contact == "") == (group == ""):
		return "", nil, nil, fmt.Errorf("name a contact or a group")
	case group != "":
		g, err := b.groupLocked(group)
		if err != nil {
			return "", nil, nil, err
		}
		return "g:" + g.view.ID, g.msgs, g, nil
	}
	if _, ok := b.contacts[contact]; !ok {
		return "", nil, nil, node.ErrUnknownContact
	}
	return "c:" + contact, b.msgs[contact], nil, nil
}

func (b *Backend) prefsLocked(key string) *fakeConv {
	if b.convs == nil {
		b.convs = map[string]*fakeConv{}
	}
	if b.convs[key] == nil {
		b.convs[key] = &fakeConv{}
	}
	return b.convs[key]
}

func (b *Backend) conversationLocked(key, name string, msgs []*node.Message, g *fakeGroup) node.Conversation {
	cv := node.Conversation{Name: name, Contact: name}
	if g != nil {
		cv.Contact, cv.Group = "", g.view.ID
	}
	p := b.prefsLocked(key)
	cv.Muted, cv.Pinned = p.muted, p.pinned
	newIn := false
	for i, m := range msgs {
		if m.Direction == "in" && m.State != node.StateRead && !m.Deleted {
			cv.Unread++
		}
		if m.Direction == "in" && i >= p.archivedAt {
			newIn = true
		}
	}
	cv.Archived = p.archived && (p.muted || !newIn)
	if len(msgs) > 0 {
		m := msgs[len(msgs)-1]
		cv.Last = &node.LastMessage{ID: m.ID, Direction: m.Direction, Sender: m.Sender, Preview: m.Text, Time: m.Time, Deleted: m.Deleted}
	}
	return cv
}

// Conversations implements api.Backend: contacts and joined groups,
// pinned first, then by last activity.
func (b *Backend) Conversations(archived bool) ([]node.Conversation, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := []node.Conversation{}
	for name := range b.contacts {
		if cv := b.conversationLocked("c:"+name, name, b.msgs[name], nil); cv.Archived == archived {
			cv.Presence = b.contacts[name].Presence
			out = append(out, cv)
		}
	}
	for _, g := range b.groups {
		if g.view.Pending {
			continue
		}
		if cv := b.conversationLocked("g:"+g.view.ID, g.view.Name, g.msgs, g); cv.Archived == archived {
			out = append(out, cv)
		}
	}
	last := func(c node.Conversation) time.Time {
		if c.Last == nil {
			return time.Time{}
		}
		return c.Last.Time
	}
	slices.SortFunc(out, func(x, y node.Conversation) int {
		if x.Pinned != y.Pinned {
			if x.Pinned {
				return -1
			}
			return 1
		}
		return cmp.Or(last(y).Compare(last(x)), strings.Compare(x.Name, y.Name))
	})
	return out, nil
}

// SetConversation implements api.Backend.
func (b *Backend) SetConversation(s node.ConversationSettings) (node.Conversation, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	key, msgs, g, err := b.conversationKeyLocked(s.Contact, s.Group)
	if err != nil {
		return node.Conversation{}, err
	}
	p := b.prefsLocked(key)
	if s.Muted != nil {
		p.muted = *s.Muted
	}
	if s.Pinned != nil {
		p.pinned = *s.Pinned
	}
	if s.Archived != nil {
		p.archived, p.archivedAt = *s.Archived, len(msgs)
	}
	name := s.Contact
	if g != nil {
		name = g.view.Name
	}
	return b.conversationLocked(key, name, msgs, g), nil
}

// GetMessage implements api.Backend.
func (b *Backend) GetMessage(id string) (node.Message, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, ok := b.byID[id]
	if !ok {
		return node.Message{}, fmt.Errorf("%w %s", node.ErrUnknownMessage, id)
	}
	return *m, nil
}

// MessagePage implements api.Backend as the node does.
func (b *Backend) MessagePage(q node.MessageQuery) ([]node.Message, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, msgs, _, err := b.conversationKeyLocked(q.Contact, q.Group)
	if err != nil {
		return nil, err
	}
	index := func(id string) (int, error) {
		i := slices.IndexFunc(msgs, func(m *node.Message) bool { return m.ID == id })
		if i < 0 {
			return 0, fmt.Errorf("%w %s in this conversation", node.ErrUnknownMessage, id)
		}
		return i, nil
	}
	lo, hi := 0, len(msgs)
	if q.Before != "" {
		if hi, err = index(q.Before); err != nil {
			return nil, err
		}
	}
	if q.After != "" {
		i, err := index(q.After)
		if err != nil {
			return nil, err
		}
		lo = i + 1
	}
	if lo > hi {
		lo = hi
	}
	page := msgs[lo:hi]
	if q.Limit > 0 && len(page) > q.Limit {
		if q.After != "" && q.Before == "" {
			page = page[:q.Limit]
		} else {
			page = page[len(page)-q.Limit:]
		}
	}
	out := make([]node.Message, len(page))
	for i, m := range page {
		out[i] = *m
	}
	return out, nil
}

// DeleteLocal implements api.Backend: the message is gone from the fake.
func (b *Backend) DeleteLocal(contact, group, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, msgs, g, err := b.conversationKeyLocked(contact, group)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(msgs, func(m *node.Message) bool { return m.ID == id })
	if i < 0 {
		return fmt.Errorf("%w %s in this conversation", node.ErrUnknownMessage, id)
	}
	msgs = slices.Delete(slices.Clone(msgs), i, i+1)
	b.setMsgsLocked(contact, g, msgs)
	delete(b.byID, id)
	return nil
}

// ClearConversation implements api.Backend.
func (b *Backend) ClearConversation(contact, group string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, msgs, g, err := b.conversationKeyLocked(contact, group)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		delete(b.byID, m.ID)
	}
	b.setMsgsLocked(contact, g, nil)
	return nil
}

func (b *Backend) setMsgsLocked(contact string, g *fakeGroup, msgs []*node.Message) {
	if g != nil {
		g.msgs = msgs
	} else {
		b.msgs[contact] = msgs
	}
}

// MarkGroupRead implements api.Backend.
func (b *Backend) MarkGroupRead(ref string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.groupLocked(ref)
	if err != nil {
		return err
	}
	for _, m := range g.msgs {
		if m.Direction == "in" && m.State == node.StateReceived {
			m.State = node.StateRead
			b.publishLocked(node.Event{Type: node.EventUpdate, Message: ptr(*m)})
		}
	}
	return nil
}

// CreateGroupTxn implements api.Backend: a retry with the same txnID
// returns the group made first.
func (b *Backend) CreateGroupTxn(name, txnID string) (node.Group, error) {
	if txnID != "" {
		b.mu.Lock()
		id, ok := b.txns["group:"+txnID]
		g := b.groups[id]
		b.mu.Unlock()
		if ok && g != nil {
			return g.view, nil
		}
	}
	g, err := b.CreateGroup(name)
	if err == nil && txnID != "" {
		b.mu.Lock()
		b.txns["group:"+txnID] = g.ID
		b.mu.Unlock()
	}
	return g, err
}
