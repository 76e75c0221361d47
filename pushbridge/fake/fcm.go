package fake

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults and limits of the FCM fake.
const (
	DefaultFCMProject       = "hush-test"
	DefaultFCMTokenLifetime = 3599 * time.Second

	fcmScope         = "https://www.googleapis.com/auth/firebase.messaging"
	fcmScopeCloud    = "https://www.googleapis.com/auth/cloud-platform"
	fcmGrantType     = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	fcmMaxAssertion  = time.Hour
	fcmMaxData       = 4096
	fcmMaxTTLSeconds = 2419200
	fcmMaxBody       = 64 << 10
	fcmErrorType     = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
	fcmBadToken      = "The registration token is not a valid FCM registration token"
)

var (
	fcmTTL      = regexp.MustCompile(`^(\d+)(\.\d{1,9})?s$`)
	fcmTokenSet = regexp.MustCompile(`^[A-Za-z0-9_:\-]+$`)
)

// FCMOptions configures an FCM fake. The zero value works.
type FCMOptions struct {
	ProjectID string // default DefaultFCMProject
	// TokenLifetime is the expires_in of issued access tokens; default
	// DefaultFCMTokenLifetime.
	TokenLifetime time.Duration
	// Now is the fake's clock for assertion and access-token expiry;
	// default time.Now.
	Now func() time.Time
}

// FCMTokenRequest is one request to the token endpoint, decoded.
type FCMTokenRequest struct {
	ContentType string
	GrantType   string
	KeyID       string // the assertion's kid
	Issuer      string
	Scope       string
	Audience    string
	IssuedAt    time.Time
	Expires     time.Time
	Status      int
	Error       string // the OAuth2 error answered, "" on 200
}

// FCMMessage is the message of a v1 send request. The fake decodes it
// strictly: an unknown field (the legacy "to", "time_to_live", or a
// camelCase spelling) is INVALID_ARGUMENT.
type FCMMessage struct {
	Name         string            `json:"name,omitempty"`
	Token        string            `json:"token,omitempty"`
	Topic        string            `json:"topic,omitempty"`
	Condition    string            `json:"condition,omitempty"`
	Data         map[string]string `json:"data,omitempty"`
	Notification json.RawMessage   `json:"notification,omitempty"`
	Android      *FCMAndroid       `json:"android,omitempty"`
	APNs         *FCMAPNs          `json:"apns,omitempty"`
	Webpush      json.RawMessage   `json:"webpush,omitempty"`
	FCMOptions   json.RawMessage   `json:"fcm_options,omitempty"`
}

// FCMAndroid is a message's android block.
type FCMAndroid struct {
	CollapseKey           string            `json:"collapse_key,omitempty"`
	Priority              string            `json:"priority,omitempty"`
	TTL                   string            `json:"ttl,omitempty"`
	RestrictedPackageName string            `json:"restricted_package_name,omitempty"`
	Data                  map[string]string `json:"data,omitempty"`
	Notification          json.RawMessage   `json:"notification,omitempty"`
	DirectBootOK          bool              `json:"direct_boot_ok,omitempty"`
}

// FCMAPNs is a message's apns block.
type FCMAPNs struct {
	Headers map[string]string `json:"headers,omitempty"`
	Payload map[string]any    `json:"payload,omitempty"`
}

// FCMRequest is one request to the send endpoint as the fake received and
// answered it.
type FCMRequest struct {
	Method       string
	Path         string
	Header       http.Header
	Body         []byte
	ValidateOnly bool
	Message      *FCMMessage // decoded, nil when the body did not decode
	Status       int
	Reason       string // the errorCode, else the status name; "" on 200
}

// FCM is a fake of FCM HTTP v1 and of Google's OAuth2 token endpoint.
//
// The token endpoint (POST /token) checks the form content type, the
// JWT-bearer grant type, and an RS256 assertion signed by the service
// account's key with kid = private_key_id, iss = client_email, aud =
// token_uri exactly, a scope including firebase.messaging (or
// cloud-platform), exp after now and at most an hour after iat. It
// answers 400 invalid_grant, invalid_scope or unsupported_grant_type.
//
// The send endpoint (POST /v1/projects/<id>/messages:send) checks the
// project, a bearer access token the fake issued and that has not
// expired (else 401 UNAUTHENTICATED), application/json, and the body
// strictly: a message with exactly one of token, topic or condition;
// string data with no reserved key and at most 4096 bytes; android
// priority normal or high and ttl "<seconds>s" up to four weeks; apns
// headers with a valid apns-priority and a payload with aps; and hush's
// policy: no notification block. Errors come in Google's format with an
// FcmError detail: 404 UNREGISTERED for an unregistered token, 400
// INVALID_ARGUMENT for an invalidated one.
type FCM struct {
	*server
	requestLog[FCMRequest]
	opt        FCMOptions
	key        *rsa.PrivateKey
	keyID      string
	email      string
	sendFails  script
	tokenFails script

	// mu guards the fields below it.
	mu            sync.Mutex
	tokenRequests []FCMTokenRequest
	issued        map[string]time.Time // access token → expiry
	unregistered  map[string]bool
	invalid       map[string]bool
}

var (
	fcmKeyOnce sync.Once
	fcmKey     *rsa.PrivateKey
	fcmKeyErr  error
)

// StartFCM starts an FCM fake. Close it when done. Every FCM fake of a
// process shares one service-account key (RSA key generation is slow).
func StartFCM(opt FCMOptions) (*FCM, error) {
	if opt.ProjectID == "" {
		opt.ProjectID = DefaultFCMProject
	}
	if opt.TokenLifetime <= 0 {
		opt.TokenLifetime = DefaultFCMTokenLifetime
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	fcmKeyOnce.Do(func() { fcmKey, fcmKeyErr = rsa.GenerateKey(rand.Reader, 2048) })
	if fcmKeyErr != nil {
		return nil, fmt.Errorf("fake fcm: key: %w", fcmKeyErr)
	}
	f := &FCM{
		opt:          opt,
		key:          fcmKey,
		keyID:        randomHex(20),
		email:        "hush-push@" + opt.ProjectID + ".iam.gserviceaccount.com",
		issued:       make(map[string]time.Time),
		unregistered: make(map[string]bool),
		invalid:      make(map[string]bool),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", f.serveToken)
	mux.HandleFunc("/", f.serveSend)
	f.server = startServer(mux)
	return f, nil
}

// ProjectID is the project the fake serves.
func (f *FCM) ProjectID() string { return f.opt.ProjectID }

// TokenURI is the fake's token endpoint.
func (f *FCM) TokenURI() string { return f.URL() + "/token" }

// ServiceAccountJSON is a service-account key file whose token_uri points
// at the fake.
func (f *FCM) ServiceAccountJSON() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(f.key)
	if err != nil {
		panic(err) // an RSA key always marshals
	}
	b, _ := json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  f.opt.ProjectID,
		"private_key_id":              f.keyID,
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                f.email,
		"client_id":                   "100000000000000000001",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   f.TokenURI(),
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
	}, "", "  ")
	return b
}

// Unregister makes the fake answer 404 UNREGISTERED for token.
func (f *FCM) Unregister(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unregistered[token] = true
}

// Invalidate makes the fake answer 400 INVALID_ARGUMENT about the
// registration token for token.
func (f *FCM) Invalidate(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.invalid[token] = true
}

// FailNext scripts the answers of the send endpoint to the next
// well-formed requests. Failure.Reason is the FcmError errorCode.
func (f *FCM) FailNext(fs ...Failure) { f.sendFails.add(fs) }

// FailAlways makes every well-formed send fail with fl until Heal.
func (f *FCM) FailAlways(fl Failure) { f.sendFails.setAlways(&fl) }

// FailTokenNext scripts the answers of the token endpoint to the next
// well-formed requests. Failure.Reason is the OAuth2 error.
func (f *FCM) FailTokenNext(fs ...Failure) { f.tokenFails.add(fs) }

// Heal forgets every scripted failure of both endpoints.
func (f *FCM) Heal() { f.sendFails.clear(); f.tokenFails.clear() }

// TokenRequests returns a copy of every token request received so far.
func (f *FCM) TokenRequests() []FCMTokenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.tokenRequests)
}

// TokenCount is the number of token requests received so far.
func (f *FCM) TokenCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tokenRequests)
}

func (f *FCM) serveToken(w http.ResponseWriter, r *http.Request) {
	rec := FCMTokenRequest{ContentType: r.Header.Get("Content-Type")}
	status, oauthErr := f.checkToken(r, &rec)
	var retryAfter time.Duration
	if status == http.StatusOK {
		if fl, ok := f.tokenFails.next(); ok {
			if fl.Hang {
				f.recordToken(rec)
				f.hang(r)
				return
			}
			status, oauthErr, retryAfter = fl.Status, fl.Reason, fl.RetryAfter
		}
	}
	rec.Status, rec.Error = status, oauthErr
	w.Header().Set("Content-Type", "application/json")
	if status != http.StatusOK {
		f.recordToken(rec)
		setRetryAfter(w, retryAfter)
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": oauthErr, "error_description": "fake: " + oauthErr})
		return
	}
	access := "ya29.fake-" + randomHex(24)
	f.mu.Lock()
	f.issued[access] = f.opt.Now().Add(f.opt.TokenLifetime)
	f.tokenRequests = append(f.tokenRequests, rec)
	f.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{
		"access_token": access,
		"expires_in":   int(f.opt.TokenLifetime / time.Second),
		"token_type":   "Bearer",
	})
}

func (f *FCM) recordToken(rec FCMTokenRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokenRequests = append(f.tokenRequests, rec)
}

// checkToken validates a token request; it returns 200 or 400 and the
// OAuth2 error.
func (f *FCM) checkToken(r *http.Request, rec *FCMTokenRequest) (int, string) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "invalid_request"
	}
	if mt, _, err := mime.ParseMediaType(rec.ContentType); err != nil || mt != "application/x-www-form-urlencoded" {
		return http.StatusBadRequest, "invalid_request"
	}
	r.Body = http.MaxBytesReader(nil, r.Body, fcmMaxBody)
	if err := r.ParseForm(); err != nil {
		return http.StatusBadRequest, "invalid_request"
	}
	rec.GrantType = r.PostForm.Get("grant_type")
	if rec.GrantType != fcmGrantType {
		return http.StatusBadRequest, "unsupported_grant_type"
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims, func(t *jwt.Token) (any, error) {
		rec.KeyID, _ = t.Header["kid"].(string)
		if rec.KeyID != f.keyID {
			return nil, fmt.Errorf("kid %q", rec.KeyID)
		}
		return &f.key.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithoutClaimsValidation())
	if err != nil || !tok.Valid {
		return http.StatusBadRequest, "invalid_grant"
	}
	rec.Issuer, _ = claims["iss"].(string)
	rec.Scope, _ = claims["scope"].(string)
	rec.Audience, _ = claims["aud"].(string)
	iat, okIat := claims["iat"].(float64)
	exp, okExp := claims["exp"].(float64)
	rec.IssuedAt, rec.Expires = time.Unix(int64(iat), 0), time.Unix(int64(exp), 0)
	now := f.opt.Now()
	switch {
	case rec.Issuer != f.email, rec.Audience != f.TokenURI(), !okIat, !okExp:
		return http.StatusBadRequest, "invalid_grant"
	case !rec.Expires.After(now), rec.Expires.Sub(rec.IssuedAt) > fcmMaxAssertion,
		rec.IssuedAt.After(now.Add(time.Minute)):
		return http.StatusBadRequest, "invalid_grant"
	}
	scopes := strings.Fields(rec.Scope)
	if !slices.Contains(scopes, fcmScope) && !slices.Contains(scopes, fcmScopeCloud) {
		return http.StatusBadRequest, "invalid_scope"
	}
	return http.StatusOK, ""
}

func (f *FCM) serveSend(w http.ResponseWriter, r *http.Request) {
	rec := FCMRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()}
	rec.Body, _ = io.ReadAll(io.LimitReader(r.Body, fcmMaxBody+1))
	status, code, msg := f.checkSend(r, &rec)
	var retryAfter time.Duration
	if status == http.StatusOK {
		if fl, ok := f.sendFails.next(); ok {
			if fl.Hang {
				f.record(rec)
				f.hang(r)
				return
			}
			status, code, msg, retryAfter = fl.Status, fl.Reason, "scripted failure", fl.RetryAfter
		}
	}
	rec.Status, rec.Reason = status, cmpOrStatus(code, status)
	f.record(rec)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	if status == http.StatusOK {
		json.NewEncoder(w).Encode(map[string]string{
			"name": "projects/" + f.opt.ProjectID + "/messages/0:" + randomHex(8),
		})
		return
	}
	setRetryAfter(w, retryAfter)
	w.WriteHeader(status)
	e := map[string]any{"code": status, "message": msg, "status": googleStatus(status)}
	if code != "" {
		e["details"] = []map[string]string{{"@type": fcmErrorType, "errorCode": code}}
	}
	json.NewEncoder(w).Encode(map[string]any{"error": e})
}

// checkSend validates a send request; it returns the status, the
// FcmError errorCode ("" for none) and a message.
func (f *FCM) checkSend(r *http.Request, rec *FCMRequest) (int, string, string) {
	if r.URL.Path != "/v1/projects/"+f.opt.ProjectID+"/messages:send" {
		return http.StatusNotFound, "", "unknown path"
	}
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "", "method not allowed"
	}
	access, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	expiry, issued := f.issued[access]
	f.mu.Unlock()
	if !ok || !issued || !f.opt.Now().Before(expiry) {
		return http.StatusUnauthorized, "", "Request had invalid authentication credentials."
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return http.StatusBadRequest, "INVALID_ARGUMENT", "content type must be application/json"
	}
	if len(rec.Body) > fcmMaxBody {
		return http.StatusBadRequest, "INVALID_ARGUMENT", "request too large"
	}
	var body struct {
		ValidateOnly bool        `json:"validate_only"`
		Message      *FCMMessage `json:"message"`
	}
	d := json.NewDecoder(bytes.NewReader(rec.Body))
	d.DisallowUnknownFields()
	if err := d.Decode(&body); err != nil || d.More() {
		return http.StatusBadRequest, "INVALID_ARGUMENT", fmt.Sprintf("invalid JSON payload: %v", err)
	}
	rec.ValidateOnly, rec.Message = body.ValidateOnly, body.Message
	m := body.Message
	if m == nil {
		return http.StatusBadRequest, "INVALID_ARGUMENT", "message is required"
	}
	targets := 0
	for _, t := range []string{m.Token, m.Topic, m.Condition} {
		if t != "" {
			targets++
		}
	}
	if targets != 1 {
		return http.StatusBadRequest, "INVALID_ARGUMENT", "exactly one of token, topic or condition"
	}
	if msg := checkFCMData(m.Data); msg != "" {
		return http.StatusBadRequest, "INVALID_ARGUMENT", msg
	}
	if len(m.Notification) > 0 {
		return http.StatusBadRequest, "INVALID_ARGUMENT", "hush policy: data-only messages"
	}
	if a := m.Android; a != nil {
		if p := strings.ToLower(a.Priority); p != "" && p != "normal" && p != "high" {
			return http.StatusBadRequest, "INVALID_ARGUMENT", "android.priority"
		}
		if a.TTL != "" {
			sm := fcmTTL.FindStringSubmatch(a.TTL)
			if sm == nil {
				return http.StatusBadRequest, "INVALID_ARGUMENT", "android.ttl"
			}
			if n, err := strconv.ParseInt(sm[1], 10, 64); err != nil || n > fcmMaxTTLSeconds {
				return http.StatusBadRequest, "INVALID_ARGUMENT", "android.ttl too long"
			}
		}
		if msg := checkFCMData(a.Data); msg != "" {
			return http.StatusBadRequest, "INVALID_ARGUMENT", msg
		}
		if len(a.Notification) > 0 {
			return http.StatusBadRequest, "INVALID_ARGUMENT", "hush policy: data-only messages"
		}
	}
	if a := m.APNs; a != nil {
		if p, ok := a.Headers["apns-priority"]; ok && p != "10" && p != "5" && p != "1" {
			return http.StatusBadRequest, "INVALID_ARGUMENT", "apns-priority"
		}
		if a.Payload != nil {
			if _, ok := a.Payload["aps"].(map[string]any); !ok {
				return http.StatusBadRequest, "INVALID_ARGUMENT", "apns.payload needs aps"
			}
		}
	}
	if m.Token != "" {
		f.mu.Lock()
		gone, invalid := f.unregistered[m.Token], f.invalid[m.Token]
		f.mu.Unlock()
		switch {
		case len(m.Token) > 4096 || !fcmTokenSet.MatchString(m.Token) || invalid:
			return http.StatusBadRequest, "INVALID_ARGUMENT", fcmBadToken
		case gone:
			return http.StatusNotFound, "UNREGISTERED", "Requested entity was not found."
		}
	}
	return http.StatusOK, "", ""
}

func checkFCMData(data map[string]string) string {
	size := 0
	for k, v := range data {
		switch lk := strings.ToLower(k); {
		case lk == "from", lk == "notification", lk == "message_type",
			strings.HasPrefix(lk, "google"), strings.HasPrefix(lk, "gcm"):
			return "reserved data key " + strconv.Quote(k)
		}
		size += len(k) + len(v)
	}
	if size > fcmMaxData {
		return "data too large"
	}
	return ""
}

func googleStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusInternalServerError:
		return "INTERNAL"
	}
	return "UNKNOWN"
}

func cmpOrStatus(code string, status int) string {
	if code != "" || status == http.StatusOK {
		return code
	}
	return googleStatus(status)
}
