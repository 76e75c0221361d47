package node

import (
	"context"
	"slices"
	"testing"
)

func searchTexts(t testing.TB, n *Node, req SearchRequest) []string {
	t.Helper()
	ms, err := n.Search(req)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Contact+": "+m.Text)
	}
	return out
}

// Search finds a message by a word in it, in 1:1 conversations and in
// groups, newest first, and not after it was edited away or deleted.
func TestSearchConversations(t *testing.T) {
	nodes := makeGroup(t, 2, "Team")
	a, b := nodes[0], nodes[1]
	sa, _ := a.n.Self()
	if _, err := b.n.AddContact("admin", sa.Link); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Built before the messages: kept in step from here on.
	if got := searchTexts(t, b.n, SearchRequest{Text: "lunch"}); got != nil {
		t.Fatalf("empty home: %v", got)
	}
	first, err := a.n.Send(ctx, SendRequest{To: "m1", Text: "Lunch at noon?"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the text", func() bool { return len(texts(t, b.n, "admin", "in")) == 1 })
	sendGroupEventually(t, a, "Team", "lunchtime: the usual place")
	waitFor(t, "the group text", func() bool { return len(groupTexts(t, b, "Team")) == 1 })
	if _, err := b.n.Send(ctx, SendRequest{To: "admin", Text: "no LUNCH for me"}); err != nil {
		t.Fatal(err)
	}

	want := []string{"admin: no LUNCH for me", "Team: lunchtime: the usual place", "admin: Lunch at noon?"}
	if got := searchTexts(t, b.n, SearchRequest{Text: "lunch"}); !slices.Equal(got, want) {
		t.Fatalf("search lunch: %q", got)
	}
	if got := searchTexts(t, b.n, SearchRequest{Text: "Lunch", Group: "Team"}); !slices.Equal(got, want[1:2]) {
		t.Fatalf("in the group: %q", got)
	}
	if got := searchTexts(t, b.n, SearchRequest{Text: "lunch noo", Contact: "admin"}); !slices.Equal(got, want[2:]) {
		t.Fatalf("two words, one contact: %q", got)
	}
	if got := searchTexts(t, b.n, SearchRequest{Text: "lunch", Limit: 1}); !slices.Equal(got, want[:1]) {
		t.Fatalf("limit: %q", got)
	}

	// A second node, its index built from the store at the first search.
	if got := searchTexts(t, a.n, SearchRequest{Text: "noon"}); !slices.Equal(got, []string{"m1: Lunch at noon?"}) {
		t.Fatalf("built from the store: %q", got)
	}
	// Edited: the old words are gone; deleted for everyone: not found.
	if _, err := a.n.Send(ctx, SendRequest{To: "m1", Kind: KindEdit, Target: first.ID, Text: "Dinner at eight?"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the edit", func() bool { return len(searchTexts(t, b.n, SearchRequest{Text: "dinner"})) == 1 })
	if got := searchTexts(t, b.n, SearchRequest{Text: "noon"}); got != nil {
		t.Fatalf("after the edit: %q", got)
	}
	if _, err := a.n.Send(ctx, SendRequest{To: "m1", Kind: KindDelete, Target: first.ID}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delete", func() bool { return len(searchTexts(t, b.n, SearchRequest{Text: "dinner"})) == 0 })
	if got := searchTexts(t, a.n, SearchRequest{Text: "dinner"}); got != nil {
		t.Fatalf("sender, after the delete: %q", got)
	}
	// A contact removed takes its conversation out of the index.
	if err := b.n.RemoveContact("admin"); err != nil {
		t.Fatal(err)
	}
	if got := searchTexts(t, b.n, SearchRequest{Text: "lunch"}); !slices.Equal(got, want[1:2]) {
		t.Fatalf("after removing the contact: %q", got)
	}
	if _, err := b.n.Search(SearchRequest{Text: " "}); err == nil {
		t.Fatal("an empty search is an error")
	}
}
