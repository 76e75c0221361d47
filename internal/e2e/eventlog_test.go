package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// apiEndpoint returns the daemon's HTTP API address and token, as a bot
// reads them from its home.
func (u *user) apiEndpoint() (base, token string) {
	u.t.Helper()
	addr, err := os.ReadFile(filepath.Join(u.home, "api.addr"))
	if err != nil {
		u.t.Fatal(err)
	}
	tok, err := os.ReadFile(filepath.Join(u.home, "api.token"))
	if err != nil {
		u.t.Fatal(err)
	}
	return "http://" + strings.TrimSpace(string(addr)), strings.TrimSpace(string(tok))
}

// rpc calls a method over the daemon's HTTP API.
func (u *user) rpc(method string, params, result any) {
	u.t.Helper()
	base, token := u.apiEndpoint()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	req, _ := http.NewRequest("POST", base+"/api/v1/rpc", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		u.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Result json.RawMessage  `json:"result"`
		Error  *json.RawMessage `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Error != nil {
		u.t.Fatalf("%s: %v %s", method, err, *r.Error)
	}
	if result != nil {
		json.Unmarshal(r.Result, result)
	}
}

type botEvent struct {
	Seq     uint64 `json:"seq"`
	Type    string `json:"type"`
	Message *struct {
		ID        string `json:"id"`
		Direction string `json:"direction"`
	} `json:"message"`
}

// streamEvents reads u's SSE stream after lastID ("" for only new ones)
// and sends its events to out until the stream ends; it returns once the
// stream is open.
func streamEvents(t *testing.T, u *user, lastID string, out chan<- botEvent) (ended <-chan error) {
	t.Helper()
	base, token := u.apiEndpoint()
	req, _ := http.NewRequestWithContext(context.Background(), "GET", base+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events: HTTP %d", resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, ":") {
		t.Fatalf("stream start %q %v", line, err)
	}
	done := make(chan error, 1)
	go func() {
		defer resp.Body.Close()
		var id string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				done <- err
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				var ev botEvent
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err != nil {
					done <- err
					return
				}
				if id != strconv.FormatUint(ev.Seq, 10) {
					done <- fmt.Errorf("event id %s, seq %d", id, ev.Seq)
					return
				}
				out <- ev
			}
		}
	}()
	return done
}

// A bot subscribed over SSE sees each of 200 incoming messages exactly
// once although the daemon is killed with SIGKILL (twice) and restarted
// while they arrive: it reconnects with Last-Event-ID, and the event log
// has every message event the store has, numbered on across restarts.
func TestBotResumesAcrossKill(t *testing.T) {
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	alice.start()
	defer alice.stop()
	bob.start()
	defer bob.stop()
	befriend(t, alice, bob, "alice", "bob")

	events := make(chan botEvent, 1024)
	ended := streamEvents(t, bob, "", events)

	const total = 200
	sent := make(chan string, total)
	go func() {
		for i := range total {
			var m struct {
				ID string `json:"id"`
			}
			alice.rpc("send", map[string]string{"to": "bob", "text": fmt.Sprintf("msg %03d", i), "txnId": fmt.Sprint("t", i)}, &m)
			sent <- m.ID
		}
		close(sent)
	}()

	seen := map[string]int{}
	var last uint64
	kills := map[int]bool{50: true, 130: true} // after this many messages seen
	for len(seen) < total {
		select {
		case ev := <-events:
			if ev.Seq <= last {
				t.Fatalf("event %d after %d", ev.Seq, last)
			}
			last = ev.Seq
			if ev.Type == "gap" {
				t.Fatalf("gap event at %d", ev.Seq)
			}
			if ev.Type != "message" || ev.Message == nil || ev.Message.Direction != "in" {
				continue
			}
			seen[ev.Message.ID]++
			if kills[len(seen)] {
				delete(kills, len(seen))
				bob.kill()
				<-ended // the stream ended with the process
				// Drain what was read before the kill: all of it counts.
				for drained := false; !drained; {
					select {
					case ev := <-events:
						if ev.Seq <= last {
							t.Fatalf("event %d after %d", ev.Seq, last)
						}
						last = ev.Seq
						if ev.Type == "message" && ev.Message != nil && ev.Message.Direction == "in" {
							seen[ev.Message.ID]++
						}
					default:
						drained = true
					}
				}
				bob.start()
				ended = streamEvents(t, bob, strconv.FormatUint(last, 10), events)
			}
		case err := <-ended:
			t.Fatalf("event stream ended: %v (seen %d)", err, len(seen))
		}
	}
	var ids []string
	for id := range sent {
		ids = append(ids, id)
	}
	if len(ids) != total {
		t.Fatalf("%d sends answered, want %d", len(ids), total)
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("message %s: %d events, want exactly 1", id, seen[id])
		}
	}
	if len(seen) != total {
		t.Errorf("%d distinct messages seen, want %d", len(seen), total)
	}
	if len(kills) != 0 {
		t.Errorf("kills not done: %v", kills)
	}
}
