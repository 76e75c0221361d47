package webui_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitest"
	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/webui"
)

// served is a daemon's HTTP listener with the UI, on a fake backend.
type served struct {
	b    *apitest.Backend
	srv  *api.Server
	addr string
	home string
	now  time.Time
}

func serve(t *testing.T) *served {
	t.Helper()
	b := apitest.New()
	home := t.TempDir()
	s := &served{b: b, home: home, now: time.Now()}
	ui := webui.New(webui.Config{API: api.NewHandler(b, nil), Files: b, Now: func() time.Time { return s.now }})
	srv := api.NewServer(b, api.Config{Home: home, SocketPath: filepath.Join(home, "s"), HTTPAddr: "127.0.0.1:0", UI: ui})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	s.srv, s.addr = srv, srv.HTTPAddr()
	return s
}

// loginURL asks uiLogin for a URL, as `hush ui` does, over the socket's
// full scope.
func (s *served) loginURL(t *testing.T) string {
	t.Helper()
	res, e := s.srv.Handler().Call(context.Background(), "uiLogin", nil)
	if e != nil {
		t.Fatal(e)
	}
	return res.(apitypes.UILogin).URL
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects.
func browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func do(t *testing.T, c *http.Client, method, u string, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	checkHeaders(t, method+" "+u, resp)
	return resp, string(b)
}

// checkHeaders: every response of the UI has the CSP and friends, and
// none has a CORS header.
func checkHeaders(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	for k := range resp.Header {
		if strings.HasPrefix(strings.ToLower(k), "access-control-") {
			t.Errorf("%s: CORS header %s", what, k)
		}
	}
	if resp.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("%s: no Content-Security-Policy", what)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%s: no nosniff", what)
	}
}

// login spends a login URL and returns the session's CSRF token.
func login(t *testing.T, s *served, c *http.Client) string {
	t.Helper()
	resp, _ := do(t, c, "GET", s.loginURL(t), "", nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: HTTP %d", resp.StatusCode)
	}
	resp, body := do(t, c, "GET", "http://"+s.addr+webui.PathCSRF, "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("session: HTTP %d %s", resp.StatusCode, body)
	}
	var v struct{ CSRF string }
	json.Unmarshal([]byte(body), &v)
	if len(v.CSRF) != 64 {
		t.Fatalf("csrf %q", v.CSRF)
	}
	return v.CSRF
}

func rpcBody(method string) string {
	return `{"jsonrpc":"2.0","id":1,"method":"` + method + `","params":{}}`
}

func TestLoginSetsStrictHttpOnlyCookie(t *testing.T) {
	s := serve(t)
	c := browser(t)
	u := s.loginURL(t)
	if !strings.HasPrefix(u, "http://127.0.0.1:") || !strings.Contains(u, webui.PathLogin+"?token=") {
		t.Fatalf("login URL %q", u)
	}
	resp, _ := do(t, c, "GET", u, "", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: HTTP %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	cs := resp.Cookies()
	if len(cs) != 1 {
		t.Fatalf("cookies %v", cs)
	}
	ck := cs[0]
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || len(ck.Value) != 64 {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/", ck)
	}
	if raw := resp.Header.Get("Set-Cookie"); !strings.Contains(raw, "HttpOnly") || !strings.Contains(raw, "SameSite=Strict") {
		t.Errorf("Set-Cookie %q", raw)
	}
	// The token in the URL is not the session.
	if strings.Contains(u, ck.Value) {
		t.Error("the session cookie is the login token")
	}
}

func TestLoginTokenWorksOnce(t *testing.T) {
	s := serve(t)
	u := s.loginURL(t)
	resp, _ := do(t, browser(t), "GET", u, "", nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("first use: HTTP %d", resp.StatusCode)
	}
	resp, _ = do(t, browser(t), "GET", u, "", nil)
	if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Fatalf("second use: HTTP %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	// A made-up token, and an expired one.
	resp, _ = do(t, browser(t), "GET", "http://"+s.addr+webui.PathLogin+"?token=00", "", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("made-up token: HTTP %d", resp.StatusCode)
	}
	u = s.loginURL(t)
	s.now = s.now.Add(webui.LoginTTL + time.Second)
	resp, _ = do(t, browser(t), "GET", u, "", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("expired token: HTTP %d", resp.StatusCode)
	}
}

func TestWrongHostRefused(t *testing.T) {
	s := serve(t)
	c := browser(t)
	csrf := login(t, s, c)
	_, port, _ := strings.Cut(s.addr, ":")
	for _, host := range []string{"evil.example:" + port, "127.0.0.1:1", "attacker.localhost:" + port} {
		for _, path := range []string{"/", webui.PathRPC, webui.PathLogin + "?token=x"} {
			method := "GET"
			if path == webui.PathRPC {
				method = "POST"
			}
			resp, _ := do(t, c, method, "http://"+s.addr+path, rpcBody("getSelf"),
				map[string]string{"Host": host, webui.CSRFHeader: csrf, "Content-Type": "application/json"})
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("Host %s %s: HTTP %d, want 403", host, path, resp.StatusCode)
			}
		}
	}
	resp, _ := do(t, c, "GET", "http://"+s.addr+"/", "", map[string]string{"Host": "localhost:" + port})
	if resp.StatusCode != 200 {
		t.Errorf("Host localhost: HTTP %d", resp.StatusCode)
	}
}

func TestCSRFRequired(t *testing.T) {
	s := serve(t)
	c := browser(t)
	csrf := login(t, s, c)
	rpc := "http://" + s.addr + webui.PathRPC
	for name, hdr := range map[string]map[string]string{
		"no token":    {"Content-Type": "application/json"},
		"wrong token": {"Content-Type": "application/json", webui.CSRFHeader: strings.Repeat("0", 64)},
	} {
		resp, body := do(t, c, "POST", rpc, rpcBody("setReadReceipts"), hdr)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "CSRF") {
			t.Errorf("%s: HTTP %d %s", name, resp.StatusCode, body)
		}
	}
	for _, p := range []string{webui.PathUpload + "?to=bob&name=a.txt", webui.PathLogout} {
		resp, _ := do(t, c, "POST", "http://"+s.addr+p, "x", nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s without CSRF: HTTP %d", p, resp.StatusCode)
		}
	}
	resp, body := do(t, c, "POST", rpc, `{"jsonrpc":"2.0","id":1,"method":"setReadReceipts","params":{"enabled":false}}`,
		map[string]string{"Content-Type": "application/json", webui.CSRFHeader: csrf})
	if resp.StatusCode != 200 || !strings.Contains(body, `"ok":true`) || s.b.ReadReceipts() {
		t.Fatalf("with the token: HTTP %d %s", resp.StatusCode, body)
	}
	// A cross-origin request is refused even with the session's cookie.
	resp, _ = do(t, c, "POST", rpc, rpcBody("getSelf"),
		map[string]string{"Content-Type": "application/json", webui.CSRFHeader: csrf, "Origin": "http://evil.example"})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin: HTTP %d", resp.StatusCode)
	}
}

func TestNoSessionNoAccess(t *testing.T) {
	s := serve(t)
	c := browser(t)
	for _, p := range []string{webui.PathCSRF, webui.PathEvents, webui.PathFile + "?id=m1", webui.PathQR + "?text=x"} {
		resp, _ := do(t, c, "GET", "http://"+s.addr+p, "", nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without a session: HTTP %d", p, resp.StatusCode)
		}
	}
	resp, _ := do(t, c, "POST", "http://"+s.addr+webui.PathRPC, rpcBody("getSelf"), map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("rpc without a session: HTTP %d", resp.StatusCode)
	}
	// The API's bearer token is no UI session.
	tok, _ := api.LoadOrCreateToken(s.home)
	resp, _ = do(t, c, "GET", "http://"+s.addr+webui.PathCSRF, "", map[string]string{"Authorization": "Bearer " + tok})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bearer token on the UI: HTTP %d", resp.StatusCode)
	}
	// The page and its assets load without one (they hold nothing).
	for _, p := range []string{"/", "/assets/app.js", "/assets/style.css"} {
		resp, _ := do(t, c, "GET", "http://"+s.addr+p, "", nil)
		if resp.StatusCode != 200 {
			t.Errorf("%s: HTTP %d", p, resp.StatusCode)
		}
	}
}

// A read-only API token cannot mint a login: uiLogin is a write.
func TestReadOnlyTokenGetsNoLogin(t *testing.T) {
	s := serve(t)
	secret, _, err := api.CreateToken(s.home, "ro", api.ScopeReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, http.DefaultClient, "POST", "http://"+s.addr+api.PathRPC, rpcBody("uiLogin"),
		map[string]string{"Authorization": "Bearer " + secret, "Content-Type": "application/json"})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "read_only") || strings.Contains(body, "token=") {
		t.Fatalf("uiLogin with a read-only token: HTTP %d %s", resp.StatusCode, body)
	}
	full, _ := api.LoadOrCreateToken(s.home)
	resp, body = do(t, http.DefaultClient, "POST", "http://"+s.addr+api.PathRPC, rpcBody("uiLogin"),
		map[string]string{"Authorization": "Bearer " + full, "Content-Type": "application/json"})
	if resp.StatusCode != 200 || !strings.Contains(body, webui.PathLogin) {
		t.Fatalf("uiLogin with the full token: HTTP %d %s", resp.StatusCode, body)
	}
}

// uiLogin without a UI (the mobile facade, no HTTP listener) says so.
func TestUILoginWithoutUI(t *testing.T) {
	h := api.NewHandler(apitest.New(), nil)
	_, e := h.Call(context.Background(), "uiLogin", nil)
	if e == nil || e.Reason() != "no_ui" {
		t.Fatalf("uiLogin without a UI: %v", e)
	}
}

func TestLogoutEndsSession(t *testing.T) {
	s := serve(t)
	c := browser(t)
	csrf := login(t, s, c)
	resp, _ := do(t, c, "POST", "http://"+s.addr+webui.PathLogout, "", map[string]string{webui.CSRFHeader: csrf})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: HTTP %d", resp.StatusCode)
	}
	// The browser dropped its cookie; one that kept it is refused too.
	u, _ := url.Parse("http://" + s.addr)
	if len(c.Jar.Cookies(u)) != 0 {
		t.Error("the cookie survived logout")
	}
	resp, _ = do(t, c, "GET", "http://"+s.addr+webui.PathCSRF, "", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after logout: HTTP %d", resp.StatusCode)
	}
}

func TestFilesServedSafely(t *testing.T) {
	s := serve(t)
	c := browser(t)
	csrf := login(t, s, c)
	s.b.AddContact("bob", "hush://bob")
	// An HTML file is uploaded and comes back as a download, never
	// inline; a PNG comes back inline as image/png.
	html := "<html><script>alert(1)</script></html>"
	resp, body := do(t, c, "POST", "http://"+s.addr+webui.PathUpload+"?to=bob&name=page.html", html, map[string]string{webui.CSRFHeader: csrf})
	if resp.StatusCode != 200 {
		t.Fatalf("upload: HTTP %d %s", resp.StatusCode, body)
	}
	var m apitypes.Message
	json.Unmarshal([]byte(body), &m)
	if m.File == nil || m.File.Name != "page.html" || m.File.Size != int64(len(html)) {
		t.Fatalf("uploaded %+v", m.File)
	}
	resp, got := do(t, c, "GET", "http://"+s.addr+webui.PathFile+"?id="+m.ID, "", nil)
	if resp.StatusCode != 200 || got != html {
		t.Fatalf("download: HTTP %d %q", resp.StatusCode, got)
	}
	if ct, cd := resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"); ct != "application/octet-stream" || !strings.HasPrefix(cd, "attachment") {
		t.Errorf("an HTML file served as %q, %q", ct, cd)
	}
	png := "\x89PNG\r\n\x1a\n" + strings.Repeat("\x00", 32)
	resp, body = do(t, c, "POST", "http://"+s.addr+webui.PathUpload+"?to=bob&name=p.png", png, map[string]string{webui.CSRFHeader: csrf})
	json.Unmarshal([]byte(body), &m)
	resp, got = do(t, c, "GET", "http://"+s.addr+webui.PathFile+"?id="+m.ID, "", nil)
	if resp.Header.Get("Content-Type") != "image/png" || got != png {
		t.Errorf("a PNG served as %q", resp.Header.Get("Content-Type"))
	}
	// The upload was held in memory: the daemon read it from a memfd.
	if p := s.b.SentPaths(); len(p) != 2 || !strings.HasPrefix(p[0], "/proc/self/fd/") {
		t.Errorf("sent from %v", p)
	}
	entries, _ := os.ReadDir(s.home)
	for _, e := range entries {
		if strings.Contains(e.Name(), "page") || strings.Contains(e.Name(), "upload") {
			t.Errorf("upload left %s in the home", e.Name())
		}
	}
}

func TestQR(t *testing.T) {
	s := serve(t)
	c := browser(t)
	login(t, s, c)
	resp, body := do(t, c, "GET", "http://"+s.addr+webui.PathQR+"?text=HUSH:ABC", "", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" || !strings.HasPrefix(body, "\x89PNG") {
		t.Fatalf("QR: HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
