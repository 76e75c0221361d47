package node

// Search over every conversation (docs/API.md "Search"): an in-memory
// inverted index (node/search) built from the decrypted store the first
// time it is needed (a search, or Run warming it up), then kept in step
// with every message record a commit writes or deletes.

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/node/group"
	"github.com/hushnet/hush/node/search"
)

// MaxSearchResults bounds one search's results; DefaultSearchResults is
// what a search without a limit returns.
const (
	DefaultSearchResults = 50
	MaxSearchResults     = 1000
)

// SearchRequest is a search: words (each a word or a word's start, any
// case) and optionally one conversation (a contact or a group).
type SearchRequest struct {
	Text    string
	Contact string
	Group   string
	Limit   int
}

// searchOp is one change to the index, applied once its commit is done.
type searchOp struct {
	id   [msgIDSize]byte
	conv string
	time int64
	text string // "" for a deleted message or one with no words
}

// searchState holds the index and whether it is built.
type searchState struct {
	mu       sync.Mutex
	idx      *search.Index
	building chan struct{} // closed when the build running ends
	pending  []searchOp    // changes committed while it runs
	err      error
}

// searchText is what the index holds of a record: its text and its
// attachment's name; nothing for a notice or a deleted message.
func searchText(m *msgRec) string {
	if m.Dir == dirSystem || m.Deleted {
		return ""
	}
	if m.File != nil && m.File.Name != "" {
		return m.Text + " " + m.File.Name
	}
	return m.Text
}

// searchPut notes, in t, a record written.
func (t *txn) searchPut(id [msgIDSize]byte, ix indexRec, m *msgRec) {
	t.searchOps = append(t.searchOps, searchOp{id: id, conv: string(ix.Account), time: m.Time.UnixNano(), text: searchText(m)})
}

// searchDelete notes, in t, a record deleted.
func (t *txn) searchDelete(id [msgIDSize]byte) {
	t.searchOps = append(t.searchOps, searchOp{id: id})
}

// apply applies committed changes: to the index when it is built, to
// the pending list while it is being built, else nowhere (the build
// reads them from the store).
func (s *searchState) apply(ops []searchOp) {
	if len(ops) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.idx != nil:
		applySearchOps(s.idx, ops)
	case s.building != nil:
		s.pending = append(s.pending, ops...)
	}
}

// removeConv forgets a conversation (a contact removed).
func (s *searchState) removeConv(conv []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.idx != nil:
		s.idx.RemoveConv(string(conv))
	case s.building != nil:
		s.err = errSearchStale // the build may have read them: build again
	}
}

var errSearchStale = errors.New("search index stale")

func applySearchOps(x *search.Index, ops []searchOp) {
	for _, op := range ops {
		if op.text == "" {
			x.Remove(search.ID(op.id))
		} else {
			x.Put(search.ID(op.id), op.conv, op.time, op.text)
		}
	}
}

// searchIndex returns the index, building it first if needed (without
// the node lock: commits go on meanwhile and are applied after).
func (n *Node) searchIndex() (*search.Index, error) {
	s := &n.search
	for {
		s.mu.Lock()
		if s.idx != nil {
			s.mu.Unlock()
			return s.idx, nil
		}
		if ch := s.building; ch != nil {
			s.mu.Unlock()
			<-ch
			continue
		}
		ch := make(chan struct{})
		s.building, s.pending, s.err = ch, nil, nil
		s.mu.Unlock()

		idx := search.New()
		err := n.tabs.messages.ScanAllSeq(func(conv []byte, _ uint64, v []byte) error {
			var m msgRec
			if decodeMsgRec(v, &m) != nil {
				return nil // a damaged record is not searchable; the rest is
			}
			id, err := parseMsgID(m.ID)
			if text := searchText(&m); err == nil && text != "" {
				idx.Put(search.ID(id), string(conv), m.Time.UnixNano(), text)
			}
			return nil
		})

		s.mu.Lock()
		if err == nil && s.err == nil {
			applySearchOps(idx, s.pending)
			s.idx = idx
		}
		stale := errors.Is(s.err, errSearchStale)
		s.building, s.pending = nil, nil
		close(ch)
		s.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("node: build search index: %w", err)
		}
		if !stale {
			return idx, nil
		}
	}
}

// Search finds the messages that hold every word of req.Text (each as a
// word or a word's start, case-insensitive) in every conversation, or
// in the one named, newest first. Message requests, blocked accounts,
// deleted and expired messages are not searched.
func (n *Node) Search(req SearchRequest) ([]Message, error) {
	if strings.TrimSpace(req.Text) == "" {
		return nil, fmt.Errorf("%w: nothing to search for", ErrEmptyMessage)
	}
	limit := req.Limit
	if limit <= 0 {
		limit = DefaultSearchResults
	}
	limit = min(limit, MaxSearchResults)
	var only []byte
	if req.Contact != "" || req.Group != "" {
		n.mu.Lock()
		key, err := n.convKeyLocked(req.Contact, req.Group)
		n.mu.Unlock()
		if err != nil {
			return nil, err
		}
		only = key
	}
	idx, err := n.searchIndex()
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	keep := func(conv string) bool {
		if only != nil {
			return conv == string(only)
		}
		_, ok := n.searchConvLocked([]byte(conv))
		return ok
	}
	out := []Message{}
	// A hit whose record is gone (deleted meanwhile) is skipped; ask for
	// a few more than the limit so that one does not shorten the page.
	for _, h := range idx.Search(req.Text, limit+8, keep) {
		m, ix, err := n.loadMsgLocked(h.ID)
		if err != nil || m.Deleted || m.Dir == dirSystem {
			continue
		}
		view, ok := n.searchConvLocked(ix.Account)
		if !ok {
			continue
		}
		out = append(out, view(m))
		if len(out) == limit {
			break
		}
	}
	return out, nil
}

// searchConvLocked returns how to show a conversation's messages, or
// false for one not searched: a request, a blocked account, a group
// this device is no longer in.
func (n *Node) searchConvLocked(conv []byte) (func(*msgRec) Message, bool) {
	if isGroupConv(conv) {
		gs := n.groups[group.GroupID(conv[1:])]
		if gs == nil {
			return nil, false
		}
		return func(m *msgRec) Message { return n.groupMsgView(m, gs) }, true
	}
	id, err := identity.ParseAccountID(conv)
	if err != nil {
		return nil, false
	}
	c := n.contacts[id]
	if c == nil || c.rec.Request || c.blocked {
		return nil, false
	}
	return func(m *msgRec) Message { return m.view(c.rec.Name) }, true
}
