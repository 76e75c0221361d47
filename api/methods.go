package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hushnet/hush/node"
)

// method runs one call; it returns a JSON-encodable result or an error
// (an *Error for parameter problems, a node error otherwise).
type method func(ctx context.Context, b Backend, params json.RawMessage) (any, error)

// Limits on waitMessage.
const (
	DefaultWaitTimeout = 30 * time.Second
	MaxWaitTimeout     = 10 * time.Minute
)

// methods is the method table every transport shares.
var methods = map[string]method{
	"version":         mVersion,
	"getSelf":         mGetSelf,
	"addContact":      mAddContact,
	"listContacts":    mListContacts,
	"removeContact":   mRemoveContact,
	"verifyContact":   mVerifyContact,
	"safetyNumber":    mSafetyNumber,
	"send":            mSend,
	"waitMessage":     mWaitMessage,
	"listMessages":    mListMessages,
	"markRead":        mMarkRead,
	"sendTyping":      mSendTyping,
	"setReadReceipts": mSetReadReceipts,
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

func required(field, value string) error {
	if value == "" {
		return invalidParams("%q is required", field)
	}
	return nil
}

func mVersion(_ context.Context, _ Backend, params json.RawMessage) (any, error) {
	if err := noParams(params); err != nil {
		return nil, err
	}
	return VersionInfo{Version: version(), API: APIVersion, Go: goVersion()}, nil
}

func mGetSelf(ctx context.Context, b Backend, params json.RawMessage) (any, error) {
	if err := noParams(params); err != nil {
		return nil, err
	}
	// A link handed out while the node is still starting would lack its
	// address or mailboxes; wait until it is complete.
	if err := b.WaitLink(ctx); err != nil {
		return nil, err
	}
	return b.Self()
}

type nameParams struct {
	Name string `json:"name"`
}

func decodeName(params json.RawMessage) (string, error) {
	var p nameParams
	if err := decodeParams(params, &p); err != nil {
		return "", err
	}
	return p.Name, required("name", p.Name)
}

func mAddContact(_ context.Context, b Backend, params json.RawMessage) (any, error) {
	var p struct {
		Name string `json:"name"`
		Link string `json:"link"`
	}
	if err := decodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := required("name", p.Name); err != nil {
		return nil, err
	}
	if len(p.Name) > node.MaxNameSize {
		return nil, invalidParams("%q is longer than %d bytes", "name", node.MaxNameSize)
	}
	if err := required("link", p.Link); err != nil {
		return nil, err
	}
	return b.AddContact(p.Name, p.Link)
}

func mListContacts(_ context.Context, b Backend, params json.RawMessage) (any, error) {
	if err := noParams(params); err != nil {
		return nil, err
	}
	cs, err := b.Contacts()
	if cs == nil && err == nil {
		cs = []node.Contact{}
	}
	return cs, err
}

// OK is the result of methods that have nothing else to return.
type OK struct {
	OK bool `json:"ok"`
}

func mRemoveContact(_ context.Context, b Backend, params json.RawMessage) (any, error) {
	name, err := decodeName(params)
	if err != nil {
		return nil, err
	}
	if err := b.RemoveContact(name); err != nil {
		return nil, err
	}
	return OK{true}, nil
}

func mVerifyContact(_ context.Context, b Backend, params json.RawMessage) (any, error) {
	name, err := decodeName(params)
	if err != nil {
		return nil, err
	}
	return b.VerifyContact(name)
}

// SafetyNumberResult is the result of safetyNumber.
type SafetyNumberResult struct {
	Name         string `json:"name"`
	SafetyNumber string `json:"safetyNumber"` // 60 digits, no spaces
}

func mSafetyNumber(_ context.Context, b Backend, params json.RawMessage) (any, error) {
	name, err := decodeName(params)
	if err != nil {
		return nil, err
	}
	sn, err := b.SafetyNumber(name)
	if err != nil {
		return nil, err
	}
	return SafetyNumberResult{Name: name, SafetyNumber: sn}, nil
}

// SendParams are the params of send.
type SendParams struct {
	To     string `json:"to"`
	Text   string `json:"text,omitempty"`
	Kind   string `json:"kind,omitempty"`
	Target string `json:"target,omitempty"`
	TxnID  string `json:"txnId,omitempty"`
	Remove bool   `json:"remove,omitempty"`
}

func mSend(ctx context.Context, b Backend, params json.RawMessage) (any, error) {
	var p SendParams
	if err := decodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := required("to", p.To); err != nil {
		return nil, err
	}
	kind, err := checkMessage(node.Kind(p.Kind), p.Text, p.Target, p.Remove)
	if err != nil {
		return nil, err
	}
	return b.Send(ctx, node.SendRequest{
		To: p.To, Kind: kind, Text: p.Text, Target: p.Target, TxnID: p.TxnID, Remove: p.Remove,
	})
}

// checkMessage validates the kind, text, target and remove fields shared
// by send and sendGroup, and returns the kind (text by default).
func checkMessage(kind node.Kind, text, target string, remove bool) (node.Kind, error) {
	if kind == "" {
		kind = node.KindText
	}
	switch kind {
	case node.KindText:
		if target != "" {
			return "", invalidParams("%q is not used with kind %q", "target", kind)
		}
	case node.KindReply, node.KindEdit, node.KindDelete, node.KindReaction:
		if err := required("target", target); err != nil {
			return "", err
		}
	default:
		return "", invalidParams("%q must be one of text, reply, edit, delete, reaction", "kind")
	}
	switch kind {
	case node.KindText, node.KindReply, node.KindEdit:
		if strings.TrimSpace(text) == "" {
			return "", &Error{Code: CodeBadMessage, Message: node.ErrEmptyMessage.Error(), Data: &ErrorData{Reason: "empty_message"}}
		}
	case node.KindReaction:
		if err := required("text", text); err != nil {
			return "", err
		}
	case node.KindDelete:
		if text != "" {
			return "", invalidParams("%q is not used with kind %q", "text", kind)
		}
	}
	if remove && kind != node.KindReaction {
		return "", invalidParams("%q is only used with kind %q", "remove", node.KindReaction)
	}
	if len(text) > node.MaxTextSize {
		return "", &Error{
			Code:    CodeBadMessage,
			Message: fmt.Sprintf("%v (%d bytes; the limit is %d)", node.ErrMessageTooLarge, len(text), node.MaxTextSize),
			Data:    &ErrorData{Reason: "message_too_large"},
		}
	}
	return kind, nil
}

var waitStates = map[node.MessageState]bool{
	node.StateSent: true, node.StateDelivered: true, node.StateRead: true, node.StateFailed: true,
}

func mWaitMessage(ctx context.Context, b Backend, params json.RawMessage) (any, error) {
	var p struct {
		ID        string `json:"id"`
		State     string `json:"state"`
		TimeoutMs *int64 `json:"timeoutMs"`
	}
	if err := decodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := required("id", p.ID); err != nil {
		return nil, err
	}
	state := node.MessageState(p.State)
	if state == "" {
		state = node.StateDelivered
	}
	if !waitStates[state] {
		return nil, invalidParams("%q must be one of sent, delivered, read, failed", "state")
	}
	timeout := DefaultWaitTimeout
	if p.TimeoutMs != nil {
		if *p.TimeoutMs <= 0 || time.Duration(*p.TimeoutMs)*time.Millisecond > MaxWaitTimeout {
			return nil, invalidParams("%q must be between 1 and %d", "timeoutMs", MaxWaitTimeout.Milliseconds())
		}
		timeout = time.Duration(*p.TimeoutMs) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m, err := b.WaitState(ctx, p.ID, state)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, &Error{
			Code:    CodeTimeout,
			Message: fmt.Sprintf("message %s did not reach %q within %v", p.ID, state, timeout),
			Data:    &ErrorData{Reason: "timeout"},
		}
	}
	return m, err
}

func mListMessages(_ context.Context, b Backend, params json.RawMessage) (any, error) {
	var p struct {
		Contact string `json:"contact"`
		Limit   int    `json:"limit"`
	}
	if err := decodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := required("contact", p.Contact); err != nil {
		return nil, err
	}
	if p.Limit < 0 {
		return nil, invalidParams("%q must not be negative", "limit")
	}
	ms, err := b.Messages(p.Contact, p.Limit)
	if ms == nil && err == nil {
		ms = []node.Message{}
	}
	return ms, err
}

func decodeContact(params json.RawMessage) (string, error) {
	var p struct {
		Contact string `json:"contact"`
	}
	if err := decodeParams(params, &p); err != nil {
		return "", err
	}
	return p.Contact, required("contact", p.Contact)
}

func mMarkRead(_ context.Context, b Backend, params json.RawMessage) (any, error) {
	c, err := decodeContact(params)
	if err != nil {
		return nil, err
	}
	if err := b.MarkRead(c); err != nil {
		return nil, err
	}
	return OK{true}, nil
}

func mSendTyping(_ context.Context, b Backend, params json.RawMessage) (any, error) {
	var p struct {
		Contact string `json:"contact"`
		Typing  *bool  `json:"typing"`
	}
	if err := decodeParams(params, &p); err != nil {
		return nil, err
	}
	if err := required("contact", p.Contact); err != nil {
		return nil, err
	}
	if p.Typing == nil {
		return nil, invalidParams("%q is required", "typing")
	}
	if err := b.SetTyping(p.Contact, *p.Typing); err != nil {
		return nil, err
	}
	return OK{true}, nil
}

func mSetReadReceipts(_ context.Context, b Backend, params json.RawMessage) (any, error) {
	var p struct {
		Enabled *bool `json:"enabled"`
	}
	if err := decodeParams(params, &p); err != nil {
		return nil, err
	}
	if p.Enabled == nil {
		return nil, invalidParams("%q is required", "enabled")
	}
	if err := b.SetReadReceipts(*p.Enabled); err != nil {
		return nil, err
	}
	return OK{true}, nil
}
