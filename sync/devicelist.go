package sync

import (
	"bytes"
	"fmt"

	"github.com/hushnet/hush/crypto/identity"
)

// ResolveFork repairs a forked device list (docs/protocol/sync.md §18.3):
// a and b are two different lists of one version that both replace base
// (nil if they are both version 1). The devices kept are those on both,
// and those either side added (not on base); a device either side revoked
// (on base, missing from a or b) goes. The account signs a list one
// version above a and b over whichever has the lower hash, then the
// result, one version higher still, over that; both carry the later of
// a's and b's issue times. Ed25519 signatures are deterministic, so every
// device that repairs the same fork signs the same bytes, and every peer
// accepts the result whichever of base, a or b it held (a version jump).
func ResolveFork(acct *identity.Account, base, a, b *identity.DeviceList) (*identity.DeviceList, error) {
	id := acct.Public()
	for _, l := range []*identity.DeviceList{a, b, base} {
		if l != nil && l.Account() != id {
			return nil, fmt.Errorf("%w: device list of another account", ErrWrongAccount)
		}
	}
	if a == nil || b == nil || a.Version() != b.Version() || a.Hash() == b.Hash() {
		return nil, fmt.Errorf("%w: not a fork: two different lists of one version are needed", ErrMalformed)
	}
	if base != nil && (base.Version()+1 != a.Version() || a.PrevHash() != base.Hash() || b.PrevHash() != base.Hash()) {
		return nil, fmt.Errorf("%w: the forked lists do not both replace the base", ErrMalformed)
	}
	onBase := func(d identity.DeviceID) bool { return base != nil && base.Contains(d) }
	keep := map[identity.DeviceID]*identity.DeviceCert{}
	add := func(c *identity.DeviceCert) {
		if old := keep[c.DeviceID()]; old == nil || bytes.Compare(c.Marshal(), old.Marshal()) < 0 {
			keep[c.DeviceID()] = c
		}
	}
	for _, pair := range [][2]*identity.DeviceList{{a, b}, {b, a}} {
		for _, c := range pair[0].Devices() {
			if pair[1].Contains(c.DeviceID()) || !onBase(c.DeviceID()) {
				add(c)
			}
		}
	}
	var certs []*identity.DeviceCert
	for _, c := range keep {
		certs = append(certs, c)
	}
	if len(certs) > identity.MaxDevices {
		return nil, fmt.Errorf("%w: the two sides hold %d devices together; revoke one and repair again", identity.ErrTooManyDevices, len(certs))
	}
	low := a
	if ah, bh := a.Hash(), b.Hash(); bytes.Compare(bh[:], ah[:]) < 0 {
		low = b
	}
	issued := a.IssuedAt()
	if b.IssuedAt().After(issued) {
		issued = b.IssuedAt()
	}
	mid, err := acct.NewDeviceList(low, certs, issued)
	if err != nil {
		return nil, err
	}
	return acct.NewDeviceList(mid, certs, issued)
}
