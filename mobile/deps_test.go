package mobile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// banned are what the mobile build must not link: import path prefixes
// and why.
var banned = map[string]string{
	"github.com/hushnet/hush/cmd":         "the CLI, the daemon and the relay's binary",
	"github.com/hushnet/hush/webui":       "the web UI and its embedded assets",
	"text/template":                       "linker bloat (it keeps every exported method)",
	"html/template":                       "linker bloat (it keeps every exported method)",
	"net/http/pprof":                      "a debug endpoint, not for phones",
	"github.com/spf13/cobra":              "a CLI library",
	"github.com/charmbracelet/bubbletea":  "a terminal UI library",
	"github.com/schollz/progressbar":      "the CLI's progress bars",
	"github.com/skip2/go-qrcode":          "the CLI's QR codes",
	"golang.org/x/term":                   "the CLI's terminal handling",
	"github.com/chromedp/chromedp":        "the web UI's browser tests",
	"github.com/prometheus/client_golang": "checked below: hush itself must not import it",
}

const prometheus = "github.com/prometheus/client_golang/prometheus"

// phoneTargets are the platforms the facade is built for.
var phoneTargets = []string{"android", "ios"}

func phoneEnv(goos string) []string {
	return []string{"GOOS=" + goos, "GOARCH=arm64", "CGO_ENABLED=0"}
}

// The mobile build keeps the CLI, the web UI, template packages, pprof
// and terminal libraries out. Prometheus is linked only because go-libp2p
// imports it (its event bus, swarm and host register metrics whatever
// the options; docs/MOBILE.md): no hush package may import it.
func TestMobileDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("lists the android and ios builds' packages")
	}
	root := moduleRoot(t)
	for _, goos := range phoneTargets {
		t.Run(goos, func(t *testing.T) {
			out := runGo(t, root, phoneEnv(goos), "list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./mobile")
			var viaPrometheus []string
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				fields := strings.Fields(line)
				pkg, imports := fields[0], fields[1:]
				for prefix, why := range banned {
					if prefix == "github.com/prometheus/client_golang" {
						continue
					}
					if pkg == prefix || strings.HasPrefix(pkg, prefix+"/") {
						t.Errorf("the %s build links %s: %s", goos, pkg, why)
					}
				}
				for _, imp := range imports {
					if imp != prometheus && !strings.HasPrefix(imp, prometheus+"/") {
						continue
					}
					if strings.HasPrefix(pkg, "github.com/hushnet/hush/") || pkg == "github.com/hushnet/hush" {
						t.Errorf("%s imports %s: metrics stay in the relay's binary (cmd)", pkg, imp)
					}
					if !strings.HasPrefix(pkg, "github.com/prometheus/") {
						viaPrometheus = append(viaPrometheus, pkg)
					}
				}
			}
			for _, pkg := range viaPrometheus {
				if !strings.HasPrefix(pkg, "github.com/libp2p/") {
					t.Errorf("%s imports prometheus: only go-libp2p is known to (docs/MOBILE.md)", pkg)
				}
			}
			t.Logf("%s: prometheus comes in through go-libp2p only: %s", goos, strings.Join(viaPrometheus, ", "))
		})
	}
}

// The facade compiles for android/arm64 and ios/arm64 without cgo, and an
// android program using it links with -checklinkname=0 (go-libp2p's
// github.com/wlynxg/anet reaches into net's internals). The test logs
// the sizes docs/MOBILE.md quotes.
func TestMobileBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the facade")
	}
	root := moduleRoot(t)
	tmp := t.TempDir()
	for _, goos := range phoneTargets {
		archive := filepath.Join(tmp, "mobile-"+goos+".a")
		runGo(t, root, phoneEnv(goos), "build", "-buildmode=archive", "-o", archive, "./mobile")
		logSize(t, goos+"/arm64 archive of package mobile (go build -buildmode=archive)", archive)
	}
	mod := tempModule(t, map[string]string{"main.go": linkProgram})
	bin := filepath.Join(tmp, "hush-mobile-android-arm64")
	runGo(t, mod, append(phoneEnv("android"), "GOFLAGS=-mod=mod"), "build", "-ldflags=-s -w -checklinkname=0", "-o", bin, ".")
	logSize(t, "android/arm64 program linking the facade and everything it uses (-ldflags='-s -w -checklinkname=0')", bin)
}

// linkProgram calls every exported function, so the linker keeps all
// that an app's library would.
const linkProgram = `package main

import (
	"os"

	"github.com/hushnet/hush/mobile"
)

type events struct{}

func (events) OnEvent(string) {}

func main() {
	if err := mobile.Start(os.Getenv("HUSH_MOBILE_CONFIG"), events{}); err != nil {
		os.Exit(1)
	}
	mobile.Call("getSelf", "")
	mobile.Drain(0)
	mobile.Close()
}
`

func logSize(t *testing.T, what, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes (%.1f MiB)", what, fi.Size(), float64(fi.Size())/(1<<20))
}
