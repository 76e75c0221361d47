// Package archtest holds the tests that keep hush's shape: a package
// comment on every package and the dependency direction described in
// ARCHITECTURE.md. It has no code of its own beyond the rule table.
package archtest

// Rule forbids packages under From (a module-relative path prefix) from
// importing anything matching Deny, unless it also matches Allow.
type Rule struct {
	From   string   // module-relative package prefix, e.g. "crypto"
	Allow  []string // import path prefixes always allowed ("std" = standard library)
	Only   bool     // when true, every import must match Allow
	Deny   []string // import path prefixes forbidden
	Reason string
}

// Module is the module path.
const Module = "github.com/hushnet/hush"

// Rules is the dependency direction of ARCHITECTURE.md and STYLE.md §9.
var Rules = []Rule{
	{
		From:   "crypto",
		Allow:  []string{"std", "golang.org/x/crypto", "filippo.io/edwards25519", Module + "/crypto"},
		Only:   true,
		Reason: "crypto imports only the standard library, golang.org/x/crypto and filippo.io/edwards25519 (the standard library's own edwards25519 as a module; crypto/x25519 checks received keys for torsion with it instead of home-made curve arithmetic, issue 11)",
	},
	{
		From:   "relay",
		Deny:   []string{Module + "/node", Module + "/api", Module + "/cmd"},
		Reason: "the relay does not import the node",
	},
	{
		From:   "sync",
		Deny:   []string{Module + "/node", Module + "/api", Module + "/cmd"},
		Reason: "sync does not import the node",
	},
	{
		From:   "pushbridge",
		Deny:   []string{Module + "/node", Module + "/api", Module + "/cmd"},
		Reason: "the push bridge does not import the node",
	},
	{
		From:   "node",
		Allow:  []string{Module + "/api/apitypes"},
		Deny:   []string{Module + "/api", Module + "/cmd"},
		Reason: "node sits below api and cmd (it names the API's types from the leaf api/apitypes)",
	},
	{
		From:   "node/events",
		Allow:  []string{"std", Module + "/api/apitypes"},
		Only:   true,
		Reason: "the event hub knows the API's event type and nothing of the node",
	},
	{
		From:   "node/gate",
		Allow:  []string{"std"},
		Only:   true,
		Reason: "start-up gates are plain synchronisation",
	},
	{
		From:   "node/loops",
		Allow:  []string{"std"},
		Only:   true,
		Reason: "the run's goroutine group is plain synchronisation",
	},
	{
		From:   "node/group",
		Deny:   []string{Module + "/node/events", Module + "/node/gate", Module + "/node/loops", Module + "/relay"},
		Reason: "the group engine is network-free: it speaks GossipSub's types only through internal/gossip",
	},
	{
		From:   "node/search",
		Allow:  []string{"std"},
		Only:   true,
		Reason: "the search index is plain data in memory: it sees no store, no network and no node type (issue 18)",
	},
	{
		From:   "node/attach",
		Allow:  []string{"std", Module + "/crypto/codec", Module + "/crypto/stream", "github.com/abema/go-mp4"},
		Only:   true,
		Reason: "attachments' pointer, sealing and verification need neither the network nor the store: the standard library, crypto/codec and crypto/stream only, and github.com/abema/go-mp4 for the duration an MP4 states (issue 16)",
	},
	{
		From:   "node/shortlink",
		Allow:  []string{"std", "golang.org/x/crypto", "github.com/multiformats/go-multiaddr", Module + "/crypto/codec"},
		Only:   true,
		Reason: "short links and their sealed records are network-free and store-free: the standard library, golang.org/x/crypto, multiaddr encoding and crypto/codec (issue 17)",
	},
	{
		From:   "api/apitypes",
		Allow:  []string{"std"},
		Only:   true,
		Reason: "the API's JSON types import only the standard library, so a client needs neither the node nor libp2p",
	},
	{
		From:   "api",
		Deny:   []string{Module + "/cmd"},
		Reason: "api sits below cmd",
	},
	{
		From:   "webui",
		Allow:  []string{"std", Module + "/api", "github.com/skip2/go-qrcode", "golang.org/x/sys/unix"},
		Only:   true,
		Reason: "the web UI is a client of the API's method table and nothing else: no node, no store (it draws QR codes with go-qrcode and holds uploads in a memfd with x/sys/unix); the mobile build, which imports api, never links it (issue 19)",
	},
	{
		From:   "mobile",
		Allow:  []string{"std", Module + "/api", Module + "/node"},
		Only:   true,
		Reason: "the gomobile facade is a thin layer over the API's method table and the node (issue 19): no other module of its own, so the phone build links nothing the node and the API do not (its dependency fence is mobile.TestMobileDeps)",
	},
	{
		From:   "cmd/hush",
		Deny:   []string{Module + "/internal/store"},
		Reason: "the CLI reaches the store only through the node",
	},
	{
		From:   "internal",
		Deny:   []string{Module + "/node", Module + "/api", Module + "/cmd", Module + "/relay", Module + "/sync", Module + "/pushbridge"},
		Reason: "internal packages are leaves",
	},
}

// FileRule limits, inside one package, which files may import a path:
// the package's non-test files other than Files must not import Import
// (or anything under it).
type FileRule struct {
	Package string   // module-relative package path, e.g. "cmd/hush"
	Import  string   // import path prefix
	Files   []string // the only non-test files that may import it
	Reason  string
}

// FileRules draw lines inside a package that package-level rules cannot.
var FileRules = []FileRule{
	{
		Package: "cmd/hush",
		Import:  Module + "/node",
		Files:   []string{"daemon.go"},
		Reason:  "only the init and daemon verbs run the node; every other verb is a client of the API and speaks api/apitypes",
	},
}

// Exclusive lists imports that only one part of the tree may use: the
// import prefix maps to the module-relative package prefixes allowed.
var Exclusive = map[string][]string{
	"github.com/syndtr/goleveldb":         {"internal/store"},
	"github.com/prometheus/client_golang": {"cmd"},
	"github.com/skip2/go-qrcode":          {"cmd", "webui"},
	"github.com/chromedp":                 {"internal/e2e"},
	"github.com/schollz/progressbar":      {"cmd"},
	"github.com/libp2p/go-libp2p-pubsub":  {"node", "relay", "internal/gossip"},
	"golang.org/x/term":                   {"cmd"},
	"filippo.io/edwards25519":             {"crypto/x25519"},
	Module + "/mobile":                    {}, // the facade is bound by gobind, imported by no package
}
