package apitest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hushnet/hush/node"
)

// LinkCode is the code the double's LinkDevice hands out.
const LinkCode = "hush-link-FAKE-CODE-0001"

// DefaultLinkTTL is how long the double's link codes stay valid unless
// LinkTTL says otherwise (node's: 10 minutes).
const DefaultLinkTTL = 10 * time.Minute

// LinkDevice implements api.Backend: it returns LinkCode, valid for
// LinkTTL from the wall clock (not Now: a CLI waits on it in real time).
// It links nothing; tests Publish the device events themselves.
func (b *Backend) LinkDevice(context.Context) (node.LinkOffer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ttl := b.LinkTTL
	if ttl == 0 {
		ttl = DefaultLinkTTL
	}
	b.links++
	return node.LinkOffer{Code: LinkCode, Expires: time.Now().Add(ttl).UTC()}, nil
}

// Links reports how many codes LinkDevice handed out.
func (b *Backend) Links() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.links
}

// AddDevice adds a device to the double's account list, as a finished
// link would.
func (b *Backend) AddDevice(d node.Device) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.devices = append(b.devices, d)
}

// Devices implements api.Backend: this device (Self's Device ID and
// name, This set) first, then those AddDevice added.
func (b *Backend) Devices() ([]node.Device, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	list := []node.Device{{ID: b.self.Device, Name: b.self.Name, This: true, Added: T0}}
	return append(list, b.devices...), nil
}

// Errors of the double's RevokeDevice. Node has no sentinels for these
// yet, so the API reports them as internal errors.
var (
	errUnknownDevice   = errors.New("no such device on this account")
	errAmbiguousDevice = errors.New("several devices have that ID prefix; give more digits")
	errRevokeThis      = errors.New("this device cannot revoke itself; revoke it from another device")
)

// RevokeDevice implements api.Backend: it removes the one added device
// whose ID starts with id (case-insensitive) and publishes a "revoked"
// device event.
func (b *Backend) RevokeDevice(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	id = strings.ToLower(id)
	if strings.HasPrefix(b.self.Device, id) {
		return errRevokeThis
	}
	found := -1
	for i, d := range b.devices {
		if strings.HasPrefix(d.ID, id) {
			if found >= 0 {
				return errAmbiguousDevice
			}
			found = i
		}
	}
	if found < 0 {
		return fmt.Errorf("%w: %s", errUnknownDevice, id)
	}
	d := b.devices[found]
	b.devices = slices.Delete(b.devices, found, found+1)
	b.publishLocked(node.Event{Type: node.EventDevice, Device: &node.DeviceEvent{Phase: "revoked", ID: d.ID, Name: d.Name}})
	return nil
}
