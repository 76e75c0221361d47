package relay

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Wake-up defaults (docs/RELAY.md "Wake-ups").
const (
	DefaultWakeWindow = 30 * time.Second // at most one wake per mailbox per window
	wakeBatch         = 500              // handles per call to the bridge
	maxWakePending    = 10000            // handles waiting for a call; more are dropped
	wakeCallTimeout   = 10 * time.Second
	maxWakeReply      = 1 << 20
)

// PushConfig points the relay at a push bridge (docs/PUSH.md). With no
// Bridge, SetWake is answered Unsupported.
type PushConfig struct {
	// Bridge is the bridge's base URL, https (http only for a loopback
	// host). Default none.
	Bridge string `json:"bridge,omitempty"`
	// TokenFile holds the relay's credential at the bridge (sent as a
	// bearer token). Required with Bridge.
	TokenFile string `json:"token_file,omitempty"`
	// Window is the shortest time between two wakes of one mailbox.
	// Default 30 s.
	Window Duration `json:"window,omitempty"`

	// Token is the credential itself (tests; TokenFile is read into it).
	Token string `json:"-"`
	// Client makes the calls. Default: a client with the system's trust
	// pool (SSL_CERT_FILE works) and a 10 s timeout.
	Client *http.Client `json:"-"`
}

func (p PushConfig) withDefaults() (PushConfig, error) {
	if p.Bridge == "" {
		return p, nil
	}
	u, err := url.Parse(p.Bridge)
	if err != nil || u.Host == "" {
		return p, fmt.Errorf("relay: config: push.bridge %q is not a URL", p.Bridge)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		return p, fmt.Errorf("relay: config: push.bridge must be https (http only on a loopback address)")
	}
	if p.Token == "" && p.TokenFile != "" {
		b, err := os.ReadFile(p.TokenFile)
		if err != nil {
			return p, fmt.Errorf("relay: config: push.token_file: %w", err)
		}
		p.Token = strings.TrimSpace(string(b))
	}
	if p.Token == "" {
		return p, fmt.Errorf("relay: config: push.bridge needs push.token_file (the relay's credential at the bridge)")
	}
	if p.Window <= 0 {
		p.Window = Duration(DefaultWakeWindow)
	}
	if p.Client == nil {
		p.Client = &http.Client{Timeout: wakeCallTimeout}
	}
	return p, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// waker asks the bridge to wake the owners of mailboxes that received
// something while nobody was subscribed. It owns the queue of handles
// waiting for a call; the server tells it through notify.
type waker struct {
	s   *Server
	cfg PushConfig

	mu      sync.Mutex
	pending map[string]ID // handle → mailbox, waiting for the next call
	kick    chan struct{}
}

func newWaker(s *Server, cfg PushConfig) *waker {
	return &waker{s: s, cfg: cfg, pending: make(map[string]ID), kick: make(chan struct{}, 1)}
}

func (w *waker) enabled() bool { return w.cfg.Bridge != "" }

// notify is called after something was stored in mb: if the owner is not
// subscribed, has a handle and was not woken within the window, its
// handle is queued for the next call.
func (w *waker) notify(mb *mailbox) {
	if !w.enabled() {
		return
	}
	now := w.s.cfg.Now()
	mb.mu.Lock()
	if mb.sub != nil || mb.wakeHandle == "" || mb.deleted || now.Sub(mb.lastWake) < time.Duration(w.cfg.Window) {
		mb.mu.Unlock()
		return
	}
	mb.lastWake = now
	handle, id := mb.wakeHandle, mb.id
	mb.mu.Unlock()

	w.mu.Lock()
	if len(w.pending) < maxWakePending {
		w.pending[handle] = id
	} else {
		w.s.log.Warn("wake queue full, wake dropped")
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// run calls the bridge whenever handles wait, until ctx ends.
func (w *waker) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		}
		for {
			w.mu.Lock()
			batch := make(map[string]ID, min(len(w.pending), wakeBatch))
			for h, id := range w.pending {
				if len(batch) == wakeBatch {
					break
				}
				batch[h] = id
				delete(w.pending, h)
			}
			w.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			w.call(ctx, batch)
		}
	}
}

// wakeRequest and wakeReply are the bridge's /v1/wake body and answer.
type wakeRequest struct {
	Handles []string `json:"handles"`
	Urgency string   `json:"urgency"`
}

type wakeReply struct {
	Rejected []string `json:"rejected"`
}

// call sends one batch. Handles the bridge rejects (dead tokens, forged
// or foreign handles) are detached from their mailboxes; a failed call
// is logged and dropped (the next deposit after the window tries again).
func (w *waker) call(ctx context.Context, batch map[string]ID) {
	req := wakeRequest{Urgency: "high"}
	for h := range batch {
		req.Handles = append(req.Handles, h)
	}
	body, _ := json.Marshal(req)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(w.cfg.Bridge, "/")+"/v1/wake", bytes.NewReader(body))
	if err != nil {
		w.s.log.Warn("wake call not made", "err", err)
		return
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+w.cfg.Token)
	resp, err := w.cfg.Client.Do(hr)
	if err != nil {
		w.s.log.Warn("push bridge unreachable", "handles", len(batch), "err", redactURL(err))
		w.s.m.WakeCall(false, len(batch))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxWakeReply))
		w.s.log.Warn("push bridge refused the wake call", "status", resp.StatusCode, "handles", len(batch))
		w.s.m.WakeCall(false, len(batch))
		return
	}
	var reply wakeReply
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxWakeReply)).Decode(&reply); err != nil {
		w.s.log.Warn("push bridge sent a malformed answer", "err", err)
		w.s.m.WakeCall(false, len(batch))
		return
	}
	w.s.m.WakeCall(true, len(batch))
	for _, h := range reply.Rejected {
		if id, ok := batch[h]; ok {
			w.s.detachWake(id, h)
		}
	}
}

// redactURL drops the URL from a client error: the relay logs no
// address, and the operator knows which bridge it configured.
func redactURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// setWake serves a SetWake: it attaches (or detaches) a wake handle.
func (s *Server) setWake(c *conn, m *SetWake) (any, *reqErr) {
	if !s.wake.enabled() {
		return nil, fail(CodeUnsupported, "this relay has no push bridge")
	}
	if !s.allow(c) {
		return nil, fail(CodeRateLimited, "too many requests; retry later")
	}
	mb, rerr := s.ownerRequest(m.Mailbox, m.Time, func(o ed25519.PublicKey) bool { return VerifySetWake(m, o) })
	if rerr != nil {
		return nil, rerr
	}
	for i := 0; i < len(m.Handle); i++ {
		if c := m.Handle[i]; c < 0x21 || c > 0x7e {
			return nil, fail(CodeBadRequest, "a wake handle is printable ASCII")
		}
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.deleted {
		return nil, fail(CodeNotFound, "no such mailbox")
	}
	if m.Time <= mb.wakeTime {
		return nil, fail(CodeAuth, "time not after the last wake setting")
	}
	b := s.db.Batch()
	b.Put(s.t.wakes, mb.id[:], encodeWake(m.Time, m.Handle))
	if err := s.db.CommitGrouped(b); err != nil {
		s.log.Error("wake setting not stored", "err", err)
		return nil, fail(CodeInternal, "store failed")
	}
	mb.wakeTime, mb.wakeHandle = m.Time, m.Handle
	mb.lastWake = time.Time{}
	return OK, nil
}

// detachWake removes a handle the bridge rejected, unless the owner has
// set another one since.
func (s *Server) detachWake(id ID, handle string) {
	mb := s.lookupMailbox(id)
	if mb == nil {
		return
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.deleted || mb.wakeHandle != handle {
		return
	}
	b := s.db.Batch()
	b.Put(s.t.wakes, mb.id[:], encodeWake(mb.wakeTime, ""))
	if err := s.db.CommitGrouped(b); err != nil {
		s.log.Error("rejected wake handle not removed", "err", err)
		return
	}
	mb.wakeHandle = ""
	s.log.Info("the push bridge rejected a wake handle; it was removed")
}
