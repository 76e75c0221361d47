package api_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitest"
)

// rpcAs calls one JSON-RPC request over HTTP with token and returns the
// HTTP status and the decoded response.
func rpcAs(t *testing.T, e httpEnv, token, body string) (int, api.Response) {
	t.Helper()
	resp, b := e.do(t, "POST", api.PathRPC, body, map[string]string{"Authorization": "Bearer " + token})
	var r api.Response
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusForbidden {
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: status %d, body %q: %v", body, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode, r
}

func rpcReq(method, params string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":7,"method":%q,"params":%s}`, method, params)
}

// Methods a read-only token must be able to call and must be refused:
// a check that the table's flags say what they mean, not a second list
// to keep (every method is classified by the table's type itself).
var (
	mustRead  = []string{"version", "getSelf", "listContacts", "listMessages", "listGroups", "listGroupMessages", "health", "listDevices", "listFiles", "waitMessage"}
	mustWrite = []string{"send", "addContact", "removeContact", "markRead", "sendTyping", "setProfile", "sendGroup", "sendFile", "getFile", "linkDevice", "revokeDevice", "blockContact", "acceptRequest", "createInvite"}
)

func TestScopesEveryMethod(t *testing.T) {
	for _, m := range mustRead {
		if !api.ReadOnly(m) {
			t.Errorf("%s is not marked read-only", m)
		}
	}
	for _, m := range mustWrite {
		if api.ReadOnly(m) {
			t.Errorf("%s is marked read-only but changes something", m)
		}
	}

	b := apitest.New()
	b.AddContact("alice", "hush://alice")
	e := startHTTP(t, b, api.Config{})
	ro, _, err := api.CreateToken(e.home, "dashboard", api.ScopeReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	names := api.Methods()
	sort.Strings(names)
	var reads, writes int
	for _, m := range names {
		status, r := rpcAs(t, e, ro, rpcReq(m, `{}`))
		if api.ReadOnly(m) {
			reads++
			if status != http.StatusOK || (r.Error != nil && r.Error.Code == api.CodeForbidden) {
				t.Errorf("read-only token, read method %s: status %d, error %+v", m, status, r.Error)
			}
			continue
		}
		writes++
		if status != http.StatusForbidden || r.Error == nil || r.Error.Code != api.CodeForbidden ||
			r.Error.Reason() != "read_only" || string(r.ID) != "7" || !strings.Contains(r.Error.Message, m) {
			t.Errorf("read-only token, write method %s: status %d, response %+v", m, status, r)
		}
		// The full default token reaches the method (whatever its params make of it).
		if _, r := rpcAs(t, e, e.token, rpcReq(m, `{}`)); r.Error != nil && r.Error.Code == api.CodeForbidden {
			t.Errorf("full token, %s: forbidden", m)
		}
	}
	if reads == 0 || writes == 0 {
		t.Fatalf("%d reads, %d writes", reads, writes)
	}

	// Nothing was sent: the refusal comes before the method runs.
	status, r := rpcAs(t, e, ro, rpcReq("send", `{"to":"alice","text":"hi"}`))
	if status != http.StatusForbidden || r.Error == nil || r.Error.Code != api.CodeForbidden {
		t.Fatalf("send with a read-only token: %d %+v", status, r.Error)
	}
	if ms, _ := b.Messages("alice", 0); len(ms) != 0 {
		t.Errorf("a read-only send reached the node: %v", ms)
	}

	// A notification is refused the same way (it would otherwise run unseen).
	resp, _ := e.do(t, "POST", api.PathRPC, `{"jsonrpc":"2.0","method":"send","params":{"to":"alice","text":"hi"}}`,
		map[string]string{"Authorization": "Bearer " + ro})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("send notification with a read-only token: %d", resp.StatusCode)
	}
	if ms, _ := b.Messages("alice", 0); len(ms) != 0 {
		t.Errorf("a read-only notification reached the node: %v", ms)
	}

	// In a batch each request gets its own answer, under 200.
	resp, body := e.do(t, "POST", api.PathRPC,
		`[{"jsonrpc":"2.0","id":1,"method":"send","params":{"to":"alice","text":"hi"}},{"jsonrpc":"2.0","id":2,"method":"listContacts"}]`,
		map[string]string{"X-API-Key": ro})
	var batch []api.Response
	if err := json.Unmarshal(body, &batch); err != nil || resp.StatusCode != http.StatusOK || len(batch) != 2 {
		t.Fatalf("batch: %d %s %v", resp.StatusCode, body, err)
	}
	if batch[0].Error == nil || batch[0].Error.Code != api.CodeForbidden || batch[1].Error != nil {
		t.Errorf("batch: %s", body)
	}

	// A created full token sends.
	full, _, err := api.CreateToken(e.home, "bot", api.ScopeFull)
	if err != nil {
		t.Fatal(err)
	}
	if status, r := rpcAs(t, e, full, rpcReq("send", `{"to":"alice","text":"hi"}`)); status != 200 || r.Error != nil {
		t.Errorf("send with a full token: %d %+v", status, r.Error)
	}
}

func TestTokenRevocation(t *testing.T) {
	b := apitest.New()
	b.AddContact("alice", "hush://alice")
	e := startHTTP(t, b, api.Config{})
	ro, tok, err := api.CreateToken(e.home, "watcher", api.ScopeReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := rpcAs(t, e, ro, listContacts); status != http.StatusOK {
		t.Fatalf("new token: %d", status)
	}

	// An event stream opened with it ends at its next event once revoked.
	stream := e
	stream.token = ro
	r, stop := openEvents(t, stream, "")
	defer stop()
	b.Receive("alice", "one")
	readSSE(t, r, 1)

	if _, err := api.RevokeToken(e.home, tok.ID); err != nil {
		t.Fatal(err)
	}
	resp, body := e.do(t, "POST", api.PathRPC, listContacts, map[string]string{"Authorization": "Bearer " + ro})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "revoked") {
		t.Errorf("revoked token: %d %s", resp.StatusCode, body)
	}
	if resp, _ := e.do(t, "GET", api.PathEvents, "", map[string]string{"Authorization": "Bearer " + ro}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("events with a revoked token: %d", resp.StatusCode)
	}
	b.Receive("alice", "two")
	rest, err := io.ReadAll(r)
	if err != nil || strings.Contains(string(rest), "data:") {
		t.Errorf("stream after revocation: %q %v", rest, err)
	}

	// Unknown token: 401; the default one still works.
	if resp, _ := e.do(t, "POST", api.PathRPC, listContacts, map[string]string{"Authorization": "Bearer " + strings.Repeat("ab", 32)}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unknown token: %d", resp.StatusCode)
	}
	if status, _ := rpcAs(t, e, e.token, listContacts); status != http.StatusOK {
		t.Errorf("default token: %d", status)
	}

	// Revoking the default token deletes api.token; it stops at once.
	if _, err := api.RevokeToken(e.home, api.DefaultTokenName); err != nil {
		t.Fatal(err)
	}
	if resp, _ := e.do(t, "POST", api.PathRPC, listContacts, map[string]string{"Authorization": "Bearer " + e.token}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("revoked default token: %d", resp.StatusCode)
	}
	if _, err := api.RevokeToken(e.home, "nope"); !errors.Is(err, api.ErrUnknownToken) {
		t.Errorf("revoking an unknown token: %v", err)
	}
}

func TestTokenFiles(t *testing.T) {
	home := t.TempDir()
	if _, err := api.LoadOrCreateToken(home); err != nil {
		t.Fatal(err)
	}
	secret, tok, err := api.CreateToken(home, "dash", api.ScopeReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) != 64 || tok.SHA256 != "" || tok.Scope != api.ScopeReadOnly || tok.ID == "" {
		t.Fatalf("created %q %+v", secret, tok)
	}
	if _, _, err := api.CreateToken(home, "dash", api.ScopeFull); !errors.Is(err, api.ErrTokenExists) {
		t.Errorf("duplicate name: %v", err)
	}
	if _, _, err := api.CreateToken(home, api.DefaultTokenName, api.ScopeFull); err == nil {
		t.Error("a token named default was created")
	}
	// Stored hashed, 0600; the secret is nowhere in the home.
	fi, err := os.Stat(filepath.Join(home, api.TokensFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("tokens file: %v %v", fi, err)
	}
	raw, _ := os.ReadFile(filepath.Join(home, api.TokensFile))
	if strings.Contains(string(raw), secret) {
		t.Error("the secret is stored in the clear")
	}
	list, err := api.ListTokens(home)
	if err != nil || len(list) != 2 || list[0].Name != api.DefaultTokenName || list[0].Scope != api.ScopeFull ||
		list[1].Name != "dash" || list[1].SHA256 != "" {
		t.Fatalf("list: %+v %v", list, err)
	}

	// Concurrent creations lose nothing (the file is locked).
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := api.CreateToken(home, fmt.Sprintf("t%d", i), api.ScopeFull); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if list, _ := api.ListTokens(home); len(list) != 10 {
		t.Errorf("%d tokens after 8 concurrent creations, want 10", len(list))
	}
	if rev, err := api.RevokeToken(home, "dash"); err != nil || rev.ID != tok.ID {
		t.Errorf("revoke by name: %+v %v", rev, err)
	}
}
