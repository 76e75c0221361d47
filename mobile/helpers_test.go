package mobile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/node"
	"github.com/hushnet/hush/relay"
)

// testKDF keeps Argon2id cheap for passphrase stores made by tests.
var testKDF = node.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func init() { passphraseKDF = testKDF }

// newKey returns a fresh store key as the config's "key" takes it.
func newKey() string {
	var k [keySize]byte
	rand.Read(k[:])
	return hex.EncodeToString(k[:])
}

// configJSON returns a config for a facade node in home on loopback.
func configJSON(t testing.TB, c config) string {
	t.Helper()
	if c.Listen == nil {
		c.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// start starts the facade and closes it at the end of the test.
func start(t testing.TB, c config, cb Callback) {
	t.Helper()
	if err := Start(configJSON(t, c), cb); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { Close() })
}

// call runs Call and decodes its result into out (when not nil).
func call(t testing.TB, method string, params any, out any) {
	t.Helper()
	p := ""
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			t.Fatal(err)
		}
		p = string(b)
	}
	res, err := Call(method, p)
	if err != nil {
		t.Fatalf("Call(%s): %v", method, err)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(res), out); err != nil {
			t.Fatalf("Call(%s) result %q: %v", method, res, err)
		}
	}
}

// recorder is a Callback that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []apitypes.Event
	panics int // the next panics events make OnEvent panic after recording
}

func (r *recorder) OnEvent(s string) {
	var ev apitypes.Event
	if err := json.Unmarshal([]byte(s), &ev); err != nil {
		panic(fmt.Sprintf("event is not JSON: %q", s))
	}
	r.mu.Lock()
	r.events = append(r.events, ev)
	p := r.panics > 0
	if p {
		r.panics--
	}
	r.mu.Unlock()
	if p {
		panic("a callback that panics")
	}
}

// reset forgets the events recorded so far.
func (r *recorder) reset() {
	r.mu.Lock()
	r.events = nil
	r.mu.Unlock()
}

// incoming returns the texts of incoming message events, in order.
func (r *recorder) incoming() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		if ev.Type == apitypes.EventMessage && ev.Message != nil && ev.Message.Direction == "in" {
			out = append(out, ev.Message.Text)
		}
	}
	return out
}

// seqOf returns the seq of the incoming message event with text.
func (r *recorder) seqOf(text string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		if ev.Type == apitypes.EventMessage && ev.Message != nil && ev.Message.Text == text {
			return ev.Seq
		}
	}
	return 0
}

func (r *recorder) has(text string) bool {
	for _, s := range r.incoming() {
		if s == text {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds (45 s at most: a loaded machine).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// plainNode is an ordinary node (not the facade) run by the test.
type plainNode struct {
	n      *node.Node
	cancel context.CancelFunc
	done   chan error
}

func startPlainNode(t testing.TB, name string, relays ...string) *plainNode {
	t.Helper()
	home := t.TempDir()
	if _, err := node.Init(home, node.InitOptions{Name: name, KDF: testKDF}); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(node.Config{Home: home, NoMDNS: true, NoSync: true, Relays: relays,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &plainNode{n: n, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-p.done:
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		<-p.done
		n.Close()
	})
	return p
}

func (p *plainNode) link(t testing.TB) string {
	t.Helper()
	if err := p.n.WaitLink(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, err := p.n.Self()
	if err != nil {
		t.Fatal(err)
	}
	return s.Link
}

func (p *plainNode) received(t testing.TB, contact, text string) bool {
	msgs, err := p.n.Messages(contact, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Direction == "in" && m.Text == text {
			return true
		}
	}
	return false
}

// send sends text from p and waits until it is at least at state.
func (p *plainNode) send(t testing.TB, to, text string, state node.MessageState) {
	t.Helper()
	m, err := p.n.Send(context.Background(), node.SendRequest{To: to, Text: text})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	if _, err := p.n.WaitState(ctx, m.ID, state); err != nil {
		t.Fatalf("%q did not reach %s: %v", text, state, err)
	}
}

// startRelay runs an in-process relay and returns its address.
func startRelay(t testing.TB) string {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(t.TempDir(), relay.StoreConfig(store.Config{}))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := relay.New(relay.Config{PeerRate: -1, IPRate: -1}, h, db)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Ready()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
		db.Close()
		h.Close()
	})
	return fmt.Sprintf("%s/p2p/%s", h.Addrs()[0], h.ID())
}

// callErr runs Call expecting an error and decodes it.
func callErr(t testing.TB, method, params string) apiError {
	t.Helper()
	res, err := Call(method, params)
	if err == nil {
		t.Fatalf("Call(%s, %s) = %s, want an error", method, params, res)
	}
	var e apiError
	if jerr := json.Unmarshal([]byte(err.Error()), &e); jerr != nil {
		t.Fatalf("Call(%s) error %q is not a JSON-RPC error object: %v", method, err, jerr)
	}
	return e
}

type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    *struct {
		Reason string `json:"reason"`
	} `json:"data"`
}

func contains(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }
