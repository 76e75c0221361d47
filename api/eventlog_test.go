package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitest"
	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node"
	"github.com/hushnet/hush/node/events"
)

// hubBackend serves subscriptions from a real event hub (node/events)
// over an in-memory log, as the node does.
type hubBackend struct {
	*apitest.Backend
	hub *events.Hub
	log *memLog
}

func (b *hubBackend) Subscribe(after uint64) (<-chan node.Event, func()) {
	return b.hub.Subscribe(after)
}

type memLog struct {
	mu  sync.Mutex
	evs map[uint64]apitypes.Event
}

func (l *memLog) Read(from, to uint64, limit int) ([]apitypes.Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []apitypes.Event
	for seq := from; seq <= to && len(out) < limit; seq++ {
		if ev, ok := l.evs[seq]; ok {
			out = append(out, ev)
		}
	}
	return out, nil
}

func newHubBackend() *hubBackend {
	l := &memLog{evs: make(map[uint64]apitypes.Event)}
	return &hubBackend{Backend: apitest.New(), hub: events.Open(events.Config{Log: l}), log: l}
}

// publish logs and publishes n message events with IDs prefix-i.
func (b *hubBackend) publish(prefix string, n int) {
	for i := range n {
		evs := []apitypes.Event{{Type: apitypes.EventMessage, Message: &apitypes.Message{ID: fmt.Sprintf("%s-%d", prefix, i)}}}
		b.hub.Number(evs)
		b.log.mu.Lock()
		b.log.evs[evs[0].Seq] = evs[0]
		b.log.mu.Unlock()
		b.hub.Settle(evs, true)
	}
}

func openEventsURL(t testing.TB, e httpEnv, query, lastID string) (*bufio.Reader, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.base+api.PathEvents+query, nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		cancel()
		t.Fatalf("events: %v %v", resp, err)
	}
	r := bufio.NewReader(resp.Body)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, ":") {
		t.Fatalf("stream start %q %v", line, err)
	}
	return r, func() { cancel(); resp.Body.Close() }
}

func sseEvents(t *testing.T, r *bufio.Reader, n int) []node.Event {
	t.Helper()
	var out []node.Event
	for _, s := range readSSE(t, r, n) {
		var ev node.Event
		if err := json.Unmarshal([]byte(s.data), &ev); err != nil {
			t.Fatal(err)
		}
		if s.id != strconv.FormatUint(ev.Seq, 10) {
			t.Fatalf("id %s for seq %d", s.id, ev.Seq)
		}
		out = append(out, ev)
	}
	return out
}

// The SSE stream resumes from the log with Last-Event-ID or ?since=, in
// order, then goes on live; a seq the log no longer holds gets one gap
// event whose id is where it goes on from.
func TestSSEResumeFromLogAndGap(t *testing.T) {
	b := newHubBackend()
	defer b.hub.Close()
	e := startHTTP(t, b, api.Config{})
	b.publish("m", events.Recent+100) // more than memory holds: the start comes from the log

	r, stop := openEventsURL(t, e, "", "10")
	got := sseEvents(t, r, events.Recent+90)
	for i, ev := range got {
		if ev.Seq != uint64(11+i) || ev.Message.ID != fmt.Sprintf("m-%d", 10+i) {
			t.Fatalf("event %d: seq %d id %s", i, ev.Seq, ev.Message.ID)
		}
	}
	b.publish("live", 1)
	if ev := sseEvents(t, r, 1)[0]; ev.Message.ID != "live-0" || ev.Seq != events.Recent+101 {
		t.Fatalf("live event %+v", ev)
	}
	stop()

	r, stop = openEventsURL(t, e, "?since="+strconv.Itoa(events.Recent+99), "")
	if evs := sseEvents(t, r, 2); evs[0].Seq != events.Recent+100 || evs[1].Message.ID != "live-0" {
		t.Fatalf("since: %+v", evs)
	}
	stop()

	b.hub.SetOldest(50)
	r, stop = openEventsURL(t, e, "", "5")
	evs := sseEvents(t, r, 2)
	stop()
	if evs[0].Type != node.EventGap || evs[0].Seq != 49 || evs[0].Gap.After != 5 || evs[0].Gap.Oldest != 50 || evs[1].Seq != 50 {
		t.Fatalf("gap: %+v %+v then %d", evs[0], evs[0].Gap, evs[1].Seq)
	}
}

// subscribe on the socket takes since (or after); both given must agree.
func TestSocketSubscribeSince(t *testing.T) {
	b := newHubBackend()
	defer b.hub.Close()
	srv, _ := startServer(t, b, false, api.Config{})
	b.publish("m", 5)
	conn, err := net.Dial("unix", srv.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	conn.Write([]byte(`{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"since":2,"after":3}}` + "\n"))
	line, _ := r.ReadBytes('\n')
	var resp api.Response
	if json.Unmarshal(line, &resp) != nil || resp.Error == nil || resp.Error.Code != api.CodeInvalidParams {
		t.Fatalf("since and after differ: %s", line)
	}
	conn.Write([]byte(`{"jsonrpc":"2.0","id":2,"method":"subscribe","params":{"since":2}}` + "\n"))
	line, _ = r.ReadBytes('\n')
	resp = api.Response{}
	if json.Unmarshal(line, &resp) != nil || resp.Error != nil {
		t.Fatalf("subscribe: %s", line)
	}
	for want := uint64(3); want <= 5; want++ {
		line, _ = r.ReadBytes('\n')
		var n struct {
			Method string     `json:"method"`
			Params node.Event `json:"params"`
		}
		if json.Unmarshal(line, &n) != nil || n.Method != "event" || n.Params.Seq != want {
			t.Fatalf("want event %d, got %s", want, line)
		}
	}
}

// BenchmarkSSEFanOut50: one message event streamed over HTTP to 50 SSE
// subscribers; ns/op is per event delivered to all 50.
func BenchmarkSSEFanOut50(b *testing.B) {
	hb := newHubBackend()
	defer hb.hub.Close()
	srv, home := startServerB(b, hb)
	tok, err := os.ReadFile(filepath.Join(home, api.TokenFile))
	if err != nil {
		b.Fatal(err)
	}
	e := httpEnv{base: "http://" + srv.HTTPAddr(), token: strings.TrimSpace(string(tok))}
	const subs = 50
	readers := make([]*bufio.Reader, subs)
	for i := range readers {
		r, stop := openEventsURL(b, e, "", "")
		defer stop()
		readers[i] = r
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	for _, r := range readers {
		wg.Go(func() {
			for n := 0; n < b.N; {
				line, err := r.ReadString('\n')
				if err != nil {
					b.Error(err)
					return
				}
				if strings.HasPrefix(line, "data: ") {
					n++
				}
			}
		})
	}
	hb.publish("m", b.N)
	wg.Wait()
	b.ReportMetric(float64(b.N*subs)/b.Elapsed().Seconds(), "deliveries/s")
}

// startServerB serves b over HTTP for a benchmark.
func startServerB(tb testing.TB, b api.Backend) (*api.Server, string) {
	home := tb.TempDir()
	srv := api.NewServer(b, api.Config{Home: home, HTTPAddr: "127.0.0.1:0"})
	if err := srv.Listen(); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	return srv, home
}
