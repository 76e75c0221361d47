package node

import (
	"testing"
)

// A message deleted on this device only stays deleted across a restart:
// the node notes at start whether anything was ever deleted so (and
// skips the lookup for every incoming message when nothing was), and a
// copy of a deleted message is still refused after the restart.
func TestLocalDeletionAfterRestart(t *testing.T) {
	a, b := pair(t)
	defer b.stop(t)
	a.n.mu.Lock()
	noted := a.n.localGoneAny
	a.n.mu.Unlock()
	if noted {
		t.Fatal("a new node notes local deletions")
	}
	m := sendText(t, a, "bob", "delete me here")
	waitArrived(t, b, "alice", m.ID)
	if err := a.n.DeleteLocal("bob", "", m.ID); err != nil {
		t.Fatal(err)
	}
	home := a.home
	a.stop(t)
	a = startNode(t, home)
	defer a.stop(t)
	id, err := parseMsgID(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	a.n.mu.Lock()
	gone := a.n.goneLocallyLocked(id)
	a.n.mu.Unlock()
	if !gone {
		t.Fatal("the deletion was forgotten by the restart")
	}
}
