package apns

import (
	"context"
	"crypto/x509"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/pushbridge/fake"
	"github.com/hushnet/hush/pushbridge/provider"
)

// The default transport speaks HTTP/2, which the fake (like APNs)
// requires.
func TestDefaultTransportIsHTTP2(t *testing.T) {
	f, err := fake.StartAPNs(fake.APNsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(f.CertificatePEM())
	s, err := New(Config{
		Endpoint: f.URL(), KeyPEM: f.KeyPEM(), KeyID: f.KeyID(), TeamID: f.TeamID(), Topic: f.Topic(),
		HTTPClient: &http.Client{Transport: newTransport(roots)},
	})
	if err != nil {
		t.Fatal(err)
	}
	res := s.Send(context.Background(), provider.Push{Token: strings.Repeat("0a", 32)})
	if res.Outcome != provider.Delivered || f.Requests()[0].Proto != "HTTP/2.0" {
		t.Fatalf("result %+v", res)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"":                              time.Minute,
		"120":                           2 * time.Minute,
		"soon":                          time.Minute,
		"-3":                            time.Minute,
		"999999999":                     provider.MaxRetryAfter,
		"Fri, 02 Jan 2026 03:05:05 GMT": time.Minute + 0,
		"Fri, 02 Jan 2026 03:09:05 GMT": 5 * time.Minute,
		"Fri, 02 Jan 2026 03:00:00 GMT": 0,
	} {
		if got := provider.ParseRetryAfter(h, time.Minute, now); got != want {
			t.Errorf("%q: %v, want %v", h, got, want)
		}
	}
}
