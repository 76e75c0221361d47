//go:build !android && !ios

package mobile

import "github.com/hushnet/hush/node"

// Off a phone (tests, a desktop app embedding the facade) the node keeps
// its desktop defaults, and LAN discovery may be turned on.

// mdnsAllowed says whether the config may turn mDNS on.
const mdnsAllowed = true

// resources are the node's resource limits: node's defaults.
func resources() node.Resources { return node.Resources{} }

// applyRuntimeLimits leaves the Go runtime as it is.
func applyRuntimeLimits() {}
