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
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/pushbridge"
	"github.com/hushnet/hush/pushbridge/fake"
	"github.com/hushnet/hush/pushbridge/provider"
	"github.com/hushnet/hush/pushbridge/webpush"
	"github.com/hushnet/hush/relay"
)

// BenchmarkWakeLatency measures the wake path in one process over real
// loopback sockets: a deposit into a mailbox whose owner is away, the
// relay's call to the bridge, the bridge's WebPush request (VAPID,
// aes128gcm) and the fake push service decrypting it. It reports the
// latency from the deposit to the push at the fake (target: p99 under
// 50 ms). Window and coalescing are off so every deposit wakes.
func BenchmarkWakeLatency(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	push, err := fake.StartWebPush(fake.WebPushOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer push.Close()
	priv, pub, _ := fake.NewVAPIDKeys()
	wp, err := webpush.New(webpush.Config{VAPIDPrivateKey: priv, VAPIDPublicKey: pub, Subscriber: "mailto:bench@example.org",
		AllowPrivate: true, HTTPClient: push.Client()})
	if err != nil {
		b.Fatal(err)
	}
	token := "bench-relay-token"
	sum := sha256.Sum256([]byte(token))
	var cfg pushbridge.Config
	raw, _ := json.Marshal(map[string]any{"data_dir": b.TempDir(), "no_sync": true,
		"relays": []map[string]string{{"name": "bench", "token_sha256": hex.EncodeToString(sum[:])}},
		"limits": map[string]any{"coalesce_window": "off", "handle_per_minute": -1, "global_per_second": -1}})
	if err := json.Unmarshal(raw, &cfg); err != nil {
		b.Fatal(err)
	}
	br, err := pushbridge.Open(cfg, map[provider.Kind]provider.Sender{provider.WebPush: wp})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go br.Run(ctx, ln)

	sub, _ := push.Subscribe()
	reg, err := br.Register(ctx, provider.WebPush, sub)
	if err != nil {
		b.Fatal(err)
	}
	var verify struct{ Code string }
	for push.Count() == 0 {
		time.Sleep(time.Millisecond)
	}
	json.Unmarshal(push.Requests()[0].Plaintext, &verify)
	handle, err := br.Verify(reg, verify.Code)
	if err != nil {
		b.Fatal(err)
	}

	rh, _ := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	defer rh.Close()
	db, err := store.Open(b.TempDir(), store.Config{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	srv, err := relay.New(relay.Config{PeerRate: -1, IPRate: -1,
		Push: relay.PushConfig{Bridge: "http://" + ln.Addr().String(), Token: token, Window: relay.Duration(time.Nanosecond)}}, rh, db)
	if err != nil {
		b.Fatal(err)
	}
	go srv.Run(ctx)
	<-srv.Ready()
	defer srv.Close()

	ch, _ := libp2p.New(libp2p.NoListenAddrs)
	defer ch.Close()
	ri := peer.AddrInfo{ID: rh.ID(), Addrs: rh.Addrs()}
	c := &relay.Client{}
	_, owner, _ := ed25519.GenerateKey(rand.Reader)
	created, err := c.Create(ctx, ch, ri, owner, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.SetWake(ctx, ch, ri, created.Mailbox, owner, handle); err != nil {
		b.Fatal(err)
	}
	k, _ := ecdh.X25519().GenerateKey(rand.Reader)
	env, _ := envelope.Seal(k.PublicKey(), &envelope.Inner{Kind: envelope.KindMessage, Body: make([]byte, 100)})

	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		want := push.Count() + 1
		start := time.Now()
		if _, err := c.Deposit(ctx, ch, ri, created.Deposit, env); err != nil {
			b.Fatal(err)
		}
		for push.Count() < want {
			time.Sleep(50 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
