package api

import (
	"context"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node"
)

// The group methods. group is a group's name where it is unambiguous,
// else its ID; the backend resolves it.

func mCreateGroup(_ context.Context, b Backend, p apitypes.CreateGroupParams) (node.Group, error) {
	if err := required("name", p.Name); err != nil {
		return node.Group{}, err
	}
	return b.CreateGroupTxn(p.Name, p.TxnID)
}

func mInviteToGroup(_ context.Context, b Backend, p apitypes.InviteToGroupParams) (node.Group, error) {
	if err := required("group", p.Group, "contact", p.Contact); err != nil {
		return node.Group{}, err
	}
	return b.InviteToGroup(p.Group, p.Contact)
}

func mAcceptGroup(_ context.Context, b Backend, p apitypes.GroupParams) (node.Group, error) {
	if err := required("group", p.Group); err != nil {
		return node.Group{}, err
	}
	return b.AcceptGroup(p.Group)
}

func mDeclineGroup(_ context.Context, b Backend, p apitypes.GroupParams) (apitypes.OK, error) {
	if err := required("group", p.Group); err != nil {
		return apitypes.OK{}, err
	}
	return ok(b.DeclineGroup(p.Group))
}

func mLeaveGroup(_ context.Context, b Backend, p apitypes.GroupParams) (apitypes.OK, error) {
	if err := required("group", p.Group); err != nil {
		return apitypes.OK{}, err
	}
	return ok(b.LeaveGroup(p.Group))
}

func mRemoveFromGroup(_ context.Context, b Backend, p apitypes.MemberParams) (node.Group, error) {
	if err := required("group", p.Group, "member", p.Member); err != nil {
		return node.Group{}, err
	}
	return b.RemoveFromGroup(p.Group, p.Member)
}

func mPromoteInGroup(_ context.Context, b Backend, p apitypes.MemberParams) (node.Group, error) {
	if err := required("group", p.Group, "member", p.Member); err != nil {
		return node.Group{}, err
	}
	return b.PromoteInGroup(p.Group, p.Member)
}

func mRenameGroup(_ context.Context, b Backend, p apitypes.RenameGroupParams) (node.Group, error) {
	if err := required("group", p.Group, "name", p.Name); err != nil {
		return node.Group{}, err
	}
	return b.RenameGroup(p.Group, p.Name)
}

func mListGroups(_ context.Context, b Backend, _ struct{}) ([]node.Group, error) {
	return orEmpty(b.Groups())
}

func mSendGroup(ctx context.Context, b Backend, p apitypes.SendGroupParams) (node.Message, error) {
	if err := required("group", p.Group); err != nil {
		return node.Message{}, err
	}
	kind, err := checkMessage(p.Kind, p.Text, p.Target, p.Remove)
	if err != nil {
		return node.Message{}, err
	}
	return b.SendGroup(ctx, node.GroupSendRequest{Group: p.Group, Kind: kind, Text: p.Text, Target: p.Target, Remove: p.Remove, TxnID: p.TxnID})
}

func mListGroupMessages(_ context.Context, b Backend, p apitypes.ListGroupMessagesParams) ([]node.Message, error) {
	if err := required("group", p.Group); err != nil {
		return nil, err
	}
	if p.Limit < 0 {
		return nil, invalidParams("%q must not be negative", "limit")
	}
	if p.Before != "" || p.After != "" {
		return orEmpty(b.MessagePage(node.MessageQuery{Group: p.Group, Before: p.Before, After: p.After, Limit: p.Limit}))
	}
	return orEmpty(b.GroupMessages(p.Group, p.Limit))
}
