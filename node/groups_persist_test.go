package node

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hushnet/hush/node/group"
)

// groupRecords returns a node's stored records of its one group, as the
// files hold them (sealed: a record written again differs, even with
// the same content) and its engine record decrypted.
func groupRecords(t *testing.T, r *running, name string) (state, log, engine []byte) {
	t.Helper()
	r.n.mu.Lock()
	gs, err := r.n.resolveGroupLocked(name)
	r.n.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	id := gs.eng.ID()
	if state, err = r.n.tabs.groups.Sealed(id[:]); err != nil {
		t.Fatal(err)
	}
	if log, err = r.n.tabs.groupOps.Sealed(id[:]); err != nil {
		t.Fatal(err)
	}
	if engine, err = r.n.tabs.groups.Get(id[:]); err != nil {
		t.Fatal(err)
	}
	return state, log, engine
}

// A group's engine is saved as its state, rewritten with the messages
// sent (with their commits, or with the lazy save for those sent under a
// reserved sender-key iteration, groups.md §16.13), and its op log,
// rewritten only when an op changed it; both restore it after a
// restart.
func TestGroupEngineSavedInParts(t *testing.T) {
	nodes := makeGroup(t, 2, "parts")
	admin, member := nodes[0], nodes[1]
	sendGroupEventually(t, admin, "parts", "warm-up")
	state0, log0, engine := groupRecords(t, admin, "parts")
	if !group.IsState(engine) {
		t.Fatal("the groups record holds the whole engine, not its state")
	}
	for i := range 3 {
		sendGroupEventually(t, admin, "parts", fmt.Sprintf("text %d", i))
	}
	waitFor(t, "the engine state saved after the texts", func() bool {
		state1, _, _ := groupRecords(t, admin, "parts")
		return !bytes.Equal(state1, state0)
	})
	_, log1, _ := groupRecords(t, admin, "parts")
	if !bytes.Equal(log1, log0) {
		t.Fatal("the op log was rewritten for texts")
	}
	if _, err := admin.n.RenameGroup("parts", "renamed"); err != nil {
		t.Fatal(err)
	}
	if _, log2, _ := groupRecords(t, admin, "renamed"); bytes.Equal(log2, log1) {
		t.Fatal("the op log was not saved with the rename")
	}
	waitFor(t, "the rename at the member", func() bool { _, ok := groupOf(member, "renamed"); return ok })
	home := admin.home
	admin.stop(t)
	admin = startNode(t, home)
	defer admin.stop(t)
	nodes[0] = admin
	if _, ok := groupOf(admin, "renamed"); !ok {
		t.Fatal("the group did not come back with its name")
	}
	sendGroupEventually(t, admin, "renamed", "after the restart")
	waitFor(t, "the text after the restart", func() bool {
		got := groupTexts(t, member, "renamed")
		return len(got) == 5 && strings.HasSuffix(got[4], ": after the restart")
	})
}

// A group saved whole, as versions before the split saved it, loads, and
// its next save writes it in two parts.
func TestGroupEngineWholeRecordLoads(t *testing.T) {
	nodes := makeGroup(t, 2, "whole")
	admin, member := nodes[0], nodes[1]
	sendGroupEventually(t, admin, "whole", "before")
	waitFor(t, "the text", func() bool { return len(groupTexts(t, member, "whole")) == 1 })
	member.n.mu.Lock()
	gs, err := member.n.resolveGroupLocked("whole")
	member.n.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	id := gs.eng.ID()
	cfg := member.n.groupConfig()
	home := member.home
	member.stop(t)
	db, err := openStore(home, nil, KDFParams{}, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	tabs := openTables(db)
	state, err := tabs.groups.Get(id[:])
	if err != nil {
		t.Fatal(err)
	}
	log, err := tabs.groupOps.Get(id[:])
	if err != nil {
		t.Fatal(err)
	}
	eng, err := group.UnmarshalParts(cfg, state, log)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := eng.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b := db.Batch()
	b.Put(tabs.groups, id[:], whole)
	b.Delete(tabs.groupOps, id[:])
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	db.Close()

	member = startNode(t, home)
	defer member.stop(t)
	nodes[1] = member
	if got := groupTexts(t, member, "whole"); len(got) != 1 {
		t.Fatalf("after loading the whole record: %q", got)
	}
	sendGroupEventually(t, member, "whole", "after")
	waitFor(t, "the member's text", func() bool { return len(groupTexts(t, admin, "whole")) == 2 })
	if _, _, engine := groupRecords(t, member, "whole"); !group.IsState(engine) {
		t.Fatal("the next save did not write the engine in two parts")
	}
	_, err = member.n.SendGroup(context.Background(), GroupSendRequest{Group: "whole", Text: "and again"})
	if err != nil {
		t.Fatal(err)
	}
}
