package fake

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
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

// Limits of the WebPush fake.
const (
	webPushMaxBody   = 4096
	webPushMaxVAPID  = 24 * time.Hour
	webPushHeaderLen = 16 + 4 + 1 + 65 // salt, rs, idlen, keyid
	webPushTagLen    = 16
)

var (
	webPushUrgencies = []string{"very-low", "low", "normal", "high"}
	webPushTopic     = regexp.MustCompile(`^[A-Za-z0-9_\-]{1,32}$`)
	b64              = base64.RawURLEncoding
)

// WebPushOptions configures a WebPush fake. The zero value works.
type WebPushOptions struct {
	// ApplicationServerKey is the VAPID public key (65-byte uncompressed
	// P-256 point) the subscriptions were made with; a request whose k
	// differs is refused. Nil accepts any valid key.
	ApplicationServerKey []byte
	// Now is the fake's clock for the VAPID expiry; default time.Now.
	Now func() time.Time
}

// VAPID is the decoded VAPID authorization of a request.
type VAPID struct {
	Raw      string // the JWT
	Key      []byte // k, the application server's public key
	Audience string
	Subject  string
	Expires  time.Time
}

// WebPushRequest is one request as the WebPush fake received, decrypted
// and answered it.
type WebPushRequest struct {
	Method     string
	Path       string
	Header     http.Header
	TTL        int
	Urgency    string
	Topic      string
	VAPID      VAPID
	Body       []byte
	RecordSize uint32 // rs from the aes128gcm header
	Plaintext  []byte // the decrypted push message, padding removed
	Status     int
	Reason     string    // why the fake refused, "" on 201
	Received   time.Time // when it arrived, by the fake's clock
}

// WebPush is a fake push service (RFC 8030) together with the user
// agents subscribed to it: it holds each subscription's key pair and
// auth secret, so it can decrypt what it receives.
//
// It checks: POST to a known subscription (404 unknown, 410 expired); a
// TTL header, an integer ≥ 0 (400); Urgency in the RFC set; Topic of at
// most 32 base64url characters; "Authorization: vapid t=<JWT>, k=<key>"
// with k a P-256 point (and the pinned application server key when set),
// the JWT ES256 under k with aud = this service's origin, exp in (now,
// now + 24 h] and sub a mailto: or https: URI (403 otherwise);
// Content-Encoding aes128gcm; a body of at most 4096 bytes (413); and
// that the body decrypts per RFC 8291 as a single record ending in the
// 0x02 delimiter and zero padding (400). It answers 201 with Location
// and the TTL echoed.
type WebPush struct {
	*server
	requestLog[WebPushRequest]
	opt   WebPushOptions
	fails script

	// mu guards the fields below it.
	mu      sync.Mutex
	subs    map[string]webPushSubscription // by path
	expired map[string]bool
}

type webPushSubscription struct {
	key  *ecdh.PrivateKey
	auth []byte
}

// NewVAPIDKeys makes a VAPID key pair: the private scalar and the
// uncompressed public point, both base64url without padding (the form
// webpush-go and browsers use).
func NewVAPIDKeys() (privateKey, publicKey string, err error) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	return b64.EncodeToString(k.Bytes()), b64.EncodeToString(k.PublicKey().Bytes()), nil
}

// StartWebPush starts a WebPush fake. Close it when done.
func StartWebPush(opt WebPushOptions) (*WebPush, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	f := &WebPush{
		opt:     opt,
		subs:    make(map[string]webPushSubscription),
		expired: make(map[string]bool),
	}
	f.server = startServer(http.HandlerFunc(f.serve))
	return f, nil
}

// Subscribe makes a new subscription at the fake, as a browser's
// PushSubscription.toJSON() would give it: the token a WebPush sender
// takes.
func (f *WebPush) Subscribe() (string, error) {
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	path := "/push/" + randomHex(16)
	f.mu.Lock()
	f.subs[path] = webPushSubscription{key: key, auth: auth}
	f.mu.Unlock()
	b, err := json.Marshal(map[string]any{
		"endpoint": f.URL() + path,
		"keys":     map[string]string{"p256dh": b64.EncodeToString(key.PublicKey().Bytes()), "auth": b64.EncodeToString(auth)},
	})
	return string(b), err
}

// Expire makes the fake answer 410 Gone for a subscription, given as
// the JSON Subscribe returned or as its endpoint.
func (f *WebPush) Expire(subscription string) {
	endpoint := subscription
	var s struct{ Endpoint string }
	if json.Unmarshal([]byte(subscription), &s) == nil {
		endpoint = s.Endpoint
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expired[strings.TrimPrefix(endpoint, f.URL())] = true
}

// FailNext scripts the answers to the next well-formed requests.
// Failure.Reason is sent as the body.
func (f *WebPush) FailNext(fs ...Failure) { f.fails.add(fs) }

// FailAlways makes every well-formed request fail with fl until Heal.
func (f *WebPush) FailAlways(fl Failure) { f.fails.setAlways(&fl) }

// Heal forgets every scripted failure.
func (f *WebPush) Heal() { f.fails.clear() }

func (f *WebPush) serve(w http.ResponseWriter, r *http.Request) {
	rec := WebPushRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Received: f.opt.Now()}
	rec.Body, _ = io.ReadAll(io.LimitReader(r.Body, webPushMaxBody+1))
	status, reason := f.check(r, &rec)
	var retryAfter time.Duration
	if status == http.StatusCreated {
		if fl, ok := f.fails.next(); ok {
			if fl.Hang {
				f.record(rec)
				f.hang(r)
				return
			}
			status, reason, retryAfter = fl.Status, fl.Reason, fl.RetryAfter
		}
	}
	rec.Status, rec.Reason = status, reason
	f.record(rec)
	if status != http.StatusCreated {
		setRetryAfter(w, retryAfter)
		http.Error(w, reason, status)
		return
	}
	w.Header().Set("Location", f.URL()+"/message/"+randomHex(12))
	w.Header().Set("TTL", strconv.Itoa(rec.TTL))
	w.WriteHeader(http.StatusCreated)
}

// check validates a request and decrypts its body; it returns 201 when
// the request is well formed, else the status and a reason.
func (f *WebPush) check(r *http.Request, rec *WebPushRequest) (int, string) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "method not allowed"
	}
	f.mu.Lock()
	sub, known := f.subs[r.URL.Path]
	expired := f.expired[r.URL.Path]
	f.mu.Unlock()
	switch {
	case expired:
		return http.StatusGone, "subscription expired"
	case !known:
		return http.StatusNotFound, "no such subscription"
	}
	ttl, err := strconv.Atoi(r.Header.Get("TTL"))
	if err != nil || ttl < 0 {
		return http.StatusBadRequest, "TTL header missing or invalid"
	}
	rec.TTL = ttl
	rec.Urgency = r.Header.Get("Urgency")
	if rec.Urgency != "" && !slices.Contains(webPushUrgencies, rec.Urgency) {
		return http.StatusBadRequest, "invalid Urgency"
	}
	rec.Topic = r.Header.Get("Topic")
	if _, ok := r.Header["Topic"]; ok && !webPushTopic.MatchString(rec.Topic) {
		return http.StatusBadRequest, "invalid Topic"
	}
	if reason := f.checkVAPID(r.Header.Get("Authorization"), rec); reason != "" {
		return http.StatusForbidden, reason
	}
	if r.Header.Get("Content-Encoding") != "aes128gcm" {
		return http.StatusBadRequest, "Content-Encoding must be aes128gcm"
	}
	if len(rec.Body) > webPushMaxBody {
		return http.StatusRequestEntityTooLarge, "payload too large"
	}
	plain, rs, err := DecryptAES128GCM(rec.Body, sub.key, sub.auth)
	rec.RecordSize = rs
	if err != nil {
		return http.StatusBadRequest, "cannot decrypt: " + err.Error()
	}
	rec.Plaintext = plain
	return http.StatusCreated, ""
}

// checkVAPID verifies an RFC 8292 authorization; it returns "" when it
// is valid, else a reason.
func (f *WebPush) checkVAPID(auth string, rec *WebPushRequest) string {
	params, ok := strings.CutPrefix(auth, "vapid ")
	if !ok {
		return "missing vapid authorization"
	}
	var t, k string
	for p := range strings.SplitSeq(params, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch name {
		case "t":
			t = value
		case "k":
			k = value
		}
	}
	key, err := b64.DecodeString(k)
	if err != nil {
		return "vapid k is not base64url"
	}
	rec.VAPID.Raw, rec.VAPID.Key = t, key
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), key)
	if err != nil {
		return "vapid k is not a P-256 point"
	}
	if f.opt.ApplicationServerKey != nil && !bytes.Equal(key, f.opt.ApplicationServerKey) {
		return "vapid k is not the subscription's application server key"
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(t, claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
	if err != nil || !tok.Valid {
		return "vapid JWT does not verify"
	}
	rec.VAPID.Audience, _ = claims["aud"].(string)
	rec.VAPID.Subject, _ = claims["sub"].(string)
	exp, okExp := claims["exp"].(float64)
	rec.VAPID.Expires = time.Unix(int64(exp), 0)
	now := f.opt.Now()
	switch {
	case rec.VAPID.Audience != f.URL():
		return "vapid aud is not this push service's origin"
	case !okExp || !rec.VAPID.Expires.After(now) || rec.VAPID.Expires.After(now.Add(webPushMaxVAPID)):
		return "vapid exp must be within 24 hours"
	case !strings.HasPrefix(rec.VAPID.Subject, "mailto:") && !strings.HasPrefix(rec.VAPID.Subject, "https:"):
		return "vapid sub must be a mailto: or https: URI"
	}
	return ""
}

// DecryptAES128GCM opens an RFC 8291 push message body (a single
// aes128gcm record) with the user agent's key and auth secret. It
// returns the message with its padding removed, and the record size the
// sender declared.
func DecryptAES128GCM(body []byte, ua *ecdh.PrivateKey, authSecret []byte) ([]byte, uint32, error) {
	if len(body) < webPushHeaderLen+webPushTagLen+1 {
		return nil, 0, errors.New("body too short")
	}
	salt := body[:16]
	rs := binary.BigEndian.Uint32(body[16:20])
	if body[20] != 65 {
		return nil, rs, fmt.Errorf("idlen %d, want 65", body[20])
	}
	keyID := body[21:webPushHeaderLen]
	ciphertext := body[webPushHeaderLen:]
	if rs < webPushTagLen+2 || uint64(len(ciphertext)) > uint64(rs) {
		return nil, rs, fmt.Errorf("not a single record of size %d", rs)
	}
	as, err := ecdh.P256().NewPublicKey(keyID)
	if err != nil {
		return nil, rs, errors.New("keyid is not a P-256 point")
	}
	shared, err := ua.ECDH(as)
	if err != nil {
		return nil, rs, err
	}
	info := "WebPush: info\x00" + string(ua.PublicKey().Bytes()) + string(keyID)
	ikm, err := hkdf.Key(sha256.New, shared, authSecret, info, 32)
	if err != nil {
		return nil, rs, err
	}
	cek, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, rs, err
	}
	nonce, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, rs, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, rs, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, rs, err
	}
	padded, err := gcm.Open(nil, nonce, ciphertext, nil)
	if err != nil {
		return nil, rs, errors.New("authentication failed")
	}
	end := len(padded) - 1
	for end >= 0 && padded[end] == 0 {
		end--
	}
	if end < 0 || padded[end] != 0x02 {
		return nil, rs, errors.New("no last-record delimiter")
	}
	return padded[:end], rs, nil
}
