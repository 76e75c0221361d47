//go:build !hushprofile

package main

import "net/http"

// metricsHandler serves the metrics listener: /metrics only. Built with
// the hushprofile tag (profile.go) it also serves net/http/pprof, for
// BenchmarkIdleClientRSS's profiles.
func metricsHandler(metrics http.Handler) http.Handler { return metrics }
