package fcm_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/pushbridge/fake"
	"github.com/hushnet/hush/pushbridge/fcm"
	"github.com/hushnet/hush/pushbridge/provider"
)

var token = "dXNlcjEyMzQ1Njc4OTA:APA91b" + strings.Repeat("Hk-_x9", 20)

func startFake(t *testing.T) *fake.FCM {
	t.Helper()
	f, err := fake.StartFCM(fake.FCMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func config(f *fake.FCM) fcm.Config {
	return fcm.Config{CredentialsJSON: f.ServiceAccountJSON(), Endpoint: f.URL(), HTTPClient: f.Client()}
}

func newSender(t *testing.T, cfg fcm.Config) *fcm.Sender {
	t.Helper()
	s, err := fcm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNormalWake(t *testing.T) {
	f := startFake(t)
	s := newSender(t, config(f))
	payload := []byte("sealed\x00blob")
	res := s.Send(context.Background(), provider.Push{Token: token, Payload: payload, TTL: time.Hour, CollapseID: "wake"})
	if res.Outcome != provider.Delivered || res.Status != 200 {
		t.Fatalf("result %+v", res)
	}
	reqs := f.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.Path != "/v1/projects/"+f.ProjectID()+"/messages:send" || !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ya29.") {
		t.Errorf("path %s auth %q", r.Path, r.Header.Get("Authorization"))
	}
	m := r.Message
	if m.Token != token || len(m.Data) != 1 || m.Data["wake"] != base64.RawURLEncoding.EncodeToString(payload) {
		t.Errorf("message %+v", m)
	}
	if a := m.Android; a == nil || a.Priority != "NORMAL" || a.TTL != "3600s" || a.CollapseKey != "wake" {
		t.Errorf("android %+v", m.Android)
	}
	h := m.APNs.Headers
	if h["apns-push-type"] != "background" || h["apns-priority"] != "5" || h["apns-collapse-id"] != "wake" || h["apns-expiration"] == "0" {
		t.Errorf("apns headers %v", h)
	}
	if aps := m.APNs.Payload["aps"].(map[string]any); aps["content-available"] != float64(1) || len(aps) != 1 {
		t.Errorf("aps %v", aps)
	}

	tr := f.TokenRequests()
	if len(tr) != 1 {
		t.Fatalf("%d token requests", len(tr))
	}
	if tr[0].Scope != fcm.Scope || tr[0].Audience != f.TokenURI() || tr[0].Expires.Sub(tr[0].IssuedAt) > time.Hour {
		t.Errorf("assertion %+v", tr[0])
	}
}

func TestHighWake(t *testing.T) {
	f := startFake(t)
	res := newSender(t, config(f)).Send(context.Background(), provider.Push{Token: token, Priority: provider.High})
	if res.Outcome != provider.Delivered {
		t.Fatalf("result %+v", res)
	}
	m := f.Requests()[0].Message
	if m.Android.Priority != "HIGH" || m.Android.TTL != "0s" || m.Android.CollapseKey != "" || m.Data["wake"] != "" {
		t.Errorf("message %+v android %+v", m, m.Android)
	}
	h := m.APNs.Headers
	if h["apns-push-type"] != "alert" || h["apns-priority"] != "10" || h["apns-expiration"] != "0" {
		t.Errorf("apns headers %v", h)
	}
	aps := m.APNs.Payload["aps"].(map[string]any)
	if alert, _ := aps["alert"].(map[string]any); alert["body"] != fcm.DefaultAlertText || aps["mutable-content"] != float64(1) {
		t.Errorf("aps %v", aps)
	}
}

func TestAccessTokenCached(t *testing.T) {
	f := startFake(t)
	s := newSender(t, config(f))
	for range 4 {
		if res := s.Send(context.Background(), provider.Push{Token: token}); res.Outcome != provider.Delivered {
			t.Fatalf("result %+v", res)
		}
	}
	if f.Count() != 4 || f.TokenCount() != 1 {
		t.Fatalf("%d sends used %d token requests", f.Count(), f.TokenCount())
	}
}

func TestOutcomes(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(*fake.FCM)
		outcome    provider.Outcome
		status     int
		reason     string
		retryAfter time.Duration
	}{
		{"unregistered", func(f *fake.FCM) { f.Unregister(token) }, provider.Dead, 404, "UNREGISTERED", 0},
		{"invalid token", func(f *fake.FCM) { f.Invalidate(token) }, provider.Dead, 400, "INVALID_ARGUMENT", 0},
		{"invalid argument", fail(400, "INVALID_ARGUMENT", 0), provider.Refused, 400, "INVALID_ARGUMENT", 0},
		{"sender mismatch", fail(403, "SENDER_ID_MISMATCH", 0), provider.Refused, 403, "SENDER_ID_MISMATCH", 0},
		{"third-party auth", fail(401, "THIRD_PARTY_AUTH_ERROR", 0), provider.Refused, 401, "THIRD_PARTY_AUTH_ERROR", 0},
		{"unauthenticated", fail(401, "", 0), provider.Refused, 401, "UNAUTHENTICATED", 0},
		{"quota", fail(429, "QUOTA_EXCEEDED", 0), provider.Retry, 429, "QUOTA_EXCEEDED", fcm.QuotaRetryAfter},
		{"quota with retry-after", fail(429, "QUOTA_EXCEEDED", 90*time.Second), provider.Retry, 429, "QUOTA_EXCEEDED", 90 * time.Second},
		{"unavailable", fail(503, "UNAVAILABLE", 10*time.Second), provider.Retry, 503, "UNAVAILABLE", 10 * time.Second},
		{"internal", fail(500, "INTERNAL", 0), provider.Retry, 500, "INTERNAL", fcm.DefaultRetryAfter},
		{"token: invalid grant", failToken(400, "invalid_grant", 0), provider.Refused, 400, "token endpoint: invalid_grant", 0},
		{"token: unavailable", failToken(503, "temporarily_unavailable", 5*time.Second), provider.Retry, 503, "token endpoint: temporarily_unavailable", 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t)
			tt.setup(f)
			res := newSender(t, config(f)).Send(context.Background(), provider.Push{Token: token})
			want := provider.Result{Outcome: tt.outcome, Status: tt.status, Reason: tt.reason, RetryAfter: tt.retryAfter}
			if res != want {
				t.Fatalf("result %+v, want %+v", res, want)
			}
		})
	}
}

func fail(status int, code string, retryAfter time.Duration) func(*fake.FCM) {
	return func(f *fake.FCM) { f.FailNext(fake.Failure{Status: status, Reason: code, RetryAfter: retryAfter}) }
}

func failToken(status int, code string, retryAfter time.Duration) func(*fake.FCM) {
	return func(f *fake.FCM) { f.FailTokenNext(fake.Failure{Status: status, Reason: code, RetryAfter: retryAfter}) }
}

func TestWrongProjectIsRefused(t *testing.T) {
	f := startFake(t)
	cfg := config(f)
	cfg.ProjectID = "someone-else"
	res := newSender(t, cfg).Send(context.Background(), provider.Push{Token: token})
	if res.Outcome != provider.Refused || res.Status != 404 {
		t.Fatalf("result %+v", res)
	}
}

func TestHangingServiceEndsInRetry(t *testing.T) {
	for name, hang := range map[string]func(*fake.FCM){
		"send":  func(f *fake.FCM) { f.FailNext(fake.Failure{Hang: true}) },
		"token": func(f *fake.FCM) { f.FailTokenNext(fake.Failure{Hang: true}) },
	} {
		t.Run(name, func(t *testing.T) {
			f := startFake(t)
			hang(f)
			cfg := config(f)
			cfg.Timeout = 50 * time.Millisecond
			res := newSender(t, cfg).Send(context.Background(), provider.Push{Token: token})
			if res.Outcome != provider.Retry || res.Status != 0 || !strings.HasSuffix(res.Reason, "timeout") {
				t.Fatalf("result %+v", res)
			}
		})
	}
}

func TestUntrustedCertificate(t *testing.T) {
	f := startFake(t)
	cfg := config(f)
	cfg.HTTPClient = nil
	res := newSender(t, cfg).Send(context.Background(), provider.Push{Token: token})
	if res.Outcome != provider.Retry || !strings.Contains(res.Reason, "certificate") {
		t.Fatalf("result %+v", res)
	}
}

func TestRefusedLocally(t *testing.T) {
	f := startFake(t)
	s := newSender(t, config(f))
	for name, p := range map[string]provider.Push{
		"bad token":        {Token: "short"},
		"long collapse ID": {Token: token, CollapseID: strings.Repeat("w", 65)},
		"large payload":    {Token: token, Payload: make([]byte, 3100)},
	} {
		if res := s.Send(context.Background(), p); res.Outcome != provider.Refused {
			t.Errorf("%s: %+v", name, res)
		}
	}
	if f.Count() != 0 || f.TokenCount() != 0 {
		t.Errorf("%d sends, %d token requests reached the service", f.Count(), f.TokenCount())
	}
}

func TestCheckToken(t *testing.T) {
	f := startFake(t)
	s := newSender(t, config(f))
	for _, tok := range []string{token, strings.Repeat("a", 32), strings.Repeat("A-_:", 1024)} {
		if err := s.CheckToken(tok); err != nil {
			t.Errorf("%.40q: %v", tok, err)
		}
	}
	for _, tok := range []string{"", strings.Repeat("a", 31), strings.Repeat("a", 4097), token + " ", token + "/", token + "é", token + "\n"} {
		if err := s.CheckToken(tok); !errors.Is(err, fcm.ErrBadToken) {
			t.Errorf("%.40q: %v", tok, err)
		}
	}
}

func TestNewRejectsBadCredentials(t *testing.T) {
	f := startFake(t)
	sa := string(f.ServiceAccountJSON())
	for name, cfg := range map[string]fcm.Config{
		"none":           {},
		"missing file":   {CredentialsFile: t.TempDir() + "/none.json"},
		"not JSON":       {CredentialsJSON: []byte("{")},
		"user account":   {CredentialsJSON: []byte(`{"type":"authorized_user","project_id":"p"}`)},
		"http token_uri": {CredentialsJSON: []byte(strings.Replace(sa, "https://127.0.0.1", "http://127.0.0.1", 1))},
		"no project":     {CredentialsJSON: []byte(strings.Replace(sa, `"project_id": "hush-test"`, `"project_id": ""`, 1))},
		"http endpoint":  {CredentialsJSON: []byte(sa), Endpoint: "http://fcm.example"},
	} {
		if _, err := fcm.New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
