package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitest"
	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node"
)

var (
	_ api.Backend = (*node.Node)(nil)
	_ api.Backend = (*apitest.Backend)(nil)
)

// rpc runs one request through the shared handler and decodes the response.
func rpc(t *testing.T, h *api.Handler, req string) api.Response {
	t.Helper()
	out := h.ServeMessage(context.Background(), []byte(req))
	if out == nil {
		t.Fatalf("%s: no response", req)
	}
	var r api.Response
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%s: response %s: %v", req, out, err)
	}
	if r.JSONRPC != "2.0" {
		t.Fatalf("%s: response without jsonrpc 2.0: %s", req, out)
	}
	return r
}

func call(t *testing.T, h *api.Handler, method, params string) api.Response {
	t.Helper()
	if params == "" {
		return rpc(t, h, `{"jsonrpc":"2.0","id":7,"method":"`+method+`"}`)
	}
	return rpc(t, h, `{"jsonrpc":"2.0","id":7,"method":"`+method+`","params":`+params+`}`)
}

// withContacts returns a fake with alice and bob, and one message to alice.
func withContacts(t *testing.T) (*apitest.Backend, *api.Handler, node.Message) {
	t.Helper()
	b := apitest.New()
	for _, n := range []string{"alice", "bob"} {
		if _, err := b.AddContact(n, "hush://"+n); err != nil {
			t.Fatal(err)
		}
	}
	m, err := b.Send(context.Background(), node.SendRequest{To: "alice", Text: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	return b, api.NewHandler(b, nil), m
}

func TestParamsValidation(t *testing.T) {
	_, h, m := withContacts(t)
	big := strings.Repeat("x", node.MaxTextSize+1)
	tests := []struct {
		method, params string
		code           int // 0: success
	}{
		{"version", "", 0},
		{"version", `{"x":1}`, api.CodeInvalidParams},
		{"getSelf", "", 0},
		{"getSelf", `[1]`, api.CodeInvalidParams},
		{"addContact", `{"name":"carol","link":"hush://carol"}`, 0},
		{"addContact", `{"link":"hush://carol"}`, api.CodeInvalidParams},
		{"addContact", `{"name":"carol"}`, api.CodeInvalidParams},
		{"addContact", `{"name":7,"link":"hush://c"}`, api.CodeInvalidParams},
		{"addContact", `{"name":"` + strings.Repeat("n", node.MaxNameSize+1) + `","link":"hush://c"}`, api.CodeInvalidParams},
		{"addContact", `{"name":"dave","link":"https://example.com"}`, api.CodeInvalidInput},
		{"addContact", `{"name":"a\nb","link":"hush://x"}`, api.CodeInvalidInput},
		{"addContact", `{"name":"carol","link":"hush://c","extra":true}`, api.CodeInvalidParams},
		{"listContacts", "", 0},
		{"listContacts", `{"all":true}`, api.CodeInvalidParams},
		{"removeContact", `{"name":"bob"}`, 0},
		{"removeContact", `{"name":"nobody"}`, api.CodeUnknownContact},
		{"removeContact", `{}`, api.CodeInvalidParams},
		{"verifyContact", `{"name":"alice"}`, 0},
		{"verifyContact", `{"name":"nobody"}`, api.CodeUnknownContact},
		{"verifyContact", `{"name":""}`, api.CodeInvalidParams},
		{"safetyNumber", `{"name":"alice"}`, 0},
		{"safetyNumber", `{"name":"nobody"}`, api.CodeUnknownContact},
		{"safetyNumber", `"alice"`, api.CodeInvalidParams},
		{"send", `{"to":"alice","text":"hi"}`, 0},
		{"send", `{"to":"alice","text":"hi","kind":"text","txnId":"t1"}`, 0},
		{"send", `{"text":"hi"}`, api.CodeInvalidParams},
		{"send", `{"to":"nobody","text":"hi"}`, api.CodeUnknownContact},
		{"send", `{"to":"alice","text":"   "}`, api.CodeBadMessage},
		{"send", `{"to":"alice"}`, api.CodeBadMessage},
		{"send", `{"to":"alice","text":"` + big + `"}`, api.CodeBadMessage},
		{"send", `{"to":"alice","text":"hi","kind":"shout"}`, api.CodeInvalidParams},
		{"send", `{"to":"alice","text":"hi","target":"` + m.ID + `"}`, api.CodeInvalidParams},
		{"send", `{"to":"alice","text":"re","kind":"reply","target":"` + m.ID + `"}`, 0},
		{"send", `{"to":"alice","text":"re","kind":"reply"}`, api.CodeInvalidParams},
		{"send", `{"to":"alice","text":"fixed","kind":"edit","target":"` + m.ID + `"}`, 0},
		{"send", `{"to":"alice","text":"fixed","kind":"edit","target":"nope"}`, api.CodeNotFound},
		{"send", `{"to":"alice","text":"👍","kind":"reaction","target":"` + m.ID + `"}`, 0},
		{"send", `{"to":"alice","text":"👍","kind":"reaction","target":"` + m.ID + `","remove":true}`, 0},
		{"send", `{"to":"alice","kind":"reaction","target":"` + m.ID + `"}`, api.CodeInvalidParams},
		{"send", `{"to":"alice","text":"hi","remove":true}`, api.CodeInvalidParams},
		{"send", `{"to":"alice","kind":"delete","text":"x","target":"` + m.ID + `"}`, api.CodeInvalidParams},
		{"send", `{"to":"alice","kind":"delete","target":"` + m.ID + `"}`, 0},
		{"send", `{"to":"alice","text":"hi","txn_id":"snake"}`, api.CodeInvalidParams},
		{"waitMessage", `{"id":"` + m.ID + `","state":"queued"}`, api.CodeInvalidParams},
		{"waitMessage", `{"state":"delivered"}`, api.CodeInvalidParams},
		{"waitMessage", `{"id":"` + m.ID + `","timeoutMs":0}`, api.CodeInvalidParams},
		{"waitMessage", `{"id":"` + m.ID + `","timeoutMs":-5}`, api.CodeInvalidParams},
		{"waitMessage", `{"id":"` + m.ID + `","timeoutMs":99999999999}`, api.CodeInvalidParams},
		{"waitMessage", `{"id":"nope","state":"delivered","timeoutMs":50}`, api.CodeNotFound},
		{"waitMessage", `{"id":"` + m.ID + `","state":"delivered","timeoutMs":20}`, api.CodeTimeout},
		{"listMessages", `{"contact":"alice"}`, 0},
		{"listMessages", `{"contact":"alice","limit":2}`, 0},
		{"listMessages", `{"contact":"alice","limit":-1}`, api.CodeInvalidParams},
		{"listMessages", `{"contact":"alice","limit":"2"}`, api.CodeInvalidParams},
		{"listMessages", `{"contact":"nobody"}`, api.CodeUnknownContact},
		{"listMessages", `{}`, api.CodeInvalidParams},
		{"markRead", `{"contact":"alice"}`, 0},
		{"markRead", `{"contact":"nobody"}`, api.CodeUnknownContact},
		{"markRead", ``, api.CodeInvalidParams},
		{"sendTyping", `{"contact":"alice","typing":true}`, 0},
		{"sendTyping", `{"contact":"alice"}`, api.CodeInvalidParams},
		{"sendTyping", `{"contact":"alice","typing":"yes"}`, api.CodeInvalidParams},
		{"sendTyping", `{"contact":"nobody","typing":false}`, api.CodeUnknownContact},
		{"setReadReceipts", `{"enabled":false}`, 0},
		{"setReadReceipts", `{}`, api.CodeInvalidParams},
		{"setReadReceipts", `{"enabled":1}`, api.CodeInvalidParams},
		{"setPresence", `{"on":false}`, 0},
		{"setPresence", `{}`, api.CodeInvalidParams},
		{"setPresence", `{"on":"yes"}`, api.CodeInvalidParams},
		{"getPresence", ``, 0},
		{"getPresence", `{"on":true}`, api.CodeInvalidParams},
	}
	for _, tc := range tests {
		r := call(t, h, tc.method, tc.params)
		if string(r.ID) != "7" {
			t.Errorf("%s %s: id %s, want 7", tc.method, tc.params, r.ID)
		}
		switch {
		case tc.code == 0 && r.Error != nil:
			t.Errorf("%s %s: error %d %q, want success", tc.method, tc.params, r.Error.Code, r.Error.Message)
		case tc.code == 0 && len(r.Result) == 0:
			t.Errorf("%s %s: no result", tc.method, tc.params)
		case tc.code != 0 && r.Error == nil:
			t.Errorf("%s %s: success %s, want error %d", tc.method, tc.params, r.Result, tc.code)
		case tc.code != 0 && r.Error.Code != tc.code:
			t.Errorf("%s %s: error %d %q, want %d", tc.method, tc.params, r.Error.Code, r.Error.Message, tc.code)
		case tc.code != 0 && r.Error.Message == "":
			t.Errorf("%s %s: error without a message", tc.method, tc.params)
		}
	}
}

func TestMethodResults(t *testing.T) {
	b, h, m := withContacts(t)

	var self node.Self
	decode(t, call(t, h, "getSelf", ""), &self)
	if self.Link == "" || self.Name != "me" {
		t.Errorf("getSelf = %+v", self)
	}

	var v apitypes.VersionInfo
	decode(t, call(t, h, "version", ""), &v)
	if v.API != api.APIVersion || v.Version == "" || !strings.HasPrefix(v.Go, "go") {
		t.Errorf("version = %+v", v)
	}

	var cs []node.Contact
	decode(t, call(t, h, "listContacts", ""), &cs)
	if len(cs) != 2 || cs[0].Name != "alice" || cs[1].Name != "bob" {
		t.Errorf("listContacts = %+v", cs)
	}

	var sn apitypes.SafetyNumberResult
	decode(t, call(t, h, "safetyNumber", `{"name":"alice"}`), &sn)
	if len(sn.SafetyNumber) != 60 || sn.Name != "alice" {
		t.Errorf("safetyNumber = %+v", sn)
	}

	var sent, again node.Message
	decode(t, call(t, h, "send", `{"to":"bob","text":"yo","txnId":"abc"}`), &sent)
	decode(t, call(t, h, "send", `{"to":"bob","text":"yo","txnId":"abc"}`), &again)
	if sent.ID == "" || sent.ID != again.ID || sent.State != node.StateQueued || sent.Direction != "out" {
		t.Errorf("send = %+v, retry = %+v", sent, again)
	}

	var reply node.Message
	decode(t, call(t, h, "send", `{"to":"alice","text":"re","kind":"reply","target":"`+m.ID+`"}`), &reply)
	if reply.ReplyTo != m.ID {
		t.Errorf("reply = %+v", reply)
	}

	// waitMessage returns once the state is reached.
	go func() {
		time.Sleep(20 * time.Millisecond)
		b.SetState(m.ID, node.StateDelivered)
	}()
	var waited node.Message
	decode(t, call(t, h, "waitMessage", `{"id":"`+m.ID+`","state":"delivered","timeoutMs":5000}`), &waited)
	if waited.State != node.StateDelivered {
		t.Errorf("waitMessage = %+v", waited)
	}

	var ms []node.Message
	decode(t, call(t, h, "listMessages", `{"contact":"alice","limit":1}`), &ms)
	if len(ms) != 1 || ms[0].ID != reply.ID {
		t.Errorf("listMessages limit 1 = %+v", ms)
	}
	decode(t, call(t, h, "listMessages", `{"contact":"bob"}`), &ms)
	if len(ms) != 1 || ms[0].Text != "yo" {
		t.Errorf("listMessages bob = %+v", ms)
	}

	decode(t, call(t, h, "setReadReceipts", `{"enabled":false}`), &apitypes.OK{})
	if b.ReadReceipts() {
		t.Error("setReadReceipts false did not reach the backend")
	}
	var ps apitypes.PresenceSetting
	if decode(t, call(t, h, "getPresence", ``), &ps); ps.On {
		t.Error("presence on by default")
	}
	if decode(t, call(t, h, "setPresence", `{"on":true}`), &ps); !ps.On || !b.Presence() {
		t.Errorf("setPresence on answered %+v, backend %v", ps, b.Presence())
	}
	if decode(t, call(t, h, "getPresence", ``), &ps); !ps.On {
		t.Error("getPresence does not read back on")
	}
	decode(t, call(t, h, "sendTyping", `{"contact":"bob","typing":true}`), &apitypes.OK{})
	if tc := b.TypingCalls(); len(tc) != 1 || tc[0] != (apitest.TypingCall{Contact: "bob", Typing: true}) {
		t.Errorf("typing calls = %+v", tc)
	}

	// An empty history is [], not null.
	call(t, h, "addContact", `{"name":"carol","link":"hush://carol"}`)
	r := call(t, h, "listMessages", `{"contact":"carol"}`)
	if string(r.Result) != "[]" {
		t.Errorf("empty listMessages = %s, want []", r.Result)
	}
}

func decode(t *testing.T, r api.Response, v any) {
	t.Helper()
	if r.Error != nil {
		t.Fatalf("error %d: %s", r.Error.Code, r.Error.Message)
	}
	if err := json.Unmarshal(r.Result, v); err != nil {
		t.Fatalf("result %s: %v", r.Result, err)
	}
}

func TestKeyChangedBlocksSend(t *testing.T) {
	b, h, _ := withContacts(t)
	call(t, h, "verifyContact", `{"name":"alice"}`)
	var c node.Contact
	decode(t, call(t, h, "addContact", `{"name":"alice","link":"hush://alice-new"}`), &c)
	if !c.KeyChanged {
		t.Fatalf("re-adding with a new key: %+v", c)
	}
	r := call(t, h, "send", `{"to":"alice","text":"hi"}`)
	if r.Error == nil || r.Error.Code != api.CodeKeyChanged || r.Error.Reason() != "key_changed" {
		t.Fatalf("send after key change: %+v", r.Error)
	}
	if r.Error.Message != node.ErrKeyChanged.Error() {
		t.Errorf("message %q, want the node's user-facing text", r.Error.Message)
	}
	call(t, h, "verifyContact", `{"name":"alice"}`)
	if r := call(t, h, "send", `{"to":"alice","text":"hi"}`); r.Error != nil {
		t.Errorf("send after verify: %v", r.Error)
	}
	_ = b
}

func TestProtocolErrors(t *testing.T) {
	h := api.NewHandler(apitest.New(), nil)
	tests := []struct {
		name, req string
		code      int
		id        string
	}{
		{"unknown method", `{"jsonrpc":"2.0","id":1,"method":"frobnicate"}`, api.CodeMethodNotFound, "1"},
		{"subscribe without socket", `{"jsonrpc":"2.0","id":"s","method":"subscribe"}`, api.CodeMethodNotFound, `"s"`},
		{"malformed", `{"jsonrpc":"2.0","id":1,"method":`, api.CodeParseError, "null"},
		{"not json", `hello`, api.CodeParseError, "null"},
		{"no version", `{"id":2,"method":"version"}`, api.CodeInvalidRequest, "2"},
		{"wrong version", `{"jsonrpc":"1.0","id":2,"method":"version"}`, api.CodeInvalidRequest, "2"},
		{"no method", `{"jsonrpc":"2.0","id":3}`, api.CodeInvalidRequest, "3"},
		{"method not string", `{"jsonrpc":"2.0","id":3,"method":5}`, api.CodeInvalidRequest, "null"},
		{"object id", `{"jsonrpc":"2.0","id":{},"method":"version"}`, api.CodeInvalidRequest, "null"},
		{"scalar", `42`, api.CodeInvalidRequest, "null"},
		{"empty batch", `[]`, api.CodeInvalidRequest, "null"},
		{"empty", `   `, api.CodeInvalidRequest, "null"},
	}
	for _, tc := range tests {
		r := rpc(t, h, tc.req)
		if r.Error == nil || r.Error.Code != tc.code {
			t.Errorf("%s: got %+v, want code %d", tc.name, r.Error, tc.code)
			continue
		}
		if string(r.ID) != tc.id {
			t.Errorf("%s: id %s, want %s", tc.name, r.ID, tc.id)
		}
	}
}

func TestBatchAndNotifications(t *testing.T) {
	h := api.NewHandler(apitest.New(), nil)
	// A notification gets no response.
	if out := h.ServeMessage(context.Background(), []byte(`{"jsonrpc":"2.0","method":"version"}`)); out != nil {
		t.Errorf("notification answered: %s", out)
	}
	out := h.ServeMessage(context.Background(), []byte(`[
		{"jsonrpc":"2.0","id":1,"method":"version"},
		{"jsonrpc":"2.0","method":"version"},
		{"jsonrpc":"2.0","id":2,"method":"nope"},
		7
	]`))
	var rs []api.Response
	if err := json.Unmarshal(out, &rs); err != nil {
		t.Fatalf("batch response %s: %v", out, err)
	}
	if len(rs) != 3 {
		t.Fatalf("batch: %d responses, want 3: %s", len(rs), out)
	}
	if string(rs[0].ID) != "1" || rs[0].Error != nil {
		t.Errorf("batch[0] = %+v", rs[0])
	}
	if string(rs[1].ID) != "2" || rs[1].Error == nil || rs[1].Error.Code != api.CodeMethodNotFound {
		t.Errorf("batch[1] = %+v", rs[1])
	}
	if rs[2].Error == nil || rs[2].Error.Code != api.CodeInvalidRequest {
		t.Errorf("batch[2] = %+v", rs[2])
	}
	if out := h.ServeMessage(context.Background(), []byte(`[{"jsonrpc":"2.0","method":"version"}]`)); out != nil {
		t.Errorf("all-notification batch answered: %s", out)
	}
}

// startServer serves b on a fresh home (HTTP too when withHTTP) and stops
// it at the end of the test, checking that Serve returns.
func startServer(t *testing.T, b api.Backend, withHTTP bool, cfg api.Config) (*api.Server, string) {
	t.Helper()
	if cfg.Home == "" {
		cfg.Home = t.TempDir()
	}
	if withHTTP {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	srv := api.NewServer(b, cfg)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return srv, cfg.Home
}

func TestSocketModeAndLifecycle(t *testing.T) {
	home := t.TempDir()
	srv := api.NewServer(apitest.New(), api.Config{Home: home, HTTPAddr: "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	sock := filepath.Join(home, api.SocketFile)
	waitFor(t, func() bool { _, err := os.Stat(filepath.Join(home, api.AddrFile)); return err == nil })
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a 0600 socket", fi.Mode())
	}
	tf, err := os.Stat(filepath.Join(home, api.TokenFile))
	if err != nil || tf.Mode().Perm() != 0o600 {
		t.Errorf("token file: %v %v", tf, err)
	}
	addr, _ := os.ReadFile(filepath.Join(home, api.AddrFile))
	if strings.TrimSpace(string(addr)) != srv.HTTPAddr() {
		t.Errorf("api.addr = %q, want %q", addr, srv.HTTPAddr())
	}
	if err := api.NewClient(sock).Call(ctx, "version", nil, nil); err != nil {
		t.Fatalf("call over socket: %v", err)
	}
	// No leftovers from the private bind directory.
	entries, _ := os.ReadDir(home)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".api-") {
			t.Errorf("leftover %s in home", e.Name())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	for _, f := range []string{api.SocketFile, api.AddrFile} {
		if _, err := os.Stat(filepath.Join(home, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after shutdown: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(home, api.TokenFile)); err != nil {
		t.Errorf("token removed at shutdown: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := api.NewClient(sock).Call(context.Background(), "version", nil, nil); !errors.Is(err, api.ErrNoDaemon) {
		t.Errorf("call after shutdown = %v, want ErrNoDaemon", err)
	}
}

func TestStaleSocketReplacedLiveOneRefused(t *testing.T) {
	home := t.TempDir()
	sock := filepath.Join(home, api.SocketFile)
	// A socket file nobody listens on, as a killed daemon leaves behind.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatal(err)
	}
	startServer(t, apitest.New(), false, api.Config{Home: home})
	if err := api.NewClient(sock).Call(context.Background(), "version", nil, nil); err != nil {
		t.Fatalf("after replacing a stale socket: %v", err)
	}
	// A second server on the same home must not steal the live socket.
	err = api.NewServer(apitest.New(), api.Config{Home: home}).Listen()
	if !errors.Is(err, api.ErrSocketInUse) {
		t.Fatalf("second server: %v, want ErrSocketInUse", err)
	}
	if err := api.NewClient(sock).Call(context.Background(), "version", nil, nil); err != nil {
		t.Fatalf("first server lost its socket: %v", err)
	}
}

func TestTokenReused(t *testing.T) {
	home := t.TempDir()
	a, err := api.LoadOrCreateToken(home)
	if err != nil {
		t.Fatal(err)
	}
	b, err := api.LoadOrCreateToken(home)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || len(a) != 64 {
		t.Errorf("tokens %q, %q: want the same 64 hex digits", a, b)
	}
	other, _ := api.LoadOrCreateToken(t.TempDir())
	if other == a {
		t.Error("two homes share a token")
	}
}

func TestSocketRPCAndSubscribe(t *testing.T) {
	b := apitest.New()
	srv, _ := startServer(t, b, false, api.Config{})
	c := api.NewClient(srv.SocketPath())
	ctx := context.Background()

	var ct node.Contact
	if err := c.Call(ctx, "addContact", map[string]string{"name": "alice", "link": "hush://alice"}, &ct); err != nil {
		t.Fatal(err)
	}
	err := c.Call(ctx, "removeContact", map[string]string{"name": "zed"}, nil)
	var rerr *api.Error
	if !errors.As(err, &rerr) || rerr.Code != api.CodeUnknownContact || rerr.Reason() != "unknown_contact" {
		t.Fatalf("removeContact zed: %v", err)
	}

	// Raw subscription: the response, then notifications.
	conn, err := net.Dial("unix", srv.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write([]byte(`{"jsonrpc":"2.0","id":1,"method":"subscribe"}` + "\n"))
	r := bufio.NewReader(conn)
	line, err := r.ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var resp api.Response
	if json.Unmarshal(line, &resp) != nil || resp.Error != nil || string(resp.ID) != "1" {
		t.Fatalf("subscribe response %s", line)
	}
	in := b.Receive("alice", "secret words")
	line, err = r.ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var n struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Params  node.Event      `json:"params"`
	}
	if err := json.Unmarshal(line, &n); err != nil {
		t.Fatal(err)
	}
	if n.JSONRPC != "2.0" || n.ID != nil || n.Method != "event" || n.Params.Type != node.EventMessage ||
		n.Params.Message == nil || n.Params.Message.ID != in.ID || n.Params.Seq == 0 {
		t.Fatalf("notification %s", line)
	}
	// Calls still work on a subscribed connection.
	conn.Write([]byte(`{"jsonrpc":"2.0","id":2,"method":"version"}` + "\n"))
	line, _ = r.ReadBytes('\n')
	if json.Unmarshal(line, &resp) != nil || string(resp.ID) != "2" || resp.Error != nil {
		t.Fatalf("version on subscribed conn: %s", line)
	}
	conn.Write([]byte(`{"jsonrpc":"2.0","id":3,"method":"unsubscribe"}` + "\n"))
	line, _ = r.ReadBytes('\n')
	if json.Unmarshal(line, &resp) != nil || string(resp.ID) != "3" || resp.Error != nil {
		t.Fatalf("unsubscribe: %s", line)
	}
	waitFor(t, func() bool { return b.Subscribers() == 0 })

	// The client helper, resuming after a sequence number.
	sub, err := c.Subscribe(ctx, n.Params.Seq-1)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	select {
	case ev := <-sub.Events:
		if ev.Seq != n.Params.Seq {
			t.Fatalf("resumed subscription: first seq %d, want %d", ev.Seq, n.Params.Seq)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no replayed event")
	}
	sub.Close()
	waitFor(t, func() bool { return b.Subscribers() == 0 })
	if sub.Err() != nil {
		t.Errorf("Err after Close = %v", sub.Err())
	}
}

func TestSocketOversizedRequest(t *testing.T) {
	srv, _ := startServer(t, apitest.New(), false, api.Config{MaxRequestSize: 1024})
	conn, err := net.Dial("unix", srv.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	go conn.Write([]byte(`{"jsonrpc":"2.0","id":1,"method":"send","params":{"to":"a","text":"` + strings.Repeat("x", 4096) + `"}}` + "\n"))
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var resp api.Response
	if json.Unmarshal(line, &resp) != nil || resp.Error == nil || resp.Error.Code != api.CodeInvalidRequest ||
		!strings.Contains(resp.Error.Message, "larger than 1024 bytes") {
		t.Fatalf("oversized request: %s", line)
	}
}

func TestSocketMalformedThenValid(t *testing.T) {
	srv, _ := startServer(t, apitest.New(), false, api.Config{})
	conn, err := net.Dial("unix", srv.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write([]byte("{oops\n" + `{"jsonrpc":"2.0","id":9,"method":"version"}` + "\n"))
	r := bufio.NewReader(conn)
	var first, second api.Response
	l1, _ := r.ReadBytes('\n')
	l2, _ := r.ReadBytes('\n')
	json.Unmarshal(l1, &first)
	json.Unmarshal(l2, &second)
	if first.Error == nil || first.Error.Code != api.CodeParseError {
		t.Errorf("malformed line: %s", l1)
	}
	if second.Error != nil || string(second.ID) != "9" {
		t.Errorf("valid line after a malformed one: %s", l2)
	}
}

func TestHTTPNeedsLoopback(t *testing.T) {
	err := api.NewServer(apitest.New(), api.Config{Home: t.TempDir(), HTTPAddr: "0.0.0.0:0"}).Listen()
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("listening on 0.0.0.0: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
