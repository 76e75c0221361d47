package webpush_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/pushbridge/fake"
	"github.com/hushnet/hush/pushbridge/provider"
	"github.com/hushnet/hush/pushbridge/webpush"
)

type world struct {
	f      *fake.WebPush
	cfg    webpush.Config
	pub    []byte
	sub    string // a subscription at the fake
	sender *webpush.Sender
}

func setup(t *testing.T, opt fake.WebPushOptions) *world {
	t.Helper()
	priv, pub, err := fake.NewVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	w := &world{}
	w.pub, _ = base64.RawURLEncoding.DecodeString(pub)
	if opt.ApplicationServerKey == nil {
		opt.ApplicationServerKey = w.pub
	}
	if w.f, err = fake.StartWebPush(opt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.f.Close)
	if w.sub, err = w.f.Subscribe(); err != nil {
		t.Fatal(err)
	}
	w.cfg = webpush.Config{
		VAPIDPrivateKey: priv,
		VAPIDPublicKey:  pub,
		Subscriber:      "mailto:ops@hush.example",
		AllowPrivate:    true,
		HTTPClient:      w.f.Client(),
	}
	w.sender = newSender(t, w.cfg)
	return w
}

func newSender(t *testing.T, cfg webpush.Config) *webpush.Sender {
	t.Helper()
	s, err := webpush.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestWake(t *testing.T) {
	w := setup(t, fake.WebPushOptions{})
	payload := []byte(`{"t":"wake"}`)
	res := w.sender.Send(context.Background(), provider.Push{Token: w.sub, Payload: payload, TTL: time.Hour})
	if res.Outcome != provider.Delivered || res.Status != 201 {
		t.Fatalf("result %+v", res)
	}
	r := w.f.Requests()[0]
	if r.TTL != 3600 || r.Urgency != "normal" || r.Topic != webpush.DefaultTopic {
		t.Errorf("TTL %d Urgency %q Topic %q", r.TTL, r.Urgency, r.Topic)
	}
	if !bytes.Equal(r.Plaintext, payload) {
		t.Errorf("plaintext %q", r.Plaintext)
	}
	if r.RecordSize != webpush.DefaultRecordSize || len(r.Body) != webpush.DefaultRecordSize {
		t.Errorf("record size %d, body %d bytes", r.RecordSize, len(r.Body))
	}
	if r.VAPID.Audience != w.f.URL() || r.VAPID.Subject != "mailto:ops@hush.example" || !bytes.Equal(r.VAPID.Key, w.pub) {
		t.Errorf("vapid %+v", r.VAPID)
	}
	if left := time.Until(r.VAPID.Expires); left <= 0 || left > 24*time.Hour {
		t.Errorf("vapid expires in %v", left)
	}
}

func TestHighWithTopicAndFixedSize(t *testing.T) {
	w := setup(t, fake.WebPushOptions{})
	for _, n := range []int{0, 500} {
		p := provider.Push{Token: w.sub, Payload: bytes.Repeat([]byte{7}, n), Priority: provider.High, CollapseID: "w1"}
		if res := w.sender.Send(context.Background(), p); res.Outcome != provider.Delivered {
			t.Fatalf("result %+v", res)
		}
	}
	for i, r := range w.f.Requests() {
		if r.Urgency != "high" || r.Topic != "w1" || r.TTL != 0 || len(r.Body) != webpush.DefaultRecordSize {
			t.Errorf("request %d: urgency %q topic %q TTL %d, %d bytes", i, r.Urgency, r.Topic, r.TTL, len(r.Body))
		}
	}
}

func TestOutcomes(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(*world) string // returns the token to send to
		outcome    provider.Outcome
		status     int
		retryAfter time.Duration
	}{
		{"expired", func(w *world) string { w.f.Expire(w.sub); return w.sub }, provider.Dead, 410, 0},
		{"unknown", func(w *world) string { return strings.Replace(w.sub, "/push/", "/push/0", 1) }, provider.Dead, 404, 0},
		{"too many", failing(429, 30*time.Second), provider.Retry, 429, 30 * time.Second},
		{"unavailable", failing(503, 0), provider.Retry, 503, webpush.DefaultRetryAfter},
		{"internal", failing(500, 2*time.Minute), provider.Retry, 500, 2 * time.Minute},
		{"bad request", failing(400, 0), provider.Refused, 400, 0},
		{"unauthorized", failing(401, 0), provider.Refused, 401, 0},
		{"forbidden", failing(403, 0), provider.Refused, 403, 0},
		{"too large", failing(413, 0), provider.Refused, 413, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := setup(t, fake.WebPushOptions{})
			res := w.sender.Send(context.Background(), provider.Push{Token: tt.setup(w)})
			if res.Outcome != tt.outcome || res.Status != tt.status || res.RetryAfter != tt.retryAfter {
				t.Fatalf("result %+v", res)
			}
		})
	}
}

func failing(status int, retryAfter time.Duration) func(*world) string {
	return func(w *world) string {
		w.f.FailNext(fake.Failure{Status: status, Reason: "scripted", RetryAfter: retryAfter})
		return w.sub
	}
}

func TestFakePinsApplicationServerKey(t *testing.T) {
	_, other, _ := fake.NewVAPIDKeys()
	key, _ := base64.RawURLEncoding.DecodeString(other)
	w := setup(t, fake.WebPushOptions{ApplicationServerKey: key})
	res := w.sender.Send(context.Background(), provider.Push{Token: w.sub})
	if res.Outcome != provider.Refused || res.Status != 403 {
		t.Fatalf("result %+v", res)
	}
}

func TestHangingServiceEndsInRetry(t *testing.T) {
	w := setup(t, fake.WebPushOptions{})
	w.cfg.Timeout = 50 * time.Millisecond
	w.f.FailNext(fake.Failure{Hang: true})
	res := newSender(t, w.cfg).Send(context.Background(), provider.Push{Token: w.sub})
	if res.Outcome != provider.Retry || res.Status != 0 || res.Reason != "timeout" {
		t.Fatalf("result %+v", res)
	}
}

func TestUntrustedCertificate(t *testing.T) {
	w := setup(t, fake.WebPushOptions{})
	w.cfg.HTTPClient = nil // the guarded default client, system trust store
	res := newSender(t, w.cfg).Send(context.Background(), provider.Push{Token: w.sub})
	if res.Outcome != provider.Retry || !strings.Contains(res.Reason, "certificate") {
		t.Fatalf("result %+v", res)
	}
}

func TestPrivateEndpointRefused(t *testing.T) {
	w := setup(t, fake.WebPushOptions{})
	w.cfg.AllowPrivate = false
	w.cfg.HTTPClient = nil
	s := newSender(t, w.cfg)
	if err := s.CheckToken(w.sub); !errors.Is(err, webpush.ErrNotPublic) {
		t.Fatalf("CheckToken(127.0.0.1 endpoint) = %v", err)
	}
	if res := s.Send(context.Background(), provider.Push{Token: w.sub}); res.Outcome != provider.Refused || w.f.Count() != 0 {
		t.Fatalf("result %+v, %d requests", res, w.f.Count())
	}
}

func subscription(endpoint, p256dh, auth string) string {
	b, _ := json.Marshal(map[string]any{"endpoint": endpoint, "keys": map[string]string{"p256dh": p256dh, "auth": auth}})
	return string(b)
}

func TestCheckToken(t *testing.T) {
	w := setup(t, fake.WebPushOptions{})
	w.cfg.AllowPrivate = false
	s := newSender(t, w.cfg)
	var keys struct{ Keys struct{ P256dh, Auth string } }
	json.Unmarshal([]byte(w.sub), &keys)
	p, a := keys.Keys.P256dh, keys.Keys.Auth
	good := []string{
		subscription("https://updates.push.services.mozilla.com/wpush/v2/gAAAAA", p, a),
		subscription("https://fcm.googleapis.com/fcm/send/abc:def", p+"=", a+"=="),
		subscription("https://[2606:4700::1111]/push", p, a),
		`{"endpoint":"https://push.example.org/x","expirationTime":null,"keys":{"p256dh":"` + p + `","auth":"` + a + `"}}`,
	}
	for _, tok := range good {
		if err := s.CheckToken(tok); err != nil {
			t.Errorf("%s: %v", tok, err)
		}
	}
	notPublic := []string{"https://127.0.0.1/x", "https://[::1]/x", "https://10.1.2.3/x", "https://192.168.1.1/x",
		"https://172.20.0.1/x", "https://169.254.169.254/latest", "https://[fe80::1]/x", "https://100.64.0.1/x",
		"https://[fd00::1]/x", "https://0.0.0.0/x", "https://[::ffff:127.0.0.1]/x", "https://localhost/x",
		"https://push.localhost/x", "https://intranet/x", "https://metadata.google.internal/x"}
	for _, e := range notPublic {
		if err := s.CheckToken(subscription(e, p, a)); !errors.Is(err, webpush.ErrNotPublic) {
			t.Errorf("%s: %v", e, err)
		}
	}
	otherKey := make([]byte, 65)
	otherKey[0] = 4
	bad := map[string]string{
		"not JSON":         "https://push.example.org/x",
		"unknown field":    `{"endpoint":"https://push.example.org/x","keys":{"p256dh":"` + p + `","auth":"` + a + `"},"to":"x"}`,
		"http":             subscription("http://push.example.org/x", p, a),
		"user info":        subscription("https://u:p@push.example.org/x", p, a),
		"no endpoint":      subscription("", p, a),
		"long endpoint":    subscription("https://push.example.org/"+strings.Repeat("x", 2100), p, a),
		"oversize":         subscription("https://push.example.org/x", p, a) + strings.Repeat(" ", 4096),
		"short p256dh":     subscription("https://push.example.org/x", p[:40], a),
		"p256dh off curve": subscription("https://push.example.org/x", base64.RawURLEncoding.EncodeToString(otherKey), a),
		"p256dh not b64":   subscription("https://push.example.org/x", "!!"+p[2:], a),
		"short auth":       subscription("https://push.example.org/x", p, a[:10]),
		"long auth":        subscription("https://push.example.org/x", p, a+"AAAA"),
		"no keys":          `{"endpoint":"https://push.example.org/x"}`,
	}
	for name, tok := range bad {
		if err := s.CheckToken(tok); !errors.Is(err, webpush.ErrBadSubscription) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestRefusedLocally(t *testing.T) {
	w := setup(t, fake.WebPushOptions{})
	for name, p := range map[string]provider.Push{
		"bad topic":     {Token: w.sub, CollapseID: "not a topic!"},
		"large payload": {Token: w.sub, Payload: make([]byte, w.sender.MaxPayload()+1)},
	} {
		if res := w.sender.Send(context.Background(), p); res.Outcome != provider.Refused {
			t.Errorf("%s: %+v", name, res)
		}
	}
	if res := w.sender.Send(context.Background(), provider.Push{Token: w.sub, Payload: make([]byte, w.sender.MaxPayload())}); res.Outcome != provider.Delivered {
		t.Errorf("largest payload: %+v", res)
	}
	if w.f.Count() != 1 {
		t.Errorf("%d requests", w.f.Count())
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	priv, pub, _ := fake.NewVAPIDKeys()
	_, otherPub, _ := fake.NewVAPIDKeys()
	good := webpush.Config{VAPIDPrivateKey: priv, VAPIDPublicKey: pub, Subscriber: "https://hush.example/contact"}
	if _, err := webpush.New(good); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*webpush.Config){
		"mismatched keys":  func(c *webpush.Config) { c.VAPIDPublicKey = otherPub },
		"no private key":   func(c *webpush.Config) { c.VAPIDPrivateKey = "" },
		"bad subscriber":   func(c *webpush.Config) { c.Subscriber = "ops@hush.example" },
		"tiny record size": func(c *webpush.Config) { c.RecordSize = 100 },
		"huge record size": func(c *webpush.Config) { c.RecordSize = 8192 },
	} {
		cfg := good
		mutate(&cfg)
		if _, err := webpush.New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
