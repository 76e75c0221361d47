package api

import (
	"context"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/node"
)

// The device methods: multi-device accounts (docs/protocol/sync.md).
// linkDevice hands out the one-time code that `hush device join` types
// on the new device; the link and the history transfer then report as
// device events. listDevices and revokeDevice manage the account's
// devices. Joining runs on the new device without a daemon (node.
// JoinDevice), so it is not a method.

// MinDevicePrefix is the fewest hex digits revokeDevice accepts as a
// device ID prefix.
const MinDevicePrefix = 8

// mLinkDevice is linkDevice: a one-time code for a new device.
func mLinkDevice(ctx context.Context, b Backend, _ struct{}) (node.LinkOffer, error) {
	return b.LinkDevice(ctx)
}

// mListDevices is listDevices: the account's devices, [] rather than null.
func mListDevices(_ context.Context, b Backend, _ struct{}) ([]node.Device, error) {
	return orEmpty(b.Devices())
}

// mRevokeDevice is revokeDevice: id must look like a device ID or a
// long enough prefix of one; the node decides whether it names one.
func mRevokeDevice(_ context.Context, b Backend, p apitypes.DeviceIDParams) (apitypes.OK, error) {
	if err := required("id", p.ID); err != nil {
		return apitypes.OK{}, err
	}
	if !isDevicePrefix(p.ID) {
		return apitypes.OK{}, invalidParams("%q must be a device ID, or a prefix of it of at least %d hex digits", "id", MinDevicePrefix)
	}
	return ok(b.RevokeDevice(p.ID))
}

// isDevicePrefix reports whether s is a hex device ID or a prefix of
// one at least MinDevicePrefix digits long (either case).
func isDevicePrefix(s string) bool {
	if len(s) < MinDevicePrefix || len(s) > 2*identity.DeviceIDSize {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// mHealth is health: what GET /api/v1/health answers, for socket
// clients (the CLI's history check).
func mHealth(_ context.Context, b Backend, _ struct{}) (node.Health, error) {
	return b.Health(), nil
}
