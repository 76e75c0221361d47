package node

import (
	"context"
	"crypto/ed25519"
	"runtime"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/relay"
)

// The cost of depositing from identities of their own (finding 6 of the
// hardening issue): making and closing one (ns/op, B/op), the heap a
// live one holds, and a deposit from a fresh identity (connection and
// handshake included) against one from an identity already connected.
func BenchmarkAnonHost(b *testing.B) {
	b.Run("make-close", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h, err := newAnonHost()
			if err != nil {
				b.Fatal(err)
			}
			h.Close()
		}
		const live = 20
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		hs := make([]host.Host, live)
		for i := range hs {
			h, err := newAnonHost()
			if err != nil {
				b.Fatal(err)
			}
			hs[i] = h
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapInuse-m0.HeapInuse)/live/1024, "live-KiB/host")
		for _, h := range hs {
			h.Close()
		}
	})
	addr := startRelay(b, relayCfg())
	ri, err := relay.ParseRelayAddr(addr)
	if err != nil {
		b.Fatal(err)
	}
	owner, err := newAnonHost()
	if err != nil {
		b.Fatal(err)
	}
	defer owner.Close()
	c := &relay.Client{}
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	created, err := c.Create(context.Background(), owner, ri, priv, nil)
	if err != nil {
		b.Fatal(err)
	}
	acc, err := identity.NewAccount()
	if err != nil {
		b.Fatal(err)
	}
	dev, err := identity.NewDevice()
	if err != nil {
		b.Fatal(err)
	}
	cert, err := acc.Certify(dev, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	env, err := envelope.Seal(cert.MailboxKey(), &envelope.Inner{SenderAccount: acc.Public(), SenderDevice: cert.DeviceID(), Kind: envelope.KindMessage, Body: make([]byte, 256)})
	if err != nil {
		b.Fatal(err)
	}
	deposit := func(h host.Host) {
		if _, err := c.Deposit(context.Background(), h, ri, created.Deposit, env); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("deposit-connected", func(b *testing.B) {
		h, err := newAnonHost()
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		deposit(h)
		for b.Loop() {
			deposit(h)
		}
	})
	b.Run("deposit-fresh-identity", func(b *testing.B) {
		for b.Loop() {
			h, err := newAnonHost()
			if err != nil {
				b.Fatal(err)
			}
			deposit(h)
			h.Close()
		}
	})
}
