package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitest"
	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node"
)

// otherDevice is a second device of the fake's account.
var otherDevice = node.Device{ID: "0123456789abcdef0123456789abcdef", Name: "phone", Added: apitest.T0}

func TestDeviceParamsValidation(t *testing.T) {
	b, h, _ := withContacts(t)
	b.AddDevice(otherDevice)
	b.AddDevice(node.Device{ID: "0123456799999999aaaaaaaaaaaaaaaa", Name: "tablet"})
	tests := []struct {
		method, params string
		code           int // 0: success
		reason         string
	}{
		{"linkDevice", "", 0, ""},
		{"linkDevice", `{"ttl":60}`, api.CodeInvalidParams, ""},
		{"listDevices", "", 0, ""},
		{"listDevices", `[]`, api.CodeInvalidParams, ""},
		{"revokeDevice", `{}`, api.CodeInvalidParams, ""},
		{"revokeDevice", `{"id":""}`, api.CodeInvalidParams, ""},
		{"revokeDevice", `{"id":7}`, api.CodeInvalidParams, ""},
		{"revokeDevice", `{"id":"0123456"}`, api.CodeInvalidParams, ""},                  // 7 digits
		{"revokeDevice", `{"id":"phone"}`, api.CodeInvalidParams, ""},                    // a name is not an ID
		{"revokeDevice", `{"id":"0123456g"}`, api.CodeInvalidParams, ""},                 // not hex
		{"revokeDevice", `{"id":"` + otherDevice.ID + `0"}`, api.CodeInvalidParams, ""},  // too long
		{"revokeDevice", `{"id":"01234567"}`, api.CodeInternal, ""},                      // ambiguous (the double's own error)
		{"revokeDevice", `{"id":"ffffffff"}`, api.CodeInternal, ""},                      // unknown (the double's own error)
		{"revokeDevice", `{"id":"` + strings.ToUpper(otherDevice.ID[:12]) + `"}`, 0, ""}, // a unique prefix, any case
		{"revokeDevice", `{"id":"` + otherDevice.ID + `"}`, api.CodeInternal, ""},        // gone
		{"health", "", 0, ""},
		{"health", `{"verbose":true}`, api.CodeInvalidParams, ""},
	}
	for _, tc := range tests {
		r := call(t, h, tc.method, tc.params)
		switch {
		case tc.code == 0 && r.Error != nil:
			t.Errorf("%s %s: error %d %q, want success", tc.method, tc.params, r.Error.Code, r.Error.Message)
		case tc.code != 0 && r.Error == nil:
			t.Errorf("%s %s: success %s, want error %d", tc.method, tc.params, r.Result, tc.code)
		case tc.code != 0 && (r.Error.Code != tc.code || r.Error.Message == ""):
			t.Errorf("%s %s: error %d %q, want %d", tc.method, tc.params, r.Error.Code, r.Error.Message, tc.code)
		}
	}
}

func TestDeviceMethodResults(t *testing.T) {
	b, h, _ := withContacts(t)
	b.AddDevice(otherDevice)
	events, cancel := b.Subscribe(0)
	defer cancel()

	var offer apitypes.LinkOffer
	decode(t, call(t, h, "linkDevice", ""), &offer)
	if offer.Code != apitest.LinkCode || time.Until(offer.Expires) < 9*time.Minute || time.Until(offer.Expires) > 10*time.Minute {
		t.Errorf("linkDevice = %+v", offer)
	}
	r := call(t, h, "linkDevice", "")
	if !strings.Contains(string(r.Result), `"code":`) || !strings.Contains(string(r.Result), `"expires":`) {
		t.Errorf("linkDevice JSON: %s", r.Result)
	}

	var ds []apitypes.Device
	decode(t, call(t, h, "listDevices", ""), &ds)
	if len(ds) != 2 || !ds[0].This || ds[0].ID != "dd01" || ds[1].This || ds[1].Name != "phone" {
		t.Errorf("listDevices = %+v", ds)
	}

	decode(t, call(t, h, "revokeDevice", `{"id":"`+otherDevice.ID[:8]+`"}`), &apitypes.OK{})
	select {
	case ev := <-events:
		if ev.Type != node.EventDevice || ev.Device == nil || ev.Device.Phase != "revoked" || ev.Device.ID != otherDevice.ID {
			t.Errorf("revoke event = %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no revoked event")
	}
	decode(t, call(t, h, "listDevices", ""), &ds)
	if len(ds) != 1 {
		t.Errorf("listDevices after revoke = %+v", ds)
	}

	var hl apitypes.Health
	decode(t, call(t, h, "health", ""), &hl)
	if hl.Status != "ok" || hl.History != nil {
		t.Errorf("health = %+v", hl)
	}
	b.SetHealth(node.Health{History: &node.HistoryProgress{Done: 40, Total: 100}})
	r = call(t, h, "health", "")
	if want := `{"status":"ok","history":{"done":40,"total":100,"complete":false}}`; string(r.Result) != want {
		t.Errorf("health = %s, want %s", r.Result, want)
	}
}

// failingDevices is a backend whose device methods fail or answer nil,
// as node's do before they are wired.
type failingDevices struct {
	*apitest.Backend
	err error
}

// LinkDevice fails with f.err.
func (f failingDevices) LinkDevice(context.Context) (node.LinkOffer, error) {
	return node.LinkOffer{}, f.err
}

// Devices answers nil and f.err.
func (f failingDevices) Devices() ([]node.Device, error) { return nil, f.err }

// RevokeDevice fails with f.err.
func (f failingDevices) RevokeDevice(string) error { return f.err }

func TestDeviceErrorsAndEmptyList(t *testing.T) {
	// No devices and no error: [] rather than null.
	h := api.NewHandler(failingDevices{Backend: apitest.New()}, nil)
	if r := call(t, h, "listDevices", ""); r.Error != nil || string(r.Result) != "[]" {
		t.Errorf("empty listDevices: %s %+v", r.Result, r.Error)
	}
	// Node's errors pass through with their text; known sentinels map.
	for _, tc := range []struct {
		err    error
		code   int
		reason string
	}{
		{errors.New("multi-device: not wired yet"), api.CodeInternal, ""},
		{node.ErrNotRunning, api.CodeUnavailable, "not_running"},
		{node.ErrClosed, api.CodeUnavailable, "closed"},
	} {
		h := api.NewHandler(failingDevices{Backend: apitest.New(), err: tc.err}, nil)
		for _, c := range [][2]string{{"linkDevice", ""}, {"listDevices", ""}, {"revokeDevice", `{"id":"0123456789abcdef"}`}} {
			r := call(t, h, c[0], c[1])
			if r.Error == nil || r.Error.Code != tc.code || r.Error.Reason() != tc.reason || r.Error.Message != tc.err.Error() {
				t.Errorf("%s with %v: %+v", c[0], tc.err, r.Error)
			}
		}
	}
}

// GET /api/v1/health carries the history progress, and a transfer in
// progress is no failure: still 200.
func TestHTTPHealthHistory(t *testing.T) {
	b := apitest.New()
	e := startHTTP(t, b, api.Config{})
	b.SetHealth(node.Health{History: &node.HistoryProgress{Done: 3, Total: 9}})
	resp, body := e.do(t, "GET", api.PathHealth, "", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"history":{"done":3,"total":9,"complete":false}`) {
		t.Fatalf("health with history: %d %s", resp.StatusCode, body)
	}
}
