package node

import (
	"context"
	"errors"
	"time"

	msync "github.com/hushnet/hush/sync"
)

// This file is the node's side of multi-device accounts
// (docs/protocol/sync.md §18.10): linking, the device list, revocation.

// JoinOptions configures JoinDevice.
type JoinOptions struct {
	// Code is the link code `hush device link` printed on the existing
	// device (text form).
	Code string
	// Name is this device's name, 1 to 64 bytes (default "device").
	Name string
	// HistoryDays limits the messages transferred to the last N days;
	// 0 means all.
	HistoryDays uint32
	// Passphrase protects the new store (empty: a 0600 key file).
	Passphrase []byte
	// KDF overrides the Argon2id costs (tests).
	KDF KDFParams
	// ListenAddrs are the libp2p addresses the joining host listens on
	// (default: an ephemeral loopback and LAN TCP port).
	ListenAddrs []string
	// Progress, if set, is called as history items are stored.
	Progress func(p HistoryProgress)
}

// ErrNotImplemented marks a device operation not wired yet.
var errDevicesNotWired = errors.New("multi-device: not wired yet")

// LinkDevice makes a one-time link code (valid CodeTTL, one use) for a
// new device, replacing any earlier code of this device.
func (n *Node) LinkDevice(ctx context.Context) (LinkOffer, error) {
	return LinkOffer{}, errDevicesNotWired
}

// Devices lists the account's devices.
func (n *Node) Devices() ([]Device, error) {
	return nil, errDevicesNotWired
}

// RevokeDevice removes a device (by its hex ID, or a unique prefix of
// at least 8 hex digits) from the account.
func (n *Node) RevokeDevice(id string) error {
	return errDevicesNotWired
}

// JoinDevice links a new device to an existing account with a code, in
// an empty home, and transfers history; the home then runs with `hush
// daemon`. Interrupted, it can be run again on the same home (or the
// daemon resumes the transfer).
func JoinDevice(ctx context.Context, home string, opts JoinOptions) (*Self, error) {
	return nil, errDevicesNotWired
}

// syncOutLocked tells the account's other devices about a change made
// here, in transaction t: the message is encrypted to each of them and
// queued in the outbox with t (docs/protocol/sync.md §18.5). With no
// other device it does nothing.
func (n *Node) syncOutLocked(t *txn, m msync.Message, now time.Time) {}
