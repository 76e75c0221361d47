package fake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Failure is a scripted answer: instead of accepting a well-formed
// request, the fake answers with Status and the service's Reason code
// (APNs reason, FCM errorCode, or a WebPush body text), and with a
// Retry-After header when RetryAfter is positive. Hang makes the fake
// hold the request until the client gives up or the fake is closed; the
// other fields are then unused.
type Failure struct {
	Status     int
	Reason     string
	RetryAfter time.Duration
	Hang       bool
}

// script holds the scripted failures of one endpoint.
type script struct {
	mu     sync.Mutex // guards queue and always
	queue  []Failure
	always *Failure
}

func (s *script) add(fs []Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, fs...)
}

func (s *script) setAlways(f *Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.always = f
}

func (s *script) clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue, s.always = nil, nil
}

// next returns the failure to answer now, if any.
func (s *script) next() (Failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 {
		f := s.queue[0]
		s.queue = s.queue[1:]
		return f, true
	}
	if s.always != nil {
		return *s.always, true
	}
	return Failure{}, false
}

// Clock is a settable clock shared by a sender under test and a fake, so
// that token lifetimes can be crossed without sleeping.
type Clock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// server is the HTTPS listener every fake runs on.
type server struct {
	srv       *httptest.Server
	closed    chan struct{}
	closeOnce sync.Once
}

func startServer(h http.Handler) *server {
	s := &server{closed: make(chan struct{})}
	s.srv = httptest.NewUnstartedServer(h)
	s.srv.EnableHTTP2 = true
	// Handshakes refused by clients that do not trust the fake are
	// expected; keep them out of test output.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.StartTLS()
	return s
}

// URL is the fake's base URL, https://127.0.0.1:port.
func (s *server) URL() string { return s.srv.URL }

// Client returns an HTTP client that trusts the fake's certificate and
// speaks HTTP/2 to it.
func (s *server) Client() *http.Client { return s.srv.Client() }

// CertificatePEM is the fake's TLS certificate (valid for 127.0.0.1, ::1
// and example.com), for a trust store outside this process.
func (s *server) CertificatePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// Close releases any hanging request and stops the server. It is
// idempotent.
func (s *server) Close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

// hang holds a request until its client goes away or the fake closes.
func (s *server) hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.closed:
	}
}

func setRetryAfter(w http.ResponseWriter, d time.Duration) {
	if d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// uuid returns a random lowercase UUID (version 4).
func uuid() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// requestLog records what a fake received, in order, for assertions.
type requestLog[T any] struct {
	mu       sync.Mutex
	requests []T
}

// Requests returns a copy of every request received so far.
func (l *requestLog[T]) Requests() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.requests)
}

// Count is the number of requests received so far.
func (l *requestLog[T]) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.requests)
}

func (l *requestLog[T]) record(rec T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests = append(l.requests, rec)
}
