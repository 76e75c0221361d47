package pushbridge

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hushnet/hush/pushbridge/provider"
)

// Body limits of the HTTP API, checked before anything is decoded.
const (
	maxRegisterBody = 16 << 10
	maxVerifyBody   = 4 << 10
)

var errServerClosed = http.ErrServerClosed

// Subscription is a WebPush subscription as browsers and UnifiedPush
// distributors give it. Registering one stores it as its JSON (the
// WebPush sender's token).
type Subscription struct {
	Endpoint string `json:"endpoint"`
	Keys     struct {
		P256dh string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
}

type registerRequest struct {
	Provider     provider.Kind `json:"provider"`
	Token        string        `json:"token,omitempty"`
	Subscription *struct {
		Subscription
		// ExpirationTime is in browsers' PushSubscription.toJSON(); it is
		// accepted and dropped.
		ExpirationTime *int64 `json:"expirationTime,omitempty"`
	} `json:"subscription,omitempty"`
}

type verifyRequest struct {
	Registration string `json:"registration"`
	Code         string `json:"code"`
}

type unregisterRequest struct {
	WakeHandle string `json:"wake_handle"`
}

type wakeRequest struct {
	Handles []string `json:"handles"`
	Urgency string   `json:"urgency,omitempty"`
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

var errUnauthorized = errors.New("pushbridge: missing or invalid relay credential")

// Handler returns the HTTP API (docs/PUSH.md):
//
//	POST /v1/register   {"provider", "token" | "subscription"} → {"registration"}
//	POST /v1/verify     {"registration", "code"}               → {"wake_handle"}
//	POST /v1/unregister {"wake_handle"}                         → {}
//	POST /v1/wake       {"handles": [...], "urgency"}           → {"rejected": [...]}
//
// /v1/wake needs "Authorization: Bearer <relay token>". Errors are
// {"error", "code"} with a 4xx or 5xx status; a refused request changes
// nothing.
func (b *Bridge) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/register", b.handleRegister)
	mux.HandleFunc("POST /v1/verify", b.handleVerify)
	mux.HandleFunc("POST /v1/unregister", b.handleUnregister)
	mux.HandleFunc("POST /v1/wake", b.handleWake)
	return mux
}

func (b *Bridge) server() *http.Server {
	return &http.Server{
		Handler:           b.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      time.Duration(b.limits.SendTimeout) + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
}

func (b *Bridge) handleRegister(w http.ResponseWriter, r *http.Request) {
	var req registerRequest
	if !decode(w, r, maxRegisterBody, &req) {
		return
	}
	token := req.Token
	if req.Subscription != nil {
		if req.Provider != provider.WebPush || token != "" {
			writeError(w, http.StatusBadRequest, "bad_request", "subscription is for provider webpush, instead of token")
			return
		}
		j, _ := json.Marshal(req.Subscription.Subscription)
		token = string(j)
	}
	id, err := b.Register(context.WithoutCancel(r.Context()), req.Provider, token)
	if err != nil {
		b.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"registration": id})
}

func (b *Bridge) handleVerify(w http.ResponseWriter, r *http.Request) {
	var req verifyRequest
	if !decode(w, r, maxVerifyBody, &req) {
		return
	}
	h, err := b.Verify(req.Registration, req.Code)
	if err != nil {
		b.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"wake_handle": h})
}

func (b *Bridge) handleUnregister(w http.ResponseWriter, r *http.Request) {
	var req unregisterRequest
	if !decode(w, r, MaxHandleSize+1024, &req) {
		return
	}
	if err := b.Unregister(req.WakeHandle); err != nil {
		b.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (b *Bridge) handleWake(w http.ResponseWriter, r *http.Request) {
	relay, ok := b.authenticate(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hush-pushbridge"`)
		b.writeErr(w, errUnauthorized)
		return
	}
	var req wakeRequest
	limit := int64(b.limits.MaxHandlesPerWake)*(MaxHandleSize+4) + 1024
	if !decode(w, r, limit, &req) {
		return
	}
	urgency := provider.High
	switch req.Urgency {
	case "", "high":
	case "normal":
		urgency = provider.Normal
	default:
		writeError(w, http.StatusBadRequest, "bad_request", `urgency must be "high" or "normal"`)
		return
	}
	rejected, err := b.Wake(context.WithoutCancel(r.Context()), req.Handles, urgency)
	if err != nil {
		b.writeErr(w, err)
		return
	}
	b.log.Debug("wake", "relay", relay, "handles", len(req.Handles), "rejected", len(rejected))
	if rejected == nil {
		rejected = []string{}
	}
	writeJSON(w, http.StatusOK, map[string][]string{"rejected": rejected})
}

// authenticate checks the bearer token against every configured relay in
// constant time and returns the relay's name.
func (b *Bridge) authenticate(r *http.Request) (string, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "", false
	}
	sum := sha256.Sum256([]byte(tok))
	name, found := "", 0
	for _, c := range b.relays {
		if subtle.ConstantTimeCompare(sum[:], c.hash[:]) == 1 {
			name, found = c.name, 1
		}
	}
	return name, found == 1
}

// decode reads one JSON object of at most limit bytes into v, answering
// 413 or 400 itself when it cannot.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	if r.ContentLength > limit {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", "request body too large")
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", "request body too large")
		} else {
			writeError(w, http.StatusBadRequest, "bad_request", "cannot read request body")
		}
		return false
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil || dec.More() {
		writeError(w, http.StatusBadRequest, "bad_request", "request body is not the expected JSON object")
		return false
	}
	return true
}

// writeErr maps the bridge's errors to statuses. The message is the
// error's own text, which never holds a token the caller did not send.
func (b *Bridge) writeErr(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, "internal"
	switch {
	case errors.Is(err, errUnauthorized):
		status, code = http.StatusUnauthorized, "unauthorized"
	case errors.Is(err, ErrUnknownProvider):
		status, code = http.StatusBadRequest, "unknown_provider"
	case errors.Is(err, ErrBadToken):
		status, code = http.StatusBadRequest, "bad_token"
	case errors.Is(err, ErrBadHandle):
		status, code = http.StatusBadRequest, "bad_handle"
	case errors.Is(err, ErrTokenRejected):
		status, code = http.StatusUnprocessableEntity, "token_rejected"
	case errors.Is(err, ErrWrongCode):
		status, code = http.StatusForbidden, "wrong_code"
	case errors.Is(err, ErrUnknownRegistration):
		status, code = http.StatusNotFound, "unknown_registration"
	case errors.Is(err, ErrCodeUsed):
		status, code = http.StatusConflict, "code_used"
	case errors.Is(err, ErrTooManyHandles):
		status, code = http.StatusRequestEntityTooLarge, "too_many_handles"
	case errors.Is(err, ErrRateLimited):
		status, code = http.StatusTooManyRequests, "rate_limited"
		w.Header().Set("Retry-After", strconv.Itoa(60))
	case errors.Is(err, ErrUnavailable):
		status, code = http.StatusServiceUnavailable, "unavailable"
		w.Header().Set("Retry-After", strconv.Itoa(60))
	}
	msg := err.Error()
	if status == http.StatusInternalServerError {
		b.log.Error("request failed", "err", err)
		msg = "internal error"
	}
	writeError(w, status, code, msg)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apiError{Error: msg, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
