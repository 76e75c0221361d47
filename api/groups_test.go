package api

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

// Group methods check their params before anything else: each string
// field is required, typed, and no other field is accepted.
func TestGroupParams(t *testing.T) {
	cases := []struct {
		method, params, want string
	}{
		{"createGroup", `{}`, `invalid params: "name" is required`},
		{"createGroup", `{"name":7}`, `invalid params: "name" must be a string`},
		{"inviteToGroup", `{"group":"g"}`, `invalid params: "contact" is required`},
		{"inviteToGroup", `{"group":"g","contact":"c","extra":1}`, `invalid params: unknown field "extra"`},
		{"removeFromGroup", `{"group":"g","member":""}`, `invalid params: "member" is required`},
		{"renameGroup", `[]`, `invalid params: params must be an object`},
		{"sendGroup", `{"group":"g","text":""}`, ""}, // empty text: message error, below
	}
	for _, c := range cases {
		m, found := methods[c.method]
		if !found {
			t.Fatalf("no method %s", c.method)
		}
		_, err := m.run(context.Background(), nil, json.RawMessage(c.params))
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%s %s: got %v, want an API error", c.method, c.params, err)
		}
		if c.want != "" && e.Message != c.want {
			t.Errorf("%s %s: got %q, want %q", c.method, c.params, e.Message, c.want)
		}
		if c.want == "" && e.Code != CodeBadMessage {
			t.Errorf("%s %s: got code %d, want %d", c.method, c.params, e.Code, CodeBadMessage)
		}
	}
}
