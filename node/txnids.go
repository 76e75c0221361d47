package node

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/hushnet/hush/internal/store"
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

// A message sent with a client transaction ID gets a message ID derived
// from it (a keyed hash of the conversation and the transaction ID), not
// a random one. A message may leave before its commit (docs/protocol/
// messaging.md "Sending before the commit"); a crash in between loses the
// commit and its transaction record, and the client's retry with the
// same transaction ID then makes the same message ID, which the
// recipients drop as a copy of what they have. The key is random, made
// once per home and stored before any send, so the IDs tell nobody the
// transaction IDs.

// loadTxnIDKey loads the key, making and storing it on first use.
func (n *Node) loadTxnIDKey() error {
	k, err := n.tabs.identity.Get(idTxnIDKey)
	if err == nil && len(k) == sha256.Size {
		n.txnIDKey = k
		return nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("node: load transaction ID key: %w", err)
	}
	k = make([]byte, sha256.Size)
	rand.Read(k)
	b := n.db.Batch()
	b.Put(n.tabs.identity, idTxnIDKey, k)
	if err := b.Commit(); err != nil {
		return fmt.Errorf("node: store transaction ID key: %w", err)
	}
	n.txnIDKey = k
	return nil
}

// messageIDFor returns the ID of a new message in conversation conv (an
// account, or a group's convKey): derived from txnID when there is one,
// else random.
func (n *Node) messageIDFor(conv []byte, txnID string) [msgIDSize]byte {
	if txnID == "" {
		return newMessageID()
	}
	m := hmac.New(sha256.New, n.txnIDKey)
	m.Write([]byte("hush/v1/txn-message-id\x00"))
	m.Write([]byte{byte(len(conv))})
	m.Write(conv)
	m.Write([]byte(txnID))
	var id [msgIDSize]byte
	copy(id[:], m.Sum(nil))
	return id
}
