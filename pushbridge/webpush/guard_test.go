package webpush

import (
	"errors"
	"net/netip"
	"testing"
)

func TestGuardControl(t *testing.T) {
	for _, a := range []string{"127.0.0.1:443", "[::1]:443", "10.0.0.1:443", "169.254.169.254:80", "[fe80::1%eth0]:443",
		"100.100.100.100:443", "[::ffff:10.0.0.1]:443", "[64:ff9b::a00:1]:443", "0.0.0.0:443", "not an address"} {
		if err := guardControl("tcp", a, nil); !errors.Is(err, errNotPublic) {
			t.Errorf("%s: %v", a, err)
		}
	}
	for _, a := range []string{"142.250.74.110:443", "[2a00:1450:4001:82a::200e]:443"} {
		if err := guardControl("tcp", a, nil); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	if !isPublic(netip.MustParseAddr("8.8.8.8")) {
		t.Error("8.8.8.8 not public")
	}
}
