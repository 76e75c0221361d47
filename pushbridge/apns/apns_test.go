package apns_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/pushbridge/apns"
	"github.com/hushnet/hush/pushbridge/fake"
	"github.com/hushnet/hush/pushbridge/provider"
)

var token = strings.Repeat("ab", 32)

func startFake(t *testing.T) (*fake.APNs, *fake.Clock) {
	t.Helper()
	clk := fake.NewClock(time.Unix(1_800_000_000, 0))
	f, err := fake.StartAPNs(fake.APNsOptions{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f, clk
}

func config(f *fake.APNs, clk *fake.Clock) apns.Config {
	return apns.Config{
		Endpoint:   f.URL(),
		KeyPEM:     f.KeyPEM(),
		KeyID:      f.KeyID(),
		TeamID:     f.TeamID(),
		Topic:      f.Topic(),
		HTTPClient: f.Client(),
		Now:        clk.Now,
	}
}

func newSender(t *testing.T, cfg apns.Config) *apns.Sender {
	t.Helper()
	s, err := apns.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestBackgroundWake(t *testing.T) {
	f, clk := startFake(t)
	s := newSender(t, config(f, clk))
	payload := []byte{0, 1, 2, 0xff}
	res := s.Send(context.Background(), provider.Push{
		Token: token, Payload: payload, Priority: provider.Normal, TTL: time.Hour, CollapseID: "wake",
	})
	if res.Outcome != provider.Delivered || res.Status != 200 {
		t.Fatalf("result %+v, want delivered", res)
	}
	reqs := f.Requests()
	if len(reqs) != 1 {
		t.Fatalf("fake got %d requests", len(reqs))
	}
	r := reqs[0]
	want := map[string]string{
		"apns-topic":       f.Topic(),
		"apns-push-type":   "background",
		"apns-priority":    "5",
		"apns-expiration":  strconv.FormatInt(clk.Now().Add(time.Hour).Unix(), 10),
		"apns-collapse-id": "wake",
	}
	for h, v := range want {
		if got := r.Header.Get(h); got != v {
			t.Errorf("%s = %q, want %q", h, got, v)
		}
	}
	if r.Proto != "HTTP/2.0" || r.Token != token {
		t.Errorf("proto %s token %s", r.Proto, r.Token)
	}
	if r.JWT.KeyID != f.KeyID() || r.JWT.Issuer != f.TeamID() || !r.JWT.IssuedAt.Equal(clk.Now()) {
		t.Errorf("jwt %+v", r.JWT)
	}
	aps := r.Payload["aps"].(map[string]any)
	if aps["content-available"] != json.Number("1") || len(aps) != 1 {
		t.Errorf("aps = %v", aps)
	}
	if r.Payload["wake"] != base64.RawURLEncoding.EncodeToString(payload) {
		t.Errorf("wake = %v", r.Payload["wake"])
	}
}

func TestAlertWake(t *testing.T) {
	f, clk := startFake(t)
	s := newSender(t, config(f, clk))
	res := s.Send(context.Background(), provider.Push{Token: token, Priority: provider.High})
	if res.Outcome != provider.Delivered {
		t.Fatalf("result %+v, want delivered", res)
	}
	r := f.Requests()[0]
	if r.Header.Get("apns-push-type") != "alert" || r.Header.Get("apns-priority") != "10" ||
		r.Header.Get("apns-expiration") != "0" || r.Header.Get("apns-collapse-id") != "" {
		t.Errorf("headers %v", r.Header)
	}
	aps := r.Payload["aps"].(map[string]any)
	alert, _ := aps["alert"].(map[string]any)
	if alert["body"] != apns.DefaultAlertText || aps["mutable-content"] != json.Number("1") {
		t.Errorf("aps = %v", aps)
	}
	if _, ok := r.Payload["wake"]; ok {
		t.Errorf("empty payload sent as %v", r.Payload["wake"])
	}
}

func TestOutcomes(t *testing.T) {
	tests := []struct {
		name       string
		fail       fake.Failure
		unregister bool
		outcome    provider.Outcome
		status     int
		retryAfter time.Duration
	}{
		{name: "unregistered", unregister: true, outcome: provider.Dead, status: 410},
		{name: "bad device token", fail: fake.Failure{Status: 400, Reason: "BadDeviceToken"}, outcome: provider.Dead, status: 400},
		{name: "token not for topic", fail: fake.Failure{Status: 400, Reason: "DeviceTokenNotForTopic"}, outcome: provider.Dead, status: 400},
		{name: "expired token", fail: fake.Failure{Status: 410, Reason: "ExpiredToken"}, outcome: provider.Dead, status: 410},
		{name: "too many requests", fail: fake.Failure{Status: 429, Reason: "TooManyRequests", RetryAfter: 30 * time.Second}, outcome: provider.Retry, status: 429, retryAfter: 30 * time.Second},
		{name: "unavailable", fail: fake.Failure{Status: 503, Reason: "ServiceUnavailable"}, outcome: provider.Retry, status: 503, retryAfter: apns.DefaultRetryAfter},
		{name: "internal", fail: fake.Failure{Status: 500, Reason: "InternalServerError", RetryAfter: 2 * time.Minute}, outcome: provider.Retry, status: 500, retryAfter: 2 * time.Minute},
		{name: "bad topic", fail: fake.Failure{Status: 400, Reason: "BadTopic"}, outcome: provider.Refused, status: 400},
		{name: "invalid provider token", fail: fake.Failure{Status: 403, Reason: "InvalidProviderToken"}, outcome: provider.Refused, status: 403},
		{name: "forbidden", fail: fake.Failure{Status: 403, Reason: "Forbidden"}, outcome: provider.Refused, status: 403},
		{name: "too large", fail: fake.Failure{Status: 413, Reason: "PayloadTooLarge"}, outcome: provider.Refused, status: 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, clk := startFake(t)
			s := newSender(t, config(f, clk))
			if tt.unregister {
				f.Unregister(token)
			} else {
				f.FailNext(tt.fail)
			}
			res := s.Send(context.Background(), provider.Push{Token: token})
			if res.Outcome != tt.outcome || res.Status != tt.status || res.RetryAfter != tt.retryAfter {
				t.Fatalf("result %+v, want %v %d after %v", res, tt.outcome, tt.status, tt.retryAfter)
			}
			if tt.unregister && res.Reason != "Unregistered" || !tt.unregister && res.Reason != tt.fail.Reason {
				t.Errorf("reason %q", res.Reason)
			}
		})
	}
}

func TestWrongTopicIsRejected(t *testing.T) {
	f, clk := startFake(t)
	cfg := config(f, clk)
	cfg.Topic = "org.other.app"
	res := newSender(t, cfg).Send(context.Background(), provider.Push{Token: token})
	if res.Outcome != provider.Dead || res.Reason != "DeviceTokenNotForTopic" {
		t.Fatalf("result %+v", res)
	}
}

func TestProviderTokenReusedThenRefreshed(t *testing.T) {
	f, clk := startFake(t)
	s := newSender(t, config(f, clk))
	send := func() {
		t.Helper()
		if res := s.Send(context.Background(), provider.Push{Token: token}); res.Outcome != provider.Delivered {
			t.Fatalf("result %+v", res)
		}
	}
	for range 3 {
		send()
		clk.Advance(10 * time.Minute)
	}
	send() // 30 minutes after the first JWT
	clk.Advance(11 * time.Minute)
	send() // 41 minutes: a new JWT
	send()

	reqs := f.Requests()
	first, second := reqs[0].JWT, reqs[4].JWT
	for i, r := range reqs {
		want := first.Raw
		if i >= 4 {
			want = second.Raw
		}
		if r.JWT.Raw != want {
			t.Errorf("request %d used another JWT", i)
		}
	}
	if first.Raw == second.Raw || second.IssuedAt.Sub(first.IssuedAt) != 41*time.Minute {
		t.Errorf("JWT not refreshed: iat %v then %v", first.IssuedAt, second.IssuedAt)
	}
}

func TestExpiredProviderTokenIsReplaced(t *testing.T) {
	f, clk := startFake(t)
	s := newSender(t, config(f, clk))
	f.FailNext(fake.Failure{Status: 403, Reason: "ExpiredProviderToken"})
	res := s.Send(context.Background(), provider.Push{Token: token})
	if res.Outcome != provider.Delivered {
		t.Fatalf("result %+v", res)
	}
	reqs := f.Requests()
	if len(reqs) != 2 || reqs[0].JWT.Raw == reqs[1].JWT.Raw {
		t.Fatalf("want a second request with a new JWT, got %d requests", len(reqs))
	}
}

func TestFakeCatchesJWTPerRequest(t *testing.T) {
	f, clk := startFake(t)
	a, b := newSender(t, config(f, clk)), newSender(t, config(f, clk))
	if res := a.Send(context.Background(), provider.Push{Token: token}); res.Outcome != provider.Delivered {
		t.Fatalf("first: %+v", res)
	}
	res := b.Send(context.Background(), provider.Push{Token: token})
	if res.Outcome != provider.Retry || res.Reason != "TooManyProviderTokenUpdates" {
		t.Fatalf("second JWT within 20 minutes: %+v", res)
	}
}

func TestFakeCatchesStaleJWT(t *testing.T) {
	f, clk := startFake(t)
	cfg := config(f, clk)
	stale := fake.NewClock(clk.Now().Add(-2 * time.Hour))
	cfg.Now = stale.Now
	res := newSender(t, cfg).Send(context.Background(), provider.Push{Token: token})
	// The sender replaces the token once; a clock two hours slow makes
	// the new one stale too.
	if res.Outcome != provider.Refused || res.Reason != "ExpiredProviderToken" || f.Count() != 2 {
		t.Fatalf("result %+v after %d requests", res, f.Count())
	}
}

func TestHangingServiceEndsInRetry(t *testing.T) {
	f, clk := startFake(t)
	cfg := config(f, clk)
	cfg.Timeout = 50 * time.Millisecond
	s := newSender(t, cfg)
	f.FailNext(fake.Failure{Hang: true})
	res := s.Send(context.Background(), provider.Push{Token: token})
	if res.Outcome != provider.Retry || res.Status != 0 || res.Reason != "timeout" || res.RetryAfter != apns.DefaultRetryAfter {
		t.Fatalf("result %+v", res)
	}

	f.FailNext(fake.Failure{Hang: true})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res := s.Send(ctx, provider.Push{Token: token}); res.Outcome != provider.Retry || res.Reason != "canceled" {
		t.Fatalf("canceled: %+v", res)
	}
}

func TestUntrustedCertificate(t *testing.T) {
	f, clk := startFake(t)
	cfg := config(f, clk)
	cfg.HTTPClient = nil // the system pool, which does not hold the fake's certificate
	res := newSender(t, cfg).Send(context.Background(), provider.Push{Token: token})
	if res.Outcome != provider.Retry || !strings.Contains(res.Reason, "certificate") {
		t.Fatalf("result %+v", res)
	}
	if strings.Contains(res.Reason, token) {
		t.Fatal("reason holds the token")
	}
}

func TestRefusedLocally(t *testing.T) {
	f, clk := startFake(t)
	s := newSender(t, config(f, clk))
	for name, p := range map[string]provider.Push{
		"bad token":        {Token: "abc"},
		"long collapse ID": {Token: token, CollapseID: strings.Repeat("w", 65)},
		"large payload":    {Token: token, Payload: make([]byte, 3100)},
	} {
		if res := s.Send(context.Background(), p); res.Outcome != provider.Refused {
			t.Errorf("%s: %+v", name, res)
		}
	}
	if f.Count() != 0 {
		t.Errorf("%d requests reached the service", f.Count())
	}
}

func TestCheckToken(t *testing.T) {
	f, clk := startFake(t)
	s := newSender(t, config(f, clk))
	for _, tok := range []string{token, strings.ToUpper(token), strings.Repeat("0", 200)} {
		if err := s.CheckToken(tok); err != nil {
			t.Errorf("%q: %v", tok, err)
		}
	}
	for _, tok := range []string{"", strings.Repeat("a", 62), strings.Repeat("a", 65), strings.Repeat("a", 202),
		strings.Repeat("g", 64), token[:62] + "/x", " " + token[1:]} {
		if err := s.CheckToken(tok); !errors.Is(err, apns.ErrBadToken) {
			t.Errorf("%q: %v", tok, err)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	f, clk := startFake(t)
	good := config(f, clk)
	rsaLike := []byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n")
	for name, mutate := range map[string]func(*apns.Config){
		"no key id":     func(c *apns.Config) { c.KeyID = "" },
		"no team":       func(c *apns.Config) { c.TeamID = "" },
		"no topic":      func(c *apns.Config) { c.Topic = "" },
		"no key":        func(c *apns.Config) { c.KeyPEM = nil },
		"missing file":  func(c *apns.Config) { c.KeyPEM, c.KeyFile = nil, t.TempDir()+"/none.p8" },
		"not pkcs8":     func(c *apns.Config) { c.KeyPEM = rsaLike },
		"http endpoint": func(c *apns.Config) { c.Endpoint = "http://example.com" },
	} {
		cfg := good
		mutate(&cfg)
		if _, err := apns.New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
