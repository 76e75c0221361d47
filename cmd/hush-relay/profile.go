//go:build hushprofile

package main

import (
	"net/http"
	"net/http/pprof"
	"runtime"
)

// A heap sample every 4 KiB allocated, not every 512 KiB: the heap
// profile then accounts for objects of a few hundred bytes per client.
func init() { runtime.MemProfileRate = 4096 }

// metricsHandler serves /metrics and, in a relay built with the
// hushprofile tag, the runtime profiles under /debug/pprof/ on the same
// listener. BenchmarkIdleClientRSS builds the relay so when
// HUSH_BENCH_PROFILE names a directory; a relay built without the tag
// serves no profiles (metrics_handler.go).
func metricsHandler(metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	return mux
}
