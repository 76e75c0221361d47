package node

import (
	"time"

	msync "github.com/hushnet/hush/sync"
)

// Temporary until syncstate.go lands.
func (n *Node) tickLocked(t *txn, now time.Time) msync.Clock {
	return msync.Clock{Lamport: uint64(now.UnixMilli()), Device: n.cert.DeviceID()}
}
func (n *Node) observeClockLocked(t *txn, c msync.Clock) {}

func (n *Node) applySyncLocked(t *txn, m msync.Message, now time.Time) (bool, error) {
	return false, nil
}

func (n *Node) snapshotLocked(sinceMS uint64) (*msync.Replica, error) {
	return msync.NewReplica(n.cert.Account()), nil
}
