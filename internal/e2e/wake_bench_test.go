package e2e

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/pushbridge"
	"github.com/hushnet/hush/pushbridge/fake"
	"github.com/hushnet/hush/pushbridge/provider"
	"github.com/hushnet/hush/pushbridge/webpush"
	"github.com/hushnet/hush/relay"
)

// wakePath is the wake path in one process over real loopback sockets:
// a relay whose mailbox holds a wake handle, the bridge (webpush sender),
// and a strict fake WebPush service holding the device's subscription.
type wakePath struct {
	push    *fake.WebPush
	bridge  *pushbridge.Bridge
	relay   *relay.Server
	sub     string // the device's subscription
	handle  string
	c       *relay.Client
	h       host.Host
	ri      peer.AddrInfo
	mailbox *relay.Created
	env     []byte
}

// newWakePath builds it; window is the relay's per-mailbox wake window.
func newWakePath(tb testing.TB, window time.Duration) *wakePath {
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	w := &wakePath{c: &relay.Client{}}
	var err error
	if w.push, err = fake.StartWebPush(fake.WebPushOptions{}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(w.push.Close)
	priv, pub, _ := fake.NewVAPIDKeys()
	wp, err := webpush.New(webpush.Config{VAPIDPrivateKey: priv, VAPIDPublicKey: pub, Subscriber: "mailto:bench@example.org",
		AllowPrivate: true, HTTPClient: w.push.Client()})
	if err != nil {
		tb.Fatal(err)
	}
	token := "in-process-relay-token"
	sum := sha256.Sum256([]byte(token))
	var cfg pushbridge.Config
	raw, _ := json.Marshal(map[string]any{"data_dir": tb.TempDir(), "no_sync": true,
		"relays": []map[string]string{{"name": "relay", "token_sha256": hex.EncodeToString(sum[:])}},
		"limits": map[string]any{"coalesce_window": "off", "handle_per_minute": -1, "global_per_second": -1}})
	if err := json.Unmarshal(raw, &cfg); err != nil {
		tb.Fatal(err)
	}
	if w.bridge, err = pushbridge.Open(cfg, map[provider.Kind]provider.Sender{provider.WebPush: wp}); err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	bridgeDone := make(chan struct{})
	go func() { w.bridge.Run(ctx, ln); close(bridgeDone) }()
	tb.Cleanup(func() { cancel(); <-bridgeDone; w.bridge.Close() })

	if w.sub, err = w.push.Subscribe(); err != nil {
		tb.Fatal(err)
	}
	reg, err := w.bridge.Register(ctx, provider.WebPush, w.sub)
	if err != nil {
		tb.Fatal(err)
	}
	w.waitPushes(tb, 1)
	var verify struct{ Code string }
	json.Unmarshal(w.push.Requests()[0].Plaintext, &verify)
	if w.handle, err = w.bridge.Verify(reg, verify.Code); err != nil {
		tb.Fatal(err)
	}

	rh, _ := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	tb.Cleanup(func() { rh.Close() })
	db, err := store.Open(tb.TempDir(), store.Config{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	w.relay, err = relay.New(relay.Config{PeerRate: -1, IPRate: -1,
		Push: relay.PushConfig{Bridge: "http://" + ln.Addr().String(), Token: token, Window: relay.Duration(window)}}, rh, db)
	if err != nil {
		tb.Fatal(err)
	}
	relayDone := make(chan struct{})
	go func() { w.relay.Run(ctx); close(relayDone) }()
	<-w.relay.Ready()
	tb.Cleanup(func() { w.relay.Close(); <-relayDone; db.Close() })

	w.h, _ = libp2p.New(libp2p.NoListenAddrs)
	tb.Cleanup(func() { w.h.Close() })
	w.ri = peer.AddrInfo{ID: rh.ID(), Addrs: rh.Addrs()}
	_, owner, _ := ed25519.GenerateKey(rand.Reader)
	if w.mailbox, err = w.c.Create(ctx, w.h, w.ri, owner, nil); err != nil {
		tb.Fatal(err)
	}
	if err := w.c.SetWake(ctx, w.h, w.ri, w.mailbox.Mailbox, owner, w.handle); err != nil {
		tb.Fatal(err)
	}
	k, _ := ecdh.X25519().GenerateKey(rand.Reader)
	w.env, _ = envelope.Seal(k.PublicKey(), &envelope.Inner{Kind: envelope.KindMessage, Body: make([]byte, 100)})
	return w
}

func (w *wakePath) deposit(tb testing.TB) {
	if _, err := w.c.Deposit(context.Background(), w.h, w.ri, w.mailbox.Deposit, w.env); err != nil {
		tb.Fatal(err)
	}
}

// waitPushes waits until the push service has received n requests.
func (w *wakePath) waitPushes(tb testing.TB, n int) {
	deadline := time.Now().Add(20 * time.Second)
	for w.push.Count() < n {
		if time.Now().After(deadline) {
			tb.Fatalf("%d pushes at the service, want %d", w.push.Count(), n)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// BenchmarkWakeLatency measures the latency from a deposit into a
// mailbox whose owner is away to the push at the fake service: the
// relay's call to the bridge, the bridge's WebPush request (VAPID,
// aes128gcm) and the fake decrypting it (target: p99 under 50 ms).
// Window and coalescing are off so every deposit wakes.
func BenchmarkWakeLatency(b *testing.B) {
	w := newWakePath(b, time.Nanosecond)
	var lat []time.Duration
	for b.Loop() {
		want := w.push.Count() + 1
		start := time.Now()
		w.deposit(b)
		w.waitPushes(b, want)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// A token the push service reports gone (410) is counted dead by the
// bridge, and the relay's wake call gets the handle back as rejected
// (the relay then detaches it: relay.TestWakeOnDepositWhileAway).
func TestWakeDeadTokenRejected(t *testing.T) {
	w := newWakePath(t, time.Nanosecond)
	w.push.Expire(w.sub)
	w.deposit(t)
	w.waitPushes(t, 2) // the verification, then the attempt answered 410
	if got := w.push.Requests()[1].Status; got != 410 {
		t.Fatalf("the service answered %d, want 410", got)
	}
	eventually(t, "the bridge to reject the handle to the relay", func() bool {
		s := w.bridge.Stats()
		return s.Dead == 1 && s.Rejected >= 1
	})
	if n := w.push.Count(); n != 2 {
		t.Fatalf("%d pushes at the service, want 2", n)
	}
}

// A push service answering 429 with Retry-After gets the wake-up again
// after that delay, once: exactly one wake-up is delivered.
func TestWakeBacksOffOn429(t *testing.T) {
	w := newWakePath(t, time.Hour) // one wake for the whole test
	w.push.FailNext(fake.Failure{Status: 429, RetryAfter: time.Second})
	w.deposit(t)
	w.waitPushes(t, 3) // the verification, the 429, the retry
	reqs := w.push.Requests()
	if reqs[1].Status != 429 || reqs[2].Status != 201 {
		t.Fatalf("statuses %d then %d, want 429 then 201", reqs[1].Status, reqs[2].Status)
	}
	if gap := reqs[2].Received.Sub(reqs[1].Received); gap < time.Second {
		t.Fatalf("retried after %v, before the service's Retry-After of 1s", gap)
	}
	eventually(t, "the bridge to count the delivery", func() bool { return w.bridge.Stats().Delivered == 1 })
	w.deposit(t) // within the relay's window: no second wake
	if s := w.bridge.Stats(); s.Delivered != 1 || s.Retried != 1 {
		t.Fatalf("bridge stats %+v: want one wake-up delivered after one retry", s)
	}
}
