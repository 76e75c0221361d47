package node

// The history transfer's source (docs/protocol/sync.md §18.4): a
// snapshot of what this device shows.

import (
	"fmt"

	"github.com/hushnet/hush/crypto/identity"
	msync "github.com/hushnet/hush/sync"
)

// snapshotLocked returns this account's synced state as a replica: the
// history transfer's Source (msync.NewProducer). It holds the device
// list, the read_receipts setting, every contact of the address book
// (message requests left out) and every stored contact state (removed
// ones too, so the removal carries), every 1:1 message (not the system
// notices) from sinceMS (Unix ms; 0: all) on, and a read marker per
// conversation. Groups are left out for now. An object whose state does
// not encode (a record from an older version over today's limits) is
// left out.
func (n *Node) snapshotLocked(sinceMS uint64) (*msync.Replica, error) {
	r := msync.NewReplica(n.cert.Account())
	add := func(m msync.Message) {
		if _, err := r.Apply(m); err != nil {
			n.log.Debug("snapshot: object left out", "kind", m.Kind().String(), "err", err)
		}
	}
	if n.list != nil {
		add(&msync.DeviceList{List: n.list})
	}
	stored := struct {
		msgs     map[msync.MessageID]*msync.MessageState
		contacts map[identity.AccountID]*msync.ContactState
		markers  map[msync.Conversation]*msync.ReadMarker
		settings map[string]*msync.Setting
	}{map[msync.MessageID]*msync.MessageState{}, map[identity.AccountID]*msync.ContactState{},
		map[msync.Conversation]*msync.ReadMarker{}, map[string]*msync.Setting{}}
	err := n.syncTable().Scan(func(_, v []byte) error {
		m, err := msync.Parse(v)
		if err != nil {
			return fmt.Errorf("node: stored sync state: %w", err)
		}
		switch m := m.(type) {
		case *msync.MessageState:
			stored.msgs[m.ID] = m
		case *msync.ContactState:
			stored.contacts[m.Account] = m
		case *msync.ReadMarker:
			stored.markers[m.Conv] = m
		case *msync.Setting:
			stored.settings[m.Key] = m
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if s := stored.settings[settingReadReceipts]; s != nil {
		add(s)
	} else if n.settings.NoReadReceipts {
		add(&msync.Setting{Key: settingReadReceipts, Clock: derivedClock(1, n.cert.DeviceID()), Value: []byte("off")})
	}
	if s := stored.settings[settingPresence]; s != nil {
		add(s)
	}
	for _, s := range n.blockSettingsLocked(stored.settings) {
		add(s)
	}
	for _, s := range stored.contacts {
		add(s)
	}
	for acc, c := range n.contacts {
		if c.rec.Request {
			continue
		}
		if stored.contacts[acc] == nil {
			add(n.derivedContactState(c))
		}
		conv := contactConv(acc)
		var marker *msync.ReadMarker
		err := n.tabs.messages.ScanSeq(acc[:], 0, ^uint64(0), func(_ uint64, v []byte) error {
			var m msgRec
			if err := decodeMsgRec(v, &m); err != nil {
				return err
			}
			if m.Dir == dirSystem {
				return nil
			}
			id, err := parseMsgID(m.ID)
			if err != nil {
				return nil
			}
			ms := recTimeMS(&m)
			if m.Dir == "in" && m.State == StateRead && (marker == nil || markerCompare(ms, id, marker.TimeMS, marker.ID) > 0) {
				marker = &msync.ReadMarker{Conv: conv, TimeMS: ms, ID: id}
			}
			st := stored.msgs[id]
			delete(stored.msgs, id)
			if st == nil {
				if st, err = n.stateFromRecLocked(c, &m); err != nil {
					return nil
				}
			} else if m.Dir == "out" {
				st.Status = max(st.Status, stateOfRec(m.State)) // recordLocalLocked leaves Status to the record
			}
			if st.Record != nil && st.Record.TimeMS < sinceMS {
				return nil
			}
			add(st)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if marker != nil {
			add(marker)
		}
	}
	for gid := range n.groups {
		if err := n.groupHistoryLocked(gid, sinceMS, add); err != nil {
			return nil, err
		}
	}
	for _, mk := range stored.markers {
		add(mk)
	}
	for _, st := range stored.msgs { // waiting for their contact
		if st.Conv.Kind == msync.ConvContact && (st.Record == nil || st.Record.TimeMS >= sinceMS) {
			add(st)
		}
	}
	return r, nil
}
