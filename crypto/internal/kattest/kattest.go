// Package kattest reads and writes the known-answer vector files of the
// crypto packages, in the one JSON shape docs/protocol/kat.md describes:
// each package's TestKAT writes its file with -update and reads it back.
// It is imported by tests only.
package kattest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Encode returns v as the indented JSON of a vector file, newline ended.
func Encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// Write writes v to path (creating its directory).
func Write(t testing.TB, path string, v any) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, Encode(t, v), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Read decodes the vector file at path into v.
func Read(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
