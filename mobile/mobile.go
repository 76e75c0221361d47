package mobile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node"
)

// Callback is what the app implements to receive the node's events.
type Callback interface {
	// OnEvent gets one event as JSON, exactly what the Unix socket's
	// subscribe sends as an event's params (docs/API.md "Events"): for
	// example {"seq":7,"type":"message","message":{...}}. Events come one
	// at a time, in seq order, from a goroutine of the node; the app hands
	// them to its own thread. OnEvent must not call Start, Drain, Close or
	// Call("subscribe"): they wait for the event delivery to stop.
	OnEvent(eventJSON string)
}

// Errors the facade's own functions return.
var (
	errNotStarted     = errors.New("mobile: not started: call Start first")
	errAlreadyStarted = errors.New("mobile: already started: call Close first")
)

// life serialises Start, Drain, Close and subscriptions: the changes of
// the facade's state. Call takes only state, so it runs during a Drain.
var life sync.Mutex

var (
	state sync.Mutex // guards cur
	cur   *facade
)

// facade is a started node. Its fields other than those under mu are set
// at Start and never change.
type facade struct {
	cfg    config
	ctx    context.Context // cancelled by Close: ends the Calls in flight
	cancel context.CancelFunc
	pump   *pump

	mu      sync.Mutex // guards the fields below and calls.Add
	n       *node.Node
	h       *api.Handler
	ran     bool     // n has run: a node runs once, the next run needs a new one
	net     *network // the running network; nil when it is off
	closing bool
	calls   sync.WaitGroup // Calls in flight
}

// network is one run of the node.
type network struct {
	cancel context.CancelFunc
	done   chan error
}

// Start opens the node in the config's home directory (creating its
// identity on the first start when the config names one), starts the
// event delivery to cb from the config's "since", and, unless the
// config says "offline", starts the network. It returns once the node
// listens. configJSON is described in docs/MOBILE.md.
func Start(configJSON string, cb Callback) (err error) {
	defer recoverError("Start", &err)
	hook("Start")
	life.Lock()
	defer life.Unlock()
	if current() != nil {
		return errAlreadyStarted
	}
	if cb == nil {
		return errors.New("mobile: Start needs a Callback for the events")
	}
	cfg, err := parseConfig(configJSON)
	if err != nil {
		return err
	}
	applyRuntimeLimits()
	if err := ensureIdentity(cfg); err != nil {
		return err
	}
	n, err := openNode(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &facade{cfg: cfg, ctx: ctx, cancel: cancel, n: n, h: api.NewHandler(n, nil), pump: newPump(cb, cfg.Since)}
	f.pump.attach(n)
	if !cfg.Offline {
		if err := f.startNetwork(); err != nil {
			f.pump.detach()
			cancel()
			n.Close()
			return err
		}
	}
	state.Lock()
	cur = f
	state.Unlock()
	return nil
}

// ensureIdentity creates the identity when the home has none and the
// config names one.
func ensureIdentity(cfg config) error {
	if _, err := os.Stat(filepath.Join(cfg.Home, "store")); err == nil {
		return nil
	}
	if cfg.Name == "" {
		return fmt.Errorf("mobile: no identity in %s: give \"name\" in the config to create one", cfg.Home)
	}
	kdf := passphraseKDF
	if cfg.Key != "" {
		kdf = keyKDF
	}
	if _, err := node.Init(cfg.Home, node.InitOptions{Name: cfg.Name, Passphrase: cfg.secret(), KDF: kdf}); err != nil {
		return fmt.Errorf("mobile: creating the identity: %w", err)
	}
	return nil
}

// openNode opens the store; it does no network I/O.
func openNode(cfg config) (*node.Node, error) {
	n, err := node.New(node.Config{
		Home: cfg.Home, Passphrase: cfg.secret(), ListenAddrs: cfg.Listen, Relays: cfg.Relays,
		NoMDNS: !cfg.MDNS, NoSync: cfg.NoFsync, Resources: resources(),
	})
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, node.ErrWrongPassphrase):
		return nil, errors.New("mobile: wrong key or passphrase for this store")
	case errors.Is(err, node.ErrStoreInUse):
		return nil, fmt.Errorf("mobile: %s is in use by another node (another process, or an app extension)", cfg.Home)
	case errors.Is(err, node.ErrStoreDamaged):
		return nil, fmt.Errorf("mobile: refusing to open a damaged store: %w", err)
	default:
		return nil, fmt.Errorf("mobile: opening the node: %w", err)
	}
}

// startNetwork runs the node (a fresh one if this one has run before)
// and waits until it listens. The caller holds life.
func (f *facade) startNetwork() error {
	f.mu.Lock()
	n, ran := f.n, f.ran
	f.mu.Unlock()
	if ran {
		var err error
		if n, err = f.reopen(n); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(f.ctx)
	nw := &network{cancel: cancel, done: make(chan error, 1)}
	go func() { nw.done <- n.Run(ctx) }()
	f.mu.Lock()
	f.ran, f.net = true, nw
	f.mu.Unlock()
	select {
	case <-n.Ready():
		return nil
	case err := <-nw.done:
		cancel()
		f.mu.Lock()
		f.net = nil
		f.mu.Unlock()
		if err == nil { // the run was cancelled: Close
			err = errors.New("stopped before it listened")
		}
		return fmt.Errorf("mobile: starting the network: %w", err)
	}
}

// reopen closes n and opens the store again: node.Run runs once per
// Node. Calls in flight on the old node end with "node is closed". The
// event delivery moves to the new node after the last seq delivered; a
// subscribe meanwhile waits (the pump's ctl lock) and follows it there.
func (f *facade) reopen(old *node.Node) (*node.Node, error) {
	f.pump.ctl.Lock()
	defer f.pump.ctl.Unlock()
	f.pump.detachLocked()
	old.Close()
	n, err := openNode(f.cfg)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.n, f.h = n, api.NewHandler(n, nil)
	f.mu.Unlock()
	f.pump.attachLocked(n)
	return n, nil
}

// stopNetwork stops the run, if any, and waits for it. The store stays
// open. The caller holds life.
func (f *facade) stopNetwork() {
	f.mu.Lock()
	nw := f.net
	f.net = nil
	f.mu.Unlock()
	if nw != nil {
		nw.cancel()
		<-nw.done
	}
}

func (f *facade) networkOn() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.net != nil
}

func (f *facade) node() *node.Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func current() *facade {
	state.Lock()
	defer state.Unlock()
	return cur
}

// Call runs one method of the local API (docs/API.md) with its params as
// a JSON object ("" or "null" for none) and returns the result as JSON.
// An error's text is the JSON-RPC error object, for example
// {"code":1,"message":"unknown contact","data":{"reason":"unknown_contact"}}.
// Besides the shared table, "subscribe" ({"since":N}) restarts the event
// delivery after seq N and "unsubscribe" stops it, as on the Unix socket.
func Call(method, paramsJSON string) (result string, err error) {
	defer recoverError("Call", &err)
	hook("Call")
	f := current()
	if f == nil {
		return "", errNotStarted
	}
	f.mu.Lock()
	if f.closing {
		f.mu.Unlock()
		return "", errNotStarted
	}
	f.calls.Add(1)
	h := f.h
	f.mu.Unlock()
	defer f.calls.Done()

	var params json.RawMessage
	if paramsJSON != "" {
		params = json.RawMessage(paramsJSON)
	}
	var (
		res  any
		rerr *api.Error
	)
	switch method {
	case "subscribe":
		res, rerr = f.subscribe(params)
	case "unsubscribe":
		if e := api.NoParams(params); e != nil {
			rerr = e
			break
		}
		f.pump.detach()
		res = apitypes.OK{OK: true}
	default:
		if !json.Valid(params) && params != nil {
			rerr = &api.Error{Code: api.CodeParseError, Message: "parse error: params are not valid JSON"}
			break
		}
		res, rerr = h.Call(f.ctx, method, params)
	}
	if rerr != nil {
		return "", callError{rerr}
	}
	b, err := json.Marshal(res)
	if err != nil {
		return "", fmt.Errorf("mobile: encoding the result of %s: %w", method, err)
	}
	return string(b), nil
}

// subscribe restarts the event delivery after the given seq.
func (f *facade) subscribe(params json.RawMessage) (any, *api.Error) {
	var p apitypes.SubscribeParams
	if e := api.DecodeParams(params, &p); e != nil {
		return nil, e
	}
	if p.After != 0 && p.Since != 0 && p.After != p.Since {
		return nil, &api.Error{Code: api.CodeInvalidParams, Message: "invalid params: after and since differ; give one"}
	}
	f.pump.restart(f.node, max(p.After, p.Since))
	return apitypes.OK{OK: true}, nil
}

// callError is an API error whose text is its JSON object.
type callError struct{ e *api.Error }

func (c callError) Error() string {
	b, err := json.Marshal(c.e)
	if err != nil {
		return c.e.Message
	}
	return string(b)
}

func (c callError) Unwrap() error { return c.e }

// Close stops the network and the event delivery and closes the store.
// Calls in flight and a Drain under way end (their context is cancelled)
// before the store closes. Closing a closed (or never started) facade does nothing.
func Close() (err error) {
	defer recoverError("Close", &err)
	hook("Close")
	if f := current(); f != nil {
		f.cancel() // a Drain under way ends now, not at its timeout
	}
	life.Lock()
	defer life.Unlock()
	f := current()
	if f == nil {
		return nil
	}
	f.mu.Lock()
	f.closing = true
	f.mu.Unlock()
	f.cancel()
	f.calls.Wait()
	f.stopNetwork()
	f.pump.detach()
	err = f.node().Close()
	state.Lock()
	cur = nil
	state.Unlock()
	return err
}
