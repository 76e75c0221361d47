package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HTTP paths.
const (
	PathRPC    = "/api/v1/rpc"
	PathEvents = "/api/v1/events"
	PathHealth = "/api/v1/health"
)

// sseHeartbeat is how often an idle event stream gets a comment line, so
// proxies and clients notice dead connections.
var sseHeartbeat = 15 * time.Second

func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathHealth, s.handleHealth)
	mux.Handle("POST "+PathRPC, s.requireToken(http.HandlerFunc(s.handleRPC)))
	mux.Handle("GET "+PathEvents, s.requireToken(http.HandlerFunc(s.handleEvents)))
	if s.cfg.UI != nil {
		mux.Handle("/", s.cfg.UI)
	}
	return s.checkHost(mux)
}

func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}

// checkHost rejects requests whose Host is not this listener on loopback,
// so a web page on a rebound DNS name cannot reach the API.
func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The API's answers are data, never a page (the web UI sets its
		// own policy over this one).
		w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if !s.hostOK[strings.ToLower(r.Host)] {
			httpError(w, http.StatusForbidden, "invalid Host header; use 127.0.0.1:PORT or localhost:PORT")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireToken checks Authorization: Bearer <token> or X-API-Key against
// api.token and TokensFile (hashes, in constant time), and puts the
// token (its scope) in the request's context.
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("X-API-Key")
		if auth := r.Header.Get("Authorization"); auth != "" {
			scheme, tok, ok := strings.Cut(auth, " ")
			if ok && strings.EqualFold(scheme, "Bearer") {
				got = strings.TrimSpace(tok)
			}
		}
		if got == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hush"`)
			httpError(w, http.StatusUnauthorized, "missing API token; send Authorization: Bearer <contents of api.token>")
			return
		}
		e, ok, err := s.auth.lookup(got)
		if err != nil {
			s.log.Warn("reading API tokens", "err", err)
			httpError(w, http.StatusInternalServerError, "the daemon cannot read its API tokens: "+err.Error())
			return
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hush", error="invalid_token"`)
			httpError(w, http.StatusUnauthorized, "wrong or revoked API token")
			return
		}
		ctx := context.WithValue(WithScope(r.Context(), e.scope), authKey{}, e)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

type authKey struct{}

// forbiddenRequest returns the JSON-RPC error response for a single
// request (not a batch) that a read-only token may not make, or nil:
// such a request gets HTTP 403 with it. In a batch each forbidden
// request gets its error, under 200, as other errors do.
func forbiddenRequest(ctx context.Context, body []byte) *Response {
	if scopeOf(ctx) == ScopeFull {
		return nil
	}
	var req Request
	if json.Unmarshal(body, &req) != nil {
		return nil // not a single request; the handler answers it
	}
	if _, known := methods[req.Method]; !known || ReadOnly(req.Method) {
		return nil
	}
	id := req.ID
	if len(id) == 0 || !validID(id) {
		id = nullID
	}
	return errorResponse(id, forbidden(req.Method))
}

// handleHealth answers 200 {"status":"ok"}, or 503 with the store's
// failure while its commits fail (a full disk): a supervisor sees what
// the daemon cannot do.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	h := s.h.b.Health()
	w.Header().Set("Content-Type", "application/json")
	if h.Status != "ok" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(h)
}

func (s *Server) handleRPC(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(30 * time.Second))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.maxSize)))
	rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			w.Write(encode(errorResponse(nullID, newError(CodeInvalidRequest,
				"invalid request: request is larger than %d bytes", s.maxSize))))
			return
		}
		httpError(w, http.StatusBadRequest, "reading request: "+err.Error())
		return
	}
	if f := forbiddenRequest(r.Context(), body); f != nil {
		w.WriteHeader(http.StatusForbidden)
		w.Write(append(encode(f), '\n'))
		return
	}
	resp := s.h.ServeMessage(r.Context(), body)
	if resp == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Write(append(resp, '\n'))
}

// handleEvents streams events to a token's holder (ServeEvents); the
// stream ends once its token is revoked.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	tok, _ := r.Context().Value(authKey{}).(authEntry)
	s.h.ServeEvents(w, r, func() bool { return s.auth.valid(tok) })
}

// ServeEvents streams events as server-sent events: "id:" is the event's
// Seq and "data:" its JSON (the type is inside, so every event reaches
// EventSource.onmessage). Last-Event-ID (or ?since=N, or ?after=N)
// resumes after that sequence number, from the node's event log. The
// stream ends when alive says false (asked before each event and ping):
// a revoked token, an ended web UI session.
func (h *Handler) ServeEvents(w http.ResponseWriter, r *http.Request, alive func() bool) {
	var after uint64
	last := r.Header.Get("Last-Event-ID")
	for _, q := range []string{"since", "after"} {
		if last == "" {
			last = r.URL.Query().Get(q)
		}
	}
	if last != "" {
		n, err := strconv.ParseUint(strings.TrimSpace(last), 10, 64)
		if err != nil {
			httpError(w, http.StatusBadRequest, "Last-Event-ID (since) must be an event sequence number")
			return
		}
		after = n
	}
	rc := http.NewResponseController(w)
	events, cancel := h.b.Subscribe(after)
	defer cancel()

	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": hush events\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	tick := time.NewTicker(sseHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if !alive() {
				return
			}
			fmt.Fprint(w, ": ping\n\n")
		case ev, ok := <-events:
			if !ok {
				// The node is stopping (a slow client is never dropped:
				// it reads the event log); the client reconnects with
				// Last-Event-ID.
				return
			}
			if !alive() {
				return // revoked: a reconnection gets 401
			}
			data, err := json.Marshal(ev)
			if err != nil {
				h.log.Warn("encoding event", "err", err)
				continue
			}
			fmt.Fprintf(w, "id: %d\ndata: %s\n\n", ev.Seq, data)
		}
		rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
