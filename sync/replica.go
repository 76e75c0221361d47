package sync

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
)

// labelDigest prefixes a snapshot hashed into a digest.
const labelDigest = "hush/v1/sync-digest"

// Replica is one device's synced state, in memory: the join of every sync
// message it was given. Apply is commutative, associative and idempotent,
// so replicas given the same set of messages, in any order and with any
// duplicates, have byte-identical Snapshots. It is also a Source (for the
// history transfer) and a Target.
//
// The node keeps the same state in its store, object by object, with the
// same merges (MessageState.Merge, ContactState.Merge); Replica is the
// reference, and what the tests run.
type Replica struct {
	account identity.AccountID
	lamport uint64 // highest clock value seen or made (local, not synced)

	list *identity.DeviceList
	fork [2]*identity.DeviceList // the last conflicting pair seen (local)

	infos    map[identity.DeviceID]*DeviceInfo
	settings map[string]*Setting
	contacts map[identity.AccountID]*ContactState
	groups   map[GroupID]*groupEntry
	markers  map[Conversation]*ReadMarker
	messages map[MessageID]*MessageState

	index []indexEntry // snapshot order; nil when stale
}

type groupEntry struct {
	ops  map[[32]byte][]byte // by SHA-256 of the op
	keys *GroupKeys
}

// NewReplica returns an empty state for an account.
func NewReplica(account identity.AccountID) *Replica {
	return &Replica{
		account:  account,
		infos:    map[identity.DeviceID]*DeviceInfo{},
		settings: map[string]*Setting{},
		contacts: map[identity.AccountID]*ContactState{},
		groups:   map[GroupID]*groupEntry{},
		markers:  map[Conversation]*ReadMarker{},
		messages: map[MessageID]*MessageState{},
	}
}

// Account returns the replica's account.
func (r *Replica) Account() identity.AccountID { return r.account }

// Tick returns a fresh clock for a change this device makes: its Lamport
// value is above every value seen and never below the wall clock in
// milliseconds.
func (r *Replica) Tick(device identity.DeviceID, now time.Time) Clock {
	l := max(r.lamport+1, uint64(max(now.UnixMilli(), 0)))
	l = min(l, MaxLamport-1)
	r.lamport = l
	return Clock{Lamport: l, Device: device}
}

// Lamport returns the highest clock value seen or made.
func (r *Replica) Lamport() uint64 { return r.lamport }

func (r *Replica) observe(c Clock) {
	if c.Lamport < MaxLamport {
		r.lamport = max(r.lamport, c.Lamport)
	}
}

// Apply merges one sync message into the state and reports whether the
// state changed. It refuses a Transcript not authored by the account and a
// device list of another account (ErrWrongAccount), and a message that
// Marshal would refuse (ErrMalformed); either leaves the state unchanged.
func (r *Replica) Apply(m Message) (bool, error) {
	if err := m.check(); err != nil {
		return false, fmt.Errorf("%w: %s: %w", ErrMalformed, m.Kind(), err)
	}
	changed, err := r.apply(m)
	if changed {
		r.index = nil
	}
	return changed, err
}

func (r *Replica) apply(m Message) (bool, error) {
	switch m := m.(type) {
	case *Transcript:
		if m.Author != r.account {
			return false, fmt.Errorf("%w: a transcript must be authored by the account", ErrWrongAccount)
		}
	case *DeviceList:
		return r.applyList(m.List)
	}
	if d := messageDelta(m); d != nil {
		r.observeMessage(d)
		cur := r.messages[d.ID]
		if cur == nil {
			r.messages[d.ID] = d.Clone()
			return true, nil
		}
		return cur.Merge(d), nil
	}
	if d := contactDelta(m); d != nil {
		for _, c := range []Clock{d.InfoClock, d.VerifiedClock} {
			r.observe(c)
		}
		for _, v := range []VersionVector{d.Added, d.Removed} {
			for _, dot := range v {
				r.observe(Clock{Lamport: dot.Lamport})
			}
		}
		cur := r.contacts[d.Account]
		if cur == nil {
			cur = &ContactState{Account: d.Account}
			if !cur.Merge(d) {
				return false, nil // nothing to keep (a remove that saw no add)
			}
			r.contacts[d.Account] = cur
			return true, nil
		}
		return cur.Merge(d), nil
	}
	switch m := m.(type) {
	case *ReadMarker:
		cur := r.markers[m.Conv]
		if cur != nil && m.compare(cur) <= 0 {
			return false, nil
		}
		c := *m
		r.markers[m.Conv] = &c
		return true, nil
	case *Setting:
		r.observe(m.Clock)
		cur := r.settings[m.Key]
		if cur != nil && cmp.Or(m.Clock.Compare(cur.Clock), bytes.Compare(m.Value, cur.Value)) <= 0 {
			return false, nil
		}
		r.settings[m.Key] = &Setting{Key: m.Key, Clock: m.Clock, Value: codec.Clone(m.Value)}
		if len(r.settings) > MaxSettings {
			// Keep the smallest keys, so the cap converges too.
			last := slices.Max(slices.Collect(maps.Keys(r.settings)))
			delete(r.settings, last)
			return last != m.Key, nil
		}
		return true, nil
	case *DeviceInfo:
		r.observe(m.Clock)
		cur := r.infos[m.Device]
		if cur != nil && cmp.Or(m.Clock.Compare(cur.Clock), cmp.Compare(m.Name, cur.Name), bytes.Compare(m.Entry, cur.Entry)) <= 0 {
			return false, nil
		}
		r.infos[m.Device] = &DeviceInfo{Device: m.Device, Clock: m.Clock, Name: m.Name, Entry: codec.Clone(m.Entry)}
		return true, nil
	case *GroupNotice:
		g := r.group(m.Group)
		changed := false
		for _, op := range m.Ops {
			h := opHash(op)
			if _, ok := g.ops[h]; ok {
				continue
			}
			g.ops[h] = codec.Clone(op)
			changed = true
			if len(g.ops) > MaxGroupOps {
				last := slices.MaxFunc(slices.Collect(maps.Keys(g.ops)), func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
				delete(g.ops, last)
				if last == h {
					changed = false
				}
			}
		}
		return changed, nil
	case *GroupKeys:
		r.observe(m.Clock)
		g := r.group(m.Group)
		if g.keys != nil && cmp.Or(m.Clock.Compare(g.keys.Clock), bytes.Compare(m.Keys, g.keys.Keys)) <= 0 {
			return false, nil
		}
		g.keys = &GroupKeys{Group: m.Group, Clock: m.Clock, Keys: codec.Clone(m.Keys)}
		return true, nil
	}
	return false, fmt.Errorf("%w: %s cannot be applied", ErrMalformed, m.Kind())
}

func (r *Replica) observeMessage(d *MessageState) {
	for _, e := range d.Edits {
		r.observe(e.Clock)
	}
	for _, e := range d.Deletes {
		r.observe(e.Clock)
	}
	for _, e := range d.Reactions {
		r.observe(e.Clock)
	}
}

func (r *Replica) group(id GroupID) *groupEntry {
	g := r.groups[id]
	if g == nil {
		g = &groupEntry{ops: map[[32]byte][]byte{}}
		r.groups[id] = g
	}
	return g
}

// applyList keeps the highest version, and of two lists with one version
// the one with the lower hash, noting the pair for the fork repair.
func (r *Replica) applyList(l *identity.DeviceList) (bool, error) {
	if l.Account() != r.account {
		return false, fmt.Errorf("%w: device list of another account", ErrWrongAccount)
	}
	cur := r.list
	switch {
	case cur == nil:
	case l.Version() > cur.Version():
		if l.Version() == cur.Version()+1 && l.PrevHash() != cur.Hash() {
			r.fork = [2]*identity.DeviceList{cur, l}
		}
	case l.Version() == cur.Version() && l.Hash() != cur.Hash():
		r.fork = [2]*identity.DeviceList{cur, l}
		lh, ch := l.Hash(), cur.Hash()
		if bytes.Compare(lh[:], ch[:]) > 0 {
			return false, nil
		}
	default:
		return false, nil
	}
	r.list = l
	return true, nil
}

// List returns the account's newest device list, if any.
func (r *Replica) List() *identity.DeviceList { return r.list }

// Fork returns the last two conflicting lists seen (one version, two
// hashes; or a consecutive version that does not name the one before), for
// ResolveFork; nil if none. It is local: not part of the snapshot.
func (r *Replica) Fork() (a, b *identity.DeviceList) { return r.fork[0], r.fork[1] }

// Message returns a copy of a message's state, or nil.
func (r *Replica) Message(id MessageID) *MessageState {
	if m := r.messages[id]; m != nil {
		return m.Clone()
	}
	return nil
}

// Contact returns a copy of a contact's state, or nil.
func (r *Replica) Contact(a identity.AccountID) *ContactState {
	if c := r.contacts[a]; c != nil {
		return c.Clone()
	}
	return nil
}

// Marker returns a conversation's read marker, or nil.
func (r *Replica) Marker(c Conversation) *ReadMarker {
	if m := r.markers[c]; m != nil {
		cp := *m
		return &cp
	}
	return nil
}

// Setting returns a setting's value; ok is false if it was never set or
// is unset (empty).
func (r *Replica) Setting(key string) (value []byte, ok bool) {
	s := r.settings[key]
	if s == nil || len(s.Value) == 0 {
		return nil, false
	}
	return codec.Clone(s.Value), true
}

// GroupOps returns a group's ops, sorted by hash.
func (r *Replica) GroupOps(id GroupID) [][]byte {
	g := r.groups[id]
	if g == nil {
		return nil
	}
	var out [][]byte
	for _, h := range sortedHashes(g.ops) {
		out = append(out, codec.Clone(g.ops[h]))
	}
	return out
}

func sortedHashes(m map[[32]byte][]byte) [][32]byte {
	return slices.SortedFunc(maps.Keys(m), func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
}

// Snapshot returns the canonical encoding of the state: every object in
// snapshot order (the order of the history transfer), each as the sync
// message that carries it. Two replicas with equal snapshots show the
// same thing. The Lamport clock and fork evidence are local and left out.
func (r *Replica) Snapshot() []byte {
	w := codec.NewWriter(1 << 12)
	w.U8(MessageVersion)
	w.U8('R')
	w.Fixed(r.account[:])
	for _, e := range r.entries() {
		e.cur.encode(w)
		w.U8(uint8(e.msg.Kind()))
		e.msg.encode(w)
	}
	return w.Bytes()
}

// Digest is SHA-256 over a label and the snapshot.
func (r *Replica) Digest() [32]byte {
	h := sha256.New()
	h.Write([]byte(labelDigest))
	h.Write(r.Snapshot())
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// indexEntry is one object in snapshot order.
type indexEntry struct {
	cur Cursor
	msg Message
	ms  uint64 // a message's time (0: not a message, or unknown)
}

// entries returns every object in snapshot order, rebuilt after a change.
func (r *Replica) entries() []indexEntry {
	if r.index != nil {
		return r.index
	}
	var out []indexEntry
	if r.list != nil {
		out = append(out, indexEntry{cur: Cursor{Section: SectionDeviceList}, msg: &DeviceList{List: r.list}})
	}
	for id, d := range r.infos {
		out = append(out, indexEntry{cur: Cursor{Section: SectionDeviceInfo, Key: codec.Clone(id[:])}, msg: d})
	}
	for k, s := range r.settings {
		out = append(out, indexEntry{cur: Cursor{Section: SectionSettings, Key: []byte(k)}, msg: s})
	}
	for a, c := range r.contacts {
		out = append(out, indexEntry{cur: Cursor{Section: SectionContacts, Key: codec.Clone(a[:])}, msg: c})
	}
	for id, g := range r.groups {
		if g.keys != nil {
			out = append(out, indexEntry{cur: Cursor{Section: SectionGroups, Key: codec.Clone(id[:])}, msg: g.keys})
		}
		for h, op := range g.ops {
			key := append(codec.Clone(id[:]), h[:]...)
			out = append(out, indexEntry{cur: Cursor{Section: SectionGroups, Key: key},
				msg: &GroupNotice{Group: id, Ops: [][]byte{op}}})
		}
	}
	for c, m := range r.markers {
		w := codec.NewWriter(33)
		c.encode(w)
		out = append(out, indexEntry{cur: Cursor{Section: SectionMarkers, Key: w.Bytes()}, msg: m})
	}
	for id, m := range r.messages {
		var ms uint64
		if m.Record != nil {
			ms = m.Record.TimeMS
		}
		key := binary.BigEndian.AppendUint64(nil, math.MaxUint64-ms)
		out = append(out, indexEntry{cur: Cursor{Section: SectionMessages, Key: append(key, id[:]...)}, msg: m, ms: ms})
	}
	slices.SortFunc(out, func(a, b indexEntry) int { return a.cur.Compare(b.cur) })
	if out == nil {
		out = []indexEntry{}
	}
	r.index = out
	return out
}

// after returns the entries strictly after c that pass the history window.
func (r *Replica) after(c Cursor, sinceMS uint64) func(yield func(indexEntry) bool) {
	es := r.entries()
	i, found := slices.BinarySearchFunc(es, c, func(e indexEntry, c Cursor) int { return e.cur.Compare(c) })
	if found {
		i++
	}
	return func(yield func(indexEntry) bool) {
		for _, e := range es[i:] {
			if e.cur.Section == SectionMessages && e.ms != 0 && e.ms < sinceMS {
				continue
			}
			if !yield(e) {
				return
			}
		}
	}
}

// Items implements Source.
func (r *Replica) Items(after Cursor, sinceMS uint64, max int) ([]Item, error) {
	var out []Item
	for e := range r.after(after, sinceMS) {
		if len(out) >= max {
			break
		}
		b, err := Marshal(e.msg)
		if err != nil {
			return nil, err
		}
		out = append(out, Item{Cursor: Cursor{Section: e.cur.Section, Key: codec.Clone(e.cur.Key)}, Message: b})
	}
	return out, nil
}

// Remaining implements Source.
func (r *Replica) Remaining(after Cursor, sinceMS uint64) (uint64, error) {
	var n uint64
	for range r.after(after, sinceMS) {
		n++
	}
	return n, nil
}
