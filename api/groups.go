package api

import (
	"context"
	"encoding/json"
	"slices"

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
		"createGroup":       groupMethod(func(g GroupBackend, a []string) (any, error) { return g.CreateGroup(a[0]) }, "name"),
		"inviteToGroup":     groupMethod(func(g GroupBackend, a []string) (any, error) { return g.InviteToGroup(a[0], a[1]) }, "group", "contact"),
		"acceptGroup":       groupMethod(func(g GroupBackend, a []string) (any, error) { return g.AcceptGroup(a[0]) }, "group"),
		"declineGroup":      groupMethod(func(g GroupBackend, a []string) (any, error) { return ok(g.DeclineGroup(a[0])) }, "group"),
		"leaveGroup":        groupMethod(func(g GroupBackend, a []string) (any, error) { return ok(g.LeaveGroup(a[0])) }, "group"),
		"removeFromGroup":   groupMethod(func(g GroupBackend, a []string) (any, error) { return g.RemoveFromGroup(a[0], a[1]) }, "group", "member"),
		"promoteInGroup":    groupMethod(func(g GroupBackend, a []string) (any, error) { return g.PromoteInGroup(a[0], a[1]) }, "group", "member"),
		"renameGroup":       groupMethod(func(g GroupBackend, a []string) (any, error) { return g.RenameGroup(a[0], a[1]) }, "group", "name"),
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

// stringParams decodes params made of exactly the named string fields,
// all required, and returns their values in order.
func stringParams(params json.RawMessage, names ...string) ([]string, error) {
	var raw map[string]json.RawMessage
	if err := decodeParams(params, &raw); err != nil {
		return nil, err
	}
	for k := range raw {
		if !slices.Contains(names, k) {
			return nil, invalidParams("unknown field %q", k)
		}
	}
	out := make([]string, len(names))
	for i, name := range names {
		if v, ok := raw[name]; ok && json.Unmarshal(v, &out[i]) != nil {
			return nil, invalidParams("%q must be a string", name)
		}
		if err := required(name, out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// groupMethod is a group method whose params are the named strings.
func groupMethod(fn func(g GroupBackend, args []string) (any, error), names ...string) method {
	return func(_ context.Context, b Backend, params json.RawMessage) (any, error) {
		args, err := stringParams(params, names...)
		if err != nil {
			return nil, err
		}
		g, err := groupsOf(b)
		if err != nil {
			return nil, err
		}
		return fn(g, args)
	}
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
