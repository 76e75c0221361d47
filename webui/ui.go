package webui

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitypes"
)

//go:embed assets
var assets embed.FS

// Paths the UI serves (everything outside /api/v1/).
const (
	PathLogin  = "/ui/login"
	PathRPC    = "/ui/rpc"
	PathEvents = "/ui/events"
	PathCSRF   = "/ui/session"
	PathLogout = "/ui/logout"
	PathFile   = "/ui/file"
	PathUpload = "/ui/upload"
	PathQR     = "/ui/qr"
)

// CSRFHeader carries the session's CSRF token on every POST.
const CSRFHeader = "X-CSRF-Token"

// CSP is the Content-Security-Policy of every response: nothing but
// this origin, no inline script or style, no framing.
const CSP = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// Files streams a file's plaintext; *node.Node has it.
type Files interface {
	CopyFile(ctx context.Context, id string, w io.Writer) error
}

// Config configures a UI.
type Config struct {
	// API is the method table the browser calls (api.NewHandler of the
	// daemon's node). Required.
	API *api.Handler
	// Files serves downloads and thumbnails; required.
	Files Files
	// MaxUpload caps one uploaded file in bytes (it is held in memory
	// until sealed); default DefaultMaxUpload.
	MaxUpload int64
	// Logger receives failures (never content or secrets); discarded
	// by default.
	Logger *slog.Logger
	// Now is the clock of logins and sessions; default time.Now.
	Now func() time.Time
}

// DefaultMaxUpload caps an upload: the file is held in memory.
const DefaultMaxUpload = 256 << 20

// UI serves the web interface; it implements api.UI.
type UI struct {
	cfg  Config
	log  *slog.Logger
	s    *sessions
	mux  *http.ServeMux
	root fs.FS
}

var _ api.UI = (*UI)(nil)

// New returns a UI for cfg.
func New(cfg Config) *UI {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = DefaultMaxUpload
	}
	root, _ := fs.Sub(assets, "assets")
	u := &UI{cfg: cfg, log: cfg.Logger, s: newSessions(cfg.Now), root: root}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", u.static("index.html"))
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.HandlerFunc(u.serveAsset)))
	mux.HandleFunc("GET "+PathLogin, u.handleLogin)
	mux.Handle("GET "+PathCSRF, u.session(u.handleCSRF))
	mux.Handle("POST "+PathLogout, u.write(u.handleLogout))
	mux.Handle("POST "+PathRPC, u.write(u.handleRPC))
	mux.Handle("GET "+PathEvents, u.session(u.handleEvents))
	mux.Handle("GET "+PathFile, u.session(u.handleFile))
	mux.Handle("POST "+PathUpload, u.write(u.handleUpload))
	mux.Handle("GET "+PathQR, u.session(u.handleQR))
	u.mux = mux
	return u
}

// NewLogin implements api.UI: a one-time login URL under base.
func (u *UI) NewLogin(base string) (apitypes.UILogin, error) {
	tok, exp := u.s.newLogin()
	return apitypes.UILogin{URL: base + PathLogin + "?token=" + url.QueryEscape(tok), Expires: exp.UTC()}, nil
}

// ServeHTTP sets the security headers on every response, refuses
// cross-origin requests, and serves the UI.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host {
		httpError(w, http.StatusForbidden, "cross-origin request refused")
		return
	}
	if sf := r.Header.Get("Sec-Fetch-Site"); sf == "cross-site" || sf == "same-site" {
		httpError(w, http.StatusForbidden, "cross-site request refused")
		return
	}
	u.mux.ServeHTTP(w, r)
}

func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}

func (u *UI) static(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, u.root, name)
	}
}

func (u *UI) serveAsset(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Path
	if name == "" || strings.HasSuffix(name, "/") {
		http.NotFound(w, r)
		return
	}
	if strings.HasSuffix(name, ".js") {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	}
	http.ServeFileFS(w, r, u.root, name)
}

// cookieName is the session cookie of the listener at host: browsers
// send a cookie to every port of 127.0.0.1, so two daemons' sessions
// must not share a name.
func cookieName(host string) string {
	port := host[strings.LastIndexByte(host, ':')+1:]
	return "hush_session_" + port
}

// handleLogin spends a login token and sets the session cookie.
func (u *UI) handleLogin(w http.ResponseWriter, r *http.Request) {
	id, ok := u.s.login(r.URL.Query().Get("token"))
	if !ok {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, "This login link was used already or has expired. Run `hush ui` for a new one.\n")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName(r.Host), Value: id, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

type sessionKey struct{}

type sessionCtx struct {
	id string
	session
}

// session lets a request through with a live session cookie only.
func (u *UI) session(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(cookieName(r.Host))
		if err != nil {
			httpError(w, http.StatusUnauthorized, "not logged in: run `hush ui`")
			return
		}
		s, ok := u.s.get(c.Value)
		if !ok {
			httpError(w, http.StatusUnauthorized, "the session ended: run `hush ui`")
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sessionCtx{id: c.Value, session: s})))
	})
}

// write is session plus the CSRF header, for everything that can
// change something.
func (u *UI) write(next http.HandlerFunc) http.Handler {
	return u.session(func(w http.ResponseWriter, r *http.Request) {
		s := r.Context().Value(sessionKey{}).(sessionCtx)
		got := r.Header.Get(CSRFHeader)
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
			httpError(w, http.StatusForbidden, "missing or wrong CSRF token")
			return
		}
		next(w, r)
	})
}

func sessionOf(r *http.Request) sessionCtx { return r.Context().Value(sessionKey{}).(sessionCtx) }

// handleCSRF gives the page its session's CSRF token (readable by this
// origin only: there are no CORS headers).
func (u *UI) handleCSRF(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(struct {
		CSRF string `json:"csrf"`
	}{sessionOf(r).csrf})
}

func (u *UI) handleLogout(w http.ResponseWriter, r *http.Request) {
	u.s.logout(sessionOf(r).id)
	http.SetCookie(w, &http.Cookie{Name: cookieName(r.Host), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// handleRPC runs a JSON-RPC request (or batch) on the API's method
// table, with a full scope.
func (u *UI) handleRPC(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		httpError(w, http.StatusUnsupportedMediaType, "the body must be application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, api.DefaultMaxRequestSize))
	if err != nil {
		httpError(w, http.StatusRequestEntityTooLarge, "reading request: "+err.Error())
		return
	}
	resp := u.cfg.API.ServeMessage(api.WithScope(r.Context(), api.ScopeFull), body)
	w.Header().Set("Content-Type", "application/json")
	if resp == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Write(append(resp, '\n'))
}

// handleEvents is the API's event stream, for as long as the session
// lives.
func (u *UI) handleEvents(w http.ResponseWriter, r *http.Request) {
	id := sessionOf(r).id
	u.cfg.API.ServeEvents(w, r, func() bool { return u.s.alive(id) })
}

// call runs one method for the UI's own endpoints.
func (u *UI) call(ctx context.Context, method string, params any, out any) *api.Error {
	raw, err := json.Marshal(params)
	if err != nil {
		return &api.Error{Code: api.CodeInternal, Message: err.Error()}
	}
	res, e := u.cfg.API.Call(api.WithScope(ctx, api.ScopeFull), method, raw)
	if e != nil {
		return e
	}
	b, err := json.Marshal(res)
	if err == nil {
		err = json.Unmarshal(b, out)
	}
	if err != nil {
		return &api.Error{Code: api.CodeInternal, Message: err.Error()}
	}
	return nil
}
