package node

import (
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Resources cap the resource manager's system and transient scopes where
// set and leave libp2p's scaled defaults where not.
func TestSystemLimits(t *testing.T) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	base := limits.AutoScale()
	if got, want := systemLimits(base, 0, 0).ToPartialLimitConfig().System, base.ToPartialLimitConfig().System; got != want {
		t.Fatalf("zero Resources changed the limits: %+v, want %+v", got, want)
	}
	capped := systemLimits(base, 32<<20, 64).ToPartialLimitConfig()
	for name, l := range map[string]rcmgr.ResourceLimits{"system": capped.System, "transient": capped.Transient} {
		if l.Memory != 32<<20 || l.Conns != 64 || l.ConnsInbound != 64 || l.ConnsOutbound != 64 {
			t.Errorf("%s scope: memory %d, conns %d/%d/%d; want 32 MiB and 64", name, l.Memory, l.Conns, l.ConnsInbound, l.ConnsOutbound)
		}
	}
	if want := base.ToPartialLimitConfig().System.Streams; capped.System.Streams != want {
		t.Errorf("streams %d, want the default %d kept", capped.System.Streams, want)
	}
	onlyConns := systemLimits(base, 0, 10).ToPartialLimitConfig()
	if onlyConns.System.Memory != base.ToPartialLimitConfig().System.Memory || onlyConns.System.Conns != 10 {
		t.Errorf("conns alone: memory %d, conns %d", onlyConns.System.Memory, onlyConns.System.Conns)
	}
}
