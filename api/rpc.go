// Package api is hush's local API: JSON-RPC 2.0 with one method table
// shared by every transport — a 0600 Unix socket in the home directory,
// HTTP on 127.0.0.1 with a bearer token (server-sent events for the event
// stream), and the mobile facade, which calls Handler.Call directly.
//
// The protocol is documented in docs/API.md.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/node"
	"github.com/hushnet/hush/node/shortlink"
)

// Backend is what the API serves; *node.Node satisfies it. Its types
// are node's: most are apitypes' under node's names, and the rest
// (Message, MessageState, Event, Group) encode exactly as apitypes'.
type Backend interface {
	Self() (node.Self, error)
	WaitLink(ctx context.Context) error
	AddContact(name, link string) (node.Contact, error)
	Contacts() ([]node.Contact, error)
	RemoveContact(name string) error
	VerifyContact(name string) (node.Contact, error)
	SafetyNumber(name string) (string, error)
	// Contacts and profiles (docs/protocol/addresses.md §20.6, §20.7).
	VerifyScanned(name, safetyNumber string) (node.Contact, error)
	RenameContact(name, newName string) (node.Contact, error)
	BlockContact(name string) (node.Contact, error)
	UnblockContact(nameOrAccount string) error
	BlockedAccounts() ([]node.BlockedAccount, error)
	SetProfile(req node.ProfileRequest) (node.Self, error)
	Send(ctx context.Context, req node.SendRequest) (node.Message, error)
	WaitState(ctx context.Context, id string, state node.MessageState) (node.Message, error)
	Messages(contact string, limit int) ([]node.Message, error)
	Search(req node.SearchRequest) ([]node.Message, error)
	SetTimer(req node.TimerRequest) (time.Duration, error)
	Timer(contact string) (time.Duration, error)
	GroupTimer(group string) (time.Duration, error)
	MarkRead(contact string) error
	SetTyping(contact string, typing bool) error
	SetGroupTyping(group string, typing bool) error
	SetReadReceipts(on bool) error
	// Presence (docs/protocol/presence.md): this account's setting.
	SetPresence(on bool) error
	Presence() bool
	Subscribe(after uint64) (<-chan node.Event, func())

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

	RegisterPush(ctx context.Context, bridge, provider, token string) error
	VerifyPush(ctx context.Context, code string) error
	UnregisterPush(ctx context.Context) error
	PushStatus() node.PushStatus

	LinkDevice(ctx context.Context) (node.LinkOffer, error)
	Devices() ([]node.Device, error)
	RevokeDevice(id string) error

	// Files (docs/protocol/files.md).
	SendFile(ctx context.Context, req node.SendFileRequest) (node.Message, error)
	SendGroupFile(ctx context.Context, req node.GroupFileRequest) (node.Message, error)
	FetchFile(ctx context.Context, id string) (node.Message, error)
	WaitFile(ctx context.Context, id string) (node.Message, error)
	SaveFile(ctx context.Context, id, out string) error
	Files(contact string) ([]node.Message, error)

	// Message requests (docs/protocol/addresses.md §20.5).
	Requests() ([]node.Request, error)
	AcceptRequest(name string) (node.Contact, error)
	DeclineRequest(name string) error
	BlockRequest(name string) error

	// Short links (addresses.md §20.4).
	CreateAddress(ctx context.Context, rotate bool, txnID string) (node.ShortLink, error)
	Address() (node.ShortLink, error)
	DeleteAddress(ctx context.Context) error
	CreateInvite(ctx context.Context, label, txnID string) (node.ShortLink, error)
	Invites() ([]node.ShortLink, error)
	DeleteInvite(ctx context.Context, id string) error
	AutoDownloadOf(contact, group string) (node.AutoDownload, error)
	SetAutoDownload(contact, group string, limit int64) (node.AutoDownload, error)

	// Conversations (docs/API.md: listConversations and what follows).
	Conversations(archived bool) ([]node.Conversation, error)
	SetConversation(s node.ConversationSettings) (node.Conversation, error)
	GetMessage(id string) (node.Message, error)
	MessagePage(q node.MessageQuery) ([]node.Message, error)
	DeleteLocal(contact, group, id string) error
	ClearConversation(contact, group string) error
	MarkGroupRead(group string) error
	CreateGroupTxn(name, txnID string) (node.Group, error)

	// Health says whether the store takes commits, and how far a new
	// device's history transfer is (GET /api/v1/health, health).
	Health() node.Health
}

var _ Backend = (*node.Node)(nil)

// DefaultMaxRequestSize caps one JSON-RPC request (or batch), in bytes.
const DefaultMaxRequestSize = 1 << 20

// APIVersion is the version of the method table; it grows when methods
// are added and changes incompatibly never within a major hush version.
const APIVersion = 1

// JSON-RPC 2.0 error codes.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternal       = -32603
)

// Application error codes. Each has a stable Reason string in Error.Data.
const (
	CodeUnknownContact = 1  // no contact with that name
	CodeKeyChanged     = 2  // the contact's identity key changed; verify first
	CodeBadMessage     = 3  // message empty or too large
	CodeNotFound       = 4  // unknown message ID
	CodeInvalidInput   = 5  // a value the node refused (name, link, ...)
	CodeContactExists  = 6  // a different contact already has this name
	CodeTimeout        = 7  // waitMessage timed out
	CodeUnavailable    = 8  // the node is closed or has no identity
	CodeFile           = 9  // a file failed to download or expired
	CodeBlocked        = 10 // the contact is blocked: nothing is sent to it
	CodeForbidden      = 11 // a read-only API token called a method that changes something
)

// Error is a JSON-RPC error object. It is also the error type Client
// returns for a call the daemon answered with an error.
type Error struct {
	Code    int        `json:"code"`
	Message string     `json:"message"`
	Data    *ErrorData `json:"data,omitempty"`
}

// ErrorData carries a machine-readable reason for application errors.
type ErrorData struct {
	Reason string `json:"reason"`
}

func (e *Error) Error() string { return e.Message }

// Reason returns e.Data.Reason, or "" if there is none.
func (e *Error) Reason() string {
	if e == nil || e.Data == nil {
		return ""
	}
	return e.Data.Reason
}

func newError(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalidParams(format string, args ...any) *Error {
	return newError(CodeInvalidParams, "invalid params: "+format, args...)
}

// appErrors maps node sentinels to application errors, first match wins.
var appErrors = []struct {
	err    error
	code   int
	reason string
}{
	{node.ErrUnknownContact, CodeUnknownContact, "unknown_contact"},
	{node.ErrKeyChanged, CodeKeyChanged, "key_changed"},
	{node.ErrBlocked, CodeBlocked, "blocked"},
	{node.ErrSafetyMismatch, CodeInvalidInput, "safety_number_mismatch"},
	{node.ErrEmptyMessage, CodeBadMessage, "empty_message"},
	{node.ErrMessageTooLarge, CodeBadMessage, "message_too_large"},
	{node.ErrUnknownMessage, CodeNotFound, "unknown_message"},
	{node.ErrRecallWindow, CodeInvalidInput, "recall_window"},
	{node.ErrInvalidName, CodeInvalidInput, "invalid_name"},
	{card.ErrNotLink, CodeInvalidInput, "invalid_link"},
	{card.ErrMalformed, CodeInvalidInput, "invalid_link"},
	{card.ErrVersion, CodeInvalidInput, "invalid_link"},
	{card.ErrBadSignature, CodeInvalidInput, "invalid_link"},
	{card.ErrTooLarge, CodeInvalidInput, "invalid_link"},
	{node.ErrContactExists, CodeContactExists, "contact_exists"},
	{node.ErrUnknownGroup, CodeNotFound, "unknown_group"},
	{node.ErrAmbiguousGroup, CodeInvalidInput, "ambiguous_group"},
	{node.ErrGroupNotReady, CodeUnavailable, "group_not_ready"},
	{node.ErrClosed, CodeUnavailable, "closed"},
	{node.ErrNotRunning, CodeUnavailable, "not_running"},
	{node.ErrBadPush, CodeInvalidInput, "bad_push"},
	{node.ErrNoIdentity, CodeUnavailable, "no_identity"},
	{node.ErrUnknownDevice, CodeNotFound, "unknown_device"},
	{node.ErrRevokeSelf, CodeInvalidInput, "revoke_self"},
	{node.ErrDeviceListFull, CodeInvalidInput, "device_list_full"},
	{node.ErrRevoked, CodeUnavailable, "revoked"},
	{node.ErrNoAccountKey, CodeUnavailable, "no_account_key"},
	{node.ErrNoFile, CodeNotFound, "no_file"},
	{node.ErrFileNotReady, CodeFile, "file_not_ready"},
	{node.ErrRelayLimit, CodeInvalidInput, "relay_limit"},
	{node.ErrFileTooLarge, CodeInvalidInput, "file_too_large"},
	{node.ErrUnreadable, CodeInvalidInput, "unreadable"},
	{node.ErrNotAFile, CodeInvalidInput, "not_a_file"},
	{node.ErrIsRequest, CodeInvalidInput, "is_request"},
	{node.ErrNoRelay, CodeUnavailable, "no_relay"},
	{node.ErrAddressExists, CodeInvalidInput, "address_exists"},
	{node.ErrNoAddress, CodeNotFound, "no_address"},
	{node.ErrUnknownInvite, CodeNotFound, "unknown_invite"},
	{node.ErrLinkGone, CodeInvalidInput, "link_gone"},
	{node.ErrLinkRelay, CodeUnavailable, "relay_unreachable"},
	{node.ErrLinkStale, CodeInvalidInput, "link_stale"},
	{shortlink.ErrMalformed, CodeInvalidInput, "invalid_link"},
	{shortlink.ErrTooLong, CodeInvalidInput, "link_too_long"},
	{shortlink.ErrRecord, CodeInvalidInput, "wrong_record"},
	{node.ErrNotRequest, CodeInvalidInput, "not_request"},
	{context.DeadlineExceeded, CodeTimeout, "timeout"},
}

// toError turns a backend error into a JSON-RPC error. The message is the
// error's own text: node errors are written for the person at the keyboard.
func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	for _, m := range appErrors {
		if errors.Is(err, m.err) {
			return &Error{Code: m.code, Message: err.Error(), Data: &ErrorData{Reason: m.reason}}
		}
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Code: CodeUnavailable, Message: "request cancelled", Data: &ErrorData{Reason: "cancelled"}}
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}

// Request is a JSON-RPC 2.0 request. A request without an ID is a
// notification and gets no response.
type Request struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
}

// Response is a JSON-RPC 2.0 response.
type Response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
}

// Notification is a server-to-client JSON-RPC notification; the Unix
// socket sends events as {"jsonrpc":"2.0","method":"event","params":Event}.
type Notification struct {
	JSONRPC string `json:"jsonrpc"`
	Method  string `json:"method"`
	Params  any    `json:"params"`
}

var nullID = json.RawMessage("null")

// Version is the hush version reported by the version method; the
// command sets it, else it comes from the build info.
var Version = ""

// BuildVersion is the hush version the version method reports.
func BuildVersion() string { return version() }

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// Handler runs JSON-RPC requests against a Backend. It is safe for
// concurrent use and holds no per-connection state.
type Handler struct {
	b   Backend
	log *slog.Logger
	ui  uiPointer // the web UI, for uiLogin; nil without one
}

// NewHandler returns a handler for b; log may be nil.
func NewHandler(b Backend, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{b: b, log: log}
}

// Call runs one method with its raw JSON params (nil or "null" for none)
// and returns the JSON-encodable result or an *Error. This is the entry
// point for in-process callers such as the mobile facade. Under a
// read-only scope (WithScope) a method that changes something is
// CodeForbidden.
func (h *Handler) Call(ctx context.Context, method string, params json.RawMessage) (any, *Error) {
	m, ok := methods[method]
	if !ok {
		if method == "subscribe" || method == "unsubscribe" {
			return nil, newError(CodeMethodNotFound, "method %q is only available on the Unix socket; over HTTP use GET /api/v1/events", method)
		}
		return nil, newError(CodeMethodNotFound, "method not found: %q", method)
	}
	if !m.readOnly && scopeOf(ctx) != ScopeFull {
		return nil, forbidden(method)
	}
	res, err := m.run(context.WithValue(ctx, handlerKey{}, h), h.b, params)
	if err != nil {
		e := toError(err)
		if e.Code == CodeInternal {
			h.log.Warn("api call failed", "method", method, "err", err)
		}
		return nil, e
	}
	return res, nil
}

// connHooks lets a transport add methods that need the connection
// (subscribe on the Unix socket). It returns handled=false to fall
// through to the shared table.
type connHooks func(ctx context.Context, req *Request) (res any, rerr *Error, handled bool)

// ServeMessage handles one JSON-RPC message (a request or a batch) and
// returns the encoded response, or nil when nothing is to be sent back
// (notifications only).
func (h *Handler) ServeMessage(ctx context.Context, data []byte) []byte {
	return h.serveMessage(ctx, data, nil)
}

func (h *Handler) serveMessage(ctx context.Context, data []byte, hooks connHooks) []byte {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return encode(errorResponse(nullID, newError(CodeInvalidRequest, "invalid request: empty message")))
	}
	if data[0] == '[' {
		var raws []json.RawMessage
		if err := json.Unmarshal(data, &raws); err != nil {
			return encode(errorResponse(nullID, newError(CodeParseError, "parse error: %v", err)))
		}
		if len(raws) == 0 {
			return encode(errorResponse(nullID, newError(CodeInvalidRequest, "invalid request: empty batch")))
		}
		var out []*Response
		for _, raw := range raws {
			if r := h.serveOne(ctx, raw, hooks); r != nil {
				out = append(out, r)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return encode(out)
	}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		return encode(errorResponse(nullID, newError(CodeParseError, "parse error: %v", err)))
	}
	r := h.serveOne(ctx, data, hooks)
	if r == nil {
		return nil
	}
	return encode(r)
}

func (h *Handler) serveOne(ctx context.Context, raw json.RawMessage, hooks connHooks) *Response {
	var req Request
	if err := json.Unmarshal(raw, &req); err != nil {
		return errorResponse(nullID, newError(CodeInvalidRequest, "invalid request: %v", err))
	}
	id := req.ID
	if len(id) > 0 && !validID(id) {
		return errorResponse(nullID, newError(CodeInvalidRequest, "invalid request: id must be a string, number or null"))
	}
	if len(id) == 0 {
		id = nil
	}
	if req.JSONRPC != "2.0" {
		return errorResponse(orNull(id), newError(CodeInvalidRequest, `invalid request: "jsonrpc" must be "2.0"`))
	}
	if req.Method == "" {
		return errorResponse(orNull(id), newError(CodeInvalidRequest, `invalid request: "method" is missing`))
	}
	var (
		res     any
		rerr    *Error
		handled bool
	)
	if hooks != nil {
		res, rerr, handled = hooks(ctx, &req)
	}
	if !handled {
		res, rerr = h.Call(ctx, req.Method, req.Params)
	}
	if id == nil {
		return nil // notification
	}
	if rerr != nil {
		return errorResponse(id, rerr)
	}
	b, err := json.Marshal(res)
	if err != nil {
		return errorResponse(id, newError(CodeInternal, "encoding result: %v", err))
	}
	return &Response{JSONRPC: "2.0", ID: id, Result: b}
}

func validID(id json.RawMessage) bool {
	switch id[0] {
	case '"', 'n', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return true
	}
	return false
}

func orNull(id json.RawMessage) json.RawMessage {
	if id == nil {
		return nullID
	}
	return id
}

func errorResponse(id json.RawMessage, e *Error) *Response {
	return &Response{JSONRPC: "2.0", ID: id, Error: e}
}

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own types get here; they always encode.
		panic(fmt.Sprintf("api: encoding response: %v", err))
	}
	return b
}

func goVersion() string { return runtime.Version() }
