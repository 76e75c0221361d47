package mobile

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// moduleRoot is the hush module's directory.
func moduleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// runGo runs the go command in dir with extra environment, failing the
// test with its output if it fails. It returns the output.
func runGo(t testing.TB, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s go %s: %v\n%s", strings.Join(env, " "), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// tempModule makes a module outside the tree that requires hush from
// this checkout (a replace directive) with hush's go.sum, for code that
// is not hush's own: gobind's output, a program that links the facade.
// The go command completes its go.mod (GOFLAGS=-mod=mod) from the module
// cache that hush's own build filled.
func tempModule(t testing.TB, files map[string]string) string {
	t.Helper()
	root := moduleRoot(t)
	dir := t.TempDir()
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	files["go.sum"] = string(sum)
	files["go.mod"] = "module hushmobilecheck\n\ngo 1.26\n\nrequire github.com/hushnet/hush v0.0.0\n\nreplace github.com/hushnet/hush => " + root + "\n"
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
