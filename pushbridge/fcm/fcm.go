// Package fcm sends wake-ups through Firebase Cloud Messaging's HTTP v1
// API. It authenticates as a service account with an OAuth2 access token
// (golang.org/x/oauth2/google, scope firebase.messaging, the key file's
// token_uri honoured), which is fetched once and reused until shortly
// before it expires.
//
// Every push is a data-only message, so the app handles it in code and
// nothing is shown by the system:
//
//	{"message": {"token": "<registration token>",
//	  "data": {"wake": "<Push.Payload, base64url without padding>"},
//	  "android": {"priority": "HIGH"|"NORMAL", "ttl": "<seconds>s", "collapse_key": "<CollapseID>"},
//	  "apns": {...}}}
//
// The apns block is always sent, because the bridge cannot tell an iOS
// registration token from an Android one and FCM ignores the block for
// Android: it carries the same wake-up the apns package sends directly (a
// background push, priority 5, for Normal; a mutable-content alert with a
// generic text, priority 10, for High), with apns-expiration and
// apns-collapse-id from the push.
package fcm

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/hushnet/hush/pushbridge/provider"
)

// Defaults of Config.
const (
	DefaultEndpoint   = "https://fcm.googleapis.com"
	DefaultAlertText  = "New message"
	DefaultTimeout    = 30 * time.Second
	DefaultRetryAfter = time.Minute
)

// Limits of FCM HTTP v1.
const (
	// Scope is the only OAuth2 scope the sender asks for.
	Scope = "https://www.googleapis.com/auth/firebase.messaging"
	// QuotaRetryAfter is the least back-off after 429 QUOTA_EXCEEDED
	// when FCM names none.
	QuotaRetryAfter = time.Minute
	// MaxData is the largest data map FCM accepts, keys included.
	MaxData = 4096
	// MaxTTL is the longest time FCM keeps a message.
	MaxTTL = 28 * 24 * time.Hour
	// MaxCollapseID is the longest collapse ID sent (APNs' limit, as
	// the ID is also the apns-collapse-id).
	MaxCollapseID = 64

	minTokenLen  = 32
	maxTokenLen  = 4096
	maxReplySize = 16 << 10
)

// ErrBadToken is returned by CheckToken for a malformed registration
// token.
var ErrBadToken = errors.New("fcm: malformed registration token")

// Config configures a Sender. Only the credentials are required.
type Config struct {
	// CredentialsFile is the path of the service account's JSON key.
	CredentialsFile string `json:"credentials_file,omitempty"`
	// CredentialsJSON is the key itself; when set, CredentialsFile is
	// not read.
	CredentialsJSON []byte `json:"-"`
	// ProjectID is the Firebase project; default the key's project_id.
	ProjectID string `json:"project_id,omitempty"`
	// Endpoint is the API's base URL; default DefaultEndpoint.
	Endpoint string `json:"endpoint,omitempty"`
	// AlertText is the generic text of High pushes to iOS devices;
	// default DefaultAlertText.
	AlertText string `json:"alert_text,omitempty"`
	// Timeout bounds each Send, token fetch included; default
	// DefaultTimeout.
	Timeout time.Duration `json:"timeout,omitempty"`
	// RetryAfter is the back-off suggested after a failure that names
	// none; default DefaultRetryAfter.
	RetryAfter time.Duration `json:"retry_after,omitempty"`
	// HTTPClient carries both the token requests and the sends; default
	// a client with the system trust store (SSL_CERT_FILE applies).
	HTTPClient *http.Client `json:"-"`
}

// Sender sends pushes through FCM. It is safe for concurrent use.
type Sender struct {
	sendURL    string
	alertText  string
	timeout    time.Duration
	retryAfter time.Duration
	client     *http.Client
	tokens     oauth2.TokenSource // caching, safe for concurrent use
	now        func() time.Time
}

var _ provider.Sender = (*Sender)(nil)

// New returns a Sender. It reads the credentials but fetches no token.
func New(cfg Config) (*Sender, error) {
	creds := cfg.CredentialsJSON
	if creds == nil {
		if cfg.CredentialsFile == "" {
			return nil, errors.New("fcm: credentials file missing")
		}
		var err error
		if creds, err = os.ReadFile(cfg.CredentialsFile); err != nil {
			return nil, fmt.Errorf("fcm: %w", err)
		}
	}
	var key struct {
		ProjectID string `json:"project_id"`
		TokenURI  string `json:"token_uri"`
	}
	if err := json.Unmarshal(creds, &key); err != nil {
		return nil, fmt.Errorf("fcm: credentials: %w", err)
	}
	if u, err := url.Parse(key.TokenURI); key.TokenURI != "" && (err != nil || u.Scheme != "https") {
		return nil, errors.New("fcm: credentials: token_uri is not an https URL")
	}
	project := cmpOr(cfg.ProjectID, key.ProjectID)
	if project == "" || strings.ContainsAny(project, "/?#%") {
		return nil, errors.New("fcm: project ID missing or malformed")
	}
	endpoint := strings.TrimSuffix(cmpOr(cfg.Endpoint, DefaultEndpoint), "/")
	if u, err := url.Parse(endpoint); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("fcm: endpoint %q is not an https URL", endpoint)
	}
	s := &Sender{
		sendURL:    endpoint + "/v1/projects/" + project + "/messages:send",
		alertText:  cmpOr(cfg.AlertText, DefaultAlertText),
		timeout:    positiveOr(cfg.Timeout, DefaultTimeout),
		retryAfter: positiveOr(cfg.RetryAfter, DefaultRetryAfter),
		client:     cfg.HTTPClient,
		now:        time.Now,
	}
	if s.client == nil {
		s.client = &http.Client{}
	}
	// The token source keeps this context for every token request; the
	// client's own timeout bounds them.
	tokenClient := *s.client
	tokenClient.Timeout = s.timeout
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &tokenClient)
	gc, err := google.CredentialsFromJSONWithType(ctx, creds, google.ServiceAccount, Scope)
	if err != nil {
		return nil, fmt.Errorf("fcm: credentials: %w", err)
	}
	s.tokens = gc.TokenSource
	return s, nil
}

// Kind reports provider.FCM.
func (s *Sender) Kind() provider.Kind { return provider.FCM }

// CheckToken accepts a registration token of 32 to 4096 characters from
// the base64url alphabet and ':'.
func (s *Sender) CheckToken(token string) error {
	if len(token) < minTokenLen || len(token) > maxTokenLen {
		return fmt.Errorf("%w: want %d to %d characters", ErrBadToken, minTokenLen, maxTokenLen)
	}
	for _, c := range []byte(token) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '_' || c == ':') {
			return fmt.Errorf("%w: unexpected character", ErrBadToken)
		}
	}
	return nil
}

// Send delivers one push.
func (s *Sender) Send(ctx context.Context, p provider.Push) provider.Result {
	if s.CheckToken(p.Token) != nil {
		return provider.Result{Outcome: provider.Refused, Reason: "malformed registration token"}
	}
	if len(p.CollapseID) > MaxCollapseID {
		return provider.Result{Outcome: provider.Refused, Reason: "collapse ID too long"}
	}
	body, err := s.message(p)
	if err != nil {
		return provider.Result{Outcome: provider.Refused, Reason: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	tok, res, ok := s.accessToken(ctx)
	if !ok {
		return res
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.sendURL, bytes.NewReader(body))
	if err != nil {
		return provider.Result{Outcome: provider.Refused, Reason: "bad request"}
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return provider.TransportFailure(ctx, err, s.retryAfter)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, maxReplySize))
	return s.outcome(resp, reply)
}

// accessToken returns the cached access token, or fetches one. The
// fetch cannot be cancelled (x/oauth2 binds it to the context given at
// New), so Send waits for it only until ctx is done; the fetch itself
// ends within the timeout.
func (s *Sender) accessToken(ctx context.Context) (*oauth2.Token, provider.Result, bool) {
	type fetched struct {
		tok *oauth2.Token
		err error
	}
	ch := make(chan fetched, 1)
	go func() {
		tok, err := s.tokens.Token()
		ch <- fetched{tok, err}
	}()
	var f fetched
	select {
	case f = <-ch:
	case <-ctx.Done():
		return nil, provider.TransportFailure(ctx, ctx.Err(), s.retryAfter), false
	}
	if f.err == nil {
		return f.tok, provider.Result{}, true
	}
	var re *oauth2.RetrieveError
	if errors.As(f.err, &re) && re.Response != nil {
		// The JWT flow leaves RetrieveError.ErrorCode empty: read the
		// OAuth2 error from the body.
		var oe struct {
			Error string `json:"error"`
		}
		json.Unmarshal(re.Body, &oe)
		res := provider.Result{Status: re.Response.StatusCode, Reason: "token endpoint: " + cmpOr(oe.Error, http.StatusText(re.Response.StatusCode))}
		if st := re.Response.StatusCode; st == http.StatusTooManyRequests || st >= 500 {
			res.Outcome = provider.Retry
			res.RetryAfter = provider.ParseRetryAfter(re.Response.Header.Get("Retry-After"), s.retryAfter, s.now())
		} else {
			res.Outcome = provider.Refused
		}
		return nil, res, false
	}
	// x/oauth2 flattens transport errors into text.
	res := provider.Result{Outcome: provider.Retry, RetryAfter: s.retryAfter, Reason: "token endpoint: connection failed"}
	switch msg := f.err.Error(); {
	case strings.Contains(msg, "x509:") || strings.Contains(msg, "tls: failed to verify"):
		res.Reason = "token endpoint: tls: certificate not trusted"
	case strings.Contains(msg, "Timeout") || strings.Contains(msg, "deadline exceeded"):
		res.Reason = "token endpoint: timeout"
	case strings.HasPrefix(msg, "oauth2: cannot fetch token:") && !strings.Contains(msg, "Post "):
		res = provider.Result{Outcome: provider.Refused, Reason: "token endpoint: malformed answer"}
	}
	return nil, res, false
}

type message struct {
	Token   string            `json:"token"`
	Data    map[string]string `json:"data"`
	Android android           `json:"android"`
	APNs    apnsBlock         `json:"apns"`
}

type android struct {
	Priority    string `json:"priority"`
	TTL         string `json:"ttl"`
	CollapseKey string `json:"collapse_key,omitempty"`
}

type apnsBlock struct {
	Headers map[string]string `json:"headers"`
	Payload map[string]any    `json:"payload"`
}

func (s *Sender) message(p provider.Push) ([]byte, error) {
	wake := base64.RawURLEncoding.EncodeToString(p.Payload)
	if len("wake")+len(wake) > MaxData {
		return nil, errors.New("payload too large")
	}
	ttl := min(max(p.TTL, 0), MaxTTL)
	m := message{
		Token: p.Token,
		Data:  map[string]string{"wake": wake},
		Android: android{
			Priority:    "NORMAL",
			TTL:         strconv.FormatInt(int64(ttl/time.Second), 10) + "s",
			CollapseKey: p.CollapseID,
		},
		APNs: apnsBlock{Headers: map[string]string{
			"apns-push-type": "background",
			"apns-priority":  "5",
		}},
	}
	aps := map[string]any{"content-available": 1}
	if p.Priority == provider.High {
		m.Android.Priority = "HIGH"
		m.APNs.Headers["apns-push-type"] = "alert"
		m.APNs.Headers["apns-priority"] = "10"
		aps = map[string]any{"alert": map[string]string{"body": s.alertText}, "mutable-content": 1}
	}
	m.APNs.Payload = map[string]any{"aps": aps}
	expiration := int64(0)
	if ttl > 0 {
		expiration = s.now().Add(ttl).Unix()
	}
	m.APNs.Headers["apns-expiration"] = strconv.FormatInt(expiration, 10)
	if p.CollapseID != "" {
		m.APNs.Headers["apns-collapse-id"] = p.CollapseID
	}
	return json.Marshal(struct {
		Message message `json:"message"`
	}{m})
}

// googleError is the error body of a Google API.
type googleError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type            string `json:"@type"`
			ErrorCode       string `json:"errorCode"`
			FieldViolations []struct {
				Field string `json:"field"`
			} `json:"fieldViolations"`
		} `json:"details"`
	} `json:"error"`
}

// outcome maps FCM's answer to a Result.
func (s *Sender) outcome(resp *http.Response, reply []byte) provider.Result {
	st := resp.StatusCode
	if st == http.StatusOK {
		return provider.Result{Outcome: provider.Delivered, Status: st}
	}
	var ge googleError
	json.Unmarshal(reply, &ge)
	code, aboutToken := "", strings.Contains(ge.Error.Message, "registration token")
	for _, d := range ge.Error.Details {
		if d.ErrorCode != "" {
			code = d.ErrorCode
		}
		for _, v := range d.FieldViolations {
			aboutToken = aboutToken || v.Field == "message.token"
		}
	}
	res := provider.Result{Status: st, Reason: cmpOr(code, cmpOr(ge.Error.Status, http.StatusText(st)))}
	retryAfter := resp.Header.Get("Retry-After")
	switch {
	case code == "UNREGISTERED":
		res.Outcome = provider.Dead
	case st == http.StatusBadRequest && res.Reason == "INVALID_ARGUMENT" && aboutToken:
		res.Outcome = provider.Dead
	case st == http.StatusTooManyRequests:
		res.Outcome = provider.Retry
		res.RetryAfter = provider.ParseRetryAfter(retryAfter, max(s.retryAfter, QuotaRetryAfter), s.now())
	case st >= 500:
		res.Outcome = provider.Retry
		res.RetryAfter = provider.ParseRetryAfter(retryAfter, s.retryAfter, s.now())
	default:
		res.Outcome = provider.Refused
	}
	return res
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
