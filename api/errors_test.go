package api

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/node"
)

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		err    error
		code   int
		reason string
	}{
		{node.ErrUnknownContact, CodeUnknownContact, "unknown_contact"},
		{fmt.Errorf("node: send to bob: %w", node.ErrUnknownContact), CodeUnknownContact, "unknown_contact"},
		{node.ErrKeyChanged, CodeKeyChanged, "key_changed"},
		{node.ErrEmptyMessage, CodeBadMessage, "empty_message"},
		{node.ErrMessageTooLarge, CodeBadMessage, "message_too_large"},
		{node.ErrUnknownMessage, CodeNotFound, "unknown_message"},
		{node.ErrInvalidName, CodeInvalidInput, "invalid_name"},
		{fmt.Errorf("node: add contact: %w", card.ErrBadSignature), CodeInvalidInput, "invalid_link"},
		{card.ErrNotLink, CodeInvalidInput, "invalid_link"},
		{node.ErrContactExists, CodeContactExists, "contact_exists"},
		{node.ErrClosed, CodeUnavailable, "closed"},
		{node.ErrNoIdentity, CodeUnavailable, "no_identity"},
		{context.DeadlineExceeded, CodeTimeout, "timeout"},
		{context.Canceled, CodeUnavailable, "cancelled"},
		{errors.New("disk on fire"), CodeInternal, ""},
	}
	for _, tc := range tests {
		e := toError(tc.err)
		if e.Code != tc.code || e.Reason() != tc.reason {
			t.Errorf("%v: code %d reason %q, want %d %q", tc.err, e.Code, e.Reason(), tc.code, tc.reason)
		}
		if tc.code != CodeUnavailable && e.Message != tc.err.Error() {
			t.Errorf("%v: message %q, want the error's text", tc.err, e.Message)
		}
	}
	// An *Error passes through unchanged.
	in := invalidParams("x")
	if toError(fmt.Errorf("wrapped: %w", in)) != in {
		t.Error("*Error not passed through")
	}
}
