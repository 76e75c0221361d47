package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node"
	"github.com/hushnet/hush/webui"
)

// readPassphrase reads a passphrase file ("-" is stdin), stripping one
// trailing newline; an empty passphrase is refused.
func readPassphrase(e *env, path string) ([]byte, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(e.stdin, 64<<10))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading passphrase file: %w", err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return nil, errors.New("the passphrase file is empty; an empty passphrase is not allowed (use --no-passphrase for none)")
	}
	return b, nil
}

// newPassphraseFlags adds --passphrase-file and --no-passphrase, for a
// verb that creates a store (init, device join), to fs. After parsing,
// the returned function insists on exactly one of them and reads the
// passphrase (nil for --no-passphrase).
func newPassphraseFlags(e *env, fs *flag.FlagSet) func(synopsis string) ([]byte, error) {
	passFile := fs.String("passphrase-file", "", "file holding the store passphrase (- for stdin)")
	noPass := fs.Bool("no-passphrase", false, "keep the store key in a 0600 file instead")
	return func(synopsis string) ([]byte, error) {
		if (*passFile == "") == !*noPass {
			return nil, usagef("give exactly one of --passphrase-file and --no-passphrase; usage: hush %s", synopsis)
		}
		if *noPass {
			return nil, nil
		}
		return readPassphrase(e, *passFile)
	}
}

// printStoreProtection tells the user how a store just created in home
// is protected.
func printStoreProtection(e *env, pass []byte) {
	if len(pass) > 0 {
		fmt.Fprintln(e.stdout, "The store is encrypted under your passphrase; start the daemon with --passphrase-file.")
	} else {
		fmt.Fprintln(e.stdout, "The store is NOT passphrase-protected: its key is stored in a 0600 file next to the data")
		fmt.Fprintf(e.stdout, "in %s. Anyone who can read that directory can read your messages.\n", e.home)
	}
}

func runInit(_ context.Context, e *env, args []string) error {
	const synopsis = "init --name NAME [--device-name NAME] (--passphrase-file F | --no-passphrase)"
	fs := newFlags(e, "init")
	name := fs.String("name", "", "your display name")
	deviceName := fs.String("device-name", "", "this device's name, as your other devices list it (default: this machine's host name)")
	passphrase := newPassphraseFlags(e, fs)
	if _, err := parseArgs(e, fs, args, 0, 0, synopsis); err != nil {
		return err
	}
	if *name == "" {
		return usagef("--name is required; usage: hush %s", synopsis)
	}
	pass, err := passphrase(synopsis)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(e.home, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", e.home, err)
	}
	self, err := initIdentity(e.home, *name, *deviceName, pass)
	if err != nil {
		if errors.Is(err, node.ErrIdentityExists) {
			return fmt.Errorf("an identity already exists in %s", e.home)
		}
		if errors.Is(err, node.ErrStoreInUse) {
			return fmt.Errorf("another daemon is using %s", e.home)
		}
		return fmt.Errorf("init: %w", err)
	}
	fmt.Fprintf(e.stdout, "Created identity %q in %s.\n\n", self.Name, e.home)
	fmt.Fprintln(e.stdout, "Your contact link (give it to the people you want to talk to):")
	fmt.Fprintln(e.stdout, self.Link)
	fmt.Fprintln(e.stdout)
	printStoreProtection(e, pass)
	fmt.Fprintf(e.stdout, "Next: hush --home %s daemon\n", e.home)
	return nil
}

// initIdentity creates a new identity and its store in home, protected
// by pass unless it is empty: the work of init, which the demo shares.
func initIdentity(home, name, deviceName string, pass []byte) (*apitypes.Self, error) {
	return node.Init(home, node.InitOptions{Name: name, DeviceName: deviceName, Passphrase: pass})
}

// joinRequest is what `hush device join` asks of the node.
type joinRequest struct {
	Code        string
	Name        string
	HistoryDays uint32
	Passphrase  []byte
	Progress    func(apitypes.HistoryProgress)
}

// joinDevice links a new device in home with a code and transfers its
// history (node.JoinDevice): the node-side work of `device join`, which
// runs without a daemon. Tests replace it.
var joinDevice = func(ctx context.Context, home string, r joinRequest) (*apitypes.Self, error) {
	return node.JoinDevice(ctx, home, node.JoinOptions{
		Code: r.Code, Name: r.Name, HistoryDays: r.HistoryDays, Passphrase: r.Passphrase, Progress: r.Progress,
	})
}

// joinError turns a JoinDevice error into what the user should read.
func joinError(home string, err error) error {
	switch {
	case errors.Is(err, node.ErrIdentityExists):
		return fmt.Errorf("%s already has an identity; `device join` needs a new, empty home: pass --home NEWDIR", home)
	case errors.Is(err, node.ErrStoreInUse):
		return fmt.Errorf("a daemon is using %s; `device join` needs a new, empty home: pass --home NEWDIR", home)
	case errors.Is(err, node.ErrInvalidName):
		return usagef("--name: %v", err)
	}
	return fmt.Errorf("device join: %w", err)
}

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// tuneGC sets the collector for a long-running daemon unless the user
// set GOGC or GOMEMLIMIT: garbage collection makes most of the latency
// tail, and the daemon's live heap is small, so collect less often
// (GOGC=200) under a soft 1 GiB ceiling.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(1 << 30)
	}
}

// daemonConfig is HOME/config.json, read by `hush daemon` when present.
// Flags add to (lists) or override (scalars) what it says.
type daemonConfig struct {
	Listen  []string `json:"listen,omitempty"`   // libp2p listen multiaddrs
	Relays  []string `json:"relays,omitempty"`   // relay multiaddrs ending in /p2p/<id>
	NoMDNS  bool     `json:"no_mdns,omitempty"`  // LAN discovery off
	NoFsync bool     `json:"no_fsync,omitempty"` // see --no-fsync
	APIAddr *string  `json:"api_addr,omitempty"` // HTTP API address ("" for none)
	// PresenceHeartbeat is how often presence is refreshed to contacts
	// ("3m" by default; at least "1s"): docs/protocol/presence.md.
	PresenceHeartbeat string `json:"presence_heartbeat,omitempty"`
	// MaxFileSize is the largest file, in bytes, this device sends or
	// fetches (1 GiB by default): docs/protocol/files.md §19.6.
	MaxFileSize int64 `json:"max_file_size,omitempty"`
}

// configFile is the daemon's optional config file in the home directory.
const configFile = "config.json"

func loadDaemonConfig(home string) (daemonConfig, error) {
	var c daemonConfig
	f, err := os.Open(filepath.Join(home, configFile))
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("%s: %w", filepath.Join(home, configFile), err)
	}
	return c, nil
}

func runDaemon(ctx context.Context, e *env, args []string) error {
	const synopsis = "daemon [--listen MULTIADDR]... [--relay MULTIADDR]... [--api-addr 127.0.0.1:PORT] [--no-mdns] [--no-fsync] [--passphrase-file F] [--log-format text|json]"
	fs := newFlags(e, "daemon")
	var listen, relays multiFlag
	fs.Var(&listen, "listen", "libp2p listen multiaddr (repeatable)")
	fs.Var(&relays, "relay", "relay multiaddr ending in /p2p/<id> to keep a mailbox on (repeatable)")
	apiAddr := fs.String("api-addr", "127.0.0.1:0", `HTTP API address on loopback ("" for none; port 0 picks one)`)
	noMDNS := fs.Bool("no-mdns", false, "turn LAN discovery off")
	noFsync := fs.Bool("no-fsync", false, "do not fsync each commit: safe from a killed process, not from a power loss")
	passFile := fs.String("passphrase-file", "", "file holding the store passphrase (- for stdin)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	debugLog := fs.Bool("debug", false, "log debug events (never content or identifiers)")
	if _, err := parseArgs(e, fs, args, 0, 0, synopsis); err != nil {
		return err
	}
	var log *slog.Logger
	lvl := &slog.HandlerOptions{}
	if *debugLog {
		lvl.Level = slog.LevelDebug
	}
	switch *logFormat {
	case "text":
		log = slog.New(slog.NewTextHandler(e.stderr, lvl))
	case "json":
		log = slog.New(slog.NewJSONHandler(e.stderr, lvl))
	default:
		return usagef("--log-format must be text or json")
	}
	var pass []byte
	if *passFile != "" {
		var err error
		if pass, err = readPassphrase(e, *passFile); err != nil {
			return err
		}
	}

	cfg, err := loadDaemonConfig(e.home)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if len(listen) == 0 {
		listen = cfg.Listen
	}
	relays = append(cfg.Relays, relays...)
	if !set["api-addr"] && cfg.APIAddr != nil {
		*apiAddr = *cfg.APIAddr
	}

	var heartbeat time.Duration
	if cfg.PresenceHeartbeat != "" {
		if heartbeat, err = time.ParseDuration(cfg.PresenceHeartbeat); err != nil || heartbeat < time.Second {
			return fmt.Errorf("%s: presence_heartbeat %q is not a duration of at least 1s", filepath.Join(e.home, configFile), cfg.PresenceHeartbeat)
		}
	}

	if cfg.MaxFileSize < 0 {
		return fmt.Errorf("%s: max_file_size %d is not a number of bytes (0: the default, 1 GiB)", filepath.Join(e.home, configFile), cfg.MaxFileSize)
	}

	tuneGC(e.getenv)
	n, err := node.New(node.Config{Home: e.home, Passphrase: pass, ListenAddrs: listen, Relays: relays,
		NoMDNS: *noMDNS || cfg.NoMDNS, NoSync: *noFsync || cfg.NoFsync, PresenceHeartbeat: heartbeat, MaxFileSize: cfg.MaxFileSize, Logger: log})
	switch {
	case err == nil:
	case errors.Is(err, node.ErrStoreInUse):
		return fmt.Errorf("another daemon is using %s", e.home)
	case errors.Is(err, node.ErrWrongPassphrase) && len(pass) == 0:
		return errors.New("wrong passphrase (this store has one; pass --passphrase-file F)")
	case errors.Is(err, node.ErrWrongPassphrase):
		return errors.New("wrong passphrase")
	case errors.Is(err, node.ErrNoIdentity):
		return fmt.Errorf("no identity in %s; create one with: hush --home %s init --name NAME", e.home, e.home)
	case errors.Is(err, node.ErrStoreDamaged):
		return fmt.Errorf("refusing to start: %v; opening the store would lose those writes without a word. "+
			"Run `hush --home %s repair` to keep what can be read (it copies the damaged files aside and says what was lost)", err, e.home)
	default:
		return fmt.Errorf("starting node: %w", err)
	}
	defer n.Close()

	ui := webui.New(webui.Config{API: api.NewHandler(n, log), Files: n, Logger: log})
	srv := api.NewServer(n, api.Config{Home: e.home, HTTPAddr: *apiAddr, Logger: log, UI: ui})
	if err := srv.Listen(); err != nil {
		if errors.Is(err, api.ErrSocketInUse) {
			return fmt.Errorf("another daemon is using %s", e.home)
		}
		return err
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	runErr := make(chan error, 1)
	go func() { runErr <- n.Run(ctx) }()
	// The API answers once the node runs: a client that connects while
	// it starts waits (its connection is queued on the bound socket)
	// instead of being served by a node with no address yet.
	apiErr := make(chan error, 1)
	var firstErr error
	nodeDone, apiDone := false, true
	select {
	case <-n.Ready():
		apiDone = false
		go func() { apiErr <- srv.Serve(ctx) }()
		log.Info("api listening", "socket", srv.SocketPath(), "http", srv.HTTPAddr())
		printAddrs(e, n)
	case err := <-runErr:
		nodeDone, firstErr = true, err
	case <-ctx.Done():
	}
	if !nodeDone && !apiDone && firstErr == nil {
		select {
		case err := <-runErr:
			nodeDone, firstErr = true, err
		case err := <-apiErr:
			apiDone, firstErr = true, err
		case <-ctx.Done():
		}
	}
	log.Info("shutting down")
	cancel()
	if !apiDone {
		if err := <-apiErr; firstErr == nil {
			firstErr = err
		}
	}
	if !nodeDone {
		if err := <-runErr; firstErr == nil {
			firstErr = err
		}
	}
	srv.Close()
	if err := n.Close(); err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil && !errors.Is(firstErr, context.Canceled) {
		return fmt.Errorf("daemon: %w", firstErr)
	}
	return nil
}

// printAddrs prints one line per listen address, each ending in
// /p2p/<PeerID> so it can be dialled as is.
func printAddrs(e *env, n *node.Node) {
	self, err := n.Self()
	if err != nil {
		fmt.Fprintf(e.stderr, "hush: reading own addresses: %v\n", err)
		return
	}
	for _, a := range self.Addrs {
		if self.PeerID != "" && !strings.Contains(a, "/p2p/") {
			a += "/p2p/" + self.PeerID
		}
		fmt.Fprintln(e.stdout, a)
	}
	warnHistory(e, self.History)
}

// runRepair repairs a store the daemon refuses with node.ErrStoreDamaged
// and prints what was kept and lost (docs/RELIABILITY.md, "The store").
// It runs the node's store, so it lives here (internal/archtest).
func runRepair(_ context.Context, e *env, args []string) error {
	const synopsis = "repair [--passphrase-file F]"
	fs := newFlags(e, "repair")
	passFile := fs.String("passphrase-file", "", "file holding the store passphrase (- for stdin)")
	if _, err := parseArgs(e, fs, args, 0, 0, synopsis); err != nil {
		return err
	}
	var pass []byte
	if *passFile != "" {
		var err error
		if pass, err = readPassphrase(e, *passFile); err != nil {
			return err
		}
	}
	rep, err := node.Repair(e.home, pass)
	switch {
	case err == nil:
	case errors.Is(err, node.ErrStoreInUse):
		return fmt.Errorf("a daemon is using %s; stop it first", e.home)
	case errors.Is(err, node.ErrWrongPassphrase) && len(pass) == 0:
		return errors.New("wrong passphrase (this store has one; pass --passphrase-file F)")
	case errors.Is(err, node.ErrWrongPassphrase):
		return errors.New("wrong passphrase")
	case errors.Is(err, node.ErrNoIdentity):
		return fmt.Errorf("no store in %s", e.home)
	default:
		return fmt.Errorf("repair: %w", err)
	}
	for _, line := range rep.Lines() {
		fmt.Fprintln(e.stdout, line)
	}
	fmt.Fprintf(e.stdout, "The store opens again: hush --home %s daemon\n", e.home)
	return nil
}

func runVersion(_ context.Context, e *env, args []string) error {
	if _, err := parseArgs(e, newFlags(e, "version"), args, 0, 0, "version"); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "hush %s (api %d, %s)\n", api.BuildVersion(), api.APIVersion, runtime.Version())
	return nil
}
