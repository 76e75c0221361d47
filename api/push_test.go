package api_test

import (
	"testing"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitest"
	"github.com/hushnet/hush/api/apitypes"
)

func TestPushMethods(t *testing.T) {
	_, h, _ := withContacts(t)
	status := func() apitypes.PushStatus {
		t.Helper()
		var st apitypes.PushStatus
		decode(t, call(t, h, "pushStatus", ""), &st)
		return st
	}
	if st := status(); st.State != "off" {
		t.Fatalf("status before registering: %+v", st)
	}
	for _, c := range []struct {
		method, params string
		code           int
		reason         string
	}{
		{"registerPush", `{"bridge":"https://b","provider":"webpush"}`, api.CodeInvalidParams, ""},
		{"registerPush", `{"bridge":"https://b","provider":"pigeon","token":"t"}`, api.CodeInvalidInput, "bad_push"},
		{"registerPush", `{"bridge":"https://b","provider":"fcm","token":"t","extra":1}`, api.CodeInvalidParams, ""},
		{"verifyPush", `{"code":"` + apitest.PushCode + `"}`, api.CodeInvalidInput, "bad_push"}, // nothing registered
		{"registerPush", `{"bridge":"https://b","provider":"fcm","token":"t"}`, 0, ""},
		{"verifyPush", `{}`, api.CodeInvalidParams, ""},
		{"verifyPush", `{"code":"000000"}`, api.CodeInvalidInput, "bad_push"},
		{"verifyPush", `{"code":"` + apitest.PushCode + `"}`, 0, ""},
		{"verifyPush", `{"code":"` + apitest.PushCode + `"}`, api.CodeInvalidInput, "bad_push"}, // used
	} {
		r := call(t, h, c.method, c.params)
		switch {
		case c.code == 0 && r.Error != nil:
			t.Fatalf("%s %s: %v", c.method, c.params, r.Error.Message)
		case c.code != 0 && (r.Error == nil || r.Error.Code != c.code || (c.reason != "" && (r.Error.Data == nil || r.Error.Data.Reason != c.reason))):
			t.Fatalf("%s %s: got %+v, want code %d %s", c.method, c.params, r.Error, c.code, c.reason)
		}
	}
	if st := status(); st.State != "on" || st.Provider != "fcm" || st.Relays != 1 {
		t.Fatalf("status after verifying: %+v", st)
	}
	decode(t, call(t, h, "unregisterPush", ""), &apitypes.OK{})
	if st := status(); st.State != "off" {
		t.Fatalf("status after unregistering: %+v", st)
	}
}
