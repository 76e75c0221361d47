package node

import (
	"encoding/hex"
	"errors"

	"github.com/hushnet/hush/node/group"
)

// Client transaction IDs for the methods that create something other
// than a message (messages: txnRec, conversation.go). The txns table
// maps the ID, in the method's own namespace, to what it created, in the
// same commit, so a retry gets the first answer.

type txnKind string

const txnGroup txnKind = "group" // createGroup: the group's ID (hex)

// errTxnRace: a concurrent call with the same transaction ID committed
// first; the caller returns what that one made.
var errTxnRace = errors.New("this txnId was used before, for something that is gone")

// txnObjRec maps a client transaction ID to the ID of what it created.
type txnObjRec struct {
	ID string `json:"id"`
}

func txnKey(kind txnKind, txnID string) []byte { return []byte(string(kind) + "\x00" + txnID) }

func (n *Node) txnResultLocked(kind txnKind, txnID string) (string, bool) {
	if txnID == "" {
		return "", false
	}
	var rec txnObjRec
	if err := n.getJSON(n.tabs.txns, txnKey(kind, txnID), &rec); err != nil {
		return "", false
	}
	return rec.ID, true
}

func (n *Node) txnTakenLocked(kind txnKind, txnID string) bool {
	_, ok := n.txnResultLocked(kind, txnID)
	return ok
}

func (n *Node) putTxnLocked(t *txn, kind txnKind, txnID, id string) {
	if txnID != "" {
		putJSON(t.b, n.tabs.txns, txnKey(kind, txnID), &txnObjRec{ID: id})
	}
}

// groupOfTxn returns the group an earlier CreateGroupTxn with txnID
// created, as it is now.
func (n *Node) groupOfTxn(txnID string) (Group, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	idHex, ok := n.txnResultLocked(txnGroup, txnID)
	if !ok {
		return Group{}, false
	}
	b, err := hex.DecodeString(idHex)
	if err != nil || len(b) != len(group.GroupID{}) {
		return Group{}, false
	}
	gs := n.groups[group.GroupID(b)]
	if gs == nil {
		return Group{}, false
	}
	return n.groupViewLocked(gs), true
}
