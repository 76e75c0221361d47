package mobile

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node"
)

// A node started from config JSON answers the API's methods through
// Call; errors are JSON-RPC error objects; Close is idempotent; the
// identity survives a restart with the same key.
func TestStartCallClose(t *testing.T) {
	home := filepath.Join(t.TempDir(), "hush")
	key := newKey()
	start(t, config{Home: home, Name: "alice", Key: key}, &recorder{})

	var self node.Self
	call(t, "getSelf", nil, &self)
	if self.Name != "alice" || !strings.HasPrefix(self.Link, "hush://") || self.PeerID == "" {
		t.Fatalf("getSelf = %+v", self)
	}
	var v apitypes.VersionInfo
	call(t, "version", nil, &v)
	if v.API != api.APIVersion {
		t.Fatalf("version = %+v", v)
	}
	if e := callErr(t, "noSuchMethod", ""); e.Code != api.CodeMethodNotFound {
		t.Fatalf("unknown method: %+v", e)
	}
	if e := callErr(t, "addContact", `{"name":"bob"}`); e.Code != api.CodeInvalidParams || !strings.Contains(e.Message, "link") {
		t.Fatalf("addContact without link: %+v", e)
	}
	if e := callErr(t, "addContact", `{"name":"bob","link":"hush://garbage"}`); e.Data == nil || e.Data.Reason != "invalid_link" {
		t.Fatalf("addContact with a bad link: %+v", e)
	}
	if e := callErr(t, "send", `{"to":`); e.Code != api.CodeParseError {
		t.Fatalf("broken params: %+v", e)
	}
	if err := Start(configJSON(t, config{Home: home, Key: key}), &recorder{}); err != errAlreadyStarted {
		t.Fatalf("second Start = %v, want errAlreadyStarted", err)
	}

	if err := Close(); err != nil {
		t.Fatal(err)
	}
	if err := Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := Call("getSelf", ""); err != errNotStarted {
		t.Fatalf("Call after Close = %v, want errNotStarted", err)
	}
	if _, err := Drain(1000); err != errNotStarted {
		t.Fatalf("Drain after Close = %v, want errNotStarted", err)
	}

	// Neither the key nor its bytes are anywhere in the home.
	raw, _ := hex.DecodeString(key)
	filepath.WalkDir(home, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(key)) || bytes.Contains(b, raw) || bytes.Contains(bytes.ToLower(b), []byte(key)) {
			t.Errorf("%s holds the store key", path)
		}
		return nil
	})

	// The same home and key open the same account; no name needed.
	start(t, config{Home: home, Key: key}, &recorder{})
	var again node.Self
	call(t, "getSelf", nil, &again)
	if again.Account != self.Account {
		t.Fatalf("account changed across a restart: %s, then %s", self.Account, again.Account)
	}
}

// A bad config is refused with an error naming the problem, and leaves
// nothing started.
func TestBadConfig(t *testing.T) {
	dir := t.TempDir()
	made := filepath.Join(dir, "made")
	if err := Start(configJSON(t, config{Home: made, Name: "alice", Passphrase: "right"}), &recorder{}); err != nil {
		t.Fatal(err)
	}
	Close()
	for _, tc := range []struct{ name, cfg, want string }{
		{"empty", "", "config is empty"},
		{"not JSON", "{", "config:"},
		{"unknown field", `{"home":"/x","key":"` + newKey() + `","relay":["a"]}`, `unknown field "relay"`},
		{"no home", `{"key":"` + newKey() + `"}`, `"home" is required`},
		{"relative home", `{"home":"hush","key":"` + newKey() + `"}`, "absolute path"},
		{"no secret", `{"home":"/tmp/x"}`, `"key"`},
		{"both secrets", `{"home":"/tmp/x","key":"` + newKey() + `","passphrase":"p"}`, "not both"},
		{"short key", `{"home":"/tmp/x","key":"abcd"}`, "64 hex digits"},
		{"no identity, no name", configJSON(t, config{Home: filepath.Join(dir, "empty"), Key: newKey()}), `give "name"`},
		{"wrong passphrase", configJSON(t, config{Home: made, Passphrase: "wrong"}), "wrong key or passphrase"},
		{"bad relay", configJSON(t, config{Home: made, Passphrase: "right", Relays: []string{"/ip4/1.2.3.4/tcp/1"}}), "relay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Start(tc.cfg, &recorder{})
			if err == nil {
				Close()
				t.Fatalf("Start accepted %s", tc.cfg)
			}
			if !contains(err, tc.want) {
				t.Fatalf("Start(%s) = %v, want it to mention %s", tc.cfg, err, tc.want)
			}
			if current() != nil {
				t.Fatal("a refused Start left a node started")
			}
		})
	}
	if err := Start(configJSON(t, config{Home: made, Passphrase: "right"}), nil); !contains(err, "Callback") {
		t.Fatalf("Start without a callback = %v", err)
	}
}

// A panic in any exported function comes back as an error, and a Go
// callback that panics loses no later event.
func TestPanicsBecomeErrors(t *testing.T) {
	for _, fn := range []string{"Start", "Call", "Drain", "Close"} {
		t.Run(fn, func(t *testing.T) {
			testHook = func(name string) {
				if name == fn {
					panic("forced by the test")
				}
			}
			defer func() { testHook = nil }()
			var err error
			switch fn {
			case "Start":
				err = Start(configJSON(t, config{Home: t.TempDir(), Name: "a", Key: newKey()}), &recorder{})
			case "Call":
				_, err = Call("getSelf", "")
			case "Drain":
				_, err = Drain(1)
			case "Close":
				err = Close()
			}
			if !contains(err, fn+" panicked: forced by the test") {
				t.Fatalf("%s = %v, want the panic as an error", fn, err)
			}
		})
	}
}
