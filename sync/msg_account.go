package sync

import (
	"fmt"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
)

// Sync messages about the account: contacts, group notices and keys,
// settings, the device list and each device's entry.

// ContactAdd adds a contact (or changes its name or card).
type ContactAdd struct {
	Account identity.AccountID
	Clock   Clock
	Name    string
	Card    []byte
}

// Kind implements Message.
func (*ContactAdd) Kind() Kind { return KindContactAdd }

func (m *ContactAdd) encode(w *codec.Writer) {
	w.Fixed(m.Account[:])
	m.Clock.encode(w)
	w.String16(m.Name)
	w.Bytes32(m.Card)
}

func (m *ContactAdd) decode(r *codec.Reader) {
	copy(m.Account[:], r.Fixed(identity.AccountIDSize))
	m.Clock = readClock(r)
	m.Name = r.String16(MaxDeviceNameSize)
	m.Card = codec.Clone(r.Bytes32(MaxCardSize))
}

func (m *ContactAdd) check() error {
	if err := checkClock(m.Clock, "contact add"); err != nil {
		return err
	}
	if len(m.Card) > MaxCardSize {
		return fmt.Errorf("card too large")
	}
	return checkName(m.Name, false)
}

// ContactRemove removes a contact: the adds whose clocks Seen covers.
type ContactRemove struct {
	Account identity.AccountID
	Clock   Clock
	Seen    VersionVector
}

// Kind implements Message.
func (*ContactRemove) Kind() Kind { return KindContactRemove }

func (m *ContactRemove) encode(w *codec.Writer) {
	w.Fixed(m.Account[:])
	m.Clock.encode(w)
	m.Seen.encode(w)
}

func (m *ContactRemove) decode(r *codec.Reader) {
	copy(m.Account[:], r.Fixed(identity.AccountIDSize))
	m.Clock = readClock(r)
	m.Seen = readVV(r)
}

func (m *ContactRemove) check() error {
	if err := checkClock(m.Clock, "contact remove"); err != nil {
		return err
	}
	return m.Seen.check()
}

// ContactVerify sets whether a contact's safety number is verified.
type ContactVerify struct {
	Account  identity.AccountID
	Clock    Clock
	Verified bool
}

// Kind implements Message.
func (*ContactVerify) Kind() Kind { return KindContactVerify }

func (m *ContactVerify) encode(w *codec.Writer) {
	w.Fixed(m.Account[:])
	m.Clock.encode(w)
	w.Bool(m.Verified)
}

func (m *ContactVerify) decode(r *codec.Reader) {
	copy(m.Account[:], r.Fixed(identity.AccountIDSize))
	m.Clock = readClock(r)
	m.Verified = r.Bool()
}

func (m *ContactVerify) check() error { return checkClock(m.Clock, "contact verify") }

// GroupNotice carries signed group ops (opaque here; node/group checks
// them) that a device made or learned.
type GroupNotice struct {
	Group GroupID
	Ops   [][]byte
}

// Kind implements Message.
func (*GroupNotice) Kind() Kind { return KindGroupNotice }

func (m *GroupNotice) encode(w *codec.Writer) {
	w.Fixed(m.Group[:])
	w.U16(uint16(len(m.Ops)))
	for _, op := range m.Ops {
		w.Bytes16(op)
	}
}

func (m *GroupNotice) decode(r *codec.Reader) {
	copy(m.Group[:], r.Fixed(32))
	n := r.Count(MaxNoticeOps)
	for range n {
		m.Ops = append(m.Ops, codec.Clone(r.Bytes16(MaxOpSize)))
	}
}

func (m *GroupNotice) check() error {
	if len(m.Ops) == 0 || len(m.Ops) > MaxNoticeOps {
		return fmt.Errorf("group notice of %d ops, want 1 to %d", len(m.Ops), MaxNoticeOps)
	}
	for _, op := range m.Ops {
		if len(op) == 0 || len(op) > MaxOpSize {
			return fmt.Errorf("group op of %d bytes, want 1 to %d", len(op), MaxOpSize)
		}
	}
	return nil
}

// GroupKeys is a group engine's export of recent epoch secrets and
// receiving chains, handed to a new device in the history transfer.
type GroupKeys struct {
	Group GroupID
	Clock Clock
	Keys  []byte
}

// Kind implements Message.
func (*GroupKeys) Kind() Kind { return KindGroupKeys }

func (m *GroupKeys) encode(w *codec.Writer) {
	w.Fixed(m.Group[:])
	m.Clock.encode(w)
	w.Bytes32(m.Keys)
}

func (m *GroupKeys) decode(r *codec.Reader) {
	copy(m.Group[:], r.Fixed(32))
	m.Clock = readClock(r)
	m.Keys = codec.Clone(r.Bytes32(MaxGroupKeysSize))
}

func (m *GroupKeys) check() error {
	if len(m.Keys) == 0 || len(m.Keys) > MaxGroupKeysSize {
		return fmt.Errorf("group keys of %d bytes", len(m.Keys))
	}
	return checkClock(m.Clock, "group keys")
}

// Setting sets Key to Value (empty: unset).
type Setting struct {
	Key   string
	Clock Clock
	Value []byte
}

// Kind implements Message.
func (*Setting) Kind() Kind { return KindSetting }

func (m *Setting) encode(w *codec.Writer) {
	w.String16(m.Key)
	m.Clock.encode(w)
	w.Bytes16(m.Value)
}

func (m *Setting) decode(r *codec.Reader) {
	m.Key = r.String16(MaxSettingKey)
	m.Clock = readClock(r)
	m.Value = codec.Clone(r.Bytes16(MaxSettingValue))
}

func (m *Setting) check() error {
	if err := checkSettingKey(m.Key); err != nil {
		return err
	}
	if len(m.Value) > MaxSettingValue {
		return fmt.Errorf("setting value of %d bytes", len(m.Value))
	}
	return checkClock(m.Clock, "setting")
}

// checkSettingKey accepts 1 to MaxSettingKey bytes of [a-z0-9._/-].
func checkSettingKey(k string) error {
	if k == "" || len(k) > MaxSettingKey {
		return fmt.Errorf("setting key must be 1 to %d bytes", MaxSettingKey)
	}
	for i := range len(k) {
		c := k[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '/' || c == '-') {
			return fmt.Errorf("setting key holds %q", c)
		}
	}
	return nil
}

// DeviceList carries the account's signed device list.
type DeviceList struct {
	List *identity.DeviceList
}

// Kind implements Message.
func (*DeviceList) Kind() Kind { return KindDeviceList }

func (m *DeviceList) encode(w *codec.Writer) {
	if m.List == nil {
		w.U16(0)
		return
	}
	w.Bytes16(m.List.Marshal())
}

func (m *DeviceList) decode(r *codec.Reader) {
	b := r.Bytes16(identity.MaxDeviceListSize)
	if r.Err() != nil {
		return
	}
	l, err := identity.ParseDeviceList(b)
	if err != nil {
		r.Fail(err)
		return
	}
	m.List = l
}

func (m *DeviceList) check() error {
	if m.List == nil {
		return fmt.Errorf("no device list")
	}
	return nil
}

// DeviceInfo is one device's name and card entry (its prekey bundle,
// PeerID, addresses and mailboxes, as crypto/card encodes them). Only the
// device itself writes its own.
type DeviceInfo struct {
	Device identity.DeviceID
	Clock  Clock
	Name   string
	Entry  []byte
}

// Kind implements Message.
func (*DeviceInfo) Kind() Kind { return KindDeviceInfo }

func (m *DeviceInfo) encode(w *codec.Writer) {
	w.Fixed(m.Device[:])
	m.Clock.encode(w)
	w.String16(m.Name)
	w.Bytes32(m.Entry)
}

func (m *DeviceInfo) decode(r *codec.Reader) {
	copy(m.Device[:], r.Fixed(identity.DeviceIDSize))
	m.Clock = readClock(r)
	m.Name = r.String16(MaxDeviceNameSize)
	m.Entry = codec.Clone(r.Bytes32(MaxDeviceEntrySize))
}

func (m *DeviceInfo) check() error {
	if err := checkClock(m.Clock, "device info"); err != nil {
		return err
	}
	if len(m.Entry) > MaxDeviceEntrySize {
		return fmt.Errorf("device entry too large")
	}
	return checkName(m.Name, true)
}
