package relay

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hushnet/hush/internal/testutil"
)

// fakeBridge is the push bridge's /v1/wake as the relay sees it: it
// checks the credential and the body, records each call and rejects the
// handles it is told to.
type fakeBridge struct {
	srv    *httptest.Server
	calls  chan []string
	mu     sync.Mutex
	reject map[string]bool
}

const bridgeToken = "relay-credential-for-tests"

func newFakeBridge(t *testing.T) *fakeBridge {
	b := &fakeBridge{calls: make(chan []string, 100), reject: map[string]bool{}}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/wake" || r.Header.Get("Authorization") != "Bearer "+bridgeToken {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		var req struct {
			Handles []string `json:"handles"`
			Urgency string   `json:"urgency"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Urgency == "" {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		var rejected []string
		b.mu.Lock()
		for _, h := range req.Handles {
			if b.reject[h] {
				rejected = append(rejected, h)
			}
		}
		b.mu.Unlock()
		b.calls <- req.Handles
		json.NewEncoder(w).Encode(map[string]any{"rejected": rejected})
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *fakeBridge) next(t *testing.T) []string {
	t.Helper()
	select {
	case hs := <-b.calls:
		return hs
	case <-time.After(10 * time.Second):
		t.Fatal("the relay did not call the bridge")
		return nil
	}
}

// none checks that no call is pending once a later call proves the
// relay's queue moved past the point in question.
func (b *fakeBridge) none(t *testing.T) {
	t.Helper()
	select {
	case hs := <-b.calls:
		t.Fatalf("unexpected wake call for %d handles", len(hs))
	default:
	}
}

func TestWakeOnDepositWhileAway(t *testing.T) {
	bridge := newFakeBridge(t)
	clock := newFakeClock()
	logs := &testutil.SyncBuffer{}
	r := startRelay(t, Config{Now: clock.Now, PeerRate: -1, IPRate: -1,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Push:   PushConfig{Bridge: bridge.srv.URL, Token: bridgeToken, Window: Duration(time.Minute)}})
	h := newHost(t)
	c := &Client{Now: clock.Now}
	ctx := context.Background()
	o := createMailbox(t, c, h, r)
	handle := "wake-handle-AAAAsecretBBBB"
	if err := c.SetWake(ctx, h, r.info, o.created.Mailbox, o.key, handle); err != nil {
		t.Fatal(err)
	}
	deposit := func() {
		t.Helper()
		if _, err := c.Deposit(ctx, h, r.info, o.created.Deposit, sealed(t, 100)); err != nil {
			t.Fatal(err)
		}
	}

	// Away: the first deposit wakes, the next ones within the window do not.
	deposit()
	if got := bridge.next(t); len(got) != 1 || got[0] != handle {
		t.Fatalf("wake call for %q, want the handle", got)
	}
	deposit()
	deposit()
	clock.Add(61 * time.Second)
	deposit()
	bridge.next(t) // the window passed: one more call, and it is the next one
	bridge.none(t)

	// Subscribed: deposits go to the subscription, no wake.
	sub, err := c.Subscribe(ctx, h, r.info, o.created.Mailbox, o.key, true)
	if err != nil {
		t.Fatal(err)
	}
	waitDrained(t, sub)
	clock.Add(61 * time.Second)
	deposit()
	recvN(t, sub, 5)
	sub.Close()

	// The bridge rejects the handle (a dead token): it is detached.
	bridge.mu.Lock()
	bridge.reject[handle] = true
	bridge.mu.Unlock()
	waitFor(t, "the subscription to end", func() bool {
		mb := r.srv.lookupMailbox(o.created.Mailbox)
		mb.mu.Lock()
		defer mb.mu.Unlock()
		return mb.sub == nil
	})
	clock.Add(61 * time.Second)
	deposit()
	bridge.next(t)
	waitFor(t, "the rejected handle removed", func() bool {
		mb := r.srv.lookupMailbox(o.created.Mailbox)
		mb.mu.Lock()
		defer mb.mu.Unlock()
		return mb.wakeHandle == ""
	})
	// It stays removed after a restart.
	r.restart(t)
	if mb := r.srv.lookupMailbox(o.created.Mailbox); mb.wakeHandle != "" {
		t.Fatal("the rejected handle came back after a restart")
	}
	if strings.Contains(logs.String(), "secret") {
		t.Fatalf("the relay logged the wake handle:\n%s", logs)
	}
}

func TestSetWakeRefusals(t *testing.T) {
	ctx := context.Background()
	h := newHost(t)
	c := &Client{}

	plain := startRelay(t, Config{})
	o := createMailbox(t, c, h, plain)
	expectCode(t, c.SetWake(ctx, h, plain.info, o.created.Mailbox, o.key, "h"), ErrUnsupported)

	bridge := newFakeBridge(t)
	r := startRelay(t, Config{Push: PushConfig{Bridge: bridge.srv.URL, Token: bridgeToken}})
	o = createMailbox(t, c, h, r)
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	expectCode(t, c.SetWake(ctx, h, r.info, o.created.Mailbox, stranger, "h"), ErrAuth)
	expectCode(t, c.SetWake(ctx, h, r.info, o.created.Mailbox, o.key, "bad handle\n"), ErrBadRequest)
	if err := c.SetWake(ctx, h, r.info, o.created.Mailbox, o.key, strings.Repeat("x", MaxWakeHandle+1)); err == nil {
		t.Fatal("an oversize handle was sent")
	}
	// A replayed (older) setting is refused.
	m := &SetWake{Mailbox: o.created.Mailbox, Time: uint64(time.Now().Unix()) + 5, Handle: "new"}
	SignSetWake(m, o.key)
	old := &SetWake{Mailbox: o.created.Mailbox, Time: m.Time - 1, Handle: "old"}
	SignSetWake(old, o.key)
	if err := c.expectOK(ctx, h, r.info, m); err != nil {
		t.Fatal(err)
	}
	expectCode(t, c.expectOK(ctx, h, r.info, old), ErrAuth)

	// Config: a bridge over plain http on a public host, or without a
	// credential, is refused.
	for _, p := range []PushConfig{{Bridge: "http://push.example.org", Token: "x"}, {Bridge: "https://push.example.org"}} {
		if _, err := (Config{Push: p}).withDefaults(); err == nil {
			t.Fatalf("config %+v accepted", p)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
