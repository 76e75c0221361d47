package apitest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hushnet/hush/node"
	"github.com/hushnet/hush/node/group"
)

// fakeGroup is one group: its view as the API shows it and its
// conversation, oldest first.
type fakeGroup struct {
	view node.Group
	msgs []*node.Message
}

// groupLocked finds a group by ID or by its name when unambiguous, as
// the node does.
func (b *Backend) groupLocked(ref string) (*fakeGroup, error) {
	if g, ok := b.groups[strings.ToLower(ref)]; ok {
		return g, nil
	}
	var byName []*fakeGroup
	for _, g := range b.groups {
		if g.view.Name == ref {
			byName = append(byName, g)
		}
	}
	switch len(byName) {
	case 0:
		return nil, fmt.Errorf("%w %q", node.ErrUnknownGroup, ref)
	case 1:
		return byName[0], nil
	}
	return nil, fmt.Errorf("%w (%q)", node.ErrAmbiguousGroup, ref)
}

// adminGroupLocked is groupLocked for operations only admins may do.
func (b *Backend) adminGroupLocked(ref string) (*fakeGroup, error) {
	g, err := b.groupLocked(ref)
	if err != nil {
		return nil, err
	}
	if !g.view.Admin {
		return nil, group.ErrNotAdmin
	}
	return g, nil
}

// memberIndex finds a member or invitee by name or account.
func (g *fakeGroup) memberIndex(name string) (int, error) {
	i := slices.IndexFunc(g.view.Members, func(m node.GroupMember) bool {
		return m.Name == name || m.Account == strings.ToLower(name)
	})
	if i < 0 {
		return 0, fmt.Errorf("%w: no member %q", node.ErrUnknownContact, name)
	}
	return i, nil
}

// newGroupLocked adds a group with a fresh 64-hex ID.
func (b *Backend) newGroupLocked(name string, members []node.GroupMember) *fakeGroup {
	b.nextGrp++
	g := &fakeGroup{view: node.Group{ID: fmt.Sprintf("%064x", b.nextGrp), Name: name, Epoch: 1, Members: members}}
	b.groups[g.view.ID] = g
	return g
}

// changedLocked publishes a group event and returns the group's view.
func (b *Backend) changedLocked(g *fakeGroup) node.Group {
	v := g.view
	v.Members = slices.Clone(v.Members)
	b.publishLocked(node.Event{Type: node.EventGroup, Group: &v})
	return v
}

// CreateGroup implements api.Backend: this account is the only member
// and admin.
func (b *Backend) CreateGroup(name string) (node.Group, error) {
	if err := validName(name); err != nil {
		return node.Group{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	g := b.newGroupLocked(name, []node.GroupMember{{Name: "me", Account: b.self.Account, Admin: true, Me: true}})
	g.view.Admin = true
	return b.changedLocked(g), nil
}

// Invite adds a pending invitation to a group called name, from the
// contact from (its admin), as if it arrived.
func (b *Backend) Invite(name, from string) node.Group {
	b.mu.Lock()
	defer b.mu.Unlock()
	account := from
	if c, ok := b.contacts[from]; ok {
		account = c.Account
	}
	g := b.newGroupLocked(name, []node.GroupMember{
		{Name: from, Account: account, Admin: true},
		{Name: "me", Account: b.self.Account, Me: true, Invited: true},
	})
	g.view.Pending = true
	return b.changedLocked(g)
}

// InviteToGroup implements api.Backend (admins only).
func (b *Backend) InviteToGroup(ref, contact string) (node.Group, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.adminGroupLocked(ref)
	if err != nil {
		return node.Group{}, err
	}
	c, ok := b.contacts[contact]
	if !ok {
		return node.Group{}, node.ErrUnknownContact
	}
	if _, err := g.memberIndex(c.Account); err == nil {
		return node.Group{}, group.ErrAlreadyMember
	}
	g.view.Members = append(g.view.Members, node.GroupMember{Name: c.Name, Account: c.Account, Invited: true})
	return b.changedLocked(g), nil
}

// AcceptGroup implements api.Backend.
func (b *Backend) AcceptGroup(ref string) (node.Group, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.groupLocked(ref)
	if err != nil {
		return node.Group{}, err
	}
	if !g.view.Pending {
		return node.Group{}, group.ErrNotInvited
	}
	g.view.Pending = false
	for i := range g.view.Members {
		if g.view.Members[i].Me {
			g.view.Members[i].Invited = false
		}
	}
	return b.changedLocked(g), nil
}

// DeclineGroup implements api.Backend: the invitation is forgotten.
func (b *Backend) DeclineGroup(ref string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.groupLocked(ref)
	if err != nil {
		return err
	}
	if !g.view.Pending {
		return group.ErrNotInvited
	}
	b.forgetLocked(g)
	return nil
}

// LeaveGroup implements api.Backend: the group is forgotten.
func (b *Backend) LeaveGroup(ref string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.groupLocked(ref)
	if err != nil {
		return err
	}
	b.forgetLocked(g)
	return nil
}

func (b *Backend) forgetLocked(g *fakeGroup) {
	delete(b.groups, g.view.ID)
	for _, m := range g.msgs {
		delete(b.byID, m.ID)
	}
}

// RemoveFromGroup implements api.Backend (admins only): a new epoch.
func (b *Backend) RemoveFromGroup(ref, member string) (node.Group, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.adminGroupLocked(ref)
	if err != nil {
		return node.Group{}, err
	}
	i, err := g.memberIndex(member)
	if err != nil {
		return node.Group{}, err
	}
	if g.view.Members[i].Me {
		return node.Group{}, fmt.Errorf("%w: use leaveGroup to leave", group.ErrBadOp)
	}
	g.view.Members = slices.Delete(g.view.Members, i, i+1)
	g.view.Epoch++
	return b.changedLocked(g), nil
}

// PromoteInGroup implements api.Backend (admins only).
func (b *Backend) PromoteInGroup(ref, member string) (node.Group, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.adminGroupLocked(ref)
	if err != nil {
		return node.Group{}, err
	}
	i, err := g.memberIndex(member)
	if err != nil {
		return node.Group{}, err
	}
	if g.view.Members[i].Invited {
		return node.Group{}, group.ErrNotMember
	}
	g.view.Members[i].Admin = true
	return b.changedLocked(g), nil
}

// RenameGroup implements api.Backend (admins only).
func (b *Backend) RenameGroup(ref, name string) (node.Group, error) {
	if err := validName(name); err != nil {
		return node.Group{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.adminGroupLocked(ref)
	if err != nil {
		return node.Group{}, err
	}
	g.view.Name = name
	for _, m := range g.msgs {
		m.Contact = name
	}
	return b.changedLocked(g), nil
}

// Groups implements api.Backend: pending invitations included, sorted by
// name, then ID.
func (b *Backend) Groups() ([]node.Group, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]node.Group, 0, len(b.groups))
	for _, g := range b.groups {
		v := g.view
		v.Members = slices.Clone(v.Members)
		out = append(out, v)
	}
	slices.SortFunc(out, func(x, y node.Group) int { return strings.Compare(x.Name+x.ID, y.Name+y.ID) })
	return out, nil
}

// SendGroup implements api.Backend: a new message is stored as sent
// (published), as the node does.
func (b *Backend) SendGroup(_ context.Context, req node.GroupSendRequest) (node.Message, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.groupLocked(req.Group)
	if err != nil {
		return node.Message{}, err
	}
	if g.view.Pending {
		return node.Message{}, errors.New("accept the invitation first")
	}
	if req.TxnID != "" {
		if id, ok := b.txns[req.TxnID]; ok && b.byID[id].Group == g.view.ID {
			return *b.byID[id], nil
		}
	}
	if len(req.Text) > node.MaxTextSize {
		return node.Message{}, node.ErrMessageTooLarge
	}
	kind := req.Kind
	if kind == "" {
		kind = node.KindText
		if req.Target != "" {
			kind = node.KindReply
		}
	}
	if kind != node.KindText {
		t, ok := b.byID[req.Target]
		if !ok || t.Group != g.view.ID {
			return node.Message{}, fmt.Errorf("%w: %q is not in %s", node.ErrUnknownMessage, req.Target, g.view.Name)
		}
		if kind != node.KindReply {
			b.actLocked(t, kind, req.Text, req.Remove)
			return *t, nil
		}
	}
	m := b.addGroupLocked(g, "out", "me", req.Text, node.StateSent)
	if kind == node.KindReply {
		m.ReplyTo = req.Target
	}
	if req.TxnID != "" {
		b.txns[req.TxnID] = m.ID
	}
	b.publishLocked(node.Event{Type: node.EventMessage, Message: ptr(*m)})
	return *m, nil
}

// ReceiveGroup adds an incoming message from sender to a group, as if it
// arrived.
func (b *Backend) ReceiveGroup(ref, sender, text string) (node.Message, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.groupLocked(ref)
	if err != nil {
		return node.Message{}, err
	}
	m := b.addGroupLocked(g, "in", sender, text, node.StateReceived)
	b.publishLocked(node.Event{Type: node.EventMessage, Message: ptr(*m)})
	return *m, nil
}

func (b *Backend) addGroupLocked(g *fakeGroup, dir, sender, text string, state node.MessageState) *node.Message {
	b.nextMsg++
	m := &node.Message{
		ID: fmt.Sprintf("m%04d", b.nextMsg), Contact: g.view.Name, Direction: dir, Text: text,
		State: state, Time: b.Now(), Group: g.view.ID, Sender: sender,
	}
	g.msgs = append(g.msgs, m)
	b.byID[m.ID] = m
	return m
}

// GroupMessages implements api.Backend: the last limit messages (0: all),
// oldest first.
func (b *Backend) GroupMessages(ref string, limit int) ([]node.Message, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.groupLocked(ref)
	if err != nil {
		return nil, err
	}
	ms := g.msgs
	if limit > 0 && len(ms) > limit {
		ms = ms[len(ms)-limit:]
	}
	out := make([]node.Message, len(ms))
	for i, m := range ms {
		out[i] = *m
	}
	return out, nil
}
