//go:build android || ios

package mobile

import (
	"os"
	"runtime/debug"

	"github.com/hushnet/hush/node"
)

// On a phone the node holds few connections, caps what libp2p may
// buffer, keeps short queues and never runs mDNS (multicast keeps the
// radio awake and needs a permission on both platforms).

// mdnsAllowed says whether the config may turn mDNS on.
const mdnsAllowed = false

// resources are the node's resource limits on a phone.
func resources() node.Resources {
	return node.Resources{
		ConnLow:     8,        // contacts' devices and relays the node talks to at once
		ConnHigh:    32,       // trimmed back to ConnLow above this
		MaxConns:    64,       // the resource manager refuses more, in and out
		MemoryLimit: 32 << 20, // what libp2p may reserve for streams and connections
		GroupQueue:  256,      // group topic messages waiting for the inbox
	}
}

// goMemoryLimit is the Go runtime's soft memory limit on a phone, unless
// the app sets GOMEMLIMIT.
const goMemoryLimit = 96 << 20

// applyRuntimeLimits makes the collector keep the heap under
// goMemoryLimit: a phone kills a background app that grows.
func applyRuntimeLimits() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(goMemoryLimit)
	}
}
