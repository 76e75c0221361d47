package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hushnet/hush/pushbridge/fake"
)

// The demo's wake path: Bob's phone is played by his daemon and by
// demoPushService, the WebPush service his phone subscribed to; a
// hush-pushbridge process turns the relay's wake calls into pushes to it.

// Limits of the demo's push service, those of real services.
const (
	demoPushMaxBody  = 4096
	demoPushMaxVAPID = 24 * time.Hour
)

var (
	demoB64        = base64.RawURLEncoding
	demoPushTopic  = regexp.MustCompile(`^[A-Za-z0-9_\-]{1,32}$`)
	demoUrgencies  = []string{"", "very-low", "low", "normal", "high"}
	errDemoNoVAPID = errors.New("no vapid authorization")
)

// demoPushService is a WebPush push service (RFC 8030) with one
// subscribed user agent, Bob's phone. It serves HTTPS on 127.0.0.1 with
// a self-signed certificate, accepts a push only as a real service would
// (RFC 8292 VAPID signed by the application server key the subscription
// was made for, the TTL, Urgency and Topic headers, an aes128gcm body of
// at most 4096 bytes) and decrypts it as the phone would (RFC 8291, with
// pushbridge/fake's decryptor). Each push, accepted or refused, is
// reported on pushes.
type demoPushService struct {
	url     string // https://127.0.0.1:port
	certPEM []byte
	appKey  []byte           // the bridge's VAPID public key
	ua      *ecdh.PrivateKey // the phone's subscription key pair
	auth    []byte           // and its auth secret
	path    string           // the subscription's endpoint path
	srv     *http.Server
	served  chan struct{}
	pushes  chan demoPush
}

// demoPush is one push the service received.
type demoPush struct {
	TTL        int
	Urgency    string
	Topic      string
	RecordSize uint32
	Plaintext  []byte // decrypted, padding removed
	Err        error  // why the service refused it
}

func startDemoPushService(appKey []byte) (*demoPushService, error) {
	cert, certPEM, err := demoCertificate()
	if err != nil {
		return nil, err
	}
	ua, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &demoPushService{
		url:     "https://" + ln.Addr().String(),
		certPEM: certPEM,
		appKey:  appKey,
		ua:      ua,
		auth:    make([]byte, 16),
		path:    "/push/" + rand.Text(),
		served:  make(chan struct{}),
		pushes:  make(chan demoPush, 16),
	}
	rand.Read(s.auth)
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serve),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() {
		s.srv.ServeTLS(ln, "", "")
		close(s.served)
	}()
	return s, nil
}

// close stops the service; every goroutine it started has ended when
// it returns.
func (s *demoPushService) close() {
	s.srv.Close()
	<-s.served
}

// subscription is the phone's subscription as a browser's
// PushSubscription.toJSON() gives it: the token the bridge takes.
func (s *demoPushService) subscription() string {
	b, _ := json.Marshal(map[string]any{
		"endpoint": s.url + s.path,
		"keys":     map[string]string{"p256dh": demoB64.EncodeToString(s.ua.PublicKey().Bytes()), "auth": demoB64.EncodeToString(s.auth)},
	})
	return string(b)
}

// next waits for the next push; a refused one is an error.
func (s *demoPushService) next(ctx context.Context) (demoPush, error) {
	select {
	case p := <-s.pushes:
		if p.Err != nil {
			return p, fmt.Errorf("the push service refused a push: %w", p.Err)
		}
		return p, nil
	case <-ctx.Done():
		return demoPush{}, fmt.Errorf("waiting for a push: %w", ctx.Err())
	}
}

func (s *demoPushService) serve(w http.ResponseWriter, r *http.Request) {
	p, status := s.accept(r)
	if p.Err != nil {
		http.Error(w, p.Err.Error(), status)
	} else {
		w.Header().Set("Location", s.url+"/message/"+rand.Text())
		w.Header().Set("TTL", strconv.Itoa(p.TTL))
		w.WriteHeader(http.StatusCreated)
	}
	select {
	case s.pushes <- p:
	default: // nobody is reading: the demo has failed already
	}
}

// accept checks and decrypts a push; it returns the status to answer.
func (s *demoPushService) accept(r *http.Request) (p demoPush, status int) {
	refuse := func(status int, format string, a ...any) (demoPush, int) {
		p.Err = fmt.Errorf(format, a...)
		return p, status
	}
	if r.Method != http.MethodPost || r.URL.Path != s.path {
		return refuse(http.StatusNotFound, "no such subscription")
	}
	ttl, err := strconv.Atoi(r.Header.Get("TTL"))
	if err != nil || ttl < 0 {
		return refuse(http.StatusBadRequest, "TTL header missing or invalid")
	}
	p.TTL, p.Urgency, p.Topic = ttl, r.Header.Get("Urgency"), r.Header.Get("Topic")
	if !slices.Contains(demoUrgencies, p.Urgency) {
		return refuse(http.StatusBadRequest, "invalid Urgency %q", p.Urgency)
	}
	if _, ok := r.Header["Topic"]; ok && !demoPushTopic.MatchString(p.Topic) {
		return refuse(http.StatusBadRequest, "invalid Topic")
	}
	if err := s.checkVAPID(r.Header.Get("Authorization")); err != nil {
		return refuse(http.StatusForbidden, "%v", err)
	}
	if r.Header.Get("Content-Encoding") != "aes128gcm" {
		return refuse(http.StatusBadRequest, "Content-Encoding must be aes128gcm")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, demoPushMaxBody+1))
	if err != nil {
		return refuse(http.StatusBadRequest, "reading the body: %v", err)
	}
	if len(body) > demoPushMaxBody {
		return refuse(http.StatusRequestEntityTooLarge, "payload over %d bytes", demoPushMaxBody)
	}
	if p.Plaintext, p.RecordSize, err = fake.DecryptAES128GCM(body, s.ua, s.auth); err != nil {
		return refuse(http.StatusBadRequest, "cannot decrypt: %v", err)
	}
	return p, http.StatusCreated
}

// checkVAPID verifies "Authorization: vapid t=<JWT>, k=<key>" (RFC
// 8292): k is the application server key, the JWT is ES256 under it,
// aud is this service's origin, exp within 24 hours, sub a contact URI.
func (s *demoPushService) checkVAPID(header string) error {
	params, ok := strings.CutPrefix(header, "vapid ")
	if !ok {
		return errDemoNoVAPID
	}
	var t, k string
	for p := range strings.SplitSeq(params, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch name {
		case "t":
			t = value
		case "k":
			k = value
		}
	}
	if key, err := demoB64.DecodeString(k); err != nil || !bytes.Equal(key, s.appKey) {
		return errors.New("vapid k is not the subscription's application server key")
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), s.appKey)
	if err != nil {
		return err
	}
	var claims jwt.RegisteredClaims
	if _, err := jwt.ParseWithClaims(t, &claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience(s.url), jwt.WithExpirationRequired()); err != nil {
		return fmt.Errorf("vapid JWT: %w", err)
	}
	if claims.ExpiresAt.After(time.Now().Add(demoPushMaxVAPID)) {
		return errors.New("vapid exp more than 24 hours ahead")
	}
	if !strings.HasPrefix(claims.Subject, "mailto:") && !strings.HasPrefix(claims.Subject, "https:") {
		return errors.New("vapid sub must be a mailto: or https: URI")
	}
	return nil
}

// demoCertificate makes a self-signed certificate for 127.0.0.1, valid
// for an hour.
func demoCertificate() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "hush demo push service"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// demoWake is the wake path: the push service and the bridge.
type demoWake struct {
	push        *demoPushService
	bridge      *demoServer
	bridgeURL   string
	relayConfig string // the relay's config file, naming the bridge
}

// demoWakeWindow is the relay's window: at most one wake-up per mailbox
// in it.
const demoWakeWindow = "30s"

// startDemoWake starts the push service and hush-pushbridge (built next
// to hush), and writes the relay's config for the bridge.
func startDemoWake(ctx context.Context, self, dir string, say func(string, ...any)) (*demoWake, error) {
	vapidPriv, vapidPub, err := fake.NewVAPIDKeys()
	if err != nil {
		return nil, err
	}
	appKey, _ := demoB64.DecodeString(vapidPub)
	w := &demoWake{}
	if w.push, err = startDemoPushService(appKey); err != nil {
		return nil, fmt.Errorf("start the push service: %w", err)
	}
	say("started a WebPush service at %s (self-signed TLS; checks VAPID, decrypts RFC 8291 as Bob's phone would)", w.push.url)
	certFile := filepath.Join(dir, "push-service.pem")
	relayToken := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(relayToken))
	tokenFile := filepath.Join(dir, "relay-bridge-token")
	bridgeConfig, _ := json.Marshal(map[string]any{
		"listen":   "127.0.0.1:0",
		"data_dir": filepath.Join(dir, "pushbridge"),
		"relays":   []map[string]string{{"name": "demo-relay", "token_sha256": hex.EncodeToString(sum[:])}},
		// The relay coalesces (one wake-up per window per mailbox); the
		// bridge sends every wake it is asked for.
		"limits": map[string]any{"coalesce_window": "off"},
		"webpush": map[string]any{"vapid_private_key": vapidPriv, "vapid_public_key": vapidPub,
			"subscriber": "mailto:demo@hush.invalid", "allow_private": true},
	})
	bridgeFile := filepath.Join(dir, "pushbridge.json")
	for name, content := range map[string][]byte{certFile: w.push.certPEM, tokenFile: []byte(relayToken), bridgeFile: bridgeConfig} {
		if err := os.WriteFile(name, content, 0o600); err != nil {
			w.stop()
			return nil, err
		}
	}
	cmd := exec.Command(filepath.Join(filepath.Dir(self), "hush-pushbridge"), "--config", bridgeFile)
	// Only the bridge trusts the push service's certificate.
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+certFile)
	if w.bridge, err = startDemoServer(ctx, cmd, filepath.Join(dir, "pushbridge.log")); err != nil {
		w.stop()
		return nil, fmt.Errorf("start the push bridge: %w", err)
	}
	w.bridgeURL = "http://" + w.bridge.addr
	say("started a push bridge (pid %d) at %s; it trusts that certificate through SSL_CERT_FILE", w.bridge.cmd.Process.Pid, w.bridgeURL)
	relayConfig, _ := json.Marshal(map[string]any{"push": map[string]any{"bridge": w.bridgeURL, "token_file": tokenFile, "window": demoWakeWindow}})
	w.relayConfig = filepath.Join(dir, "relay.json")
	if err := os.WriteFile(w.relayConfig, relayConfig, 0o600); err != nil {
		w.stop()
		return nil, err
	}
	return w, nil
}

// stop stops the bridge (by its PID) and the push service.
func (w *demoWake) stop() {
	if w.bridge != nil {
		w.bridge.stop()
	}
	w.push.close()
}

// register enrols Bob's phone as a user would, with `hush push
// register` and `hush push verify` and the code from the verification
// push, and waits until the relay holds his wake handle.
func (w *demoWake) register(ctx context.Context, self, dir, home string, bob *demoDaemon, say func(string, ...any)) error {
	subFile := filepath.Join(dir, "bob-subscription.json")
	if err := os.WriteFile(subFile, []byte(w.push.subscription()), 0o600); err != nil {
		return err
	}
	hush := func(args ...string) error {
		say("  $ hush push %s", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, self, append([]string{"--home", home, "push"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		for l := range strings.Lines(strings.TrimSpace(string(out))) {
			say("    %s", strings.TrimRight(l, "\n"))
		}
		if err != nil {
			return fmt.Errorf("hush push %s: %w", args[0], err)
		}
		return nil
	}
	say("\nBob's phone subscribes to its push service and registers with the bridge:")
	if err := hush("register", "--bridge", w.bridgeURL, "--provider", "webpush", "--token", "@"+filepath.Base(subFile)); err != nil {
		return err
	}
	p, err := w.push.next(ctx)
	if err != nil {
		return err
	}
	say("  push service → Bob's phone, decrypted: %s", p.Plaintext)
	var verify struct {
		T    string `json:"t"`
		Code string `json:"code"`
	}
	if err := json.Unmarshal(p.Plaintext, &verify); err != nil || verify.T != "verify" || verify.Code == "" {
		return fmt.Errorf("the verification push carries %q", p.Plaintext)
	}
	if err := hush("verify", verify.Code); err != nil {
		return err
	}
	for {
		var st struct {
			State  string `json:"state"`
			Relays int    `json:"relays"`
		}
		if err := bob.c.Call(ctx, "pushStatus", nil, &st); err != nil {
			return err
		}
		if st.State == "on" && st.Relays == 1 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the wake handle on the relay: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return hush("status")
}

// awaitWake waits for the wake-up push and shows it, checking that it
// names none of leaks.
func (w *demoWake) awaitWake(ctx context.Context, leaks []string, say func(string, ...any)) error {
	p, err := w.push.next(ctx)
	if err != nil {
		return err
	}
	say("Alice writes to him; the relay finds nobody listening on Bob's mailbox and asks the bridge to wake him:")
	say("  push service → Bob's phone, decrypted: %s (Urgency %s, Topic %s, TTL %d s, a %d-byte aes128gcm record)",
		p.Plaintext, p.Urgency, p.Topic, p.TTL, p.RecordSize)
	lower := strings.ToLower(string(p.Plaintext))
	for _, l := range leaks {
		if l != "" && strings.Contains(lower, strings.ToLower(l)) {
			return fmt.Errorf("the wake-up push names %q: %s", l, p.Plaintext)
		}
	}
	say("  it names nobody: neither name, account or peer ID of Alice or Bob, nor the message text, is in it")
	return nil
}

// noMoreWakes checks that no push arrived after the one awaitWake took.
func (w *demoWake) noMoreWakes(say func(string, ...any)) error {
	if n := len(w.push.pushes); n > 0 {
		return fmt.Errorf("%d more pushes arrived while Bob slept, want one", n)
	}
	say("Bob's phone got exactly one wake-up push while he slept (the relay wakes a mailbox at most once per %s).", demoWakeWindow)
	return nil
}
