package node

// The durable-throughput baseline of issue 13: Mosquitto (Debian's
// mosquitto package, a separate process) at QoS 1, 256 B messages, one
// publisher with 64 concurrent publishes and one subscriber, both here.
// Skipped when mosquitto is not installed (apt-get install mosquitto).

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// startMosquitto runs a loopback-only broker without persistence and
// returns its address.
func startMosquitto(b *testing.B) string {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/mosquitto"); err != nil {
			b.Skip("mosquitto is not installed (apt-get install mosquitto)")
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := filepath.Join(b.TempDir(), "mosquitto.conf")
	os.WriteFile(conf, fmt.Appendf(nil, "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\n", port), 0o600)
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for range 200 { // the broker listens within milliseconds of starting
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatal("mosquitto did not start listening")
	return ""
}

func mqttClient(b *testing.B, addr, id string) mqtt.Client {
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(true).
		SetOrderMatters(false).SetMaxResumePubInFlight(1024)
	c := mqtt.NewClient(opts)
	if t := c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		b.Fatalf("mqtt connect: %v", t.Error())
	}
	b.Cleanup(func() { c.Disconnect(0) })
	return c
}

// BenchmarkBaselineMosquittoQoS1Throughput256: messages/s from Publish to
// the subscriber's handler, every message acknowledged at QoS 1.
func BenchmarkBaselineMosquittoQoS1Throughput256(b *testing.B) {
	addr := startMosquitto(b)
	sub, pub := mqttClient(b, addr, "sub"), mqttClient(b, addr, "pub")
	total := b.N
	var got atomic.Int64
	done := make(chan struct{})
	t := sub.Subscribe("bench", 1, func(mqtt.Client, mqtt.Message) {
		if got.Add(1) == int64(total) {
			close(done)
		}
	})
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		b.Fatalf("subscribe: %v", t.Error())
	}
	payload := []byte(strings.Repeat("m", 256))
	b.ResetTimer()
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(total) {
				if t := pub.Publish("bench", 1, false, payload); !t.WaitTimeout(30*time.Second) || t.Error() != nil {
					b.Errorf("publish: %v", t.Error())
					return
				}
			}
		}()
	}
	select {
	case <-done:
	case <-time.After(120 * time.Second):
		b.Fatalf("only %d of %d messages arrived", got.Load(), total)
	}
	elapsed := time.Since(t0)
	wg.Wait()
	b.ReportMetric(float64(total)/elapsed.Seconds(), "msgs/s")
}
