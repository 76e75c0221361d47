package api

import (
	"context"
	"encoding/json"

	"github.com/hushnet/hush/node"
)

// GroupBackend is what the group methods need; *node.Node provides it.
type GroupBackend interface {
	CreateGroup(name string) (node.Group, error)
	InviteToGroup(group, contact string) (node.Group, error)
	AcceptGroup(group string) (node.Group, error)
	DeclineGroup(group string) error
	LeaveGroup(group string) error
	RemoveFromGroup(group, member string) (node.Group, error)
	PromoteInGroup(group, member string) (node.Group, error)
	RenameGroup(group, name string) (node.Group, error)
	Groups() ([]node.Group, error)
	SendGroup(ctx context.Context, req node.GroupSendRequest) (node.Message, error)
	GroupMessages(group string, limit int) ([]node.Message, error)
}

var _ GroupBackend = (*node.Node)(nil)

func init() {
	for name, m := range map[string]method{
		"createGroup":       mCreateGroup,
		"inviteToGroup":     mInviteToGroup,
		"acceptGroup":       groupOnly(func(b GroupBackend, g string) (any, error) { return b.AcceptGroup(g) }),
		"declineGroup":      groupOnly(func(b GroupBackend, g string) (any, error) { return ok(b.DeclineGroup(g)) }),
		"leaveGroup":        groupOnly(func(b GroupBackend, g string) (any, error) { return ok(b.LeaveGroup(g)) }),
		"removeFromGroup":   groupMember(func(b GroupBackend, g, m string) (any, error) { return b.RemoveFromGroup(g, m) }),
		"promoteInGroup":    groupMember(func(b GroupBackend, g, m string) (any, error) { return b.PromoteInGroup(g, m) }),
		"renameGroup":       mRenameGroup,
		"listGroups":        mListGroups,
		"sendGroup":         mSendGroup,
		"listGroupMessages": mListGroupMessages,
	} {
		methods[name] = m
	}
}

func ok(err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return map[string]bool{"ok": true}, nil
}

func groupsOf(b Backend) (GroupBackend, error) {
	g, ok := b.(GroupBackend)
	if !ok {
		return nil, newError(CodeMethodNotFound, "this node has no groups")
	}
	return g, nil
}

func groupOnly(fn func(GroupBackend, string) (any, error)) method {
	return func(_ context.Context, b Backend, params json.RawMessage) (any, error) {
		var p struct {
			Group string `json:"group"`
		}
		if err := decodeParams(params, &p); err != nil {
			return nil, err
		}
		if err := required("group", p.Group); err != nil {
			return nil, err
		}
		g, err := groupsOf(b)
		if err != nil {
			return nil, err
		}
		return fn(g, p.Group)
	}
}

func groupMember(fn func(GroupBackend, string, string) (any, error)) method {
	return func(_ context.Context, b Backend, params json.RawMessage) (any, error) {
		var p struct {
			Group  string `json:"group"`
			Member string `json:"member"`
		}
		if err := decodeParams(params, &p); err != nil {
			return nil, err
		}
		if err := required("group", p.Group); err != nil {
			return nil, err
		}
		if err := required("member", p.Member); err != nil {
			return nil, err
		}
		g, err := groupsOf(b)
		if err != nil {
			return nil, err
		}
		return fn(g, p.Group, p.Member)
	}
}

func mCreateGroup(_ context.Context, b Backend, params json.RawMessage) (any, error) {
	var p struct {
		Name string `json:"name"`
	}
	if err := decodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := required("name", p.Name); err != nil {
		return nil, err
	}
	g, err := groupsOf(b)
	if err != nil {
		return nil, err
	}
	return g.CreateGroup(p.Name)
}

func mInviteToGroup(_ context.Context, b Backend, params json.RawMessage) (any, error) {
	var p struct {
		Group   string `json:"group"`
		Contact string `json:"contact"`
	}
	if err := decodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := required("group", p.Group); err != nil {
		return nil, err
	}
	if err := required("contact", p.Contact); err != nil {
		return nil, err
	}
	g, err := groupsOf(b)
	if err != nil {
		return nil, err
	}
	return g.InviteToGroup(p.Group, p.Contact)
}

func mRenameGroup(_ context.Context, b Backend, params json.RawMessage) (any, error) {
	var p struct {
		Group string `json:"group"`
		Name  string `json:"name"`
	}
	if err := decodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := required("group", p.Group); err != nil {
		return nil, err
	}
	if err := required("name", p.Name); err != nil {
		return nil, err
	}
	g, err := groupsOf(b)
	if err != nil {
		return nil, err
	}
	return g.RenameGroup(p.Group, p.Name)
}

func mListGroups(_ context.Context, b Backend, params json.RawMessage) (any, error) {
	if err := noParams(params); err != nil {
		return nil, err
	}
	g, err := groupsOf(b)
	if err != nil {
		return nil, err
	}
	gs, err := g.Groups()
	if gs == nil && err == nil {
		gs = []node.Group{}
	}
	return gs, err
}

func mSendGroup(ctx context.Context, b Backend, params json.RawMessage) (any, error) {
	var p struct {
		Group  string `json:"group"`
		Text   string `json:"text"`
		Kind   string `json:"kind"`
		Target string `json:"target"`
		Remove bool   `json:"remove"`
	}
	if err := decodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := required("group", p.Group); err != nil {
		return nil, err
	}
	kind, err := checkMessage(node.Kind(p.Kind), p.Text, p.Target, p.Remove)
	if err != nil {
		return nil, err
	}
	g, err := groupsOf(b)
	if err != nil {
		return nil, err
	}
	return g.SendGroup(ctx, node.GroupSendRequest{Group: p.Group, Kind: kind, Text: p.Text, Target: p.Target, Remove: p.Remove})
}

func mListGroupMessages(_ context.Context, b Backend, params json.RawMessage) (any, error) {
	var p struct {
		Group string `json:"group"`
		Limit int    `json:"limit"`
	}
	if err := decodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := required("group", p.Group); err != nil {
		return nil, err
	}
	if p.Limit < 0 {
		return nil, invalidParams("%q must not be negative", "limit")
	}
	g, err := groupsOf(b)
	if err != nil {
		return nil, err
	}
	ms, err := g.GroupMessages(p.Group, p.Limit)
	if ms == nil && err == nil {
		ms = []node.Message{}
	}
	return ms, err
}
