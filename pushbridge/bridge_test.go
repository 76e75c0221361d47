package pushbridge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hushnet/hush/pushbridge/provider"
)

// fakeSender records pushes and answers as its script says.
type fakeSender struct {
	kind provider.Kind

	mu     sync.Mutex
	pushes []provider.Push
	// answer, when set, decides the result of the n-th push (from 0).
	answer func(n int, p provider.Push) provider.Result
	// hang makes Send wait until its context ends.
	hang bool
}

func (f *fakeSender) Kind() provider.Kind { return f.kind }

func (f *fakeSender) Send(ctx context.Context, p provider.Push) provider.Result {
	f.mu.Lock()
	n := len(f.pushes)
	f.pushes = append(f.pushes, p)
	answer, hang := f.answer, f.hang
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return provider.Result{Outcome: provider.Retry, Reason: "timeout"}
	}
	if answer != nil {
		return answer(n, p)
	}
	return provider.Result{Outcome: provider.Delivered, Status: 200}
}

var hexToken = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (f *fakeSender) CheckToken(token string) error {
	if !hexToken.MatchString(token) {
		return errors.New("want 64 lowercase hex digits")
	}
	return nil
}

func (f *fakeSender) setAnswer(fn func(n int, p provider.Push) provider.Result) {
	f.mu.Lock()
	f.answer = fn
	f.mu.Unlock()
}

// wakes returns the recorded pushes that are wake-ups.
func (f *fakeSender) wakes() []provider.Push {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []provider.Push
	for _, p := range f.pushes {
		if bytes.Equal(p.Payload, WakePayload) {
			out = append(out, p)
		}
	}
	return out
}

func (f *fakeSender) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pushes)
}

// lastCode returns the code of the newest verification push.
func (f *fakeSender) lastCode(t *testing.T) string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.pushes) - 1; i >= 0; i-- {
		var v struct{ T, Code string }
		if json.Unmarshal(f.pushes[i].Payload, &v) == nil && v.T == "verify" {
			return v.Code
		}
	}
	t.Fatal("no verification push")
	return ""
}

const relayToken = "relay-bearer-secret-0123456789"

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testBridge struct {
	*Bridge
	fake *fakeSender
	logs *syncBuffer
	dir  string
	cfg  Config

	stopOnce sync.Once
	stops    []func()
}

// stopInBubble stops the bridge and lets goleveldb's last timer (one
// second after Close) fire on the bubble's fake clock.
func (tb *testBridge) stopInBubble() {
	tb.stop()
	time.Sleep(2 * time.Second)
}

// stop ends Run (if running) and closes the bridge. Tests in a synctest
// bubble defer it: the bubble must be empty when its function returns.
func (tb *testBridge) stop() {
	tb.stopOnce.Do(func() {
		for i := len(tb.stops) - 1; i >= 0; i-- {
			tb.stops[i]()
		}
	})
}

func testConfig(t testing.TB) Config {
	sum := sha256.Sum256([]byte(relayToken))
	return Config{
		DataDir: t.TempDir(),
		NoSync:  true,
		Relays:  []Relay{{Name: "relay-a", TokenSHA256: hex.EncodeToString(sum[:])}},
	}
}

// newTestBridge opens a bridge with one fake APNs sender and debug logs
// captured.
func newTestBridge(t testing.TB, cfg Config) *testBridge {
	t.Helper()
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fake := &fakeSender{kind: provider.APNs}
	b, err := Open(cfg, map[provider.Kind]provider.Sender{provider.APNs: fake})
	if err != nil {
		t.Fatal(err)
	}
	tb := &testBridge{Bridge: b, fake: fake, logs: logs, dir: cfg.DataDir, cfg: cfg}
	tb.stops = append(tb.stops, func() { b.Close() })
	t.Cleanup(tb.stop)
	return tb
}

// run runs the bridge until the test ends.
func (tb *testBridge) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tb.Run(ctx, nil) }()
	tb.stops = append(tb.stops, func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// call makes one API request and decodes the answer into out (if not nil).
func (tb *testBridge) call(t *testing.T, path, auth string, body any, out any) int {
	t.Helper()
	var raw []byte
	if s, ok := body.(string); ok {
		raw = []byte(s)
	} else {
		raw, _ = json.Marshal(body)
	}
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(raw))
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	rec := httptest.NewRecorder()
	tb.Handler().ServeHTTP(rec, req)
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatalf("%s: %d %q: %v", path, rec.Code, rec.Body.String(), err)
		}
	}
	return rec.Code
}

func token(i int) string {
	s := sha256.Sum256([]byte(fmt.Sprint("device token ", i)))
	return hex.EncodeToString(s[:])
}

// enroll registers and verifies a token through the HTTP API and returns
// the registration ID, code and wake handle.
func (tb *testBridge) enroll(t *testing.T, tok string) (reg, code, handle string) {
	t.Helper()
	var r struct{ Registration string }
	if st := tb.call(t, "/v1/register", "", map[string]string{"provider": "apns", "token": tok}, &r); st != 200 || r.Registration == "" {
		t.Fatalf("register: %d", st)
	}
	code = tb.fake.lastCode(t)
	var v struct {
		WakeHandle string `json:"wake_handle"`
	}
	if st := tb.call(t, "/v1/verify", "", map[string]string{"registration": r.Registration, "code": code}, &v); st != 200 || v.WakeHandle == "" {
		t.Fatalf("verify: %d", st)
	}
	return r.Registration, code, v.WakeHandle
}

type wakeAnswer struct {
	Rejected []string `json:"rejected"`
	Error    string   `json:"error"`
	Code     string   `json:"code"`
}

func (tb *testBridge) wake(t *testing.T, handles ...string) wakeAnswer {
	t.Helper()
	var a wakeAnswer
	if st := tb.call(t, "/v1/wake", relayToken, map[string]any{"handles": handles}, &a); st != 200 {
		t.Fatalf("wake: %d %s", st, a.Error)
	}
	return a
}

func TestRegisterVerifyWake(t *testing.T) {
	tb := newTestBridge(t, testConfig(t))
	tok := token(1)
	_, _, h := tb.enroll(t, tok)
	if n := tb.fake.count(); n != 1 {
		t.Fatalf("%d pushes after enrolling, want 1 (the verification)", n)
	}
	if a := tb.wake(t, h); len(a.Rejected) != 0 || a.Rejected == nil {
		t.Fatalf("rejected %v, want []", a.Rejected)
	}
	w := tb.fake.wakes()
	if len(w) != 1 {
		t.Fatalf("%d wake-ups, want 1", len(w))
	}
	p := w[0]
	if string(p.Payload) != `{"t":"wake"}` || p.CollapseID != "wake" || p.Token != tok ||
		p.Priority != provider.High || p.TTL != DefaultPushTTL {
		t.Fatalf("push %+v", p)
	}
	if s := tb.Stats(); s.Delivered != 1 || s.Rejected != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestHandleIsPerRegistration(t *testing.T) {
	tb := newTestBridge(t, testConfig(t))
	_, _, h1 := tb.enroll(t, token(1))
	_, _, h2 := tb.enroll(t, token(1))
	if h1 == h2 {
		t.Fatal("two registrations of one token gave the same handle")
	}
	_, _, h3 := tb.enroll(t, token(2))
	if len(h1) != len(h3) {
		t.Fatalf("handle lengths %d and %d differ", len(h1), len(h3))
	}
}

func TestCoalescing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb := newTestBridge(t, testConfig(t))
		defer tb.stopInBubble()
		tb.run(t)
		_, _, h := tb.enroll(t, token(1))
		for range 10 {
			tb.wake(t, h)
			time.Sleep(100 * time.Millisecond)
		}
		synctest.Wait()
		if n := len(tb.fake.wakes()); n != 1 {
			t.Fatalf("%d wake-ups from 10 wakes within the window, want 1", n)
		}
		time.Sleep(DefaultCoalesceWindow)
		synctest.Wait()
		if n := len(tb.fake.wakes()); n != 2 {
			t.Fatalf("%d wake-ups after the window, want 2 (one for the wakes it merged)", n)
		}
		time.Sleep(5 * DefaultCoalesceWindow)
		synctest.Wait()
		if n := len(tb.fake.wakes()); n != 2 {
			t.Fatalf("%d wake-ups with no new wakes, want still 2", n)
		}
		if s := tb.Stats(); s.Coalesced != 9 || s.Delivered != 2 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestCoalescingOneWakeNoTrailer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb := newTestBridge(t, testConfig(t))
		defer tb.stopInBubble()
		tb.run(t)
		_, _, h := tb.enroll(t, token(1))
		tb.wake(t, h)
		time.Sleep(3 * DefaultCoalesceWindow)
		synctest.Wait()
		if n := len(tb.fake.wakes()); n != 1 {
			t.Fatalf("%d wake-ups from one wake, want 1", n)
		}
		tb.wake(t, h) // after the window: sent at once
		synctest.Wait()
		if n := len(tb.fake.wakes()); n != 2 {
			t.Fatalf("%d wake-ups, want 2", n)
		}
	})
}

func TestHandleRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Limits.CoalesceWindow = Off
		cfg.Limits.HandlePerMinute = 6
		cfg.Limits.HandleBurst = 3
		tb := newTestBridge(t, cfg)
		defer tb.stopInBubble()
		_, _, h := tb.enroll(t, token(1))
		for range 5 {
			tb.wake(t, h)
		}
		if n := len(tb.fake.wakes()); n != 3 {
			t.Fatalf("%d wake-ups from 5 wakes with burst 3, want 3", n)
		}
		time.Sleep(10 * time.Second) // one token at 6 a minute
		tb.wake(t, h)
		tb.wake(t, h)
		if n := len(tb.fake.wakes()); n != 4 {
			t.Fatalf("%d wake-ups after 10 s, want 4", n)
		}
		if s := tb.Stats(); s.Limited != 3 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestGlobalRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Limits.CoalesceWindow = Off
		cfg.Limits.HandlePerMinute = -1
		cfg.Limits.GlobalPerSecond = 1
		cfg.Limits.GlobalBurst = 4 // two go to the verification pushes
		tb := newTestBridge(t, cfg)
		defer tb.stopInBubble()
		_, _, h1 := tb.enroll(t, token(1))
		_, _, h2 := tb.enroll(t, token(2))
		tb.wake(t, h1, h2, h1, h2)
		if n := len(tb.fake.wakes()); n != 2 {
			t.Fatalf("%d wake-ups with 2 global tokens left, want 2", n)
		}
		time.Sleep(time.Second)
		tb.wake(t, h1, h2)
		if n := len(tb.fake.wakes()); n != 3 {
			t.Fatalf("%d wake-ups after 1 s at 1/s, want 3", n)
		}
	})
}

func TestRegisterRateLimit(t *testing.T) {
	tb := newTestBridge(t, testConfig(t))
	tok := token(1)
	for i := range 4 {
		st := tb.call(t, "/v1/register", "", map[string]string{"provider": "apns", "token": tok}, nil)
		if want := map[bool]int{true: 200, false: 429}[i < 3]; st != want {
			t.Fatalf("register %d: %d, want %d", i, st, want)
		}
	}
	if n := tb.fake.count(); n != 3 {
		t.Fatalf("%d verification pushes, want 3", n)
	}
}

func TestDeadToken(t *testing.T) {
	cfg := testConfig(t)
	tb := newTestBridge(t, cfg)
	_, _, h := tb.enroll(t, token(1))
	_, _, live := tb.enroll(t, token(2))
	tb.fake.setAnswer(func(_ int, p provider.Push) provider.Result {
		if p.Token == token(1) {
			return provider.Result{Outcome: provider.Dead, Status: 410, Reason: "Unregistered"}
		}
		return provider.Result{Outcome: provider.Delivered, Status: 200}
	})
	a := tb.wake(t, h, live)
	if len(a.Rejected) != 1 || a.Rejected[0] != h {
		t.Fatalf("rejected %d handles, want the dead one", len(a.Rejected))
	}
	before := tb.fake.count()
	for range 3 {
		if a := tb.wake(t, h); len(a.Rejected) != 1 {
			t.Fatal("dead handle not rejected on a later wake")
		}
	}
	if tb.fake.count() != before {
		t.Fatal("a dead handle was sent to again")
	}
	if s := tb.Stats(); s.Dead != 1 {
		t.Fatalf("stats %+v", s)
	}

	// The tombstone survives a restart.
	tb.Close()
	tb2 := newTestBridge(t, cfg)
	if a := tb2.wake(t, h); len(a.Rejected) != 1 {
		t.Fatal("dead handle accepted after a restart")
	}
	if a := tb2.wake(t, live); len(a.Rejected) != 0 {
		t.Fatal("live handle rejected after a restart")
	}
	if tb2.fake.count() != 1 {
		t.Fatalf("%d pushes after restart, want 1 (the live handle)", tb2.fake.count())
	}
}

func TestUnregister(t *testing.T) {
	tb := newTestBridge(t, testConfig(t))
	_, _, h := tb.enroll(t, token(1))
	if st := tb.call(t, "/v1/unregister", "", map[string]string{"wake_handle": h}, nil); st != 200 {
		t.Fatalf("unregister: %d", st)
	}
	if a := tb.wake(t, h); len(a.Rejected) != 1 {
		t.Fatal("unregistered handle not rejected")
	}
	if len(tb.fake.wakes()) != 0 {
		t.Fatal("unregistered handle woken")
	}
}

func TestRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb := newTestBridge(t, testConfig(t))
		defer tb.stopInBubble()
		tb.run(t)
		_, _, h := tb.enroll(t, token(1))
		tb.fake.setAnswer(func(n int, _ provider.Push) provider.Result {
			if n == 1 { // the first wake-up (push 0 was the verification)
				return provider.Result{Outcome: provider.Retry, Status: 429, RetryAfter: 2 * time.Minute}
			}
			return provider.Result{Outcome: provider.Delivered, Status: 200}
		})
		if a := tb.wake(t, h); len(a.Rejected) != 0 {
			t.Fatal("busy service rejected the handle")
		}
		time.Sleep(time.Minute)
		tb.wake(t, h) // merged into the queued retry
		time.Sleep(time.Minute - time.Second)
		synctest.Wait()
		if n := len(tb.fake.wakes()); n != 1 {
			t.Fatalf("%d attempts before Retry-After, want 1", n)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := len(tb.fake.wakes()); n != 2 {
			t.Fatalf("%d attempts after Retry-After, want 2", n)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := len(tb.fake.wakes()); n != 2 {
			t.Fatalf("%d attempts an hour later, want 2: the delivered retry was duplicated", n)
		}
		if s := tb.Stats(); s.Delivered != 1 || s.Retried != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestRetryGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Limits.MaxRetries = 2
		tb := newTestBridge(t, cfg)
		defer tb.stopInBubble()
		tb.run(t)
		_, _, h := tb.enroll(t, token(1))
		tb.fake.setAnswer(func(int, provider.Push) provider.Result {
			return provider.Result{Outcome: provider.Retry, Status: 503}
		})
		tb.wake(t, h)
		time.Sleep(24 * time.Hour)
		synctest.Wait()
		if n := len(tb.fake.wakes()); n != 3 {
			t.Fatalf("%d attempts, want 3 (one and two retries)", n)
		}
		if s := tb.Stats(); s.Dropped != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestHangingService(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb := newTestBridge(t, testConfig(t))
		defer tb.stopInBubble()
		_, _, h := tb.enroll(t, token(1))
		tb.fake.mu.Lock()
		tb.fake.hang = true
		tb.fake.mu.Unlock()
		start := time.Now()
		if a := tb.wake(t, h); len(a.Rejected) != 0 {
			t.Fatal("hanging service rejected the handle")
		}
		if d := time.Since(start); d != DefaultSendTimeout {
			t.Fatalf("wake took %v, want the send timeout %v", d, DefaultSendTimeout)
		}
		if s := tb.Stats(); s.Retried != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestForgedHandle(t *testing.T) {
	tb := newTestBridge(t, testConfig(t))
	other := newTestBridge(t, testConfig(t))
	_, _, h := tb.enroll(t, token(1))
	_, _, foreign := other.enroll(t, token(1))
	flipped := []byte(h)
	flipped[len(flipped)/2] ^= 1
	if flipped[len(flipped)/2] == '_'^1 || flipped[len(flipped)/2] == '-'^1 {
		flipped[len(flipped)/2] = 'A'
	}
	for name, bad := range map[string]string{
		"foreign": foreign,
		"flipped": string(flipped),
		"garbage": "not a handle",
		"empty":   "",
		"short":   h[:40],
		"long":    strings.Repeat("A", MaxHandleSize+8),
	} {
		a := tb.wake(t, bad)
		if len(a.Rejected) != 1 || a.Rejected[0] != bad {
			t.Errorf("%s handle not rejected", name)
		}
		var e apiError
		if st := tb.call(t, "/v1/unregister", "", map[string]string{"wake_handle": bad}, &e); st != 400 || e.Code != "bad_handle" {
			t.Errorf("unregister %s handle: %d %+v", name, st, e)
		}
	}
	if len(tb.fake.wakes()) != 0 {
		t.Fatal("a forged handle was woken")
	}
	if a := tb.wake(t, h); len(a.Rejected) != 0 {
		t.Fatal("the real handle was hurt")
	}
}

func TestVerifyCodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb := newTestBridge(t, testConfig(t))
		defer tb.stopInBubble()
		reg, code, _ := tb.enroll(t, token(1))
		var e apiError
		if st := tb.call(t, "/v1/verify", "", map[string]string{"registration": reg, "code": code}, &e); st != 409 || e.Code != "code_used" {
			t.Fatalf("replayed code: %d %+v", st, e)
		}

		var r struct{ Registration string }
		tb.call(t, "/v1/register", "", map[string]string{"provider": "apns", "token": token(2)}, &r)
		code2 := tb.fake.lastCode(t)
		for i := range maxCodeTries {
			st := tb.call(t, "/v1/verify", "", map[string]string{"registration": r.Registration, "code": "wrong"}, &e)
			if st != 403 || e.Code != "wrong_code" {
				t.Fatalf("wrong code %d: %d %+v", i, st, e)
			}
		}
		if st := tb.call(t, "/v1/verify", "", map[string]string{"registration": r.Registration, "code": code2}, &e); st != 404 {
			t.Fatalf("right code after %d wrong ones: %d, want 404", maxCodeTries, st)
		}

		tb.call(t, "/v1/register", "", map[string]string{"provider": "apns", "token": token(3)}, &r)
		code3 := tb.fake.lastCode(t)
		time.Sleep(CodeTTL + time.Second)
		if st := tb.call(t, "/v1/verify", "", map[string]string{"registration": r.Registration, "code": code3}, &e); st != 404 || e.Code != "unknown_registration" {
			t.Fatalf("expired code: %d %+v", st, e)
		}
		if st := tb.call(t, "/v1/verify", "", map[string]string{"registration": "nope", "code": "x"}, &e); st != 404 {
			t.Fatalf("unknown registration: %d", st)
		}
	})
}

func TestWakeNeedsRelayCredential(t *testing.T) {
	tb := newTestBridge(t, testConfig(t))
	_, _, h := tb.enroll(t, token(1))
	for _, auth := range []string{"", "wrong-token", relayToken + "x"} {
		var e apiError
		if st := tb.call(t, "/v1/wake", auth, map[string]any{"handles": []string{h}}, &e); st != 401 || e.Code != "unauthorized" {
			t.Fatalf("wake with credential %q: %d %+v", auth, st, e)
		}
	}
	if len(tb.fake.wakes()) != 0 {
		t.Fatal("an unauthenticated wake sent a push")
	}
}

func TestBadInput(t *testing.T) {
	tb := newTestBridge(t, testConfig(t))
	_, _, h := tb.enroll(t, token(1))
	sent := tb.fake.count()
	many := make([]string, DefaultMaxHandlesPerWake+1)
	for i := range many {
		many[i] = h
	}
	for _, c := range []struct {
		name, path, auth string
		body             any
		status           int
		code             string
	}{
		{"unknown provider", "/v1/register", "", map[string]string{"provider": "pigeon", "token": token(1)}, 400, "unknown_provider"},
		{"disabled provider", "/v1/register", "", map[string]string{"provider": "fcm", "token": token(1)}, 400, "unknown_provider"},
		{"malformed token", "/v1/register", "", map[string]string{"provider": "apns", "token": "xyz"}, 400, "bad_token"},
		{"empty token", "/v1/register", "", map[string]string{"provider": "apns"}, 400, "bad_token"},
		{"oversize token", "/v1/register", "", map[string]string{"provider": "apns", "token": strings.Repeat("a", 12<<10)}, 400, "bad_token"},
		{"oversize body", "/v1/register", "", map[string]string{"provider": "apns", "token": strings.Repeat("a", 20<<10)}, 413, "too_large"},
		{"subscription for apns", "/v1/register", "", map[string]any{"provider": "apns", "subscription": map[string]string{"endpoint": "x"}}, 400, "bad_request"},
		{"unknown field", "/v1/register", "", map[string]string{"provider": "apns", "token": token(1), "sender": "alice"}, 400, "bad_request"},
		{"not json", "/v1/verify", "", "{", 400, "bad_request"},
		{"two objects", "/v1/verify", "", `{}{}`, 400, "bad_request"},
		{"oversize wake", "/v1/wake", relayToken, map[string]any{"handles": []string{strings.Repeat("A", 4<<20)}}, 413, "too_large"},
		{"too many handles", "/v1/wake", relayToken, map[string]any{"handles": many}, 413, "too_many_handles"},
		{"bad urgency", "/v1/wake", relayToken, map[string]any{"handles": []string{h}, "urgency": "now"}, 400, "bad_request"},
	} {
		var e apiError
		st := tb.call(t, c.path, c.auth, c.body, &e)
		if st != c.status || e.Code != c.code || e.Error == "" {
			t.Errorf("%s: %d %+v, want %d %s", c.name, st, e, c.status, c.code)
		}
	}
	if tb.fake.count() != sent {
		t.Fatal("bad input sent a push")
	}
	if a := tb.wake(t, h); len(a.Rejected) != 0 {
		t.Fatal("bad input changed the handle")
	}
}

func TestRegisterSubscription(t *testing.T) {
	cfg := testConfig(t)
	fake := &fakeSender{kind: provider.WebPush}
	b, err := Open(cfg, map[provider.Kind]provider.Sender{provider.WebPush: webpushChecker{fake}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tb := &testBridge{Bridge: b, fake: fake}
	sub := `{"endpoint":"https://push.example/abc","expirationTime":null,"keys":{"auth":"q1","p256dh":"BCd"}}`
	var r struct{ Registration string }
	if st := tb.call(t, "/v1/register", "", `{"provider":"webpush","subscription":`+sub+`}`, &r); st != 200 {
		t.Fatalf("register subscription: %d", st)
	}
	want := `{"endpoint":"https://push.example/abc","keys":{"p256dh":"BCd","auth":"q1"}}`
	if got := fake.pushes[0].Token; got != want {
		t.Fatalf("token %s, want %s", got, want)
	}
}

// webpushChecker accepts any JSON object as a token.
type webpushChecker struct{ *fakeSender }

func (webpushChecker) CheckToken(tok string) error {
	if !json.Valid([]byte(tok)) {
		return errors.New("not JSON")
	}
	return nil
}

func TestRefusedVerificationPush(t *testing.T) {
	tb := newTestBridge(t, testConfig(t))
	for _, c := range []struct {
		res    provider.Result
		status int
	}{
		{provider.Result{Outcome: provider.Dead, Status: 410}, 422},
		{provider.Result{Outcome: provider.Refused, Status: 403}, 422},
		{provider.Result{Outcome: provider.Retry, Status: 503}, 503},
	} {
		tb.fake.setAnswer(func(int, provider.Push) provider.Result { return c.res })
		var e apiError
		if st := tb.call(t, "/v1/register", "", map[string]string{"provider": "apns", "token": token(int(c.res.Outcome))}, &e); st != c.status {
			t.Errorf("verification push %v: %d %+v, want %d", c.res.Outcome, st, e, c.status)
		}
	}
}

// TestNoSecretsInLogsOrData runs every path with debug logging and then
// looks for tokens, handles, codes and registration IDs in the logs and
// in every file of the data directory.
func TestNoSecretsInLogsOrData(t *testing.T) {
	cfg := testConfig(t)
	tb := newTestBridge(t, cfg)
	var secrets []string
	for i := range 3 {
		reg, code, h := tb.enroll(t, token(i))
		secrets = append(secrets, token(i), reg, code, h, h[:32])
	}
	tb.fake.setAnswer(func(n int, p provider.Push) provider.Result {
		switch p.Token {
		case token(0):
			return provider.Result{Outcome: provider.Dead, Status: 410, Reason: "Unregistered"}
		case token(1):
			return provider.Result{Outcome: provider.Retry, Status: 429, RetryAfter: time.Minute}
		}
		return provider.Result{Outcome: provider.Delivered, Status: 200}
	})
	tb.wake(t, secrets[3], secrets[8], secrets[13])
	tb.call(t, "/v1/unregister", "", map[string]string{"wake_handle": secrets[13]}, nil)
	tb.call(t, "/v1/register", "", map[string]string{"provider": "apns", "token": "zz" + token(9)}, nil)
	tb.call(t, "/v1/wake", "", map[string]any{"handles": []string{secrets[3]}}, nil)
	tb.Close()

	check := func(where string, data []byte) {
		for _, s := range append(secrets, relayToken) {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s holds a secret (%.8s…)", where, s)
			}
		}
	}
	if tb.logs.String() == "" {
		t.Fatal("no logs captured")
	}
	check("log", []byte(tb.logs.String()))
	files := 0
	filepath.WalkDir(cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		files++
		check(path, b)
		return nil
	})
	if files == 0 {
		t.Fatal("empty data directory")
	}
}

func TestOpenNeedsDataDir(t *testing.T) {
	if _, err := Open(Config{}, nil); err == nil {
		t.Fatal("Open with no data_dir succeeded")
	}
	cfg := testConfig(t)
	cfg.Relays[0].TokenSHA256 = "abc"
	if _, err := Open(cfg, nil); err == nil {
		t.Fatal("Open with a bad relay hash succeeded")
	}
}

func TestKeyPersists(t *testing.T) {
	cfg := testConfig(t)
	tb := newTestBridge(t, cfg)
	_, _, h := tb.enroll(t, token(1))
	tb.Close()
	tb2 := newTestBridge(t, cfg)
	if a := tb2.wake(t, h); len(a.Rejected) != 0 {
		t.Fatal("a handle did not survive a restart")
	}
}

// TestRetryAfterConcurrentDelivery: with coalescing off, an attempt that
// ends in Retry while another attempt for the same handle was delivered
// is not retried.
func TestRetryAfterConcurrentDelivery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Limits.CoalesceWindow = Off
		cfg.Limits.HandlePerMinute = -1
		tb := newTestBridge(t, cfg)
		defer tb.stopInBubble()
		tb.run(t)
		_, _, h := tb.enroll(t, token(1))
		release := make(chan struct{})
		tb.fake.setAnswer(func(n int, _ provider.Push) provider.Result {
			if n == 1 {
				<-release
				return provider.Result{Outcome: provider.Retry, Status: 503, RetryAfter: time.Minute}
			}
			return provider.Result{Outcome: provider.Delivered, Status: 200}
		})
		done := make(chan struct{})
		go func() { tb.wake(t, h); close(done) }()
		synctest.Wait() // the first attempt hangs in the service
		tb.wake(t, h)   // the second is delivered
		close(release)
		<-done
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := len(tb.fake.wakes()); n != 2 {
			t.Fatalf("%d attempts, want 2: the busy one was retried after the other was delivered", n)
		}
	})
}
