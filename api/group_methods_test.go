package api_test

import (
	"slices"
	"testing"
	"time"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitest"
	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node"
)

// withGroups returns withContacts' fake with a group "club" this account
// created and a pending invitation to "chess" from bob.
func withGroups(t *testing.T) (*apitest.Backend, *api.Handler, node.Group, node.Group) {
	t.Helper()
	b, h, _ := withContacts(t)
	club, err := b.CreateGroup("club")
	if err != nil {
		t.Fatal(err)
	}
	return b, h, club, b.Invite("chess", "bob")
}

// Each group method through the handler: params, results and the error
// codes of docs/API.md.
func TestGroupMethodErrors(t *testing.T) {
	b, h, club, _ := withGroups(t)
	in, err := b.ReceiveGroup("club", "alice", "hi all")
	if err != nil {
		t.Fatal(err)
	}
	b.CreateGroup("twin")
	b.CreateGroup("twin")
	tests := []struct {
		method, params string
		code           int // 0: success
		reason         string
	}{
		{"createGroup", `{"name":"new"}`, 0, ""},
		{"createGroup", `{"name":"a\nb"}`, api.CodeInvalidInput, "invalid_name"},
		{"inviteToGroup", `{"group":"club","contact":"alice"}`, 0, ""},
		{"inviteToGroup", `{"group":"` + club.ID + `","contact":"bob"}`, 0, ""},
		{"inviteToGroup", `{"group":"club","contact":"nobody"}`, api.CodeUnknownContact, "unknown_contact"},
		{"inviteToGroup", `{"group":"nowhere","contact":"alice"}`, api.CodeNotFound, "unknown_group"},
		{"inviteToGroup", `{"group":"twin","contact":"alice"}`, api.CodeInvalidInput, "ambiguous_group"},
		{"acceptGroup", `{"group":"nowhere"}`, api.CodeNotFound, "unknown_group"},
		{"declineGroup", `{"group":"nowhere"}`, api.CodeNotFound, "unknown_group"},
		{"leaveGroup", `{"group":"nowhere"}`, api.CodeNotFound, "unknown_group"},
		{"promoteInGroup", `{"group":"club","member":"nobody"}`, api.CodeUnknownContact, "unknown_contact"},
		{"promoteInGroup", `{"group":"club"}`, api.CodeInvalidParams, ""},
		{"removeFromGroup", `{"group":"club","member":"nobody"}`, api.CodeUnknownContact, "unknown_contact"},
		{"removeFromGroup", `{"group":"club","member":"bob"}`, 0, ""},
		{"renameGroup", `{"group":"club","name":""}`, api.CodeInvalidParams, ""},
		{"renameGroup", `{"group":"club","name":"a\tb"}`, api.CodeInvalidInput, "invalid_name"},
		{"listGroups", ``, 0, ""},
		{"listGroups", `{"all":true}`, api.CodeInvalidParams, ""},
		{"sendGroup", `{"group":"club","text":"hello"}`, 0, ""},
		{"sendGroup", `{"group":"club","text":"re","kind":"reply","target":"` + in.ID + `"}`, 0, ""},
		{"sendGroup", `{"group":"club","text":"👍","kind":"reaction","target":"` + in.ID + `"}`, 0, ""},
		{"sendGroup", `{"group":"club","text":"👍","kind":"reaction","target":"nope"}`, api.CodeNotFound, "unknown_message"},
		{"sendGroup", `{"group":"nowhere","text":"hello"}`, api.CodeNotFound, "unknown_group"},
		{"sendGroup", `{"group":"club","text":"hi","txnId":"t"}`, 0, ""},
		{"listGroupMessages", `{"group":"club"}`, 0, ""},
		{"listGroupMessages", `{"group":"club","limit":1}`, 0, ""},
		{"listGroupMessages", `{"group":"club","limit":-1}`, api.CodeInvalidParams, ""},
		{"listGroupMessages", `{"group":"nowhere"}`, api.CodeNotFound, "unknown_group"},
		{"listGroupMessages", `{}`, api.CodeInvalidParams, ""},
	}
	for _, tc := range tests {
		r := call(t, h, tc.method, tc.params)
		switch {
		case tc.code == 0 && r.Error != nil:
			t.Errorf("%s %s: error %d %q, want success", tc.method, tc.params, r.Error.Code, r.Error.Message)
		case tc.code == 0 && len(r.Result) == 0:
			t.Errorf("%s %s: no result", tc.method, tc.params)
		case tc.code != 0 && r.Error == nil:
			t.Errorf("%s %s: success %s, want error %d", tc.method, tc.params, r.Result, tc.code)
		case tc.code != 0 && (r.Error.Code != tc.code || r.Error.Reason() != tc.reason):
			t.Errorf("%s %s: error %d %q (%s), want %d (%s)", tc.method, tc.params, r.Error.Code, r.Error.Message, r.Error.Reason(), tc.code, tc.reason)
		}
	}
}

// A group's life through the API, read back with apitypes as a client
// would: create, invite, accept, message, remove, rename, leave, decline.
func TestGroupLifecycle(t *testing.T) {
	b, h, club, chess := withGroups(t)
	events, stop := b.Subscribe(0)
	defer stop()

	group := func(method, params string) (g apitypes.Group) {
		t.Helper()
		decode(t, call(t, h, method, params), &g)
		return g
	}
	g := group("inviteToGroup", `{"group":"club","contact":"alice"}`)
	if g.ID != club.ID || !g.Admin || len(g.Members) != 2 || !g.Members[0].Me || !g.Members[1].Invited || g.Members[1].Name != "alice" {
		t.Fatalf("after invite: %+v", g)
	}
	select {
	case ev := <-events:
		if ev.Type != node.EventGroup || ev.Group == nil || len(ev.Group.Members) != 2 {
			t.Fatalf("invite event: %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no group event after an invitation")
	}

	var gs []apitypes.Group
	decode(t, call(t, h, "listGroups", ""), &gs)
	if len(gs) != 2 || gs[0].Name != "chess" || !gs[0].Pending || gs[1].Name != "club" || gs[1].Pending {
		t.Fatalf("listGroups: %+v", gs)
	}
	if r := call(t, h, "sendGroup", `{"group":"chess","text":"hi"}`); r.Error == nil {
		t.Fatal("sent to a group whose invitation is pending")
	}
	g = group("acceptGroup", `{"group":"`+chess.ID+`"}`)
	if g.Pending || g.Admin || !slices.ContainsFunc(g.Members, func(m apitypes.GroupMember) bool { return m.Me && !m.Invited }) {
		t.Fatalf("after accept: %+v", g)
	}

	var sent apitypes.Message
	decode(t, call(t, h, "sendGroup", `{"group":"club","text":"welcome"}`), &sent)
	if sent.Group != club.ID || sent.Sender != "me" || sent.Direction != "out" || sent.State != apitypes.StateSent || sent.Contact != "club" {
		t.Fatalf("sendGroup: %+v", sent)
	}
	if _, err := b.ReceiveGroup("club", "alice", "thanks"); err != nil {
		t.Fatal(err)
	}
	var ms []apitypes.Message
	decode(t, call(t, h, "listGroupMessages", `{"group":"club"}`), &ms)
	if len(ms) != 2 || ms[0].ID != sent.ID || ms[1].Sender != "alice" || ms[1].Direction != "in" {
		t.Fatalf("listGroupMessages: %+v", ms)
	}
	decode(t, call(t, h, "listGroupMessages", `{"group":"chess"}`), &ms)
	if ms == nil || len(ms) != 0 {
		t.Fatalf("an empty group's messages: %#v, want []", ms)
	}
	var first, again apitypes.Message
	decode(t, call(t, h, "sendGroup", `{"group":"club","text":"once","txnId":"c-1"}`), &first)
	decode(t, call(t, h, "sendGroup", `{"group":"club","text":"once","txnId":"c-1"}`), &again)
	if again.ID != first.ID {
		t.Fatalf("a retried sendGroup made message %s, then %s", first.ID, again.ID)
	}
	var all []apitypes.Message
	decode(t, call(t, h, "listMessages", `{"contact":"alice"}`), &all)
	if slices.ContainsFunc(all, func(m apitypes.Message) bool { return m.Group != "" }) {
		t.Fatalf("group messages in a 1:1 conversation: %+v", all)
	}

	g = group("removeFromGroup", `{"group":"club","member":"alice"}`)
	if g.Epoch != club.Epoch+1 || len(g.Members) != 1 {
		t.Fatalf("after remove: %+v", g)
	}
	g = group("renameGroup", `{"group":"club","name":"book club"}`)
	if g.Name != "book club" {
		t.Fatalf("after rename: %+v", g)
	}
	var ok apitypes.OK
	decode(t, call(t, h, "leaveGroup", `{"group":"book club"}`), &ok)
	if !ok.OK {
		t.Fatal("leaveGroup did not answer ok")
	}
	b.Invite("poker", "alice")
	decode(t, call(t, h, "declineGroup", `{"group":"poker"}`), &ok)
	decode(t, call(t, h, "listGroups", ""), &gs)
	if len(gs) != 1 || gs[0].ID != chess.ID {
		t.Fatalf("after leave and decline: %+v", gs)
	}
}
