// Package apns sends wake-ups through the Apple Push Notification
// service: HTTP/2 to the provider API with token authentication (an ES256
// JWT made from the team's .p8 key, reused and refreshed every 40
// minutes, since APNs rejects a token older than an hour and one changed
// more often than every 20 minutes).
//
// A Normal push is a background push (apns-push-type background,
// priority 5, aps content-available); a High push is an alert with
// mutable-content and a generic text, priority 10, for the app's
// notification service extension to replace: iOS throttles background
// pushes, an extension is woken for every alert. The body is
//
//	{"aps":{...},"wake":"<Push.Payload, base64url without padding>"}
//
// with "wake" left out when the payload is empty; no other key is sent.
package apns

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hushnet/hush/pushbridge/provider"
)

// Defaults of Config.
const (
	DefaultEndpoint   = "https://api.push.apple.com"
	SandboxEndpoint   = "https://api.sandbox.push.apple.com"
	DefaultAlertText  = "New message"
	DefaultTimeout    = 30 * time.Second
	DefaultRetryAfter = time.Minute
)

// Limits and timing of the provider API.
const (
	// TokenRefresh is the age at which the provider JWT is replaced:
	// within APNs' window of 20 to 60 minutes.
	TokenRefresh = 40 * time.Minute
	// MaxPayload is the largest body APNs accepts.
	MaxPayload = 4096
	// MaxCollapseID is the longest apns-collapse-id APNs accepts.
	MaxCollapseID = 64

	minTokenLen  = 64
	maxTokenLen  = 200
	maxReplySize = 4096
)

// ErrBadToken is returned by CheckToken for a malformed device token.
var ErrBadToken = errors.New("apns: malformed device token")

// Config configures a Sender. Endpoint, AlertText, Timeout, RetryAfter,
// HTTPClient and Now have working zero values; the key, KeyID, TeamID
// and Topic are required.
type Config struct {
	// Endpoint is the provider API's base URL; default DefaultEndpoint.
	// Development builds of the app need SandboxEndpoint.
	Endpoint string `json:"endpoint,omitempty"`
	// KeyFile is the path of the .p8 token-signing key (PEM, PKCS #8,
	// P-256) from the Apple developer account.
	KeyFile string `json:"key_file,omitempty"`
	// KeyPEM is the key itself; when set, KeyFile is not read.
	KeyPEM []byte `json:"-"`
	// KeyID is the key's 10-character identifier (the JWT's kid).
	KeyID string `json:"key_id"`
	// TeamID is the developer team's 10-character identifier (iss).
	TeamID string `json:"team_id"`
	// Topic is the app's bundle ID (apns-topic).
	Topic string `json:"topic"`
	// AlertText is the generic text of High pushes, shown only if the
	// app's notification service extension does not replace it; default
	// DefaultAlertText.
	AlertText string `json:"alert_text,omitempty"`
	// Timeout bounds each Send; default DefaultTimeout.
	Timeout time.Duration `json:"timeout,omitempty"`
	// RetryAfter is the back-off suggested after a failure that names
	// none (no Retry-After, a timeout); default DefaultRetryAfter.
	RetryAfter time.Duration `json:"retry_after,omitempty"`
	// HTTPClient replaces the default client: HTTP/2 only, TLS 1.2+,
	// the system trust store (SSL_CERT_FILE and SSL_CERT_DIR apply).
	HTTPClient *http.Client `json:"-"`
	// Now is the clock for the JWT's iat and apns-expiration; default
	// time.Now.
	Now func() time.Time `json:"-"`
}

// Sender sends pushes through APNs. It is safe for concurrent use.
type Sender struct {
	endpoint   string
	key        *ecdsa.PrivateKey
	keyID      string
	teamID     string
	topic      string
	alertText  string
	timeout    time.Duration
	retryAfter time.Duration
	client     *http.Client
	ownClient  bool
	now        func() time.Time

	// mu guards the provider token and when it was issued.
	mu     sync.Mutex
	bearer string
	issued time.Time
}

var _ provider.Sender = (*Sender)(nil)

// New returns a Sender. It reads the key file, but sends nothing.
func New(cfg Config) (*Sender, error) {
	s := &Sender{
		endpoint:   strings.TrimSuffix(cmpOr(cfg.Endpoint, DefaultEndpoint), "/"),
		keyID:      cfg.KeyID,
		teamID:     cfg.TeamID,
		topic:      cfg.Topic,
		alertText:  cmpOr(cfg.AlertText, DefaultAlertText),
		timeout:    positiveOr(cfg.Timeout, DefaultTimeout),
		retryAfter: positiveOr(cfg.RetryAfter, DefaultRetryAfter),
		client:     cfg.HTTPClient,
		now:        cfg.Now,
	}
	if u, err := url.Parse(s.endpoint); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("apns: endpoint %q is not an https URL", s.endpoint)
	}
	switch {
	case s.keyID == "":
		return nil, errors.New("apns: key ID missing")
	case s.teamID == "":
		return nil, errors.New("apns: team ID missing")
	case s.topic == "":
		return nil, errors.New("apns: topic missing")
	}
	keyPEM := cfg.KeyPEM
	if keyPEM == nil {
		if cfg.KeyFile == "" {
			return nil, errors.New("apns: key file missing")
		}
		var err error
		if keyPEM, err = os.ReadFile(cfg.KeyFile); err != nil {
			return nil, fmt.Errorf("apns: %w", err)
		}
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	s.key = key
	if s.client == nil {
		s.client = &http.Client{Transport: newTransport(nil)}
		s.ownClient = true
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// newTransport is the default transport: HTTP/2 only (APNs refuses
// HTTP/1.1), TLS 1.2 or later, trusting roots (nil: the system pool),
// one long-lived connection kept healthy with pings.
func newTransport(roots *x509.CertPool) *http.Transport {
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots},
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     time.Hour,
		HTTP2:               &http.HTTP2Config{SendPingTimeout: time.Minute, PingTimeout: 15 * time.Second},
	}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP2(true)
	return tr
}

func parseKey(b []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("apns: key is not a PEM PRIVATE KEY (.p8)")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("apns: key: %w", err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, errors.New("apns: key is not a P-256 ECDSA key")
	}
	return ek, nil
}

// Kind reports provider.APNs.
func (s *Sender) Kind() provider.Kind { return provider.APNs }

// Close closes the idle connections of the default client. It is
// idempotent; Send still works afterwards (it reconnects).
func (s *Sender) Close() error {
	if s.ownClient {
		s.client.CloseIdleConnections()
	}
	return nil
}

// CheckToken accepts a device token of 64 to 200 hexadecimal digits.
func (s *Sender) CheckToken(token string) error {
	if len(token) < minTokenLen || len(token) > maxTokenLen || len(token)%2 != 0 {
		return fmt.Errorf("%w: want an even number of hex digits, %d to %d", ErrBadToken, minTokenLen, maxTokenLen)
	}
	for _, c := range []byte(token) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return fmt.Errorf("%w: not hexadecimal", ErrBadToken)
		}
	}
	return nil
}

// Send delivers one push. A request refused for an expired provider
// token is sent once more with a new token.
func (s *Sender) Send(ctx context.Context, p provider.Push) provider.Result {
	if s.CheckToken(p.Token) != nil {
		return provider.Result{Outcome: provider.Refused, Reason: "malformed device token"}
	}
	if len(p.CollapseID) > MaxCollapseID {
		return provider.Result{Outcome: provider.Refused, Reason: "BadCollapseId"}
	}
	body, err := s.body(p)
	if err != nil || len(body) > MaxPayload {
		return provider.Result{Outcome: provider.Refused, Reason: "PayloadTooLarge"}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	res, used := s.post(ctx, p, body)
	if res.Reason == "ExpiredProviderToken" {
		s.dropBearer(used)
		res, _ = s.post(ctx, p, body)
	}
	return res
}

type aps struct {
	Alert            *alert `json:"alert,omitempty"`
	ContentAvailable int    `json:"content-available,omitempty"`
	MutableContent   int    `json:"mutable-content,omitempty"`
}

type alert struct {
	Body string `json:"body"`
}

func (s *Sender) body(p provider.Push) ([]byte, error) {
	var b struct {
		APS  aps    `json:"aps"`
		Wake string `json:"wake,omitempty"`
	}
	if p.Priority == provider.High {
		b.APS = aps{Alert: &alert{Body: s.alertText}, MutableContent: 1}
	} else {
		b.APS = aps{ContentAvailable: 1}
	}
	b.Wake = base64.RawURLEncoding.EncodeToString(p.Payload)
	return json.Marshal(b)
}

// post sends one request; it also returns the provider token it used.
func (s *Sender) post(ctx context.Context, p provider.Push, body []byte) (provider.Result, string) {
	bearer, err := s.providerToken()
	if err != nil {
		return provider.Result{Outcome: provider.Refused, Reason: "cannot sign provider token"}, ""
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint+"/3/device/"+p.Token, bytes.NewReader(body))
	if err != nil {
		return provider.Result{Outcome: provider.Refused, Reason: "bad request"}, bearer
	}
	h := req.Header
	h.Set("authorization", "bearer "+bearer)
	h.Set("content-type", "application/json")
	h.Set("apns-topic", s.topic)
	if p.Priority == provider.High {
		h.Set("apns-push-type", "alert")
		h.Set("apns-priority", "10")
	} else {
		h.Set("apns-push-type", "background")
		h.Set("apns-priority", "5")
	}
	expiration := int64(0)
	if p.TTL > 0 {
		expiration = s.now().Add(p.TTL).Unix()
	}
	h.Set("apns-expiration", strconv.FormatInt(expiration, 10))
	if p.CollapseID != "" {
		h.Set("apns-collapse-id", p.CollapseID)
	}

	resp, err := s.client.Do(req)
	if err != nil {
		return provider.TransportFailure(ctx, err, s.retryAfter), bearer
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, maxReplySize))
	var e struct {
		Reason string `json:"reason"`
	}
	json.Unmarshal(reply, &e)
	res := provider.Result{Status: resp.StatusCode, Reason: e.Reason}
	switch st := resp.StatusCode; {
	case st == http.StatusOK:
		res.Outcome = provider.Delivered
	case st == http.StatusGone,
		st == http.StatusBadRequest && (e.Reason == "BadDeviceToken" || e.Reason == "DeviceTokenNotForTopic"):
		res.Outcome = provider.Dead
	case st == http.StatusTooManyRequests || st >= 500:
		res.Outcome = provider.Retry
		res.RetryAfter = provider.ParseRetryAfter(resp.Header.Get("Retry-After"), s.retryAfter, s.now())
	default:
		res.Outcome = provider.Refused
	}
	return res, bearer
}

// providerToken returns the current JWT, signing a new one when there is
// none or it has reached TokenRefresh.
func (s *Sender) providerToken() (string, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bearer != "" && now.Sub(s.issued) < TokenRefresh {
		return s.bearer, nil
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": s.teamID, "iat": now.Unix()})
	t.Header["kid"] = s.keyID
	signed, err := t.SignedString(s.key)
	if err != nil {
		return "", err
	}
	s.bearer, s.issued = signed, now
	return signed, nil
}

// dropBearer forgets the provider token APNs called expired, unless a
// concurrent Send has already replaced it.
func (s *Sender) dropBearer(used string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bearer == used {
		s.bearer = ""
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func positiveOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
