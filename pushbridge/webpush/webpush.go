// Package webpush sends wake-ups to WebPush subscriptions (RFC 8030),
// which is also what UnifiedPush distributors speak. Messages are
// encrypted to the subscription (RFC 8291, aes128gcm) and signed with
// the bridge's VAPID key (RFC 8292) by github.com/SherClockHolmes/webpush-go,
// always padded to one fixed record size so that their length tells
// nothing. The plaintext is Push.Payload as is.
//
// A token is the subscription as the browser or distributor gives it:
// {"endpoint": "https://…", "keys": {"p256dh": "…", "auth": "…"}}.
// Because the endpoint is chosen by the device, it is a way into the
// bridge's network: only https endpoints on public addresses are
// accepted, the default client refuses to connect to any other address
// (whatever the name resolves to) and follows no redirect.
package webpush

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"

	wp "github.com/SherClockHolmes/webpush-go"

	"github.com/hushnet/hush/pushbridge/provider"
)

// Defaults of Config.
const (
	DefaultRecordSize = 2048
	DefaultTimeout    = 30 * time.Second
	DefaultRetryAfter = time.Minute
	// DefaultTopic is the Topic of a push without a CollapseID.
	DefaultTopic = "wake"
)

// Limits.
const (
	// MaxSubscription is the longest token CheckToken accepts.
	MaxSubscription = 4096
	// MinRecordSize and MaxRecordSize bound Config.RecordSize; 4096 is
	// what push services accept, some less (Firefox for Android: 3070).
	MinRecordSize = 256
	MaxRecordSize = 4096
	// MaxTTL is the longest TTL sent.
	MaxTTL = 28 * 24 * time.Hour

	maxEndpoint = 2048
	// overhead is the aes128gcm header (salt, rs, idlen, key), the
	// AEAD tag and the padding delimiter.
	overhead     = 16 + 4 + 1 + 65 + 16 + 1
	maxReplySize = 4096
)

var (
	// ErrBadSubscription is returned by CheckToken for a token that is
	// not a usable WebPush subscription.
	ErrBadSubscription = errors.New("webpush: malformed subscription")
	// ErrNotPublic is returned by CheckToken, and stops a send, for an
	// endpoint on a loopback, private, link-local or otherwise
	// non-public address (unless Config.AllowPrivate).
	ErrNotPublic = errors.New("webpush: endpoint is not on a public address")

	topicSyntax = regexp.MustCompile(`^[A-Za-z0-9_\-]{1,32}$`)
)

// Config configures a Sender. The VAPID key pair and Subscriber are
// required.
type Config struct {
	// VAPIDPrivateKey is the application server's P-256 private key,
	// the 32-byte scalar in base64url (as webpush-go's
	// GenerateVAPIDKeys and fake.NewVAPIDKeys make it).
	VAPIDPrivateKey string `json:"vapid_private_key"`
	// VAPIDPublicKey is its public key, the 65-byte uncompressed point
	// in base64url: the applicationServerKey apps subscribe with.
	VAPIDPublicKey string `json:"vapid_public_key"`
	// Subscriber is the operator's contact, a mailto: or https: URI
	// (the VAPID JWT's sub).
	Subscriber string `json:"subscriber"`
	// RecordSize is the fixed size every message body is padded to;
	// default DefaultRecordSize. A payload may be RecordSize-103 bytes.
	RecordSize uint32 `json:"record_size,omitempty"`
	// AllowPrivate accepts endpoints on loopback and private addresses:
	// for tests and demos only.
	AllowPrivate bool `json:"allow_private,omitempty"`
	// Timeout bounds each Send; default DefaultTimeout.
	Timeout time.Duration `json:"timeout,omitempty"`
	// RetryAfter is the back-off suggested after a failure that names
	// none; default DefaultRetryAfter.
	RetryAfter time.Duration `json:"retry_after,omitempty"`
	// HTTPClient replaces the default client, and with it the address
	// guard: the caller takes that job over.
	HTTPClient *http.Client `json:"-"`
}

// Sender sends pushes to WebPush subscriptions. It is safe for
// concurrent use.
type Sender struct {
	privateKey   string // base64url, as webpush-go takes them
	publicKey    string
	subscriber   string // as webpush-go takes it: mailto: stripped
	recordSize   uint32
	allowPrivate bool
	timeout      time.Duration
	retryAfter   time.Duration
	client       *http.Client
	now          func() time.Time
}

var _ provider.Sender = (*Sender)(nil)

// New returns a Sender. It does no I/O.
func New(cfg Config) (*Sender, error) {
	priv, err := decodeKey(cfg.VAPIDPrivateKey)
	if err != nil {
		return nil, errors.New("webpush: VAPID private key is not base64url")
	}
	key, err := ecdh.P256().NewPrivateKey(priv)
	if err != nil {
		return nil, errors.New("webpush: VAPID private key is not a P-256 scalar")
	}
	pub, err := decodeKey(cfg.VAPIDPublicKey)
	if err != nil || !bytes.Equal(pub, key.PublicKey().Bytes()) {
		return nil, errors.New("webpush: VAPID public key does not match the private key")
	}
	s := &Sender{
		privateKey:   base64.RawURLEncoding.EncodeToString(priv),
		publicKey:    base64.RawURLEncoding.EncodeToString(pub),
		recordSize:   cfg.RecordSize,
		allowPrivate: cfg.AllowPrivate,
		timeout:      positiveOr(cfg.Timeout, DefaultTimeout),
		retryAfter:   positiveOr(cfg.RetryAfter, DefaultRetryAfter),
		client:       cfg.HTTPClient,
		now:          time.Now,
	}
	switch sub := cfg.Subscriber; {
	case strings.HasPrefix(sub, "mailto:") && strings.Contains(sub, "@"):
		// webpush-go adds "mailto:" to anything that is not https.
		s.subscriber = strings.TrimPrefix(sub, "mailto:")
	case strings.HasPrefix(sub, "https://") && len(sub) > len("https://"):
		s.subscriber = sub
	default:
		return nil, errors.New("webpush: subscriber must be a mailto: or https: URI")
	}
	if s.recordSize == 0 {
		s.recordSize = DefaultRecordSize
	}
	if s.recordSize < MinRecordSize || s.recordSize > MaxRecordSize {
		return nil, fmt.Errorf("webpush: record size %d outside %d..%d", s.recordSize, MinRecordSize, MaxRecordSize)
	}
	if s.client == nil {
		s.client = guardedClient(s.allowPrivate)
	}
	return s, nil
}

// Kind reports provider.WebPush.
func (s *Sender) Kind() provider.Kind { return provider.WebPush }

// CheckToken accepts a subscription JSON with an https endpoint on a
// public address (any address with AllowPrivate), a p256dh key that is a
// P-256 point and a 16-byte auth secret. Host names are not resolved
// here; the default client checks the address it connects to.
func (s *Sender) CheckToken(token string) error {
	_, err := s.parse(token)
	return err
}

func (s *Sender) parse(token string) (*wp.Subscription, error) {
	if len(token) > MaxSubscription {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrBadSubscription, MaxSubscription)
	}
	var sub struct {
		Endpoint       string          `json:"endpoint"`
		ExpirationTime json.RawMessage `json:"expirationTime"` // PushSubscription.toJSON has it
		Keys           struct {
			P256dh string `json:"p256dh"`
			Auth   string `json:"auth"`
		} `json:"keys"`
	}
	d := json.NewDecoder(strings.NewReader(token))
	d.DisallowUnknownFields()
	if err := d.Decode(&sub); err != nil || d.More() {
		return nil, fmt.Errorf("%w: not a subscription JSON", ErrBadSubscription)
	}
	if len(sub.Endpoint) > maxEndpoint {
		return nil, fmt.Errorf("%w: endpoint too long", ErrBadSubscription)
	}
	u, err := url.Parse(sub.Endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("%w: endpoint must be an https URL", ErrBadSubscription)
	}
	if !s.allowPrivate && !publicHost(u.Hostname()) {
		return nil, ErrNotPublic
	}
	if k, err := decodeKey(sub.Keys.P256dh); err != nil || len(k) != 65 {
		return nil, fmt.Errorf("%w: p256dh must be a 65-byte uncompressed point", ErrBadSubscription)
	} else if _, err := ecdh.P256().NewPublicKey(k); err != nil {
		return nil, fmt.Errorf("%w: p256dh is not a P-256 point", ErrBadSubscription)
	}
	if a, err := decodeKey(sub.Keys.Auth); err != nil || len(a) != 16 {
		return nil, fmt.Errorf("%w: auth must be 16 bytes", ErrBadSubscription)
	}
	return &wp.Subscription{Endpoint: sub.Endpoint, Keys: wp.Keys{P256dh: sub.Keys.P256dh, Auth: sub.Keys.Auth}}, nil
}

// publicHost reports whether a host is acceptable without resolving
// it: an IP address must be public; a name must have a dot and not be
// localhost.
func publicHost(host string) bool {
	if addr, err := netip.ParseAddr(host); err == nil {
		return isPublic(addr)
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return strings.Contains(host, ".") && !strings.HasSuffix(host, ".localhost") &&
		!strings.HasSuffix(host, ".local") && !strings.HasSuffix(host, ".internal")
}

// MaxPayload is the largest Push.Payload the record size leaves room for.
func (s *Sender) MaxPayload() int { return int(s.recordSize) - overhead }

// Send delivers one push.
func (s *Sender) Send(ctx context.Context, p provider.Push) provider.Result {
	sub, err := s.parse(p.Token)
	if errors.Is(err, ErrNotPublic) {
		return provider.Result{Outcome: provider.Refused, Reason: "endpoint not public"}
	} else if err != nil {
		return provider.Result{Outcome: provider.Refused, Reason: "malformed subscription"}
	}
	topic := p.CollapseID
	if topic == "" {
		topic = DefaultTopic
	}
	if !topicSyntax.MatchString(topic) {
		return provider.Result{Outcome: provider.Refused, Reason: "collapse ID is not a WebPush topic"}
	}
	if len(p.Payload) > s.MaxPayload() {
		return provider.Result{Outcome: provider.Refused, Reason: "payload too large"}
	}
	urgency := wp.UrgencyNormal
	if p.Priority == provider.High {
		urgency = wp.UrgencyHigh
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := wp.SendNotificationWithContext(ctx, p.Payload, sub, &wp.Options{
		HTTPClient:      s.client,
		RecordSize:      s.recordSize,
		Subscriber:      s.subscriber,
		Topic:           topic,
		TTL:             int(min(max(p.TTL, 0), MaxTTL) / time.Second),
		Urgency:         urgency,
		VAPIDPublicKey:  s.publicKey,
		VAPIDPrivateKey: s.privateKey,
	})
	if err != nil {
		var ue *url.Error
		switch {
		case errors.Is(err, errNotPublic):
			return provider.Result{Outcome: provider.Refused, Reason: "endpoint not public"}
		case errors.As(err, &ue):
			return provider.TransportFailure(ctx, err, s.retryAfter)
		}
		return provider.Result{Outcome: provider.Refused, Reason: "cannot encrypt to the subscription"}
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxReplySize))
	st := resp.StatusCode
	res := provider.Result{Status: st, Reason: http.StatusText(st)}
	switch {
	case st >= 200 && st < 300:
		res.Outcome, res.Reason = provider.Delivered, ""
	case st == http.StatusNotFound || st == http.StatusGone:
		res.Outcome = provider.Dead
	case st == http.StatusTooManyRequests || st >= 500:
		res.Outcome = provider.Retry
		res.RetryAfter = provider.ParseRetryAfter(resp.Header.Get("Retry-After"), s.retryAfter, s.now())
	default:
		res.Outcome = provider.Refused
	}
	return res
}

// decodeKey decodes base64url with or without padding.
func decodeKey(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func positiveOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
