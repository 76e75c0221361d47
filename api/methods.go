package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node"
)

// method runs one call: it decodes the raw params and returns a
// JSON-encodable result or an error (an *Error for parameter problems, a
// node error otherwise). typed makes one from a function of its params.
type method func(ctx context.Context, b Backend, params json.RawMessage) (any, error)

// typed makes a method of fn, which takes its params decoded into a P
// (struct{} for none) by decodeParams.
func typed[P, R any](fn func(ctx context.Context, b Backend, p P) (R, error)) method {
	return func(ctx context.Context, b Backend, params json.RawMessage) (any, error) {
		var p P
		if err := decodeParams(params, &p); err != nil {
			return nil, err
		}
		res, err := fn(ctx, b, p)
		if err != nil {
			return nil, err
		}
		return res, nil
	}
}

// Limits on waitMessage.
const (
	DefaultWaitTimeout = 30 * time.Second
	MaxWaitTimeout     = 10 * time.Minute
)

// entry is a method of the table and whether it only reads. Each entry
// says which, through reads or writes: a read-only API token may call
// the reads, and is refused (CodeForbidden) the rest.
type entry struct {
	run      method
	readOnly bool
}

// reads marks a method that changes nothing: no message, contact, group,
// setting or file, here or at a contact, and no download started.
func reads(m method) entry { return entry{run: m, readOnly: true} }

// writes marks a method that changes something.
func writes(m method) entry { return entry{run: m} }

// methods is the method table every transport shares (subscribe and
// unsubscribe are the Unix socket's own: see Server.serveConn).
var methods = map[string]entry{
	"version":         reads(typed(mVersion)),
	"getSelf":         reads(typed(mGetSelf)),
	"addContact":      writes(typed(mAddContact)),
	"listContacts":    reads(typed(mListContacts)),
	"removeContact":   writes(typed(mRemoveContact)),
	"verifyContact":   writes(typed(mVerifyContact)),
	"safetyNumber":    reads(typed(mSafetyNumber)),
	"send":            writes(typed(mSend)),
	"waitMessage":     reads(typed(mWaitMessage)),
	"listMessages":    reads(typed(mListMessages)),
	"markRead":        writes(typed(mMarkRead)),
	"sendTyping":      writes(typed(mSendTyping)),
	"setReadReceipts": writes(typed(mSetReadReceipts)),
	"setPresence":     writes(typed(mSetPresence)),
	"getPresence":     reads(typed(mGetPresence)),
	"renameContact":   writes(typed(mRenameContact)),
	"blockContact":    writes(typed(mBlockContact)),
	"unblockContact":  writes(typed(mUnblockContact)),
	"listBlocked":     reads(typed(mListBlocked)),
	"setProfile":      writes(typed(mSetProfile)),
	"search":          reads(typed(mSearch)),
	"setTimer":        writes(typed(mSetTimer)),
	"getTimer":        reads(typed(mGetTimer)),

	"createGroup":       writes(typed(mCreateGroup)),
	"inviteToGroup":     writes(typed(mInviteToGroup)),
	"acceptGroup":       writes(typed(mAcceptGroup)),
	"declineGroup":      writes(typed(mDeclineGroup)),
	"leaveGroup":        writes(typed(mLeaveGroup)),
	"removeFromGroup":   writes(typed(mRemoveFromGroup)),
	"promoteInGroup":    writes(typed(mPromoteInGroup)),
	"renameGroup":       writes(typed(mRenameGroup)),
	"listGroups":        reads(typed(mListGroups)),
	"sendGroup":         writes(typed(mSendGroup)),
	"listGroupMessages": reads(typed(mListGroupMessages)),

	"registerPush":   writes(typed(mRegisterPush)),
	"verifyPush":     writes(typed(mVerifyPush)),
	"unregisterPush": writes(typed(mUnregisterPush)),
	"pushStatus":     reads(typed(mPushStatus)),

	"linkDevice":   writes(typed(mLinkDevice)),
	"listDevices":  reads(typed(mListDevices)),
	"revokeDevice": writes(typed(mRevokeDevice)),

	"sendFile":      writes(typed(mSendFile)),
	"sendGroupFile": writes(typed(mSendGroupFile)),
	"getFile":       writes(typed(mGetFile)),
	"waitFile":      reads(typed(mWaitFile)),
	"listFiles":     reads(typed(mListFiles)),
	"autoDownload":  writes(typed(mAutoDownload)),

	"listRequests":   reads(typed(mListRequests)),
	"acceptRequest":  writes(typed(mAcceptRequest)),
	"declineRequest": writes(typed(mDeclineRequest)),
	"blockRequest":   writes(typed(mBlockRequest)),

	"createAddress": writes(typed(mCreateAddress)),
	"getAddress":    reads(typed(mGetAddress)),
	"deleteAddress": writes(typed(mDeleteAddress)),
	"createInvite":  writes(typed(mCreateInvite)),
	"listInvites":   reads(typed(mListInvites)),
	"deleteInvite":  writes(typed(mDeleteInvite)),

	"listConversations": reads(typed(mListConversations)),
	"setConversation":   writes(typed(mSetConversation)),
	"getMessage":        reads(typed(mGetMessage)),
	"deleteMessage":     writes(typed(mDeleteMessage)),
	"clearConversation": writes(typed(mClearConversation)),

	"health": reads(typed(mHealth)),

	"uiLogin": writes(typed(mUILogin)),
}

// Methods lists the shared method names (subscribe is per transport).
func Methods() []string {
	names := make([]string, 0, len(methods))
	for n := range methods {
		names = append(names, n)
	}
	return names
}

// decodeParams decodes params into v, refusing unknown fields and
// non-object params. Missing params decode as {}.
func decodeParams(params json.RawMessage, v any) error {
	p := bytes.TrimSpace(params)
	if len(p) == 0 || bytes.Equal(p, []byte("null")) {
		p = []byte("{}")
	}
	if p[0] != '{' {
		return invalidParams("params must be an object")
	}
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &ute):
			return invalidParams("%q must be %s", ute.Field, jsonKind(ute.Type.Kind().String()))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return invalidParams("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			return invalidParams("%v", err)
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalidParams("trailing data after params")
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int64", "uint64":
		return "an integer"
	case "ptr":
		return "a value of the right type"
	}
	return "a " + goKind
}

func noParams(params json.RawMessage) error {
	return decodeParams(params, &struct{}{})
}

// required checks fields given as name, value pairs: each value must be
// non-empty.
func required(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i+1] == "" {
			return invalidParams("%q is required", fields[i])
		}
	}
	return nil
}

// ok is the result of a method that has nothing else to return.
func ok(err error) (apitypes.OK, error) {
	if err != nil {
		return apitypes.OK{}, err
	}
	return apitypes.OK{OK: true}, nil
}

// orEmpty makes a nil list an empty one, so that it encodes as [].
func orEmpty[T any](list []T, err error) ([]T, error) {
	if list == nil && err == nil {
		list = []T{}
	}
	return list, err
}

func mVersion(context.Context, Backend, struct{}) (apitypes.VersionInfo, error) {
	return apitypes.VersionInfo{Version: version(), API: APIVersion, Go: goVersion()}, nil
}

func mGetSelf(ctx context.Context, b Backend, _ struct{}) (node.Self, error) {
	// A link handed out while the node is still starting would lack its
	// address or mailboxes; wait until it is complete.
	if err := b.WaitLink(ctx); err != nil {
		return node.Self{}, err
	}
	return b.Self()
}

func mAddContact(_ context.Context, b Backend, p apitypes.AddContactParams) (node.Contact, error) {
	if err := required("name", p.Name); err != nil {
		return node.Contact{}, err
	}
	if len(p.Name) > apitypes.MaxNameSize {
		return node.Contact{}, invalidParams("%q is longer than %d bytes", "name", apitypes.MaxNameSize)
	}
	if err := required("link", p.Link); err != nil {
		return node.Contact{}, err
	}
	return b.AddContact(p.Name, p.Link)
}

func mListContacts(_ context.Context, b Backend, _ struct{}) ([]node.Contact, error) {
	return orEmpty(b.Contacts())
}

func mListRequests(_ context.Context, b Backend, _ struct{}) ([]node.Request, error) {
	return orEmpty(b.Requests())
}

func mAcceptRequest(_ context.Context, b Backend, p apitypes.NameParams) (node.Contact, error) {
	if err := required("name", p.Name); err != nil {
		return node.Contact{}, err
	}
	return b.AcceptRequest(p.Name)
}

func mDeclineRequest(_ context.Context, b Backend, p apitypes.NameParams) (apitypes.OK, error) {
	if err := required("name", p.Name); err != nil {
		return apitypes.OK{}, err
	}
	return ok(b.DeclineRequest(p.Name))
}

func mCreateAddress(ctx context.Context, b Backend, p apitypes.CreateAddressParams) (node.ShortLink, error) {
	return b.CreateAddress(ctx, p.Rotate, p.TxnID)
}

func mGetAddress(_ context.Context, b Backend, _ struct{}) (node.ShortLink, error) {
	return b.Address()
}

func mDeleteAddress(ctx context.Context, b Backend, _ struct{}) (apitypes.OK, error) {
	return ok(b.DeleteAddress(ctx))
}

func mCreateInvite(ctx context.Context, b Backend, p apitypes.CreateInviteParams) (node.ShortLink, error) {
	return b.CreateInvite(ctx, p.Label, p.TxnID)
}

func mListInvites(_ context.Context, b Backend, _ struct{}) ([]node.ShortLink, error) {
	return orEmpty(b.Invites())
}

func mDeleteInvite(ctx context.Context, b Backend, p apitypes.IDParams) (apitypes.OK, error) {
	if err := required("id", p.ID); err != nil {
		return apitypes.OK{}, err
	}
	return ok(b.DeleteInvite(ctx, p.ID))
}

func mBlockRequest(_ context.Context, b Backend, p apitypes.NameParams) (apitypes.OK, error) {
	if err := required("name", p.Name); err != nil {
		return apitypes.OK{}, err
	}
	return ok(b.BlockRequest(p.Name))
}

func mRemoveContact(_ context.Context, b Backend, p apitypes.NameParams) (apitypes.OK, error) {
	if err := required("name", p.Name); err != nil {
		return apitypes.OK{}, err
	}
	return ok(b.RemoveContact(p.Name))
}

func mVerifyContact(_ context.Context, b Backend, p apitypes.VerifyContactParams) (node.Contact, error) {
	if err := required("name", p.Name); err != nil {
		return node.Contact{}, err
	}
	if p.SafetyNumber != "" {
		return b.VerifyScanned(p.Name, p.SafetyNumber)
	}
	return b.VerifyContact(p.Name)
}

func mRenameContact(_ context.Context, b Backend, p apitypes.RenameContactParams) (node.Contact, error) {
	if err := required("name", p.Name, "newName", p.NewName); err != nil {
		return node.Contact{}, err
	}
	if len(p.NewName) > apitypes.MaxNameSize {
		return node.Contact{}, invalidParams("%q is longer than %d bytes", "newName", apitypes.MaxNameSize)
	}
	return b.RenameContact(p.Name, p.NewName)
}

func mBlockContact(_ context.Context, b Backend, p apitypes.NameParams) (node.Contact, error) {
	if err := required("name", p.Name); err != nil {
		return node.Contact{}, err
	}
	return b.BlockContact(p.Name)
}

func mUnblockContact(_ context.Context, b Backend, p apitypes.NameParams) (apitypes.OK, error) {
	if err := required("name", p.Name); err != nil {
		return apitypes.OK{}, err
	}
	return ok(b.UnblockContact(p.Name))
}

func mListBlocked(_ context.Context, b Backend, _ struct{}) ([]node.BlockedAccount, error) {
	return orEmpty(b.BlockedAccounts())
}

func mSetProfile(_ context.Context, b Backend, p apitypes.SetProfileParams) (node.Self, error) {
	if p.Name == "" && p.AvatarPath == "" && !p.RemoveAvatar {
		return node.Self{}, invalidParams("one of %q, %q, %q is required", "name", "avatarPath", "removeAvatar")
	}
	if p.AvatarPath != "" && p.RemoveAvatar {
		return node.Self{}, invalidParams("%q and %q exclude each other", "avatarPath", "removeAvatar")
	}
	if len(p.Name) > apitypes.MaxNameSize {
		return node.Self{}, invalidParams("%q is longer than %d bytes", "name", apitypes.MaxNameSize)
	}
	if p.AvatarPath != "" && !filepath.IsAbs(p.AvatarPath) {
		return node.Self{}, invalidParams("%q must be an absolute path", "avatarPath")
	}
	return b.SetProfile(p)
}

func mSafetyNumber(_ context.Context, b Backend, p apitypes.NameParams) (apitypes.SafetyNumberResult, error) {
	if err := required("name", p.Name); err != nil {
		return apitypes.SafetyNumberResult{}, err
	}
	sn, err := b.SafetyNumber(p.Name)
	if err != nil {
		return apitypes.SafetyNumberResult{}, err
	}
	return apitypes.SafetyNumberResult{Name: p.Name, SafetyNumber: sn}, nil
}

func mSend(ctx context.Context, b Backend, p apitypes.SendParams) (node.Message, error) {
	if err := required("to", p.To); err != nil {
		return node.Message{}, err
	}
	kind, err := checkMessage(p.Kind, p.Text, p.Target, p.Remove)
	if err != nil {
		return node.Message{}, err
	}
	return b.Send(ctx, node.SendRequest{
		To: p.To, Kind: kind, Text: p.Text, Target: p.Target, TxnID: p.TxnID, Remove: p.Remove,
	})
}

// checkMessage validates the kind, text, target and remove fields shared
// by send and sendGroup, and returns the kind (text by default).
func checkMessage(kind apitypes.Kind, text, target string, remove bool) (apitypes.Kind, error) {
	if kind == "" {
		kind = apitypes.KindText
	}
	switch kind {
	case apitypes.KindText:
		if target != "" {
			return "", invalidParams("%q is not used with kind %q", "target", kind)
		}
	case apitypes.KindReply, apitypes.KindEdit, apitypes.KindDelete, apitypes.KindReaction:
		if err := required("target", target); err != nil {
			return "", err
		}
	default:
		return "", invalidParams("%q must be one of text, reply, edit, delete, reaction", "kind")
	}
	switch kind {
	case apitypes.KindText, apitypes.KindReply, apitypes.KindEdit:
		if strings.TrimSpace(text) == "" {
			return "", &Error{Code: CodeBadMessage, Message: node.ErrEmptyMessage.Error(), Data: &ErrorData{Reason: "empty_message"}}
		}
	case apitypes.KindReaction:
		if err := required("text", text); err != nil {
			return "", err
		}
	case apitypes.KindDelete:
		if text != "" {
			return "", invalidParams("%q is not used with kind %q", "text", kind)
		}
	}
	if remove && kind != apitypes.KindReaction {
		return "", invalidParams("%q is only used with kind %q", "remove", apitypes.KindReaction)
	}
	if len(text) > apitypes.MaxTextSize {
		return "", &Error{
			Code:    CodeBadMessage,
			Message: fmt.Sprintf("%v (%d bytes; the limit is %d)", node.ErrMessageTooLarge, len(text), apitypes.MaxTextSize),
			Data:    &ErrorData{Reason: "message_too_large"},
		}
	}
	return kind, nil
}

var waitStates = map[apitypes.MessageState]bool{
	apitypes.StateSent: true, apitypes.StateDelivered: true, apitypes.StateRead: true, apitypes.StateFailed: true,
}

func mWaitMessage(ctx context.Context, b Backend, p apitypes.WaitMessageParams) (node.Message, error) {
	if err := required("id", p.ID); err != nil {
		return node.Message{}, err
	}
	state := p.State
	if state == "" {
		state = apitypes.StateDelivered
	}
	if !waitStates[state] {
		return node.Message{}, invalidParams("%q must be one of sent, delivered, read, failed", "state")
	}
	timeout := DefaultWaitTimeout
	if p.TimeoutMs != nil {
		if *p.TimeoutMs <= 0 || time.Duration(*p.TimeoutMs)*time.Millisecond > MaxWaitTimeout {
			return node.Message{}, invalidParams("%q must be between 1 and %d", "timeoutMs", MaxWaitTimeout.Milliseconds())
		}
		timeout = time.Duration(*p.TimeoutMs) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m, err := b.WaitState(ctx, p.ID, node.MessageState(state))
	if errors.Is(err, context.DeadlineExceeded) {
		return node.Message{}, &Error{
			Code:    CodeTimeout,
			Message: fmt.Sprintf("message %s did not reach %q within %v", p.ID, state, timeout),
			Data:    &ErrorData{Reason: "timeout"},
		}
	}
	return m, err
}

func mListMessages(_ context.Context, b Backend, p apitypes.ListMessagesParams) ([]node.Message, error) {
	if err := required("contact", p.Contact); err != nil {
		return nil, err
	}
	if p.Limit < 0 {
		return nil, invalidParams("%q must not be negative", "limit")
	}
	if p.Before != "" || p.After != "" {
		return orEmpty(b.MessagePage(node.MessageQuery{Contact: p.Contact, Before: p.Before, After: p.After, Limit: p.Limit}))
	}
	return orEmpty(b.Messages(p.Contact, p.Limit))
}

func mMarkRead(_ context.Context, b Backend, p apitypes.ConversationParams) (apitypes.OK, error) {
	if err := oneConversation(p.Contact, p.Group); err != nil {
		return apitypes.OK{}, err
	}
	if p.Group != "" {
		return ok(b.MarkGroupRead(p.Group))
	}
	return ok(b.MarkRead(p.Contact))
}

func mSendTyping(_ context.Context, b Backend, p apitypes.SendTypingParams) (apitypes.OK, error) {
	if err := oneConversation(p.Contact, p.Group); err != nil {
		return apitypes.OK{}, err
	}
	if p.Typing == nil {
		return apitypes.OK{}, invalidParams("%q is required", "typing")
	}
	if p.Group != "" {
		return ok(b.SetGroupTyping(p.Group, *p.Typing))
	}
	return ok(b.SetTyping(p.Contact, *p.Typing))
}

func mSetReadReceipts(_ context.Context, b Backend, p apitypes.SetReadReceiptsParams) (apitypes.OK, error) {
	if p.Enabled == nil {
		return apitypes.OK{}, invalidParams("%q is required", "enabled")
	}
	return ok(b.SetReadReceipts(*p.Enabled))
}

func mSetPresence(_ context.Context, b Backend, p apitypes.SetPresenceParams) (apitypes.PresenceSetting, error) {
	if p.On == nil {
		return apitypes.PresenceSetting{}, invalidParams("%q is required", "on")
	}
	if err := b.SetPresence(*p.On); err != nil {
		return apitypes.PresenceSetting{}, err
	}
	return apitypes.PresenceSetting{On: b.Presence()}, nil
}

func mGetPresence(_ context.Context, b Backend, _ struct{}) (apitypes.PresenceSetting, error) {
	return apitypes.PresenceSetting{On: b.Presence()}, nil
}

// DecodeParams decodes a method's params into v as the method table does
// (unknown fields refused, missing params as {}), for a transport's own
// methods (the mobile facade's subscribe).
func DecodeParams(params json.RawMessage, v any) *Error {
	if err := decodeParams(params, v); err != nil {
		return toError(err)
	}
	return nil
}

// NoParams refuses params other than none or {}.
func NoParams(params json.RawMessage) *Error { return DecodeParams(params, &struct{}{}) }
