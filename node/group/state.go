package group

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
)

// Member is one account in a group (or invited to it). Display names are
// local to each device and are not part of the signed state.
type Member struct {
	Account identity.AccountID
	Devices []identity.DeviceID // sorted
	Admin   bool
	// ListVersion is the version of the last signed device list the
	// group accepted for this member (its Create, Accept or latest
	// Devices op). A Devices op must carry a higher one. Zero for an
	// invitation.
	ListVersion uint64
}

// State is a group's membership as computed from its operation log.
// Members and Invited are sorted by account.
type State struct {
	ID      GroupID
	Name    string
	Epoch   uint64
	Lamport uint64
	Members []Member
	Invited []Member // pending invitations; Admin is always false
}

// Member returns the member with account a, if any.
func (s *State) Member(a identity.AccountID) (Member, bool) {
	i, ok := slices.BinarySearchFunc(s.Members, a, func(m Member, a identity.AccountID) int {
		return bytes.Compare(m.Account[:], a[:])
	})
	if !ok {
		return Member{}, false
	}
	return s.Members[i], true
}

const tagState = 'S'

// MarshalBinary encodes s canonically.
func (s *State) MarshalBinary() ([]byte, error) {
	if len(s.Members)+len(s.Invited) > MaxMembers || len(s.Name) > MaxNameSize {
		return nil, ErrTooLarge
	}
	w := codec.NewWriter(64 + 64*len(s.Members))
	w.U8(Version)
	w.U8(tagState)
	w.Fixed(s.ID[:])
	w.U64(s.Epoch)
	w.U64(s.Lamport)
	w.String16(s.Name)
	for _, list := range [][]Member{s.Members, s.Invited} {
		w.U16(uint16(len(list)))
		for _, m := range list {
			if len(m.Devices) > MaxDevicesPerMember {
				return nil, ErrTooLarge
			}
			w.Fixed(m.Account[:])
			w.Bool(m.Admin)
			w.U64(m.ListVersion)
			w.U16(uint16(len(m.Devices)))
			for _, d := range m.Devices {
				w.Fixed(d[:])
			}
		}
	}
	return w.Bytes(), nil
}

// UnmarshalBinary decodes a State from MarshalBinary, checking every cap,
// the sort orders and that no account appears twice. On error s is
// unchanged.
func (s *State) UnmarshalBinary(b []byte) error {
	r := codec.NewReader(b)
	if v, t := r.U8(), r.U8(); r.Err() == nil && (v != Version || t != tagState) {
		return fmt.Errorf("%w: state version %d tag %#x", ErrMalformed, v, t)
	}
	var n State
	copy(n.ID[:], r.Fixed(32))
	n.Epoch = r.U64()
	n.Lamport = r.U64()
	n.Name = r.String16(MaxNameSize)
	seen := make(map[identity.AccountID]bool)
	for li := range 2 {
		cnt := r.Count(MaxMembers - len(seen))
		list := make([]Member, 0, cnt)
		for range cnt {
			var m Member
			copy(m.Account[:], r.Fixed(32))
			m.Admin = r.Bool()
			m.ListVersion = r.U64()
			nd := r.Count(MaxDevicesPerMember)
			for range nd {
				var d identity.DeviceID
				copy(d[:], r.Fixed(identity.DeviceIDSize))
				m.Devices = append(m.Devices, d)
			}
			if r.Err() != nil {
				break
			}
			if seen[m.Account] || (len(list) > 0 && bytes.Compare(list[len(list)-1].Account[:], m.Account[:]) >= 0) {
				return fmt.Errorf("%w: state members not sorted or duplicated", ErrMalformed)
			}
			if !devicesSorted(m.Devices) || (li == 1 && (m.Admin || m.ListVersion != 0)) {
				return fmt.Errorf("%w: state member devices", ErrMalformed)
			}
			seen[m.Account] = true
			list = append(list, m)
		}
		if li == 0 {
			n.Members = list
		} else {
			n.Invited = list
		}
	}
	if err := r.Done(); err != nil {
		return fmt.Errorf("%w: state: %v", ErrMalformed, err)
	}
	*s = n
	return nil
}

func devicesSorted(ds []identity.DeviceID) bool {
	for i := 1; i < len(ds); i++ {
		if bytes.Compare(ds[i-1][:], ds[i][:]) >= 0 {
			return false
		}
	}
	return true
}

// epochRec is one epoch as the replay produced it.
type epochRec struct {
	n         uint64
	id        [32]byte // hash of the op that started it
	key       [32]byte // SHA-256(previous key ‖ n ‖ id): the epoch with its history
	authorAcc identity.AccountID
	authorDev identity.DeviceID // the device that picks the epoch contribution
	members   map[identity.AccountID]bool
	// devs are the member devices when the epoch started: the epoch
	// author's contribution goes only to those still member devices, so
	// a device added later (Accept, Devices) never gets the
	// contribution of an epoch before it, and a dropped device that is
	// added back never gets that of the epoch that dropped it.
	devs map[identity.DeviceID]bool
}

type invitation struct {
	devices []identity.DeviceID
	by      identity.AccountID
	list    *identity.DeviceList // the invitee's list the Invite carried
}

// roster is the mutable state the replay folds ops into.
type roster struct {
	id      GroupID
	genesis [32]byte
	name    string
	lamport uint64
	members map[identity.AccountID]*Member
	invited map[identity.AccountID]*invitation
	// holder maps every device of a member or invitee to its account.
	// A device has at most one holder: the first claim in op order wins.
	holder map[identity.DeviceID]identity.AccountID
	epochs []epochRec
}

func newRoster(id GroupID, genesis [32]byte) *roster {
	return &roster{
		id: id, genesis: genesis,
		members: make(map[identity.AccountID]*Member),
		invited: make(map[identity.AccountID]*invitation),
		holder:  make(map[identity.DeviceID]identity.AccountID),
	}
}

// claimable checks that no account but a holds any of devs.
func (r *roster) claimable(a identity.AccountID, devs []identity.DeviceID) error {
	for _, d := range devs {
		if h, ok := r.holder[d]; ok && h != a {
			return fmt.Errorf("%w: device %s", ErrDeviceTaken, d)
		}
	}
	return nil
}

func (r *roster) hold(a identity.AccountID, devs []identity.DeviceID) {
	for _, d := range devs {
		r.holder[d] = a
	}
}

func (r *roster) release(devs []identity.DeviceID) {
	for _, d := range devs {
		delete(r.holder, d)
	}
}

func (r *roster) epoch() *epochRec {
	if len(r.epochs) == 0 {
		return nil
	}
	return &r.epochs[len(r.epochs)-1]
}

func (r *roster) isMemberDevice(a identity.AccountID, d identity.DeviceID) bool {
	m := r.members[a]
	return m != nil && slices.Contains(m.Devices, d)
}

// memberOfDevice finds the member account holding device d. A device has
// at most one holder, so the answer is the same on every member.
func (r *roster) memberOfDevice(d identity.DeviceID) (identity.AccountID, bool) {
	a, ok := r.holder[d]
	if !ok || r.members[a] == nil {
		return identity.AccountID{}, false
	}
	return a, true
}

func sortedAccounts[V any](m map[identity.AccountID]V) []identity.AccountID {
	as := slices.Collect(maps.Keys(m))
	slices.SortFunc(as, func(a, b identity.AccountID) int { return bytes.Compare(a[:], b[:]) })
	return as
}

// newEpoch starts epoch n+1 started by op o.
func (r *roster) newEpoch(o *Op, acc identity.AccountID, dev identity.DeviceID) {
	e := epochRec{n: uint64(len(r.epochs)), id: o.hash, authorAcc: acc, authorDev: dev,
		members: make(map[identity.AccountID]bool, len(r.members)), devs: make(map[identity.DeviceID]bool)}
	var prev [32]byte
	if p := r.epoch(); p != nil {
		prev = p.key
	}
	h := sha256.New()
	h.Write(prev[:])
	h.Write(binary.BigEndian.AppendUint64(nil, e.n))
	h.Write(o.hash[:])
	h.Sum(e.key[:0])
	for a, m := range r.members {
		e.members[a] = true
		for _, d := range m.Devices {
			e.devs[d] = true
		}
	}
	r.epochs = append(r.epochs, e)
	if len(r.epochs) > keepEpochs {
		old := &r.epochs[len(r.epochs)-keepEpochs-1]
		old.members, old.devs = nil, nil
	}
}

// apply checks o against the group rules and applies it. On error r is
// unchanged.
func (r *roster) apply(o *Op) error {
	if o.Group != r.id {
		return ErrWrongGroup
	}
	if len(r.epochs) == 0 {
		if o.Kind != OpCreate || o.hash != r.genesis {
			return fmt.Errorf("%w: log does not start with this group's create op", ErrNotMember)
		}
		if !slices.Contains(o.Devices, o.Device) || o.Epoch != 0 {
			return fmt.Errorf("%w: create op", ErrBadOp)
		}
		r.members[o.Author] = &Member{Account: o.Author, Devices: slices.Clone(o.Devices), Admin: true, ListVersion: o.List.Version()}
		r.hold(o.Author, o.Devices)
		r.name = o.Name
		r.lamport = o.Lamport
		r.newEpoch(o, o.Author, o.Device)
		return nil
	}
	if o.Kind == OpCreate {
		return fmt.Errorf("%w: second create op", ErrBadOp)
	}
	cur := r.epoch()
	if o.Epoch > cur.n {
		return fmt.Errorf("%w: op for epoch %d, group at %d", ErrEpoch, o.Epoch, cur.n)
	}
	author := r.members[o.Author]
	switch o.Kind {
	case OpAccept, OpDecline:
		inv := r.invited[o.Author]
		if inv == nil {
			return ErrNotInvited
		}
		if o.Kind == OpAccept {
			if !slices.Contains(o.Devices, o.Device) {
				return fmt.Errorf("%w: accept from a device it does not list", ErrBadOp)
			}
			// Devices are claimed by the Invite, which an admin made;
			// an invitee cannot claim more (nor backdate a claim).
			for _, d := range o.Devices {
				if !slices.Contains(inv.devices, d) {
					return fmt.Errorf("%w: device %s is not in the invitation", ErrNotInvited, d)
				}
			}
			if err := r.claimable(o.Author, o.Devices); err != nil {
				return err
			}
		}
		r.release(inv.devices)
		if o.Kind == OpAccept {
			r.members[o.Author] = &Member{Account: o.Author, Devices: slices.Clone(o.Devices), ListVersion: o.List.Version()}
			r.hold(o.Author, o.Devices)
		}
		delete(r.invited, o.Author)
		r.bump(o)
		return nil
	}
	if author == nil {
		return ErrNotMember
	}
	if !slices.Contains(author.Devices, o.Device) {
		return fmt.Errorf("%w: op from a device the author does not have", ErrNotMember)
	}
	if o.Kind != OpLeave && o.Kind != OpDevices && !author.Admin {
		return ErrNotAdmin
	}
	switch o.Kind {
	case OpInvite:
		if r.members[o.Target] != nil || r.invited[o.Target] != nil {
			return ErrAlreadyMember
		}
		if len(r.members)+len(r.invited) >= MaxMembers {
			return ErrTooMany
		}
		if err := r.claimable(o.Target, o.Devices); err != nil {
			return err
		}
		r.invited[o.Target] = &invitation{devices: slices.Clone(o.Devices), by: o.Author, list: o.List}
		r.hold(o.Target, o.Devices)
	case OpRemove:
		if inv := r.invited[o.Target]; inv != nil {
			r.release(inv.devices)
			delete(r.invited, o.Target)
			break
		}
		t := r.members[o.Target]
		if t == nil {
			return ErrNotMember
		}
		r.release(t.Devices)
		delete(r.members, o.Target)
		r.newEpoch(o, o.Author, o.Device)
	case OpLeave:
		r.release(author.Devices)
		delete(r.members, o.Author)
		acc, dev := r.leaveEpochAuthor()
		r.newEpoch(o, acc, dev)
	case OpPromote:
		t := r.members[o.Target]
		if t == nil {
			return ErrNotMember
		}
		if t.Admin {
			return fmt.Errorf("%w: already an admin", ErrBadOp)
		}
		t.Admin = true
	case OpRename:
		r.name = o.Name
	case OpDevices:
		if err := r.setDevices(o, author); err != nil {
			return err
		}
	}
	r.bump(o)
	return nil
}

// setDevices applies a Devices op by a member: the author's devices
// become the op's. The list (which ParseOp checked is the author's and
// names every device) must be newer than the last one the group accepted
// for the author; the making device must stay; added devices must not be
// held by another account. Dropping a device starts a new epoch, picked
// by the op's device, as a Remove does. An op that changes no device
// (SetDevices does not make one) only raises the list version: refusing
// it would depend on ops that may arrive later.
func (r *roster) setDevices(o *Op, author *Member) error {
	if o.List == nil || o.List.Account() != o.Author {
		return fmt.Errorf("%w: devices op without its author's device list", ErrUnlistedDevice)
	}
	if v := o.List.Version(); v <= author.ListVersion {
		return fmt.Errorf("%w: list version %d, group has %d", ErrStaleList, v, author.ListVersion)
	}
	if !slices.Contains(o.Devices, o.Device) {
		return fmt.Errorf("%w: devices op drops the device that made it", ErrBadOp)
	}
	var added, dropped []identity.DeviceID
	for _, d := range o.Devices {
		if !slices.Contains(author.Devices, d) {
			added = append(added, d)
		}
	}
	for _, d := range author.Devices {
		if !slices.Contains(o.Devices, d) {
			dropped = append(dropped, d)
		}
	}
	if err := r.claimable(o.Author, added); err != nil {
		return err
	}
	r.release(dropped)
	r.hold(o.Author, added)
	author.Devices = slices.Clone(o.Devices)
	author.ListVersion = o.List.Version()
	if len(dropped) > 0 {
		r.newEpoch(o, o.Author, o.Device)
	}
	return nil
}

func (r *roster) bump(o *Op) {
	if o.Lamport > r.lamport {
		r.lamport = o.Lamport
	}
}

// leaveEpochAuthor picks who chooses the next epoch's secret after a
// Leave: the lowest-sorted remaining admin, and its lowest-sorted device.
// If no admin remains, the lowest-sorted member is promoted first.
func (r *roster) leaveEpochAuthor() (identity.AccountID, identity.DeviceID) {
	accs := sortedAccounts(r.members)
	if len(accs) == 0 {
		return identity.AccountID{}, identity.DeviceID{}
	}
	for _, a := range accs {
		if m := r.members[a]; m.Admin {
			return a, m.Devices[0]
		}
	}
	m := r.members[accs[0]]
	m.Admin = true
	return m.Account, m.Devices[0]
}

// state exports r.
func (r *roster) state() State {
	s := State{ID: r.id, Name: r.name, Lamport: r.lamport}
	if e := r.epoch(); e != nil {
		s.Epoch = e.n
	}
	for _, a := range sortedAccounts(r.members) {
		m := r.members[a]
		s.Members = append(s.Members, Member{Account: a, Devices: slices.Clone(m.Devices), Admin: m.Admin, ListVersion: m.ListVersion})
	}
	for _, a := range sortedAccounts(r.invited) {
		s.Invited = append(s.Invited, Member{Account: a, Devices: slices.Clone(r.invited[a].devices)})
	}
	return s
}

// clone deep-copies r, so a trial application can be discarded.
func (r *roster) clone() *roster {
	n := newRoster(r.id, r.genesis)
	n.name, n.lamport = r.name, r.lamport
	for a, m := range r.members {
		c := *m
		c.Devices = slices.Clone(m.Devices)
		n.members[a] = &c
	}
	for a, inv := range r.invited {
		c := *inv
		n.invited[a] = &c
	}
	maps.Copy(n.holder, r.holder)
	n.epochs = make([]epochRec, len(r.epochs))
	copy(n.epochs, r.epochs) // member snapshots are never mutated after creation
	return n
}

func slicesSortOps(ops []*Op) { slices.SortFunc(ops, opCompare) }
