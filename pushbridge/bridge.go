package pushbridge

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/pushbridge/provider"
)

// WakePayload is the body of every wake-up: a constant wake flag and
// nothing else. CollapseID is the collapse ID (APNs apns-collapse-id, FCM
// collapse_key, WebPush Topic) of every push the bridge sends.
var WakePayload = []byte(`{"t":"wake"}`)

// CollapseID is the fixed collapse ID of every push.
const CollapseID = "wake"

// CodeTTL is how long a verification code stays valid.
const CodeTTL = 10 * time.Minute

// maxCodeTries is how many wrong codes end a registration.
const maxCodeTries = 5

// Sentinel errors; callers (and the HTTP API) branch on them.
var (
	ErrUnknownProvider     = errors.New("pushbridge: unknown push provider")
	ErrBadToken            = errors.New("pushbridge: malformed push token")
	ErrTokenRejected       = errors.New("pushbridge: the push service rejected the token")
	ErrUnavailable         = errors.New("pushbridge: the push service is unavailable; try again later")
	ErrRateLimited         = errors.New("pushbridge: rate limited; try again later")
	ErrUnknownRegistration = errors.New("pushbridge: unknown or expired registration")
	ErrCodeUsed            = errors.New("pushbridge: verification code already used")
	ErrWrongCode           = errors.New("pushbridge: wrong verification code")
	ErrTooManyHandles      = errors.New("pushbridge: too many handles in one wake")
	ErrClosed              = errors.New("pushbridge: bridge is closed")
)

// Store tables and records.
const (
	tableKey        = "pushbridge-key"
	tableTombstones = "pushbridge-tombstones"
)

var keyRecord = []byte("hpke-x25519")

// Bridge is a push bridge. It is safe for concurrent use.
type Bridge struct {
	cfg     Config
	limits  Limits
	log     *slog.Logger
	senders map[provider.Kind]provider.Sender
	relays  []relayCredential
	seal    *sealer
	db      *store.DB
	tombs   *store.Table
	sends   chan struct{} // semaphore of attempts in flight

	stats counters

	closeOnce sync.Once
	closeErr  error

	// regMu guards the registrations waiting for verification.
	regMu   sync.Mutex
	pending map[string]*registration // by registration ID
	used    map[string]time.Time     // verified registration ID → expiry, to name replays

	// mu guards the per-handle state, the queue and the buckets.
	mu        sync.Mutex
	slots     map[handleKey]*slot
	queue     slotQueue
	global    bucket
	regLimits map[[sha256.Size]byte]*bucket
	wakeQueue chan struct{} // a kick for the scheduler, buffered 1
	running   bool
}

// registration is a token waiting for its code.
type registration struct {
	kind    provider.Kind
	token   string
	code    [sha256.Size]byte // SHA-256 of the code
	expires time.Time
	tries   int
}

// Open opens (creating if needed) the bridge's store in cfg.DataDir and
// loads or makes its HPKE key. senders maps each enabled service to its
// sender. Open starts no goroutine; call Run.
func Open(cfg Config, senders map[provider.Kind]provider.Sender) (*Bridge, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("pushbridge: config: data_dir is empty")
	}
	relays, err := cfg.relayCredentials()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	b := &Bridge{
		cfg:       cfg,
		limits:    cfg.Limits.withDefaults(),
		log:       log,
		senders:   make(map[provider.Kind]provider.Sender),
		relays:    relays,
		pending:   make(map[string]*registration),
		used:      make(map[string]time.Time),
		slots:     make(map[handleKey]*slot),
		regLimits: make(map[[sha256.Size]byte]*bucket),
		wakeQueue: make(chan struct{}, 1),
	}
	for k, s := range senders {
		if _, ok := kindCodes[k]; !ok || s == nil || s.Kind() != k {
			return nil, fmt.Errorf("pushbridge: sender for %q does not fit", k)
		}
		b.senders[k] = s
	}
	if b.cfg.PushTTL == 0 {
		b.cfg.PushTTL = Duration(DefaultPushTTL)
	}
	b.sends = make(chan struct{}, b.limits.MaxSends)
	b.global = newBucket(b.limits.GlobalPerSecond, b.limits.GlobalBurst)

	db, err := store.Open(cfg.DataDir, store.Config{NoSync: cfg.NoSync, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("pushbridge: %w", err)
	}
	key, err := loadKey(db.Table(tableKey))
	if err == nil {
		b.seal, err = newSealer(key)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	b.db = db
	b.tombs = db.Table(tableTombstones)
	return b, nil
}

// loadKey reads the bridge's X25519 key, making it on first use.
func loadKey(t *store.Table) ([]byte, error) {
	key, err := t.Get(keyRecord)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("pushbridge: load key: %w", err)
	}
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := t.Put(keyRecord, k.Bytes()); err != nil {
		return nil, fmt.Errorf("pushbridge: save key: %w", err)
	}
	return k.Bytes(), nil
}

// Close closes the store. Call it after Run has returned. It is
// idempotent.
func (b *Bridge) Close() error {
	b.closeOnce.Do(func() { b.closeErr = b.db.Close() })
	return b.closeErr
}

// Run serves the HTTP API on ln (if not nil) and sends the queued retries
// and coalesced wake-ups until ctx is done. Every goroutine it starts has
// ended when it returns. Wake calls made while Run is not running still
// send at once, but their retries wait for Run.
func (b *Bridge) Run(ctx context.Context, ln net.Listener) error {
	b.mu.Lock()
	if b.running {
		b.mu.Unlock()
		return errors.New("pushbridge: Run called twice")
	}
	b.running = true
	b.mu.Unlock()

	var wg sync.WaitGroup
	var srvErr error
	if ln != nil {
		srv := b.server()
		wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, errServerClosed) {
				srvErr = err
			}
		})
		wg.Go(func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if srv.Shutdown(sctx) != nil {
				srv.Close()
			}
		})
		b.log.Info("pushbridge listening", "addr", ln.Addr().String())
	}
	b.schedule(ctx, &wg)
	wg.Wait()
	return srvErr
}

// Register checks token, sends it a verification push carrying a
// one-time code and returns the registration ID the device must send back
// with the code ([Bridge.Verify]). The code is only in the push.
func (b *Bridge) Register(ctx context.Context, kind provider.Kind, token string) (string, error) {
	s, ok := b.senders[kind]
	if !ok {
		return "", ErrUnknownProvider
	}
	if len(token) == 0 || len(token) > MaxTokenSize {
		return "", ErrBadToken
	}
	if err := s.CheckToken(token); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	now := time.Now()
	if !b.allowRegister(now, kind, token) {
		b.stats.limited.Add(1)
		return "", ErrRateLimited
	}
	b.regMu.Lock()
	b.pruneRegistrationsLocked(now)
	full := len(b.pending) >= b.limits.MaxPending
	b.regMu.Unlock()
	if full {
		b.stats.limited.Add(1)
		return "", ErrRateLimited
	}

	id, code := rand.Text(), rand.Text()
	payload := []byte(`{"t":"verify","code":"` + code + `"}`)
	res := b.send(ctx, s, provider.Push{Token: token, Payload: payload, Priority: provider.High,
		TTL: CodeTTL, CollapseID: CollapseID})
	b.log.Info("verification push", "provider", string(kind), "outcome", res.Outcome.String(),
		"status", res.Status, "reason", res.Reason)
	switch res.Outcome {
	case provider.Delivered:
	case provider.Retry:
		return "", ErrUnavailable
	default:
		return "", ErrTokenRejected
	}
	b.regMu.Lock()
	b.pending[id] = &registration{kind: kind, token: token, code: sha256.Sum256([]byte(code)), expires: now.Add(CodeTTL)}
	b.regMu.Unlock()
	return id, nil
}

// Verify checks the code of a registration and returns the device's wake
// handle. A code works once; a replay gives ErrCodeUsed, an expired or
// unknown registration ErrUnknownRegistration, and maxCodeTries wrong
// codes end the registration.
func (b *Bridge) Verify(id, code string) (string, error) {
	now := time.Now()
	b.regMu.Lock()
	b.pruneRegistrationsLocked(now)
	if _, ok := b.used[id]; ok {
		b.regMu.Unlock()
		return "", ErrCodeUsed
	}
	r, ok := b.pending[id]
	if !ok {
		b.regMu.Unlock()
		return "", ErrUnknownRegistration
	}
	sum := sha256.Sum256([]byte(code))
	if subtle.ConstantTimeCompare(sum[:], r.code[:]) != 1 {
		r.tries++
		if r.tries >= maxCodeTries {
			delete(b.pending, id)
		}
		b.regMu.Unlock()
		return "", ErrWrongCode
	}
	delete(b.pending, id)
	b.used[id] = r.expires
	b.regMu.Unlock()
	return b.seal.seal(r.kind, r.token)
}

// pruneRegistrationsLocked forgets expired registrations and codes.
func (b *Bridge) pruneRegistrationsLocked(now time.Time) {
	for id, r := range b.pending {
		if now.After(r.expires) {
			delete(b.pending, id)
		}
	}
	for id, exp := range b.used {
		if now.After(exp) {
			delete(b.used, id)
		}
	}
}

// Unregister tombstones a handle: every later wake rejects it.
func (b *Bridge) Unregister(handle string) error {
	key, _, _, err := b.seal.open(handle)
	if err != nil {
		return err
	}
	b.forget(key)
	return b.tombstone(key)
}

// tombstone records that key is dead for good.
func (b *Bridge) tombstone(key handleKey) error {
	if err := b.tombs.Put(key[:], []byte{1}); err != nil {
		return fmt.Errorf("pushbridge: tombstone: %w", err)
	}
	return nil
}

func (b *Bridge) dead(key handleKey) (bool, error) {
	ok, err := b.tombs.Has(key[:])
	if err != nil {
		return false, fmt.Errorf("pushbridge: tombstone: %w", err)
	}
	return ok, nil
}

// Wake asks for a wake-up of each handle and returns the handles the
// relay must forget: those that do not open, are unregistered, or whose
// token the service reported dead now or before. A handle answered
// "busy" is retried later and not rejected; a coalesced or rate-limited
// wake is not rejected either. Wake returns when every immediate attempt
// has ended.
func (b *Bridge) Wake(ctx context.Context, handles []string, urgency provider.Priority) ([]string, error) {
	if len(handles) > b.limits.MaxHandlesPerWake {
		return nil, ErrTooManyHandles
	}
	rejected := make([]bool, len(handles))
	var wg sync.WaitGroup
	var storeErr atomic.Pointer[error]
	for i, h := range handles {
		key, kind, token, err := b.seal.open(h)
		if err != nil {
			rejected[i] = true
			continue
		}
		s, ok := b.senders[kind]
		if !ok {
			// The service was switched off: the handle is not dead, the
			// operator must look.
			b.stats.refused.Add(1)
			continue
		}
		isDead, err := b.dead(key)
		if err != nil {
			storeErr.Store(&err)
			continue
		}
		if isDead {
			rejected[i] = true
			continue
		}
		sl := b.admit(key, s, token, urgency)
		if sl == nil {
			continue
		}
		wg.Go(func() {
			if b.attempt(ctx, sl) == provider.Dead {
				rejected[i] = true
			}
		})
	}
	wg.Wait()
	var out []string
	for i, r := range rejected {
		if r {
			out = append(out, handles[i])
		}
	}
	b.stats.rejected.Add(uint64(len(out)))
	if p := storeErr.Load(); p != nil {
		return out, *p
	}
	return out, nil
}

// send makes one attempt within the send semaphore and timeout. A
// context that ends before the service answers gives Retry.
func (b *Bridge) send(ctx context.Context, s provider.Sender, p provider.Push) provider.Result {
	select {
	case b.sends <- struct{}{}:
	case <-ctx.Done():
		return provider.Result{Outcome: provider.Retry, Reason: "canceled"}
	}
	defer func() { <-b.sends }()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(b.limits.SendTimeout))
	defer cancel()
	return s.Send(ctx, p)
}

// Stats counts what the bridge did since Open.
type Stats struct {
	Delivered uint64 // wake-ups the services accepted
	Coalesced uint64 // wakes merged into another wake-up
	Limited   uint64 // wakes and registrations refused by a rate limit
	Retried   uint64 // attempts answered "busy" and queued again
	Dropped   uint64 // pushes given up: retries exhausted or queue full
	Dead      uint64 // tokens the services reported dead
	Refused   uint64 // attempts the services refused (operator must look)
	Rejected  uint64 // handles reported rejected to relays
}

type counters struct {
	delivered, coalesced, limited, retried, dropped, dead, refused, rejected atomic.Uint64
}

// Stats returns the bridge's counters.
func (b *Bridge) Stats() Stats {
	c := &b.stats
	return Stats{c.delivered.Load(), c.coalesced.Load(), c.limited.Load(), c.retried.Load(),
		c.dropped.Load(), c.dead.Load(), c.refused.Load(), c.rejected.Load()}
}
