package api

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hushnet/hush/api/apitypes"
)

// Files the server keeps in the home directory.
const (
	SocketFile = "api.sock"  // the Unix socket, 0600
	TokenFile  = "api.token" // the default (full) HTTP bearer token, 0600, reused across starts
	AddrFile   = "api.addr"  // the HTTP listener's address while the daemon runs
)

// Config configures a Server. The zero value needs only Home.
type Config struct {
	// Home is the node's directory, where the socket, token and address
	// files live. Required.
	Home string
	// SocketPath overrides Home/api.sock.
	SocketPath string
	// HTTPAddr is the loopback address for HTTP, e.g. "127.0.0.1:0" to
	// pick a free port; empty: no HTTP. Only loopback addresses are allowed.
	HTTPAddr string
	// MaxRequestSize caps one request in bytes; default DefaultMaxRequestSize.
	MaxRequestSize int
	// Logger receives connection-level events (never message content or
	// tokens); discarded by default.
	Logger *slog.Logger
	// UI, if set, is served on the HTTP listener beside the API (every
	// path outside /api/v1/), and uiLogin mints its login URLs.
	UI UI
}

// ErrSocketInUse means another process is serving the API socket.
var ErrSocketInUse = errors.New("api: socket is in use by another daemon")

// Server serves a Handler on the Unix socket and, optionally, on HTTP.
type Server struct {
	cfg     Config
	h       *Handler
	log     *slog.Logger
	maxSize int

	mu       sync.Mutex // guards the fields below
	unixLn   *net.UnixListener
	sockPath string
	httpLn   net.Listener
	httpSrv  *http.Server
	auth     *auth
	hostOK   map[string]bool
	conns    map[net.Conn]struct{}
	listened bool
	closed   bool
}

// NewServer returns a server for b. It does no I/O.
func NewServer(b Backend, cfg Config) *Server {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	limit := cfg.MaxRequestSize
	if limit <= 0 {
		limit = DefaultMaxRequestSize
	}
	return &Server{cfg: cfg, h: NewHandler(b, log), log: log, maxSize: limit, conns: map[net.Conn]struct{}{}}
}

// Handler returns the server's method table, for in-process callers.
func (s *Server) Handler() *Handler { return s.h }

// Listen creates the socket, the token and the HTTP listener. Serve calls
// it if it was not called before; calling it first lets the caller learn
// HTTPAddr before serving.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("api: server is closed")
	}
	if s.listened {
		return nil
	}
	if s.cfg.Home == "" && s.cfg.SocketPath == "" {
		return errors.New("api: no home directory")
	}
	sock := s.cfg.SocketPath
	if sock == "" {
		sock = filepath.Join(s.cfg.Home, SocketFile)
	}
	ln, err := listenUnix(sock)
	if err != nil {
		return err
	}
	s.unixLn, s.sockPath = ln, sock
	if s.cfg.HTTPAddr != "" {
		if err := s.listenHTTPLocked(); err != nil {
			s.closeListenersLocked()
			return err
		}
	}
	s.listened = true
	return nil
}

// listenUnix binds a 0600 Unix socket at path without a window in which
// it has looser permissions: it is bound in a fresh 0700 directory,
// chmodded, then renamed into place. A stale socket left by a killed
// daemon is replaced; a live one is ErrSocketInUse.
func listenUnix(path string) (*net.UnixListener, error) {
	if _, err := os.Lstat(path); err == nil {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, ErrSocketInUse
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("api: removing stale socket: %w", err)
		}
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".api-")
	if err != nil {
		return nil, fmt.Errorf("api: creating socket: %w", err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("api: listening on socket: %w", err)
	}
	ln.SetUnlinkOnClose(false) // the path changes; Server removes it
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api: socket permissions: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api: placing socket: %w", err)
	}
	return ln, nil
}

func (s *Server) listenHTTPLocked() error {
	host, _, err := net.SplitHostPort(s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("api: http address %q: %w", s.cfg.HTTPAddr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("api: http address %q is not a loopback address", s.cfg.HTTPAddr)
	}
	if s.cfg.Home == "" {
		return errors.New("api: http needs a home directory for its token")
	}
	if _, err := LoadOrCreateToken(s.cfg.Home); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("api: http listen: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	s.hostOK = map[string]bool{
		fmt.Sprintf("127.0.0.1:%d", port): true,
		fmt.Sprintf("localhost:%d", port): true,
		fmt.Sprintf("[::1]:%d", port):     true,
	}
	if err := writeFile0600(filepath.Join(s.cfg.Home, AddrFile), []byte(ln.Addr().String()+"\n")); err != nil {
		ln.Close()
		return err
	}
	s.httpLn, s.auth = ln, &auth{home: s.cfg.Home}
	if s.cfg.UI != nil {
		s.h.setUI(s.cfg.UI, fmt.Sprintf("http://127.0.0.1:%d", port))
	}
	s.httpSrv = &http.Server{
		Handler:           s.httpHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return nil
}

// LoadOrCreateToken returns the HTTP API token in home/api.token,
// creating it (32 random bytes, hex, mode 0600) if it does not exist.
func LoadOrCreateToken(home string) (string, error) {
	path := filepath.Join(home, TokenFile)
	b, err := os.ReadFile(path)
	if err == nil {
		tok := strings.TrimSpace(string(b))
		if len(tok) < 32 {
			return "", fmt.Errorf("api: token in %s is too short", path)
		}
		return tok, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("api: reading token: %w", err)
	}
	var raw [32]byte
	rand.Read(raw[:])
	tok := hex.EncodeToString(raw[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("api: creating token: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("api: writing token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("api: writing token: %w", err)
	}
	return tok, nil
}

func writeFile0600(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("api: writing %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("api: writing %s: %w", filepath.Base(path), err)
	}
	return nil
}

// SocketPath returns the socket's path once listening.
func (s *Server) SocketPath() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sockPath
}

// HTTPAddr returns the HTTP listener's address ("" without HTTP).
func (s *Server) HTTPAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

// Serve listens (if Listen was not called) and serves until ctx is done
// or Close is called; it then closes every connection and removes the
// socket and address files. Every goroutine it starts has ended when it
// returns.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	s.mu.Lock()
	unixLn, httpLn, httpSrv := s.unixLn, s.httpLn, s.httpSrv
	s.mu.Unlock()
	if unixLn == nil {
		return errors.New("api: server is closed")
	}

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errc <- s.acceptUnix(ctx, unixLn, &wg)
	}()
	if httpSrv != nil {
		httpSrv.BaseContext = func(net.Listener) context.Context { return ctx }
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := httpSrv.Serve(httpLn)
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			errc <- err
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	s.Close()
	wg.Wait()
	return err
}

func (s *Server) acceptUnix(ctx context.Context, ln *net.UnixListener, wg *sync.WaitGroup) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || s.isClosed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("api: accepting on socket: %w", err)
		}
		if !s.track(c) {
			c.Close()
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.untrack(c)
			s.serveConn(ctx, c)
		}()
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// Close stops the listeners, closes every connection and removes the
// socket and address files. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.closeListenersLocked()
	return nil
}

func (s *Server) closeListenersLocked() {
	if s.unixLn != nil {
		s.unixLn.Close()
		os.Remove(s.sockPath)
	}
	if s.httpSrv != nil {
		s.httpSrv.Close() // closes the listener and every connection, SSE included
		os.Remove(filepath.Join(s.cfg.Home, AddrFile))
	} else if s.httpLn != nil {
		s.httpLn.Close()
		os.Remove(filepath.Join(s.cfg.Home, AddrFile))
	}
}

// connWriter serialises writes to one socket connection: responses and
// event notifications interleave line by line.
type connWriter struct {
	mu sync.Mutex
	c  net.Conn
}

func (w *connWriter) writeLine(b []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := w.c.Write(append(b, '\n'))
	return err
}

// serveConn reads newline-delimited JSON-RPC from one socket connection
// and answers requests in order.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &connWriter{c: c}
	var (
		subMu     sync.Mutex
		subCancel func()
		subDone   chan struct{}
		subStart  chan struct{} // closed once the subscribe response is written
	)
	stopSub := func() {
		subMu.Lock()
		cancelFn, done := subCancel, subDone
		subCancel, subDone = nil, nil
		subMu.Unlock()
		if cancelFn != nil {
			cancelFn()
			<-done
		}
	}
	defer stopSub()

	hooks := func(ctx context.Context, req *Request) (any, *Error, bool) {
		switch req.Method {
		case "subscribe":
			var p apitypes.SubscribeParams
			if err := decodeParams(req.Params, &p); err != nil {
				return nil, toError(err), true
			}
			after := max(p.After, p.Since)
			if p.After != 0 && p.Since != 0 && p.After != p.Since {
				return nil, newError(CodeInvalidParams, "invalid params: after and since differ; give one"), true
			}
			stopSub()
			events, unsub := s.h.b.Subscribe(after)
			done, start := make(chan struct{}), make(chan struct{})
			subCtx, subCtxCancel := context.WithCancel(ctx)
			subMu.Lock()
			subCancel = func() { subCtxCancel(); unsub() }
			subDone, subStart = done, start
			subMu.Unlock()
			go func() {
				defer close(done)
				// Replayed events must not overtake the response.
				select {
				case <-start:
				case <-subCtx.Done():
					return
				}
				for {
					select {
					case <-subCtx.Done():
						return
					case ev, ok := <-events:
						if !ok {
							// The node is stopping (a slow client is never
							// dropped: it reads the event log): end the
							// connection so the client reconnects.
							if subCtx.Err() == nil {
								c.Close()
							}
							return
						}
						if err := w.writeLine(encode(Notification{JSONRPC: "2.0", Method: "event", Params: ev})); err != nil {
							c.Close()
							return
						}
					}
				}
			}()
			return apitypes.OK{OK: true}, nil, true
		case "unsubscribe":
			if err := noParams(req.Params); err != nil {
				return nil, toError(err), true
			}
			stopSub()
			return apitypes.OK{OK: true}, nil, true
		}
		return nil, nil, false
	}

	r := bufio.NewReaderSize(c, 64<<10)
	for {
		line, tooLong, err := readLine(r, s.maxSize)
		if tooLong {
			w.writeLine(encode(errorResponse(nullID, newError(CodeInvalidRequest,
				"invalid request: request is larger than %d bytes", s.maxSize))))
			return
		}
		if len(line) > 0 {
			if resp := s.h.serveMessage(ctx, line, hooks); resp != nil {
				if w.writeLine(resp) != nil {
					return
				}
			}
			subMu.Lock()
			if subStart != nil {
				close(subStart)
				subStart = nil
			}
			subMu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// readLine reads one line without its newline, refusing lines longer
// than max before buffering them.
func readLine(r *bufio.Reader, limit int) (line []byte, tooLong bool, err error) {
	for {
		chunk, isPrefix, err := r.ReadLine()
		if len(line)+len(chunk) > limit {
			return nil, true, nil
		}
		line = append(line, chunk...)
		if err != nil || !isPrefix {
			return line, false, err
		}
	}
}
