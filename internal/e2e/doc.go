// Package e2e holds end-to-end tests that build the hush binaries and run
// them as separate processes on 127.0.0.1, driving them through the CLI a
// person would type. It has no code of its own.
package e2e
