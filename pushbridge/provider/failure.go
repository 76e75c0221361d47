package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"
)

// MaxRetryAfter caps a Retry-After from the service.
const MaxRetryAfter = 24 * time.Hour

// TransportFailure turns a request that got no response into a Retry.
// The reason is a fixed phrase: the error itself names the URL, which
// holds the device token.
func TransportFailure(ctx context.Context, err error, backoff time.Duration) Result {
	var (
		verify    *tls.CertificateVerificationError
		authority x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		netErr    net.Error
	)
	reason := "connection failed"
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		reason = "timeout"
	case ctx.Err() != nil:
		reason = "canceled"
	case errors.As(err, &verify), errors.As(err, &authority), errors.As(err, &hostname), errors.As(err, &invalid):
		reason = "tls: service certificate not trusted"
	case errors.As(err, &netErr) && netErr.Timeout():
		reason = "timeout"
	}
	return Result{Outcome: Retry, RetryAfter: backoff, Reason: reason}
}

// ParseRetryAfter reads a Retry-After header (seconds or an HTTP date),
// else returns def.
func ParseRetryAfter(h string, def time.Duration, now time.Time) time.Duration {
	if h == "" {
		return def
	}
	if n, err := strconv.ParseInt(h, 10, 64); err == nil && n >= 0 {
		return min(time.Duration(n)*time.Second, MaxRetryAfter)
	}
	if t, err := http.ParseTime(h); err == nil {
		return min(max(t.Sub(now), 0), MaxRetryAfter)
	}
	return def
}
