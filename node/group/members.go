package group

// The membership operations an account makes (Invite, Accept, Decline,
// Leave, Remove, Promote, Rename, SetDevices), how a local op is signed
// and applied (makeOpLocked), and ApplyOp for ops from others
// (docs/protocol/groups.md §16.2).

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/hushnet/hush/crypto/identity"
)

// makeOpLocked signs and applies a local op, seals it for the topic under
// the epoch it was made in, and adds the op's pairwise copies.
func (e *Engine) makeOpLocked(o *Op) (*Effects, error) {
	cur := e.ro.epoch()
	if cur == nil {
		return nil, ErrNotMember
	}
	o.Group = e.ro.id
	o.Epoch = cur.n
	o.Lamport = e.nextLamportLocked()
	o.Device = e.cfg.Device
	if err := signOp(e.cfg.Account, o); err != nil {
		return nil, err
	}
	// Who to tell pairwise, computed before the op changes the state.
	var direct []Pairwise
	var added []identity.DeviceID
	switch o.Kind {
	case OpDevices:
		// Dropped devices learn it as a removed member does; added
		// ones get the log (after the op applies) to join from.
		if m := e.ro.members[e.self]; m != nil {
			for _, d := range m.Devices {
				if !slices.Contains(o.Devices, d) {
					direct = append(direct, Pairwise{e.self, d, pairwiseOp(e.ro.id, o)})
				}
			}
			for _, d := range o.Devices {
				if !slices.Contains(m.Devices, d) {
					added = append(added, d)
				}
			}
		}
	case OpRemove:
		if m := e.ro.members[o.Target]; m != nil {
			for _, d := range m.Devices {
				direct = append(direct, Pairwise{o.Target, d, pairwiseOp(e.ro.id, o)})
			}
		}
	case OpAccept, OpDecline:
		if inv := e.ro.invited[e.self]; inv != nil {
			direct = e.toInviterLocked(inv.by, pairwiseOp(e.ro.id, o))
			// The account's other devices: those it accepts with get a
			// Welcome (below) and the op, those left out only the op,
			// which ends the pending invitation they may hold.
			for _, d := range inv.devices {
				if d == e.cfg.Device {
					continue
				}
				if o.Kind == OpAccept && slices.Contains(o.Devices, d) {
					added = append(added, d)
				} else {
					direct = append(direct, Pairwise{e.self, d, pairwiseOp(e.ro.id, o)})
				}
			}
		}
	}
	oldKey := e.own[cur.key]
	fx := new(Effects)
	if err := e.applyLocked(o, fx, false); err != nil {
		return nil, err
	}
	if oldKey != nil {
		if w, err := e.sealLocked(oldKey, kindOpMsg, o.enc); err == nil {
			fx.Publish = append([][]byte{w}, fx.Publish...)
		}
	}
	if o.Kind == OpInvite {
		for _, w := range e.welcomeLocked() {
			for _, d := range o.Devices {
				fx.Pairwise = append(fx.Pairwise, Pairwise{o.Target, d, w})
			}
		}
	}
	if len(added) > 0 {
		// The Welcome goes first, so that on each session it arrives
		// before this device's Key. After an Accept the op follows it,
		// for a device that already built its engine from the
		// invitation (a node hands a Welcome for a group it has to no
		// engine).
		var welcome []Pairwise
		parts := e.welcomeLocked()
		for _, d := range added {
			for _, w := range parts {
				welcome = append(welcome, Pairwise{e.self, d, w})
			}
			if o.Kind == OpAccept {
				welcome = append(welcome, Pairwise{e.self, d, pairwiseOp(e.ro.id, o)})
			}
		}
		fx.Pairwise = append(welcome, fx.Pairwise...)
	}
	fx.Pairwise = append(fx.Pairwise, direct...)
	return fx, nil
}

// toInviterLocked addresses data to the inviter's devices, or to every
// admin's if the inviter is gone.
func (e *Engine) toInviterLocked(by identity.AccountID, data []byte) []Pairwise {
	var out []Pairwise
	accs := []identity.AccountID{by}
	if e.ro.members[by] == nil {
		accs = nil
		for _, a := range sortedAccounts(e.ro.members) {
			if e.ro.members[a].Admin {
				accs = append(accs, a)
			}
		}
	}
	for _, a := range accs {
		if m := e.ro.members[a]; m != nil {
			for _, d := range m.Devices {
				out = append(out, Pairwise{a, d, data})
			}
		}
	}
	return out
}

// Invite invites the account whose signed device list is list, with
// every device on it (admins only). The op carries the list, so every
// member can check the devices. The Effects carry the op for the topic
// and a Welcome (the op log) for each of the invitee's devices.
func (e *Engine) Invite(list *identity.DeviceList) (*Effects, error) {
	if list == nil {
		return nil, fmt.Errorf("%w: invite without a device list", ErrBadOp)
	}
	var devs []identity.DeviceID
	for _, d := range list.Devices() {
		devs = append(devs, d.DeviceID())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.makeOpLocked(&Op{Kind: OpInvite, Target: list.Account(), Devices: devs, List: list})
}

// Accept accepts this account's pending invitation with those of
// Config.Devices that the invitation names (this device must be one).
// The op goes pairwise to the inviter, who publishes it; then members
// send their sender keys to every device it names. Each other device it
// names gets a Welcome (the log, with the op) and then the op, so that
// it joins as a member whether it has no engine for the group (Join) or
// one built from the invitation's Welcome (HandlePairwise applies the
// op); each other device of the invitation it leaves out gets the op.
func (e *Engine) Accept() (*Effects, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	inv := e.ro.invited[e.self]
	if inv == nil {
		return nil, ErrNotInvited
	}
	if !slices.Contains(inv.devices, e.cfg.Device) {
		return nil, fmt.Errorf("%w: this device is not in the invitation", ErrNotInvited)
	}
	var devs []identity.DeviceID
	for _, d := range e.cfg.Devices {
		if slices.Contains(inv.devices, d) {
			devs = append(devs, d)
		}
	}
	// The Accept carries the list the Invite named the devices from, so
	// that a newer list (devices linked since) can follow in a Devices
	// op: SetDevices needs a version above the accepted one.
	list := inv.list
	if list == nil {
		list = e.cfg.DeviceList
	}
	return e.makeOpLocked(&Op{Kind: OpAccept, Devices: devs, List: list})
}

// SetDevices replaces this account's devices in the group with devices
// (nil: every device on list), by a Devices op carrying list, this
// account's signed device list, which must name every one of them and
// be newer than the last list the group accepted for this account
// (ErrStaleList). Any member device of the account may call it, but not
// to drop itself. It refuses a set that changes nothing (ErrBadOp) and a
// device another account holds (ErrDeviceTaken).
//
// The Effects carry the op for the topic; for each added device a
// Welcome (the op log, as an invitee gets), to build its engine with
// Join, then this device's Key; for each dropped device the op. Every
// member device sends its current Key to each added device when it
// applies the op. Dropping a device starts a new epoch whose secret,
// picked by this device, and whose sender keys never go to the dropped
// devices.
func (e *Engine) SetDevices(list *identity.DeviceList, devices []identity.DeviceID) (*Effects, error) {
	if list == nil {
		return nil, fmt.Errorf("%w: devices op without a device list", ErrBadOp)
	}
	if list.Account() != e.self {
		return nil, fmt.Errorf("%w: another account's device list", ErrUnlistedDevice)
	}
	devs := slices.Clone(devices)
	if devs == nil {
		for _, d := range list.Devices() {
			devs = append(devs, d.DeviceID())
		}
	}
	slices.SortFunc(devs, func(a, b identity.DeviceID) int { return bytes.Compare(a[:], b[:]) })
	devs = slices.Compact(devs)
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.inLocked() {
		return nil, ErrNotMember
	}
	if slices.Equal(devs, e.ro.members[e.self].Devices) {
		return nil, fmt.Errorf("%w: the group already has these devices", ErrBadOp)
	}
	return e.makeOpLocked(&Op{Kind: OpDevices, Devices: devs, List: list})
}

// Decline declines this account's pending invitation. The op goes
// pairwise to the inviter and to this account's other invited devices,
// whose pending invitation it ends.
func (e *Engine) Decline() (*Effects, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.makeOpLocked(&Op{Kind: OpDecline})
}

// Leave leaves the group; a new epoch starts without this account.
func (e *Engine) Leave() (*Effects, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.makeOpLocked(&Op{Kind: OpLeave})
}

// Remove removes a member (or cancels an invitation); admins only. A
// removal starts a new epoch whose secret this device picks.
func (e *Engine) Remove(account identity.AccountID) (*Effects, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.makeOpLocked(&Op{Kind: OpRemove, Target: account})
}

// Promote makes a member an admin; admins only.
func (e *Engine) Promote(account identity.AccountID) (*Effects, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.makeOpLocked(&Op{Kind: OpPromote, Target: account})
}

// Rename renames the group; admins only.
func (e *Engine) Rename(name string) (*Effects, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.makeOpLocked(&Op{Kind: OpRename, Name: name})
}

// ApplyOp applies an encoded op received out of band (a Welcome, a relay,
// anti-entropy). A duplicate is ignored. An op that breaks a rule returns
// the rule's sentinel error and changes nothing; if it might apply once a
// predecessor arrives it is held and retried.
func (e *Engine) ApplyOp(b []byte) (*Effects, error) {
	o, err := ParseOp(b)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	fx := new(Effects)
	if err := e.applyLocked(o, fx, true); err != nil {
		return nil, err
	}
	return fx, nil
}
