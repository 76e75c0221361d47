package fake

import (
	"bytes"
	"cmp"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults of APNsOptions.
const (
	DefaultAPNsTeamID = "HUSHTEAM01"
	DefaultAPNsKeyID  = "HUSHKEY001"
	DefaultAPNsTopic  = "org.hush.app"
)

// The APNs limits the fake enforces.
const (
	apnsMaxPayload     = 4096
	apnsMaxCollapseID  = 64
	apnsTokenLifetime  = time.Hour
	apnsTokenFuture    = time.Minute
	apnsMinTokenChange = 20 * time.Minute
)

var (
	apnsPushTypes = []string{"alert", "background", "voip", "location", "complication",
		"fileprovider", "mdm", "liveactivity", "pushtotalk", "widgets"}
	apnsDeviceToken = regexp.MustCompile(`^[0-9a-fA-F]+$`)
	lowerUUID       = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	// apnsPayloadKeys is hush's payload policy: a wake-up carries the aps
	// dictionary and at most one opaque field.
	apnsPayloadKeys = []string{"aps", "wake"}
)

// APNsOptions configures an APNs fake. The zero value works.
type APNsOptions struct {
	TeamID string // the JWT's iss; default DefaultAPNsTeamID
	KeyID  string // the JWT's kid; default DefaultAPNsKeyID
	Topic  string // the app's bundle ID; default DefaultAPNsTopic
	// PublicKey verifies the provider JWTs. Nil: the fake makes a key
	// pair and KeyPEM returns the private half as a .p8 file.
	PublicKey *ecdsa.PublicKey
	// Now is the fake's clock for JWT freshness; default time.Now.
	Now func() time.Time
}

// APNsJWT is the decoded provider token of a request.
type APNsJWT struct {
	Raw      string
	KeyID    string
	Issuer   string
	IssuedAt time.Time
}

// APNsRequest is one request as the APNs fake received and answered it.
type APNsRequest struct {
	Proto   string
	Method  string
	Path    string
	Token   string // the device token from the path
	Header  http.Header
	JWT     APNsJWT
	Body    []byte
	Payload map[string]any // Body decoded, when it is JSON
	Status  int            // what the fake answered
	Reason  string         // the reason it answered with, "" on 200
}

// APNs is a fake of Apple's HTTP/2 provider API (POST /3/device/<token>)
// with token authentication. It checks, in order: HTTP/2; POST;
// the path and the token's syntax; no repeated header; a bearer ES256
// JWT signed by the key, with the key ID as kid, the team as iss and an
// iat at most an hour old and not in the future; that the JWT is not
// changed within 20 minutes of the previous change (unless the fake just
// said ExpiredProviderToken); apns-topic equal to the bundle ID (or its
// .voip); apns-push-type, apns-priority (background needs 5),
// apns-expiration, apns-collapse-id (≤ 64 bytes) and apns-id; a JSON
// body of 1 to 4096 bytes with an aps dictionary matching the push type
// (background: content-available 1 and no alert, sound or badge; alert:
// an alert) and no top-level key but aps and wake (hush's payload
// policy). Then it answers 410 Unregistered for an unregistered token, a
// scripted failure, or 200. Every answer carries an apns-id.
type APNs struct {
	*server
	requestLog[APNsRequest]
	opt    APNsOptions
	keyPEM []byte
	fails  script

	// mu guards the fields below it.
	mu           sync.Mutex
	unregistered map[string]time.Time
	lastJWT      string
	lastChange   time.Time
	allowChange  bool
}

// NewAPNsKey makes an APNs provider key: the private key as a .p8 file
// (PEM, PKCS #8) and its public half.
func NewAPNsKey() (p8 []byte, pub *ecdsa.PublicKey, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), &k.PublicKey, nil
}

// StartAPNs starts an APNs fake. Close it when done.
func StartAPNs(opt APNsOptions) (*APNs, error) {
	if opt.TeamID == "" {
		opt.TeamID = DefaultAPNsTeamID
	}
	if opt.KeyID == "" {
		opt.KeyID = DefaultAPNsKeyID
	}
	if opt.Topic == "" {
		opt.Topic = DefaultAPNsTopic
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	f := &APNs{opt: opt, unregistered: make(map[string]time.Time)}
	if opt.PublicKey == nil {
		p8, pub, err := NewAPNsKey()
		if err != nil {
			return nil, fmt.Errorf("fake apns: key: %w", err)
		}
		f.keyPEM, f.opt.PublicKey = p8, pub
	}
	f.server = startServer(http.HandlerFunc(f.serve))
	return f, nil
}

// KeyPEM is the .p8 provider key the fake made, nil when
// APNsOptions.PublicKey was given.
func (f *APNs) KeyPEM() []byte { return f.keyPEM }

// TeamID, KeyID and Topic are what the fake expects.
func (f *APNs) TeamID() string { return f.opt.TeamID }

// KeyID is the kid the fake expects.
func (f *APNs) KeyID() string { return f.opt.KeyID }

// Topic is the apns-topic the fake expects.
func (f *APNs) Topic() string { return f.opt.Topic }

// Unregister makes the fake answer 410 Unregistered for token.
func (f *APNs) Unregister(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unregistered[strings.ToLower(token)] = f.opt.Now()
}

// FailNext scripts the answers to the next well-formed requests, one each.
func (f *APNs) FailNext(fs ...Failure) { f.fails.add(fs) }

// FailAlways makes every well-formed request fail with fl until Heal.
func (f *APNs) FailAlways(fl Failure) { f.fails.setAlways(&fl) }

// Heal forgets every scripted failure.
func (f *APNs) Heal() { f.fails.clear() }

func (f *APNs) serve(w http.ResponseWriter, r *http.Request) {
	rec := APNsRequest{Proto: r.Proto, Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()}
	rec.Body, _ = io.ReadAll(io.LimitReader(r.Body, apnsMaxPayload+1))
	status, reason := f.check(r, &rec)
	var retryAfter time.Duration
	if status == http.StatusOK {
		if fl, ok := f.fails.next(); ok {
			if fl.Hang {
				f.record(rec)
				f.hang(r)
				return
			}
			status, reason, retryAfter = fl.Status, fl.Reason, fl.RetryAfter
			if reason == "ExpiredProviderToken" {
				f.mu.Lock()
				f.allowChange = true
				f.mu.Unlock()
			}
		}
	}
	rec.Status, rec.Reason = status, reason
	f.record(rec)

	w.Header().Set("apns-id", cmp.Or(r.Header.Get("apns-id"), uuid()))
	if status == http.StatusOK {
		w.WriteHeader(status)
		return
	}
	setRetryAfter(w, retryAfter)
	body := map[string]any{"reason": reason}
	if status == http.StatusGone {
		f.mu.Lock()
		at, ok := f.unregistered[strings.ToLower(rec.Token)]
		f.mu.Unlock()
		if !ok {
			at = f.opt.Now()
		}
		body["timestamp"] = at.UnixMilli()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// check validates a request in APNs' order and returns the status and
// reason to answer (200 and "" when it is well formed).
func (f *APNs) check(r *http.Request, rec *APNsRequest) (int, string) {
	if r.ProtoMajor != 2 {
		return http.StatusBadRequest, "HTTP2Required"
	}
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "MethodNotAllowed"
	}
	token, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
	if !ok || strings.Contains(token, "/") {
		return http.StatusNotFound, "BadPath"
	}
	rec.Token = token
	if token == "" {
		return http.StatusBadRequest, "MissingDeviceToken"
	}
	if len(token) < 64 || len(token)%2 != 0 || !apnsDeviceToken.MatchString(token) {
		return http.StatusBadRequest, "BadDeviceToken"
	}
	for _, v := range r.Header {
		if len(v) > 1 {
			return http.StatusBadRequest, "DuplicateHeaders"
		}
	}
	if status, reason := f.checkJWT(r.Header.Get("authorization"), rec); status != http.StatusOK {
		return status, reason
	}

	topic := r.Header.Get("apns-topic")
	if topic == "" {
		return http.StatusBadRequest, "MissingTopic"
	}
	pushType := r.Header.Get("apns-push-type")
	if !slices.Contains(apnsPushTypes, pushType) {
		return http.StatusBadRequest, "InvalidPushType"
	}
	wantTopic := f.opt.Topic
	if pushType == "voip" {
		wantTopic += ".voip"
	}
	if topic != wantTopic {
		return http.StatusBadRequest, "DeviceTokenNotForTopic"
	}
	switch p := r.Header.Get("apns-priority"); {
	case p != "" && p != "10" && p != "5" && p != "1":
		return http.StatusBadRequest, "BadPriority"
	case pushType == "background" && p != "5":
		return http.StatusBadRequest, "BadPriority"
	}
	if e := r.Header.Get("apns-expiration"); e != "" {
		if n, err := strconv.ParseInt(e, 10, 64); err != nil || n < 0 {
			return http.StatusBadRequest, "BadExpirationDate"
		}
	}
	if len(r.Header.Get("apns-collapse-id")) > apnsMaxCollapseID {
		return http.StatusBadRequest, "BadCollapseId"
	}
	if id := r.Header.Get("apns-id"); id != "" && !lowerUUID.MatchString(id) {
		return http.StatusBadRequest, "BadMessageId"
	}

	if len(rec.Body) == 0 {
		return http.StatusBadRequest, "PayloadEmpty"
	}
	if len(rec.Body) > apnsMaxPayload {
		return http.StatusRequestEntityTooLarge, "PayloadTooLarge"
	}
	if reason := checkAPNsPayload(rec.Body, pushType, rec); reason != "" {
		return http.StatusBadRequest, reason
	}

	f.mu.Lock()
	_, gone := f.unregistered[strings.ToLower(token)]
	f.mu.Unlock()
	if gone {
		return http.StatusGone, "Unregistered"
	}
	return http.StatusOK, ""
}

// checkJWT verifies the provider token and the refresh rules.
func (f *APNs) checkJWT(auth string, rec *APNsRequest) (int, string) {
	if auth == "" {
		return http.StatusForbidden, "MissingProviderToken"
	}
	raw, ok := strings.CutPrefix(auth, "bearer ")
	if !ok {
		return http.StatusForbidden, "InvalidProviderToken"
	}
	rec.JWT.Raw = raw
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		rec.JWT.KeyID = kid
		if kid != f.opt.KeyID {
			return nil, fmt.Errorf("kid %q", kid)
		}
		return f.opt.PublicKey, nil
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
	if err != nil || !tok.Valid {
		return http.StatusForbidden, "InvalidProviderToken"
	}
	rec.JWT.Issuer, _ = claims["iss"].(string)
	iat, ok := claims["iat"].(float64)
	if rec.JWT.Issuer != f.opt.TeamID || !ok {
		return http.StatusForbidden, "InvalidProviderToken"
	}
	rec.JWT.IssuedAt = time.Unix(int64(iat), 0)
	now := f.opt.Now()
	if rec.JWT.IssuedAt.After(now.Add(apnsTokenFuture)) {
		return http.StatusForbidden, "InvalidProviderToken"
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if now.Sub(rec.JWT.IssuedAt) > apnsTokenLifetime {
		f.allowChange = true
		return http.StatusForbidden, "ExpiredProviderToken"
	}
	if raw != f.lastJWT {
		if f.lastJWT != "" && !f.allowChange && now.Sub(f.lastChange) < apnsMinTokenChange {
			return http.StatusTooManyRequests, "TooManyProviderTokenUpdates"
		}
		f.lastJWT, f.lastChange, f.allowChange = raw, now, false
	}
	return http.StatusOK, ""
}

// checkAPNsPayload checks the body against the push type and hush's
// payload policy; it returns a reason, or "" when the body is fine.
func checkAPNsPayload(body []byte, pushType string, rec *APNsRequest) string {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var p map[string]any
	if err := d.Decode(&p); err != nil || d.More() {
		return "BadPayload"
	}
	rec.Payload = p
	aps, ok := p["aps"].(map[string]any)
	if !ok {
		return "BadPayload"
	}
	for k := range p {
		if !slices.Contains(apnsPayloadKeys, k) {
			return "PayloadPolicy"
		}
	}
	switch pushType {
	case "background":
		if n, _ := aps["content-available"].(json.Number); n != "1" {
			return "BadPayload"
		}
		for _, k := range []string{"alert", "sound", "badge"} {
			if _, ok := aps[k]; ok {
				return "BadPayload"
			}
		}
	case "alert":
		if _, ok := aps["alert"]; !ok {
			return "BadPayload"
		}
	}
	return ""
}
