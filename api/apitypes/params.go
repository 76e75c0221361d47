package apitypes

// The params of each method, as JSON objects with camelCase names. The
// server refuses unknown fields; fields without omitempty are required.
// A required boolean is a pointer, so that "absent" is not "false".

// NameParams are the params of removeContact, verifyContact,
// safetyNumber and createGroup.
type NameParams struct {
	Name string `json:"name"`
}

// AddContactParams are the params of addContact.
type AddContactParams struct {
	Name string `json:"name"` // at most MaxNameSize bytes
	Link string `json:"link"` // hush://…
}

// SendParams are the params of send.
type SendParams struct {
	To     string `json:"to"`
	Text   string `json:"text,omitempty"`
	Kind   Kind   `json:"kind,omitempty"`   // default text
	Target string `json:"target,omitempty"` // reply, edit, delete, reaction: the message ID acted on
	TxnID  string `json:"txnId,omitempty"`  // a retried request with the same ID is not sent twice
	Remove bool   `json:"remove,omitempty"` // reaction: take the emoji back
}

// WaitMessageParams are the params of waitMessage.
type WaitMessageParams struct {
	ID        string       `json:"id"`
	State     MessageState `json:"state,omitempty"`     // sent, delivered (default), read or failed
	TimeoutMs *int64       `json:"timeoutMs,omitempty"` // default 30000, at most 600000
}

// ListMessagesParams are the params of listMessages.
type ListMessagesParams struct {
	Contact string `json:"contact"`
	Limit   int    `json:"limit,omitempty"`  // the last Limit messages; 0: all
	Before  string `json:"before,omitempty"` // a message ID: only messages before it
	After   string `json:"after,omitempty"`  // a message ID: only messages after it
}

// ContactParams are the params of markRead.
type ContactParams struct {
	Contact string `json:"contact"`
}

// SendTypingParams are the params of sendTyping: a contact or a group.
type SendTypingParams struct {
	Contact string `json:"contact,omitempty"`
	Group   string `json:"group,omitempty"`
	Typing  *bool  `json:"typing"`
}

// SetReadReceiptsParams are the params of setReadReceipts.
type SetReadReceiptsParams struct {
	Enabled *bool `json:"enabled"`
}

// SetPresenceParams are the params of setPresence.
type SetPresenceParams struct {
	On *bool `json:"on"`
}

// SubscribeParams are the params of subscribe (Unix socket only).
type SubscribeParams struct {
	After uint64 `json:"after,omitempty"` // replay events after this Seq; 0: only new events
	Since uint64 `json:"since,omitempty"` // the same as After (both given: they must agree)
}

// GroupParams are the params of acceptGroup, declineGroup and
// leaveGroup. Group is a group's name where it is unambiguous, else its
// ID.
type GroupParams struct {
	Group string `json:"group"`
}

// InviteToGroupParams are the params of inviteToGroup.
type InviteToGroupParams struct {
	Group   string `json:"group"`
	Contact string `json:"contact"`
}

// MemberParams are the params of removeFromGroup and promoteInGroup.
type MemberParams struct {
	Group  string `json:"group"`
	Member string `json:"member"`
}

// RenameGroupParams are the params of renameGroup.
type RenameGroupParams struct {
	Group string `json:"group"`
	Name  string `json:"name"`
}

// SendGroupParams are the params of sendGroup; the kinds are those of
// send.
type SendGroupParams struct {
	Group  string `json:"group"`
	Text   string `json:"text,omitempty"`
	Kind   Kind   `json:"kind,omitempty"`
	Target string `json:"target,omitempty"`
	Remove bool   `json:"remove,omitempty"`
	TxnID  string `json:"txnId,omitempty"` // as for send: a retried request with the same ID is not sent twice
}

// ListGroupMessagesParams are the params of listGroupMessages.
type ListGroupMessagesParams struct {
	Group  string `json:"group"`
	Limit  int    `json:"limit,omitempty"`  // the last Limit messages; 0: all
	Before string `json:"before,omitempty"` // as for listMessages
	After  string `json:"after,omitempty"`
}

// OK is the result of methods that have nothing else to return.
type OK struct {
	OK bool `json:"ok"`
}

// SafetyNumberResult is the result of safetyNumber.
type SafetyNumberResult struct {
	Name         string `json:"name"`
	SafetyNumber string `json:"safetyNumber"` // 60 digits, no spaces
}

// VersionInfo is the result of version.
type VersionInfo struct {
	Version string `json:"version"`
	API     int    `json:"api"`
	Go      string `json:"go"`
}

// RegisterPushParams are the params of registerPush.
type RegisterPushParams struct {
	Bridge   string `json:"bridge"`   // the push bridge's URL (https; http only on this machine)
	Provider string `json:"provider"` // apns, fcm or webpush
	Token    string `json:"token"`    // the device token; for webpush the subscription JSON
}

// VerifyPushParams are the params of verifyPush.
type VerifyPushParams struct {
	Code string `json:"code"` // the code the verification push carried
}

// DeviceIDParams name one device of this account (revokeDevice).
type DeviceIDParams struct {
	ID string `json:"id"`
}

// FileParams name a message that carries a file (getFile, waitFile);
// Out is where getFile writes the decrypted file ("" for none yet: the
// download starts or goes on).
type FileParams struct {
	ID      string `json:"id"`
	Out     string `json:"out,omitempty"`
	Timeout string `json:"timeout,omitempty"` // waitFile, getFile with Out: how long to wait (default 30s, at most 10m)
	Replace bool   `json:"replace,omitempty"` // getFile: an existing file at Out may be replaced
}

// CreateAddressParams are the params of createAddress.
type CreateAddressParams struct {
	Rotate bool   `json:"rotate,omitempty"` // replace an existing address
	TxnID  string `json:"txnId,omitempty"`  // a retry with the same ID answers what the first made
}

// CreateInviteParams are the params of createInvite.
type CreateInviteParams struct {
	Label string `json:"label,omitempty"` // the name the contact gets here
	TxnID string `json:"txnId,omitempty"` // a retry with the same ID answers what the first made
}

// IDParams name a thing by its ID (or a unique prefix).
type IDParams struct {
	ID string `json:"id"`
}

// SetProfileParams are the params of setProfile: at least one field.
type SetProfileParams struct {
	Name         string `json:"name,omitempty"`         // the display name contacts see
	AvatarPath   string `json:"avatarPath,omitempty"`   // absolute path of a JPEG or PNG picture the daemon reads
	RemoveAvatar bool   `json:"removeAvatar,omitempty"` // no avatar any more
}

// RenameContactParams are the params of renameContact.
type RenameContactParams struct {
	Name    string `json:"name"`
	NewName string `json:"newName"`
}

// VerifyContactParams are the params of verifyContact: with
// safetyNumber (a scanned one; spaces ignored), the contact is verified
// only if it matches.
type VerifyContactParams struct {
	Name         string `json:"name"`
	SafetyNumber string `json:"safetyNumber,omitempty"`
}

// SearchParams are the params of search: words, and optionally one
// conversation (a contact or a group, not both).
type SearchParams struct {
	Text    string `json:"text"`
	Contact string `json:"contact,omitempty"`
	Group   string `json:"group,omitempty"`
	Limit   int    `json:"limit,omitempty"` // default 50, at most 1000
}

// SetTimerParams are the params of setTimer: a contact or a group, and a
// timer: "1h", "1d", "1w", another duration between 1m
// and 365d ("30m", "12h", "3d"), or "off".
type SetTimerParams struct {
	Contact string `json:"contact,omitempty"`
	Group   string `json:"group,omitempty"`
	Timer   string `json:"timer"`
}

// TimerResult is setTimer's and getTimer's answer: the conversation's
// timer in seconds (0: off).
type TimerResult struct {
	Contact string `json:"contact,omitempty"`
	Group   string `json:"group,omitempty"`
	Seconds int64  `json:"seconds"`
}
