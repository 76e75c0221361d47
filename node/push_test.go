package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hushnet/hush/relay"
)

// bridgeStub is a push bridge's HTTP API as a node and a relay use it:
// one registration, one code, one handle; it records wake calls.
type bridgeStub struct {
	srv   *httptest.Server
	mu    sync.Mutex
	used  bool
	wakes chan []string
}

const (
	stubCode   = "271828"
	stubHandle = "stub-wake-handle"
	stubRelay  = "relay-token"
)

func newBridgeStub(t *testing.T) *bridgeStub {
	b := &bridgeStub{wakes: make(chan []string, 16)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/register", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Provider     string          `json:"provider"`
			Subscription json.RawMessage `json:"subscription"`
		}
		if json.NewDecoder(r.Body).Decode(&req) != nil || req.Provider != "webpush" || len(req.Subscription) == 0 {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": "bad registration", "code": "bad_request"})
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"registration": "reg-1"})
	})
	mux.HandleFunc("POST /v1/verify", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Registration, Code string }
		json.NewDecoder(r.Body).Decode(&req)
		b.mu.Lock()
		ok := !b.used && req.Registration == "reg-1" && req.Code == stubCode
		b.used = b.used || ok
		b.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": "wrong or used code", "code": "bad_code"})
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"wake_handle": stubHandle})
	})
	mux.HandleFunc("POST /v1/wake", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+stubRelay {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var req struct{ Handles []string }
		json.NewDecoder(r.Body).Decode(&req)
		b.wakes <- req.Handles
		json.NewEncoder(w).Encode(map[string][]string{"rejected": {}})
	})
	b.srv = httptest.NewServer(mux)
	t.Cleanup(b.srv.Close)
	return b
}

// A device registers for push; its relay holds the handle; while the
// device is away, a contact's message makes the relay ask the bridge to
// wake it, once.
func TestPushWakesAnAwayDevice(t *testing.T) {
	bridge := newBridgeStub(t)
	cfg := relayCfg()
	cfg.Push = relay.PushConfig{Bridge: bridge.srv.URL, Token: stubRelay}
	relayAddr := startRelay(t, cfg)
	a := startNode(t, newHome(t, "alice"))
	defer a.stop(t)
	b := startNodeCfg(t, Config{Home: newHome(t, "bob"), Relays: []string{relayAddr}})
	if err := b.n.WaitLink(context.Background()); err != nil {
		t.Fatal(err)
	}
	sb, _ := b.n.Self()
	if _, err := a.n.AddContact("bob", sb.Link); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	sub := `{"endpoint":"https://push.example.org/x","keys":{"p256dh":"k","auth":"a"}}`
	if err := b.n.RegisterPush(ctx, "ftp://bridge", "webpush", sub); !errors.Is(err, ErrBadPush) {
		t.Fatalf("a bridge that is not http(s): %v", err)
	}
	if err := b.n.RegisterPush(ctx, bridge.srv.URL, "carrier-pigeon", sub); !errors.Is(err, ErrBadPush) {
		t.Fatalf("an unknown provider: %v", err)
	}
	if err := b.n.RegisterPush(ctx, bridge.srv.URL, "webpush", sub); err != nil {
		t.Fatal(err)
	}
	if st := b.n.PushStatus(); st.State != "verifying" {
		t.Fatalf("status after register: %+v", st)
	}
	if err := b.n.VerifyPush(ctx, "000000"); !errors.Is(err, ErrBadPush) {
		t.Fatalf("a wrong code: %v", err)
	}
	if err := b.n.VerifyPush(ctx, stubCode); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the handle on the relay", func() bool { st := b.n.PushStatus(); return st.State == "on" && st.Relays == 1 })
	b.stop(t)

	for i := range 3 {
		if _, err := a.n.Send(ctx, SendRequest{To: "bob", Text: "wake up"}); err != nil {
			t.Fatal(err, i)
		}
	}
	select {
	case hs := <-bridge.wakes:
		if len(hs) != 1 || hs[0] != stubHandle {
			t.Fatalf("wake for %q", hs)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the relay did not ask the bridge to wake bob")
	}
	// The messages reach the relay ("sent"); they were one wake, not three.
	waitFor(t, "all three on the relay", func() bool {
		ms, _ := a.n.Messages("bob", 0)
		for _, m := range ms {
			if m.State != StateSent {
				return false
			}
		}
		return len(ms) == 3
	})
	select {
	case hs := <-bridge.wakes:
		t.Fatalf("a second wake within the window: %q", hs)
	default:
	}
}
