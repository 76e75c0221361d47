// Command hush is the hush desktop node: `hush daemon` runs it and the
// other verbs talk to the running daemon through its local API.
//
// Only the foundation exists so far (crypto, store, wire); the node, the
// daemon and the verbs arrive with the node issue, so `hush demo` says so.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	switch os.Args[1] {
	case "demo":
		fmt.Println("hush demo: not yet — the node, daemon and CLI arrive with the node issue.")
		fmt.Println("What exists today: crypto (PQXDH, Double Ratchet, sealed envelopes, sender keys, STREAM),")
		fmt.Println("the encrypted store and wire framing; run `make test` and `make bench` to exercise them.")
	case "help", "-h", "--help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "hush: unknown command %q (run `hush help`)\n", os.Args[1])
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: hush <command>\n\ncommands:\n  demo   show hush working on embedded defaults\n  help   this text")
}
