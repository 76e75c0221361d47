package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitest"
	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node"
)

type httpEnv struct {
	base  string // http://127.0.0.1:PORT
	token string
	home  string
}

func startHTTP(t *testing.T, b api.Backend, cfg api.Config) httpEnv {
	t.Helper()
	srv, home := startServer(t, b, true, cfg)
	tok, err := os.ReadFile(filepath.Join(home, api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return httpEnv{base: "http://" + srv.HTTPAddr(), token: strings.TrimSpace(string(tok)), home: home}
}

func (e httpEnv) do(t *testing.T, method, path, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

const listContacts = `{"jsonrpc":"2.0","id":1,"method":"listContacts"}`

func TestHTTPAuth(t *testing.T) {
	e := startHTTP(t, apitest.New(), api.Config{})
	tests := []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"no token", nil, http.StatusUnauthorized},
		{"wrong bearer", map[string]string{"Authorization": "Bearer " + strings.Repeat("0", 64)}, http.StatusUnauthorized},
		{"token prefix", map[string]string{"Authorization": "Bearer " + e.token[:32]}, http.StatusUnauthorized},
		{"basic scheme", map[string]string{"Authorization": "Basic " + e.token}, http.StatusUnauthorized},
		{"wrong api key", map[string]string{"X-API-Key": "nope"}, http.StatusUnauthorized},
		{"bearer", map[string]string{"Authorization": "Bearer " + e.token}, http.StatusOK},
		{"api key", map[string]string{"X-API-Key": e.token}, http.StatusOK},
	}
	for _, tc := range tests {
		resp, body := e.do(t, "POST", api.PathRPC, listContacts, tc.hdr)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, resp.StatusCode, tc.want, body)
			continue
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: content type %q", tc.name, ct)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: CORS header present", tc.name)
		}
		if tc.want == http.StatusUnauthorized {
			var je struct{ Error string }
			if json.Unmarshal(body, &je) != nil || je.Error == "" {
				t.Errorf("%s: 401 body %s is not a JSON error", tc.name, body)
			}
			continue
		}
		var r api.Response
		if json.Unmarshal(body, &r) != nil || r.Error != nil || string(r.Result) != "[]" {
			t.Errorf("%s: body %s", tc.name, body)
		}
	}
	// Events need the token too; health does not.
	if resp, _ := e.do(t, "GET", api.PathEvents, "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("events without token: %d", resp.StatusCode)
	}
	resp, body := e.do(t, "GET", api.PathHealth, "", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
		t.Errorf("health: %d %s", resp.StatusCode, body)
	}
	// Wrong verbs are not served.
	if resp, _ := e.do(t, "GET", api.PathRPC, "", map[string]string{"Authorization": "Bearer " + e.token}); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET rpc: %d", resp.StatusCode)
	}
}

func TestHTTPHostHeader(t *testing.T) {
	e := startHTTP(t, apitest.New(), api.Config{})
	port := e.base[strings.LastIndex(e.base, ":")+1:]
	auth := "Bearer " + e.token
	tests := []struct {
		host string
		want int
	}{
		{"127.0.0.1:" + port, http.StatusOK},
		{"localhost:" + port, http.StatusOK},
		{"LOCALHOST:" + port, http.StatusOK},
		{"evil.example:" + port, http.StatusForbidden},
		{"localhost", http.StatusForbidden},
		{"127.0.0.1:1", http.StatusForbidden},
		{"localhost.evil.example:" + port, http.StatusForbidden},
	}
	for _, tc := range tests {
		for _, path := range []string{api.PathHealth, api.PathRPC} {
			method := "GET"
			if path == api.PathRPC {
				method = "POST"
			}
			resp, body := e.do(t, method, path, listContacts, map[string]string{"Host": tc.host, "Authorization": auth})
			if resp.StatusCode != tc.want {
				t.Errorf("Host %q %s: status %d, want %d (%s)", tc.host, path, resp.StatusCode, tc.want, body)
			}
		}
	}
}

func TestHTTPOversizedAndNotification(t *testing.T) {
	e := startHTTP(t, apitest.New(), api.Config{MaxRequestSize: 2048})
	auth := map[string]string{"Authorization": "Bearer " + e.token}
	big := `{"jsonrpc":"2.0","id":1,"method":"send","params":{"to":"a","text":"` + strings.Repeat("x", 4096) + `"}}`
	resp, body := e.do(t, "POST", api.PathRPC, big, auth)
	var r api.Response
	if resp.StatusCode != http.StatusRequestEntityTooLarge || json.Unmarshal(body, &r) != nil ||
		r.Error == nil || r.Error.Code != api.CodeInvalidRequest || !strings.Contains(r.Error.Message, "2048") {
		t.Errorf("oversized: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(t, "POST", api.PathRPC, `{"jsonrpc":"2.0","method":"version"}`, auth)
	if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
		t.Errorf("notification: %d %q", resp.StatusCode, body)
	}
	resp, body = e.do(t, "POST", api.PathRPC, `{"jsonrpc":"2.0","id":1,"method":"subscribe"}`, auth)
	if json.Unmarshal(body, &r) != nil || r.Error == nil || r.Error.Code != api.CodeMethodNotFound ||
		!strings.Contains(r.Error.Message, api.PathEvents) {
		t.Errorf("subscribe over HTTP RPC: %d %s", resp.StatusCode, body)
	}
}

type sseEvent struct {
	id   string
	data string
}

// readSSE reads n events (skipping comments) from an open stream.
func readSSE(t *testing.T, r *bufio.Reader, n int) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	for len(out) < n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading events: %v (got %d of %d)", err, len(out), n)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if cur.data != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		}
	}
	return out
}

func openEvents(t *testing.T, e httpEnv, lastID string) (*bufio.Reader, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.base+api.PathEvents, nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	r := bufio.NewReader(resp.Body)
	// The stream opens with a comment once subscribed.
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, ":") {
		t.Fatalf("stream start %q %v", line, err)
	}
	return r, func() { cancel(); resp.Body.Close() }
}

func TestSSEEventsAndResume(t *testing.T) {
	b := apitest.New()
	b.AddContact("alice", "hush://alice")
	e := startHTTP(t, b, api.Config{})

	r, stop := openEvents(t, e, "")
	m1 := b.Receive("alice", "one")
	m2 := b.Receive("alice", "two")
	evs := readSSE(t, r, 2)
	stop()
	for i, want := range []node.Message{m1, m2} {
		var ev node.Event
		if err := json.Unmarshal([]byte(evs[i].data), &ev); err != nil {
			t.Fatalf("event data %q: %v", evs[i].data, err)
		}
		if ev.Type != node.EventMessage || ev.Message == nil || ev.Message.ID != want.ID {
			t.Errorf("event %d = %+v, want message %s", i, ev, want.ID)
		}
		if evs[i].id != strconv.FormatUint(ev.Seq, 10) || ev.Seq == 0 {
			t.Errorf("event %d: id %q, seq %d", i, evs[i].id, ev.Seq)
		}
	}

	// Missed while disconnected, then resumed with Last-Event-ID.
	m3 := b.Receive("alice", "three")
	r, stop = openEvents(t, e, evs[0].id)
	defer stop()
	got := readSSE(t, r, 2)
	var ev2, ev3 node.Event
	json.Unmarshal([]byte(got[0].data), &ev2)
	json.Unmarshal([]byte(got[1].data), &ev3)
	if ev2.Message == nil || ev2.Message.ID != m2.ID || ev3.Message == nil || ev3.Message.ID != m3.ID {
		t.Errorf("resumed after %s: got %v, want %s then %s", evs[0].id, got, m2.ID, m3.ID)
	}
	if got[0].id != evs[1].id {
		t.Errorf("resumed id %s, want %s", got[0].id, evs[1].id)
	}

	resp, _ := e.do(t, "GET", api.PathEvents, "", map[string]string{"Authorization": "Bearer " + e.token, "Last-Event-ID": "abc"})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad Last-Event-ID: %d", resp.StatusCode)
	}
}

// Health answers 503 with the store's failure while commits fail, and
// needs no token.
func TestHTTPHealthFailing(t *testing.T) {
	b := apitest.New()
	e := startHTTP(t, b, api.Config{})
	since := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	b.SetHealth(node.Health{Status: "failing", Error: "node: store: no space left on device", Since: &since})
	resp, body := e.do(t, "GET", api.PathHealth, "", nil)
	var h apitypes.Health
	if resp.StatusCode != http.StatusServiceUnavailable || json.Unmarshal(body, &h) != nil || h.Status != "failing" ||
		!strings.Contains(h.Error, "no space") || h.Since == nil || !h.Since.Equal(since) {
		t.Fatalf("failing health: %d %s", resp.StatusCode, body)
	}
	b.SetHealth(node.Health{})
	if resp, body := e.do(t, "GET", api.PathHealth, "", nil); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
		t.Fatalf("health after recovery: %d %s", resp.StatusCode, body)
	}
}
