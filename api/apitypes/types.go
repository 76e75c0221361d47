// Package apitypes holds the JSON types of hush's local API
// (docs/API.md): the entities its methods return and its events carry,
// each method's params, and the small results. It imports only the
// standard library, so a program that talks to the daemon needs neither
// the node nor libp2p; package node declares these same types under its
// own names.
package apitypes

import "time"

// Limits a user can run into.
const (
	// MaxTextSize is the largest message text, in bytes of UTF-8.
	MaxTextSize = 16 << 10
	// MaxNameSize is the largest contact or display name, in bytes.
	MaxNameSize = 64
	// MaxMissing is the largest count a missing-messages notice gives;
	// it means that many or more.
	MaxMissing = 1000
)

// MessageState is where an outgoing message stands; incoming messages
// have StateReceived (or StateRead once read locally).
type MessageState string

// Message states, in order.
const (
	StateQueued    MessageState = "queued"    // durable in the store, not yet confirmed by anyone
	StateSent      MessageState = "sent"      // a relay confirmed it (relay issue)
	StateDelivered MessageState = "delivered" // a recipient device acknowledged it
	StateRead      MessageState = "read"      // the recipient sent a read receipt
	StateFailed    MessageState = "failed"    // will not be delivered (see Message.Error)
	StateReceived  MessageState = "received"  // incoming, not yet read here
)

// Rank orders the states of an outgoing message, queued (1) to failed
// (5), so that a state never moves backwards; it is 0 for received and
// for unknown states.
func (s MessageState) Rank() int {
	switch s {
	case StateQueued:
		return 1
	case StateSent:
		return 2
	case StateDelivered:
		return 3
	case StateRead:
		return 4
	case StateFailed:
		return 5
	}
	return 0
}

// Kind is what a message does.
type Kind string

// Message kinds users send. Receipts and typing indicators travel as
// their own wire kinds and show up as state changes and events.
const (
	KindText     Kind = "text"
	KindReply    Kind = "reply"
	KindEdit     Kind = "edit"
	KindDelete   Kind = "delete"
	KindReaction Kind = "reaction"
)

// KindMissing is the kind of an entry the node writes itself (direction
// "system") into a conversation: messages from the contact may be
// missing. Nobody sends it.
const KindMissing Kind = "missing"

// KindSession is the kind of an entry the node writes itself (direction
// "system"): the secure session with the contact was re-established
// (docs/protocol/recovery.md). Nobody sends it.
const KindSession Kind = "session"

// Message is one entry of a conversation, as the API and CLI show it.
type Message struct {
	ID        string              `json:"id"`
	Contact   string              `json:"contact"`
	Direction string              `json:"direction"` // "in", "out", or "system" for an entry the node wrote (see Kind)
	Text      string              `json:"text"`
	State     MessageState        `json:"state"`
	Time      time.Time           `json:"time"`
	ReplyTo   string              `json:"reply_to,omitempty"`
	Edited    bool                `json:"edited,omitempty"`
	Deleted   bool                `json:"deleted,omitempty"`
	Reactions map[string][]string `json:"reactions,omitempty"` // emoji → who ("me" or the contact's name)
	Error     string              `json:"error,omitempty"`
	Group     string              `json:"group,omitempty"`  // group ID, for group messages
	Sender    string              `json:"sender,omitempty"` // group messages: who sent it ("me" for this account)
	Kind      Kind                `json:"kind,omitempty"`   // entries the node wrote (direction "system"): KindMissing
	File      *FileInfo           `json:"file,omitempty"`   // the attachment, if the message carries one (Text is its caption)
	// ReadBy and ReadOf are, on a group message this account sent, the
	// members (names) whose read receipts came, and how many other
	// members the group has now: "read by len(ReadBy) of ReadOf". Only
	// current members are counted.
	ReadBy []string `json:"read_by,omitempty"`
	ReadOf int      `json:"read_of,omitempty"`
}

// FileInfo is a message's attachment (docs/protocol/files.md).
type FileInfo struct {
	Name   string `json:"name"`
	MIME   string `json:"mime"` // from the content, not the name
	Size   int64  `json:"size"` // bytes of the file
	Hash   string `json:"hash"` // hex SHA-256 of the stored (encrypted) blob
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	// DurationMS is an audio or video file's duration as its container
	// states it (0: unknown).
	DurationMS int64 `json:"duration_ms,omitempty"`
	// Thumbnail is a small JPEG of an image (base64 in JSON).
	Thumbnail []byte `json:"thumbnail,omitempty"`
	// State: "sent" (this device's file), "offered" (not downloaded),
	// "downloading" (Bytes of Size so far), "done", "failed" (Error says
	// why) or "expired".
	State string `json:"state"`
	Bytes int64  `json:"bytes,omitempty"`
	Error string `json:"error,omitempty"`
	// Upload is, on a file this device sent through a relay,
	// "uploading" until the relay has the whole blob, then "uploaded"
	// (or "refused": the relay will not take it). Empty without a relay.
	// It is set in the answers of sendFile, sendGroupFile and listFiles;
	// file events of phase "upload" follow it (FileProgress).
	Upload string `json:"upload,omitempty"`
}

// Upload states of a sent file (FileInfo.Upload).
const (
	UploadPending = "uploading"
	UploadDone    = "uploaded"
	UploadRefused = "refused"
)

// File progress phases (FileProgress.Phase).
const (
	PhaseSeal   = "seal"   // the file is being sealed (encrypted) into the spool: bytes of the file
	PhaseUpload = "upload" // the sealed blob is being uploaded to the relay: bytes of the blob the relay holds
	PhaseServe  = "serve"  // a recipient device is fetching the blob from this device (/hush/file/1): how far
)

// FileProgress is a file event's body: how far one phase of a file's
// journey on this device is. Events come at most every MiB or every
// hundredth of the total, whichever is more, and once at the end (Done)
// or when the phase stops (Error). They are not kept in the event log.
type FileProgress struct {
	Phase string `json:"phase"`
	// ID is the message carrying the file (upload, serve; a seal comes
	// before the message exists: TxnID names the request instead).
	ID    string `json:"id,omitempty"`
	TxnID string `json:"txnId,omitempty"` // seal: the sendFile or sendGroupFile request's txnId ("" if it had none)
	Hash  string `json:"hash,omitempty"`  // the blob's hash (upload, serve)
	// Device is, on a serve event, the device fetching (hex device ID).
	Device string `json:"device,omitempty"`
	Bytes  int64  `json:"bytes"`
	Total  int64  `json:"total"`
	Done   bool   `json:"done,omitempty"`  // the phase finished
	Error  string `json:"error,omitempty"` // the phase stopped here: why (an upload is tried again later)
}

// AutoDownload is a conversation's auto-download policy (this device's):
// files up to Limit bytes are fetched as soon as they are offered.
type AutoDownload struct {
	Limit   int64 `json:"limit"`   // bytes; 0: off, every file waits for getFile
	Default bool  `json:"default"` // Limit is the default (16 MiB)
}

// AutoDownloadParams are the params of autoDownload: a contact or a
// group; with limit, the policy is set first (bytes; 0 turns it off; -1
// goes back to the default).
type AutoDownloadParams struct {
	Contact string `json:"contact,omitempty"`
	Group   string `json:"group,omitempty"`
	Limit   *int64 `json:"limit,omitempty"`
}

// File states.
const (
	FileSent        = "sent"
	FileOffered     = "offered"
	FileDownloading = "downloading"
	FileDone        = "done"
	FileFailed      = "failed"
	FileExpired     = "expired"
)

// GroupFileRequest asks the node to send a file to a group.
type GroupFileRequest struct {
	Group   string `json:"group"`
	Path    string `json:"path"`
	Name    string `json:"name,omitempty"` // the name the members see; default the path's last element
	Caption string `json:"caption,omitempty"`
	TxnID   string `json:"txnId,omitempty"`
}

// SendFileRequest asks the node to send a file to a contact.
type SendFileRequest struct {
	To      string `json:"to"`
	Path    string `json:"path"`              // a regular file the daemon can read
	Name    string `json:"name,omitempty"`    // the name the recipient sees; default the path's last element
	Caption string `json:"caption,omitempty"` // the message text shown with it
	TxnID   string `json:"txnId,omitempty"`
}

// Contact is a person in the address book.
type Contact struct {
	Name       string    `json:"name"`
	Account    string    `json:"account"` // hex account key
	Verified   bool      `json:"verified"`
	KeyChanged bool      `json:"key_changed,omitempty"`
	Devices    int       `json:"devices"`
	Added      time.Time `json:"added"`
	Request    bool      `json:"request,omitempty"` // added by an incoming first message, not by the user
	Blocked    bool      `json:"blocked,omitempty"` // the user blocked it (docs/protocol/addresses.md §20.6)
	// Profile is the display name the contact gave itself (§20.7); Name
	// follows it unless the user renamed the contact.
	Profile string `json:"profile_name,omitempty"`
	Avatar  []byte `json:"avatar,omitempty"` // the contact's avatar: a JPEG of at most 96×96, base64 in JSON
	// Presence is the contact's online status, when both this account
	// and the contact have presence on and it has told this device
	// (docs/protocol/presence.md); absent otherwise.
	Presence *Presence `json:"presence,omitempty"`
}

// Presence is a contact's online status: Online while a device of the
// contact's says it is online and its last status is fresh, else
// LastSeen, when it was last active.
type Presence struct {
	Online   bool      `json:"online"`
	LastSeen time.Time `json:"last_seen"`
}

// PresenceSetting is this account's presence setting (getPresence's and
// setPresence's answer).
type PresenceSetting struct {
	On bool `json:"on"`
}

// BlockedAccount is an entry of listBlocked.
type BlockedAccount struct {
	Account string    `json:"account"` // hex account key
	Name    string    `json:"name"`    // the contact's name, else its name when it was blocked
	Contact bool      `json:"contact"` // still in the address book
	Since   time.Time `json:"since"`
}

// ShortLink is this account's address or one of its one-time
// invitations (docs/protocol/addresses.md §20.4).
type ShortLink struct {
	ID      string    `json:"id"`   // hex of the record ID
	Kind    string    `json:"kind"` // "address" or "invitation"
	Link    string    `json:"link"` // HUSH:…, at most 120 characters
	Label   string    `json:"label,omitempty"`
	Created time.Time `json:"created"`
	Used    bool      `json:"used,omitempty"` // an invitation someone used
}

// Request is a message request: an account that wrote first and is not
// a contact yet (docs/protocol/addresses.md §20.5).
type Request struct {
	Name     string    `json:"name"`
	Account  string    `json:"account"`
	Added    time.Time `json:"added"`
	Messages []Message `json:"messages"` // what it sent, oldest first (at most MaxRequestMessages)
}

// Self describes this device.
type Self struct {
	Name        string   `json:"name"`
	Avatar      []byte   `json:"avatar,omitempty"` // this account's avatar (a JPEG, base64 in JSON), see setProfile
	Account     string   `json:"account"`
	Device      string   `json:"device"`
	Link        string   `json:"link"`
	Fingerprint string   `json:"fingerprint"` // hex of the account key, grouped, for eyeballing
	PeerID      string   `json:"peer_id"`
	Addrs       []string `json:"addrs"`
	Protected   bool     `json:"protected"` // the store has a passphrase
	Mailboxes   int      `json:"mailboxes"` // relay mailboxes listed in the link
	Relays      int      `json:"relays"`    // relays configured for this run
	// History is set on a linked device whose history transfer has not
	// finished: every verb says so until it has.
	History *HistoryProgress `json:"history,omitempty"`
}

// HistoryProgress is how far a new device's history transfer got.
type HistoryProgress struct {
	Done     uint64 `json:"done"`     // items received and stored
	Total    uint64 `json:"total"`    // items known in all (grows if the other device's store grows)
	Complete bool   `json:"complete"` // the transfer finished
}

// Device is one device of this account.
type Device struct {
	ID    string    `json:"id"`    // hex device ID
	Name  string    `json:"name"`  // as the device named itself ("" if not heard of yet)
	This  bool      `json:"this"`  // the device answering
	Added time.Time `json:"added"` // when the account certified it
}

// LinkOffer is a one-time code that links a new device to this account
// (`hush device join CODE`): valid until Expires, for one use.
type LinkOffer struct {
	Code    string    `json:"code"`
	Expires time.Time `json:"expires"`
}

// DeviceEvent is a device event: a link or a revocation, and a history
// transfer's progress, on either end.
type DeviceEvent struct {
	// Phase is "linked" (the new device is on the account's list),
	// "transfer" (Done of Total history items sent), "complete",
	// "failed" (Error says why) or "revoked".
	Phase string `json:"phase"`
	ID    string `json:"id"`             // the new (or revoked) device
	Name  string `json:"name,omitempty"` // its name
	Done  uint64 `json:"done,omitempty"`
	Total uint64 `json:"total,omitempty"`
	Error string `json:"error,omitempty"`
}

// SendRequest asks the node for one message to a contact. It is the
// node's Go form; the send method's params are SendParams.
type SendRequest struct {
	To     string `json:"to"`
	Kind   Kind   `json:"kind,omitempty"`   // default text
	Text   string `json:"text,omitempty"`   // text, reply, edit (new text), reaction (emoji)
	Target string `json:"target,omitempty"` // reply, edit, delete, reaction: the message ID acted on
	TxnID  string `json:"txn_id,omitempty"` // client transaction ID: a retried request with the same ID is not sent twice
	Remove bool   `json:"remove,omitempty"` // reaction: take the emoji back
}

// Group is a group as the API shows it.
type Group struct {
	ID      string        `json:"id"`
	Name    string        `json:"name"`
	Epoch   uint64        `json:"epoch"`
	Pending bool          `json:"pending,omitempty"` // an invitation not yet accepted
	Removed bool          `json:"removed,omitempty"` // this account was removed (or left elsewhere); the history stays
	Admin   bool          `json:"admin,omitempty"`   // this account is an admin
	Members []GroupMember `json:"members"`
}

// GroupMember is one member (or invitee) of a group.
type GroupMember struct {
	Name    string `json:"name"`
	Account string `json:"account"`
	Admin   bool   `json:"admin,omitempty"`
	Me      bool   `json:"me,omitempty"`
	Invited bool   `json:"invited,omitempty"`
}

// GroupSendRequest asks the node for one message to a group. It is the
// node's Go form; the sendGroup method's params are SendGroupParams.
type GroupSendRequest struct {
	Group  string `json:"group"`
	Kind   Kind   `json:"kind,omitempty"`
	Text   string `json:"text,omitempty"`
	Target string `json:"target,omitempty"`
	Remove bool   `json:"remove,omitempty"`
	TxnID  string `json:"txn_id,omitempty"` // client transaction ID, as for SendRequest
}

// EventType names an event.
type EventType string

// Event types.
const (
	EventMessage EventType = "message" // a new incoming or outgoing message
	EventUpdate  EventType = "update"  // a message changed: state, edit, delete, reaction
	EventContact EventType = "contact" // a contact was added, changed or removed
	EventTyping  EventType = "typing"  // a contact started or stopped typing
	EventGroup   EventType = "group"   // a group changed: invitation, members, name, epoch
	EventDevice  EventType = "device"  // a device linked or revoked, or history transfer progress
	EventMissing EventType = "missing" // messages from a contact may be missing (a notice appeared, changed or went)
	EventRequest EventType = "request" // a message request arrived or got a message (Contact, and Message if one)
	EventGap     EventType = "gap"     // events after the subscriber's seq are gone (Gap): resync
	// EventPresence: a contact's presence changed (From, Presence; no
	// Presence: it is no longer known). Not kept in the event log.
	EventPresence EventType = "presence"
	EventTimer    EventType = "timer" // a 1:1 conversation's disappearing-messages timer changed (Timer)
	// EventFile: progress of a file this device sends (File): sealing,
	// the relay upload, a recipient's download from here. Not kept in
	// the log.
	EventFile EventType = "file"
)

// Event is delivered to subscribers (API server-sent events, mobile
// callbacks).
type Event struct {
	Seq     uint64       `json:"seq"`
	Type    EventType    `json:"type"`
	Message *Message     `json:"message,omitempty"`
	Contact *Contact     `json:"contact,omitempty"`
	Group   *Group       `json:"group,omitempty"`
	Device  *DeviceEvent `json:"device,omitempty"`
	Typing  *bool        `json:"typing,omitempty"`
	From    string       `json:"from,omitempty"` // contact name for typing and missing events (a member's name in a group)
	// GroupID is, on a typing event from a group member, the group's ID
	// (its name is not sent along: the client knows its groups).
	GroupID string `json:"group_id,omitempty"`
	// Missing is, on a missing event, how many messages the notice
	// counts (at most MaxMissing: that many or more); 0 when it was
	// withdrawn because they all arrived.
	Missing *int `json:"missing,omitempty"`
	Gap     *Gap `json:"gap,omitempty"`
	// Presence is a presence event's status (nil: no longer known).
	Presence *Presence `json:"presence,omitempty"`
	// Timer is, on a timer event, the conversation's new timer: set
	// here, by the contact, or on another device of the account.
	Timer *TimerResult `json:"timer,omitempty"`
	// File is a file event's progress.
	File *FileProgress `json:"file,omitempty"`
}

// Gap reasons.
const (
	GapPruned  = "pruned"  // the events after After are older than the log's retention
	GapUnknown = "unknown" // After is beyond the log's last event (another or a reset store)
)

// Gap is a gap event's body: the subscriber resumed after a sequence
// number whose following events the log no longer holds. The event's own
// Seq is where the stream goes on from (resuming after it is valid); the
// client reloads its state (lists, messages) instead of replaying.
type Gap struct {
	After  uint64 `json:"after"`  // the seq the client resumed after
	Oldest uint64 `json:"oldest"` // the oldest seq the log still holds
	Reason string `json:"reason"` // GapPruned or GapUnknown
}

// PushStatus says whether this device can be woken by push.
type PushStatus struct {
	Bridge   string `json:"bridge,omitempty"`
	Provider string `json:"provider,omitempty"`
	// State is "off", "verifying" (the code of the verification push is
	// awaited) or "on".
	State string `json:"state"`
	// Relays is how many relays hold the wake handle; Unsupported how
	// many have no push bridge (they cannot wake this device).
	Relays      int `json:"relays"`
	Unsupported int `json:"unsupported"`
}

// Health is what GET /api/v1/health (and the health method) answers:
// "ok", or "failing" with the error of the store's last commit and when
// the failures began. History is set, whatever the status, on a linked
// device whose history transfer has not finished (as in Self).
type Health struct {
	Status  string           `json:"status"`
	Error   string           `json:"error,omitempty"`
	Since   *time.Time       `json:"since,omitempty"`
	History *HistoryProgress `json:"history,omitempty"`
	// DroppedRequests and DroppedRequestMessages count, since the daemon
	// started, first messages dropped because MaxRequests requests were
	// pending, and messages dropped by a request's own caps.
	DroppedRequests        int64 `json:"dropped_requests,omitempty"`
	DroppedRequestMessages int64 `json:"dropped_request_messages,omitempty"`
	// PresenceRounds counts the presence heartbeat rounds run since the
	// daemon started (presence on or off): a client that wants to see a
	// few heartbeats pass waits on it.
	PresenceRounds int64 `json:"presence_rounds,omitempty"`
}

// UILogin is the result of uiLogin: a one-time URL that opens the web
// UI in a browser, valid until Expires and for one use.
type UILogin struct {
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}
