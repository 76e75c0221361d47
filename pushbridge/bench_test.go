package pushbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hushnet/hush/pushbridge/provider"
)

// benchBridge opens a bridge with coalescing and rate limits off and
// returns it with n verified handles.
func benchBridge(b *testing.B, n int) (*testBridge, []string) {
	cfg := testConfig(b)
	cfg.Limits = Limits{CoalesceWindow: Off, HandlePerMinute: -1, GlobalPerSecond: -1, RegisterPerHour: -1}
	tb := newTestBridge(b, cfg)
	handles := make([]string, n)
	for i := range handles {
		id, err := tb.Register(context.Background(), provider.APNs, token(i))
		if err != nil {
			b.Fatal(err)
		}
		var code string
		tb.fake.mu.Lock()
		var v struct{ Code string }
		json.Unmarshal(tb.fake.pushes[len(tb.fake.pushes)-1].Payload, &v)
		code = v.Code
		tb.fake.pushes = nil
		tb.fake.mu.Unlock()
		if handles[i], err = tb.Verify(id, code); err != nil {
			b.Fatal(err)
		}
	}
	return tb, handles
}

// BenchmarkWake measures wakes a second through Bridge.Wake to the
// in-test fake, 100 handles a call, coalescing off (target ≥ 5,000/s).
func BenchmarkWake(b *testing.B) {
	tb, handles := benchBridge(b, 100)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if rej, err := tb.Wake(ctx, handles, provider.High); err != nil || len(rej) != 0 {
			b.Fatal(err, len(rej))
		}
	}
	b.ReportMetric(float64(b.N*len(handles))/b.Elapsed().Seconds(), "wakes/s")
	if got := len(tb.fake.wakes()); got != b.N*len(handles) {
		b.Fatalf("%d pushes for %d wakes", got, b.N*len(handles))
	}
}

// BenchmarkWakeHTTP is BenchmarkWake through the HTTP API (one relay
// call of 100 handles per iteration, in-process).
func BenchmarkWakeHTTP(b *testing.B) {
	tb, handles := benchBridge(b, 100)
	body, _ := json.Marshal(map[string]any{"handles": handles})
	h := tb.Handler()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/wake", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+relayToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code, rec.Body.String())
		}
	}
	b.ReportMetric(float64(b.N*len(handles))/b.Elapsed().Seconds(), "wakes/s")
}
