package group

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
)

// GroupID is a group's random 32-byte identifier.
type GroupID [32]byte

// OpKind is the kind of a control operation.
type OpKind uint8

// Operation kinds.
const (
	OpCreate OpKind = 1 + iota
	OpInvite
	OpAccept
	OpDecline
	OpLeave
	OpRemove
	OpPromote
	OpRename
	// OpDevices replaces the author's devices in the group with a new
	// set from a newer signed device list (docs/protocol/groups.md §16.2).
	OpDevices
)

var opNames = [...]string{"", "create", "invite", "accept", "decline", "leave", "remove", "promote", "rename", "devices"}

func (k OpKind) String() string {
	if int(k) < len(opNames) && k != 0 {
		return opNames[k]
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Op is a signed control operation. Which of Target, Devices, List and
// Name are set depends on Kind (see docs/protocol/groups.md §16.2); the
// others must be zero. Devices is sorted and free of duplicates.
//
// An op that names devices (Create, Invite, Accept, Devices) carries List,
// the signed device list of the account whose devices they are (the
// author's for Create, Accept and Devices, the target's for Invite), and
// every device in
// Devices must be on it. ParseOp checks this, so every member checks the
// same claim against the same signed list whatever cards it holds.
type Op struct {
	Kind    OpKind
	Group   GroupID
	Epoch   uint64 // the author's epoch when it made the op
	Lamport uint64
	Author  identity.AccountID
	Device  identity.DeviceID // the author's device that made it
	Target  identity.AccountID
	Devices []identity.DeviceID
	Name    string
	List    *identity.DeviceList
	Sig     [identity.SignatureSize]byte

	enc  []byte
	hash [32]byte
}

const (
	tagOp        = 'O'
	opFixedSize  = 2 + 1 + 32 + 8 + 8 + 32 + 16 + 32 + 2 + 2 + identity.SignatureSize
	maxOpSize    = opFixedSize + 2 + MaxDevicesPerMember*identity.DeviceIDSize + MaxNameSize + identity.MaxDeviceListSize
	maxLamport   = 1 << 62
	opSortKeyLen = 8 + 32 + 32
)

// Hash is SHA-256 of the op's encoding: its identity in the log.
func (o *Op) Hash() [32]byte { return o.hash }

// Marshal returns the op's encoding (a copy).
func (o *Op) Marshal() []byte { return codec.Clone(o.enc) }

func (o *Op) body() []byte {
	w := codec.NewWriter(maxOpSize)
	w.U8(Version)
	w.U8(tagOp)
	w.U8(uint8(o.Kind))
	w.Fixed(o.Group[:])
	w.U64(o.Epoch)
	w.U64(o.Lamport)
	w.Fixed(o.Author[:])
	w.Fixed(o.Device[:])
	w.Fixed(o.Target[:])
	w.U16(uint16(len(o.Devices)))
	for _, d := range o.Devices {
		w.Fixed(d[:])
	}
	w.String16(o.Name)
	if o.List != nil {
		w.Bytes16(o.List.Marshal())
	} else {
		w.U16(0)
	}
	return w.Bytes()
}

// devicesOwner is the account whose devices an op names: the target for
// an Invite, the author otherwise.
func (o *Op) devicesOwner() identity.AccountID {
	if o.Kind == OpInvite {
		return o.Target
	}
	return o.Author
}

// checkList checks the devices an op claims against the signed device
// list it carries: the list must be the devices' owner's and name every
// device.
func (o *Op) checkList() error {
	if o.List == nil {
		return nil
	}
	if o.List.Account() != o.devicesOwner() {
		return fmt.Errorf("%w: %s op carries another account's device list", ErrUnlistedDevice, o.Kind)
	}
	for _, d := range o.Devices {
		if !o.List.Contains(d) {
			return fmt.Errorf("%w: %s op claims device %s", ErrUnlistedDevice, o.Kind, d)
		}
	}
	return nil
}

// check enforces the per-kind shape rules; hasList says whether the op
// carries a device list.
func (o *Op) check(hasList bool) error {
	bad := func(why string) error { return fmt.Errorf("%w: %s op: %s", ErrMalformed, o.Kind, why) }
	if o.Lamport >= maxLamport {
		return bad("lamport clock out of range")
	}
	if len(o.Devices) > MaxDevicesPerMember || len(o.Name) > MaxNameSize {
		return bad("field too large")
	}
	for i := 1; i < len(o.Devices); i++ {
		if bytes.Compare(o.Devices[i-1][:], o.Devices[i][:]) >= 0 {
			return bad("devices not sorted or duplicated")
		}
	}
	wantTarget, wantDevices, wantName := false, false, false
	switch o.Kind {
	case OpCreate:
		wantDevices, wantName = true, true
	case OpInvite:
		wantTarget, wantDevices = true, true
	case OpAccept, OpDevices:
		wantDevices = true
	case OpDecline, OpLeave:
	case OpRemove, OpPromote:
		wantTarget = true
	case OpRename:
		wantName = true
	default:
		return bad("unknown kind")
	}
	if wantTarget == o.Target.IsZero() {
		return bad("target field")
	}
	if wantDevices != (len(o.Devices) > 0) {
		return bad("devices field")
	}
	if wantDevices != hasList {
		return bad("device list field")
	}
	if wantName != (o.Name != "") {
		return bad("name field")
	}
	if wantName && !utf8.ValidString(o.Name) {
		return bad("name not UTF-8")
	}
	if wantTarget && o.Target == o.Author {
		return bad("target is the author")
	}
	return nil
}

// signOp fills in Sig, the encoding and the hash.
func signOp(acct *identity.Account, o *Op) error {
	slices.SortFunc(o.Devices, func(a, b identity.DeviceID) int { return bytes.Compare(a[:], b[:]) })
	o.Devices = slices.Compact(o.Devices)
	o.Author = acct.Public()
	if err := o.check(o.List != nil); err != nil {
		return err
	}
	if err := o.checkList(); err != nil {
		return err
	}
	body := o.body()
	sig, err := acct.Sign(LabelOp, body)
	if err != nil {
		return fmt.Errorf("group: sign op: %w", err)
	}
	copy(o.Sig[:], sig)
	o.enc = append(body, sig...)
	o.hash = sha256.Sum256(o.enc)
	return nil
}

// ParseOp decodes an op, checks its shape, verifies its signature against
// the author's account key, then parses the device list it carries and
// checks every claimed device against it (ErrUnlistedDevice). It does not
// check group rules.
func ParseOp(b []byte) (*Op, error) {
	if len(b) > maxOpSize {
		return nil, fmt.Errorf("%w: op of %d bytes", ErrTooLarge, len(b))
	}
	r := codec.NewReader(b)
	if v, t := r.U8(), r.U8(); r.Err() == nil && (v != Version || t != tagOp) {
		return nil, fmt.Errorf("%w: op version %d tag %#x", ErrMalformed, v, t)
	}
	o := &Op{Kind: OpKind(r.U8())}
	copy(o.Group[:], r.Fixed(32))
	o.Epoch = r.U64()
	o.Lamport = r.U64()
	copy(o.Author[:], r.Fixed(32))
	copy(o.Device[:], r.Fixed(identity.DeviceIDSize))
	copy(o.Target[:], r.Fixed(32))
	n := r.Count(MaxDevicesPerMember)
	for range n {
		var d identity.DeviceID
		copy(d[:], r.Fixed(identity.DeviceIDSize))
		o.Devices = append(o.Devices, d)
	}
	o.Name = r.String16(MaxNameSize)
	list := r.Bytes16(identity.MaxDeviceListSize)
	copy(o.Sig[:], r.Fixed(identity.SignatureSize))
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: op: %v", ErrMalformed, err)
	}
	if err := o.check(len(list) > 0); err != nil {
		return nil, err
	}
	body := b[:len(b)-identity.SignatureSize]
	if identity.Verify(o.Author.PublicKey(), LabelOp, body, o.Sig[:]) != nil {
		return nil, ErrBadSignature
	}
	// The list costs a signature check per device: only for signed ops.
	if len(list) > 0 {
		l, err := identity.ParseDeviceList(list)
		if err != nil {
			return nil, fmt.Errorf("%w: %s op device list: %v", ErrUnlistedDevice, o.Kind, err)
		}
		o.List = l
		if err := o.checkList(); err != nil {
			return nil, err
		}
	}
	o.enc = codec.Clone(b)
	o.hash = sha256.Sum256(b)
	return o, nil
}

// opLess is the total order: Lamport, then author account bytes, then hash.
func opCompare(a, b *Op) int {
	switch {
	case a.Lamport < b.Lamport:
		return -1
	case a.Lamport > b.Lamport:
		return 1
	}
	if c := bytes.Compare(a.Author[:], b.Author[:]); c != 0 {
		return c
	}
	return bytes.Compare(a.hash[:], b.hash[:])
}
