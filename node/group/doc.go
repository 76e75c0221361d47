// Package group is hush's group engine: a deterministic, network-free state
// machine for one group, as seen by one device.
//
// It holds the signed membership log (control operations ordered by a
// Lamport clock, so every member computes the same State whatever the
// arrival order), the epoch secrets from which the GossipSub topic of each
// epoch is derived, this device's sender keys and the senderkey.Receiver for
// everyone else's, a replay cache and a bounded store of recent messages for
// anti-entropy. It performs no I/O: every call returns the bytes the caller
// must publish on the group topic (Effects.Publish) or send over pairwise
// sessions (Effects.Pairwise), and the caller tells it who sent what.
//
// The specification is docs/protocol/groups.md.
package group

import (
	"errors"
	"time"

	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/senderkey"
	"github.com/hushnet/hush/crypto/suite"
	"github.com/hushnet/hush/internal/gossip"
)

// Labels.
const (
	// LabelOp is the identity.Account.Sign label of a control operation.
	LabelOp = "hush/v1/group-op"
	// labelTopic is the HKDF info prefix of a topic name.
	labelTopic = "hush/v1/group-topic"
	// labelEpoch is the HKDF info prefix of an epoch secret.
	labelEpoch = "hush/v1/group-epoch"
	// labelTransport is the HKDF info prefix of an epoch's topic key.
	labelTransport = "hush/v1/group-transport"
	// TopicPrefix starts every group topic name.
	TopicPrefix = gossip.TopicPrefix
)

// Version is the first byte of every encoding in this package.
const Version = 1

// Limits.
const (
	// MaxMembers bounds members plus pending invitations.
	MaxMembers = 1000
	// MaxDevicesPerMember is identity's device-list limit.
	MaxDevicesPerMember = identity.MaxDevices
	// MaxNameSize bounds the group name in bytes (UTF-8).
	MaxNameSize = 64
	// MaxOps bounds the operation log (the group must be re-created after).
	MaxOps = 16384
	// MaxPlaintext is the largest plaintext Seal accepts (one byte of the
	// senderkey plaintext is the inner kind).
	MaxPlaintext = senderkey.MaxPlaintext - 1
	// MaxWireSize is the largest group wire message: two bytes of framing
	// and a senderkey message.
	MaxWireSize = 2 + senderkey.MaxMessageSize
	// TopicOverhead is what sealing for a topic adds to a wire message
	// (SealTopic): two bytes of framing, a nonce and a tag; MaxTopicSize
	// is the largest topic message: the largest wire message with its
	// padding byte (§16.11).
	TopicOverhead = 2 + suite.SealOverhead
	MaxTopicSize  = MaxWireSize + TopicOverhead + 1
	// MaxWelcomeSize bounds one Welcome part so it fits a pairwise envelope.
	MaxWelcomeSize = 192 << 10
	// DedupeWindow is how many accepted message IDs are remembered.
	DedupeWindow = 10000
	// StoreMessages and StoreBytes bound the messages kept for anti-entropy.
	StoreMessages = 1000
	StoreBytes    = 8 << 20
	// MaxDigestChains and MaxRanges bound an anti-entropy digest; MaxRefs
	// bounds one Want request.
	MaxDigestChains = 4096
	MaxRanges       = 64
	MaxRefs         = 1000
	// DefaultGrace is how long the previous epoch's messages are accepted
	// after an epoch change, and a replaced sender key's after its
	// successor arrives.
	DefaultGrace = 60 * time.Second
	// RotateAfter and RotateMessages are when Seal replaces this device's
	// sender key within an epoch: once it is 7 days old or has sealed
	// 1,000 messages, whichever comes first.
	RotateAfter    = 7 * 24 * time.Hour
	RotateMessages = 1000
	// keepEpochs is how many recent epochs keep secrets and snapshots.
	keepEpochs = 8
	// maxParked bounds ops and pairwise messages held for a missing
	// predecessor.
	maxParked = 256
)

// Errors. Callers branch on these with errors.Is.
var (
	ErrMalformed     = errors.New("group: malformed")
	ErrTooLarge      = errors.New("group: too large")
	ErrBadSignature  = errors.New("group: bad signature")
	ErrWrongGroup    = errors.New("group: wrong group")
	ErrNotMember     = errors.New("group: not a member")
	ErrNotAdmin      = errors.New("group: not an admin")
	ErrNotInvited    = errors.New("group: not invited")
	ErrAlreadyMember = errors.New("group: already a member or invited")
	ErrTooMany       = errors.New("group: member limit reached")
	ErrBadOp         = errors.New("group: invalid operation")
	ErrEpoch         = errors.New("group: stale or unknown epoch")
	ErrReplay        = errors.New("group: replayed message")
	ErrDecrypt       = errors.New("group: cannot decrypt")
	ErrNotReady      = errors.New("group: no sender key for the current epoch yet")
	ErrDuplicate     = errors.New("group: duplicate operation")
	ErrParked        = errors.New("group: held until a missing predecessor arrives")
	ErrWrongSender   = errors.New("group: sender not allowed")
	// ErrUnlistedDevice: an op claims a device that is not on the signed
	// device list it carries, or carries another account's list.
	ErrUnlistedDevice = errors.New("group: device not on its account's signed device list")
	// ErrDeviceTaken: an op claims a device that another member or
	// invitee already holds.
	ErrDeviceTaken = errors.New("group: device held by another member")
	// ErrStaleList: a Devices op carries a device list whose version is
	// not above that of the last list the group accepted for its author
	// (a replayed or rolled-back list, which could re-add a revoked
	// device).
	ErrStaleList = errors.New("group: device list not newer than the group's")
)
