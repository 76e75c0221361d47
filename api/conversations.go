package api

import (
	"context"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node"
)

// The conversation methods: the list, its settings, one message by ID,
// and deleting for me.

// oneConversation checks that exactly one of contact and group is given.
func oneConversation(contact, group string) error {
	if (contact == "") == (group == "") {
		return invalidParams("one of %q and %q is required", "contact", "group")
	}
	return nil
}

func mListConversations(_ context.Context, b Backend, p apitypes.ListConversationsParams) ([]node.Conversation, error) {
	return orEmpty(b.Conversations(p.Archived))
}

func mSetConversation(_ context.Context, b Backend, p apitypes.SetConversationParams) (node.Conversation, error) {
	if err := oneConversation(p.Contact, p.Group); err != nil {
		return node.Conversation{}, err
	}
	if p.Muted == nil && p.Pinned == nil && p.Archived == nil {
		return node.Conversation{}, invalidParams("one of %q, %q, %q is required", "muted", "pinned", "archived")
	}
	return b.SetConversation(p)
}

func mGetMessage(_ context.Context, b Backend, p apitypes.IDParams) (node.Message, error) {
	if err := required("id", p.ID); err != nil {
		return node.Message{}, err
	}
	return b.GetMessage(p.ID)
}

func mDeleteMessage(ctx context.Context, b Backend, p apitypes.DeleteMessageParams) (apitypes.OK, error) {
	if err := oneConversation(p.Contact, p.Group); err != nil {
		return apitypes.OK{}, err
	}
	if err := required("id", p.ID); err != nil {
		return apitypes.OK{}, err
	}
	if p.Local {
		if p.TxnID != "" {
			return apitypes.OK{}, invalidParams("%q is not used with %q", "txnId", "local")
		}
		return ok(b.DeleteLocal(p.Contact, p.Group, p.ID))
	}
	var err error
	if p.Group != "" {
		_, err = b.SendGroup(ctx, node.GroupSendRequest{Group: p.Group, Kind: node.KindDelete, Target: p.ID, TxnID: p.TxnID})
	} else {
		_, err = b.Send(ctx, node.SendRequest{To: p.Contact, Kind: node.KindDelete, Target: p.ID, TxnID: p.TxnID})
	}
	return ok(err)
}

func mClearConversation(_ context.Context, b Backend, p apitypes.ConversationParams) (apitypes.OK, error) {
	if err := oneConversation(p.Contact, p.Group); err != nil {
		return apitypes.OK{}, err
	}
	return ok(b.ClearConversation(p.Contact, p.Group))
}
