package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/relay"
)

// Push registration: a phone app gives the node its push token and the
// app's push bridge; the bridge sends a verification push with a code;
// the app hands the code back and the node gets a wake handle, which it
// attaches to its mailbox on every relay (relay SetWake). A relay then
// asks the bridge to wake this device when an envelope waits for it
// (docs/PUSH.md, docs/RELAY.md "Wake-ups").

// pushRec is the identity table's "push" record.
type pushRec struct {
	Bridge       string `json:"bridge"`
	Provider     string `json:"provider"`
	Registration string `json:"registration,omitempty"` // waiting for its code
	Handle       string `json:"handle,omitempty"`       // the wake handle, once verified
}

var idPush = []byte("push")

// ErrBadPush: a push registration the node or the bridge refused (a
// malformed bridge URL, provider or token; a wrong or replayed code).
var ErrBadPush = errors.New("push registration refused")

// PushStatus is the API's.
type PushStatus = apitypes.PushStatus

// pushTimeout bounds one call to the bridge.
const pushTimeout = 15 * time.Second

var pushClient = &http.Client{Timeout: pushTimeout} // system trust pool: SSL_CERT_FILE works

// checkBridgeURL accepts https, or http on a loopback host.
func checkBridgeURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("%w: push bridge %q is not an http(s) URL", ErrBadPush, raw)
	}
	if u.Scheme == "http" {
		ip := net.ParseIP(u.Hostname())
		if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return "", fmt.Errorf("%w: a push bridge must be https (http only on this machine)", ErrBadPush)
		}
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// callBridge posts body as JSON to the bridge and decodes its answer.
func callBridge(ctx context.Context, bridge, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, bridge+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := pushClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is the user's own; the error need not repeat it
		}
		return fmt.Errorf("push bridge unreachable: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("push bridge: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%w: push bridge: %s", ErrBadPush, e.Error)
		}
		return fmt.Errorf("push bridge answered %s", resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("push bridge sent a malformed answer: %w", err)
		}
	}
	return nil
}

// RegisterPush registers this device's push token (for "webpush", the
// subscription JSON) with a push bridge. The bridge sends a verification
// push carrying a code; VerifyPush completes the registration.
func (n *Node) RegisterPush(ctx context.Context, bridge, provider, token string) error {
	bridge, err := checkBridgeURL(bridge)
	if err != nil {
		return err
	}
	body := map[string]any{"provider": provider}
	switch provider {
	case "apns", "fcm":
		body["token"] = token
	case "webpush":
		if !json.Valid([]byte(token)) {
			return fmt.Errorf("%w: a webpush token is the subscription JSON ({\"endpoint\", \"keys\"})", ErrBadPush)
		}
		body["subscription"] = json.RawMessage(token)
	default:
		return fmt.Errorf("%w: provider %q: want apns, fcm or webpush", ErrBadPush, provider)
	}
	var ans struct {
		Registration string `json:"registration"`
	}
	if err := callBridge(ctx, bridge, "/v1/register", body, &ans); err != nil {
		return err
	}
	if ans.Registration == "" {
		return errors.New("push bridge sent no registration")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	rec := n.push.current()
	rec.Bridge, rec.Provider, rec.Registration = bridge, provider, ans.Registration
	return n.savePushLocked(rec)
}

// VerifyPush hands the bridge the code its verification push carried;
// the wake handle it answers is attached to every mailbox.
func (n *Node) VerifyPush(ctx context.Context, code string) error {
	rec := n.push.current()
	if rec.Registration == "" {
		return fmt.Errorf("%w: no push registration is waiting for a code; run `hush push register` first", ErrBadPush)
	}
	var ans struct {
		Handle string `json:"wake_handle"`
	}
	if err := callBridge(ctx, rec.Bridge, "/v1/verify", map[string]string{"registration": rec.Registration, "code": strings.TrimSpace(code)}, &ans); err != nil {
		return err
	}
	if ans.Handle == "" || len(ans.Handle) > relay.MaxWakeHandle {
		return errors.New("push bridge sent no usable wake handle")
	}
	n.mu.Lock()
	rec = n.push.current()
	old := rec.Handle
	rec.Registration, rec.Handle = "", ans.Handle
	err := n.savePushLocked(rec)
	n.mu.Unlock()
	if err != nil {
		return err
	}
	if old != "" && old != rec.Handle {
		// Best effort: the old handle's token is gone from the bridge
		// anyway once the provider calls it dead.
		if err := callBridge(ctx, rec.Bridge, "/v1/unregister", map[string]string{"wake_handle": old}, nil); err != nil {
			n.log.Debug("old wake handle not unregistered", "err", err)
		}
	}
	return nil
}

// UnregisterPush detaches the wake handle from every relay and tells the
// bridge to forget the token.
func (n *Node) UnregisterPush(ctx context.Context) error {
	n.mu.Lock()
	rec := n.push.current()
	if rec.Bridge == "" {
		n.mu.Unlock()
		return nil
	}
	if err := n.savePushLocked(pushRec{}); err != nil {
		n.mu.Unlock()
		return err
	}
	n.mu.Unlock()
	if rec.Handle != "" {
		return callBridge(ctx, rec.Bridge, "/v1/unregister", map[string]string{"wake_handle": rec.Handle}, nil)
	}
	return nil
}

// PushStatus says whether this device can be woken, and by how many relays.
func (n *Node) PushStatus() PushStatus {
	rec, attached, unsupported := n.push.status()
	st := PushStatus{Bridge: rec.Bridge, Provider: rec.Provider, State: "off", Relays: attached, Unsupported: unsupported}
	switch {
	case rec.Handle != "":
		st.State = "on"
	case rec.Registration != "":
		st.State = "verifying"
	}
	return st
}

// loadPush reads the stored registration (none: the zero record).
func (n *Node) loadPush() {
	var rec pushRec
	if b, err := n.tabs.identity.Get(idPush); err == nil {
		if err := json.Unmarshal(b, &rec); err != nil {
			n.log.Warn("stored push registration unreadable; push is off until registered again", "err", err)
			rec = pushRec{}
		}
	}
	n.push.set(rec)
}

// savePushLocked stores rec, then makes it current (which wakes the
// relays' wake loops). n.mu serialises the registration's
// read-modify-write; on a failed commit nothing changes.
func (n *Node) savePushLocked(rec pushRec) error {
	b := n.db.Batch()
	putJSON(b, n.tabs.identity, idPush, &rec)
	if err := n.commit(b); err != nil {
		return err
	}
	n.push.set(rec)
	return nil
}

// pushState is a part with its own lock: the push registration as last
// stored, a channel closed when it changes, and, per relay, whether the
// wake handle is attached there or the relay cannot wake.
type pushState struct {
	mu      sync.Mutex
	rec     pushRec
	changed chan struct{}
	relays  map[peer.ID]int // wakeAttached or wakeUnsupported
}

// Per-relay state of the wake handle (pushState.relays).
const (
	wakeAttached    = 1
	wakeUnsupported = 2
)

func newPushState() *pushState {
	return &pushState{changed: make(chan struct{}), relays: make(map[peer.ID]int)}
}

// current returns a copy of the registration.
func (p *pushState) current() pushRec {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rec
}

// watch returns the wake handle and a channel closed when it changes.
func (p *pushState) watch() (handle string, changed <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rec.Handle, p.changed
}

func (p *pushState) set(rec pushRec) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rec = rec
	close(p.changed)
	p.changed = make(chan struct{})
}

// relay records the wake handle's state on one relay (0: not attached).
func (p *pushState) relay(id peer.ID, state int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if state == 0 {
		delete(p.relays, id)
	} else {
		p.relays[id] = state
	}
}

func (p *pushState) status() (rec pushRec, attached, unsupported int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.relays {
		switch w {
		case wakeAttached:
			attached++
		case wakeUnsupported:
			unsupported++
		}
	}
	return p.rec, attached, unsupported
}

// wakeLoop keeps the current wake handle attached to the mailbox on one
// relay while the subscription to it lasts: at the start and whenever
// the handle changes.
func (n *Node) wakeLoop(ctx context.Context, ri peer.AddrInfo, mbox relay.ID, owner ed25519.PrivateKey) {
	// A device that never registered sends nothing; a handle the bridge
	// forgot while a relay was away is rejected by the bridge at the next
	// wake, and the relay detaches it.
	none := ""
	keepInStep(ctx, n, inStep[string]{
		what:    "wake handle",
		current: n.push.watch,
		equal:   func(a, b string) bool { return a == b },
		held:    &none,
		send: func(ctx context.Context, h host.Host, handle string) error {
			return n.relays.SetWake(ctx, h, ri, mbox, owner, handle)
		},
		accepted: func(handle string) {
			state := 0
			if handle != "" {
				state = wakeAttached
			}
			n.push.relay(ri.ID, state)
		},
		unsupported: func(handle string) {
			n.push.relay(ri.ID, wakeUnsupported)
			if handle != "" {
				n.log.Info("a relay has no push bridge: it cannot wake this device")
			}
		},
	})
}
