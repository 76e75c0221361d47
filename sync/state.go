package sync

import (
	"bytes"
	"cmp"
	"slices"

	"github.com/hushnet/hush/crypto/codec"
)

// The merge of one object's state: every join below is commutative,
// associative and idempotent, and every register's order is total (clock,
// then value bytes), so states converge whatever the order of arrival and
// however many times each piece arrives (docs/protocol/sync.md §18.6).

// Clone returns a deep copy.
func (m *MessageState) Clone() *MessageState {
	c := *m
	if m.Record != nil {
		r := *m.Record
		c.Record = &r
	}
	c.Edits = slices.Clone(m.Edits)
	c.Deletes = slices.Clone(m.Deletes)
	c.Reactions = slices.Clone(m.Reactions)
	return &c
}

// Merge joins o into m (both the same message ID) and reports whether m
// changed.
func (m *MessageState) Merge(o *MessageState) bool {
	changed := false
	if o.Conv.Compare(m.Conv) < 0 {
		m.Conv = o.Conv
		changed = true
	}
	if o.Record != nil && (m.Record == nil || bytes.Compare(o.Record.tail(), m.Record.tail()) < 0) {
		r := *o.Record
		m.Record = &r
		changed = true
	}
	if m.Record != nil {
		m.Record.Conv, m.Record.ID = m.Conv, m.ID
	}
	if o.Status > m.Status {
		m.Status = o.Status
		changed = true
	}
	var c bool
	m.Edits, c = joinEntries(m.Edits, o.Edits, MaxEditActors,
		func(a, b *EditEntry) int { return bytes.Compare(a.Actor[:], b.Actor[:]) },
		func(a, b *EditEntry) int { return cmp.Or(a.Clock.Compare(b.Clock), cmp.Compare(a.Text, b.Text)) })
	changed = changed || c
	m.Deletes, c = joinEntries(m.Deletes, o.Deletes, MaxDeleteActors,
		func(a, b *DeleteEntry) int { return bytes.Compare(a.Actor[:], b.Actor[:]) },
		func(a, b *DeleteEntry) int { return a.Clock.Compare(b.Clock) })
	changed = changed || c
	m.Reactions, c = joinEntries(m.Reactions, o.Reactions, MaxReactions, reactionKeyCompare,
		func(a, b *ReactionEntry) int {
			return cmp.Or(a.Clock.Compare(b.Clock), boolCompare(a.Present, b.Present))
		})
	return changed || c
}

func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// joinEntries merges two lists sorted by key: per key the greater value
// wins; then only the max smallest keys are kept, so a capped list still
// converges (the keys kept are the smallest of every key ever seen).
func joinEntries[E any](mine, theirs []E, max int, key, value func(a, b *E) int) ([]E, bool) {
	out := slices.Clone(mine)
	changed := false
	for i := range theirs {
		e := &theirs[i]
		j, found := slices.BinarySearchFunc(out, e, func(x E, e *E) int { return key(&x, e) })
		switch {
		case found && value(e, &out[j]) > 0:
			out[j] = *e
			changed = true
		case !found:
			out = slices.Insert(out, j, *e)
			changed = true
		}
	}
	if len(out) > max {
		out = out[:max]
		changed = !slicesEqualBy(out, mine, key, value)
	}
	return out, changed
}

func slicesEqualBy[E any](a, b []E, key, value func(a, b *E) int) bool {
	return slices.EqualFunc(a, b, func(x, y E) bool { return key(&x, &y) == 0 && value(&x, &y) == 0 })
}

// Author returns the message's author, if its record is known.
func (m *MessageState) Author() (a [32]byte, ok bool) {
	if m.Record == nil {
		return a, false
	}
	return m.Record.Author, true
}

// Deleted reports whether the author recalled the message. A recall wins
// over any edit, whatever the clocks.
func (m *MessageState) Deleted() bool {
	author, ok := m.Author()
	if !ok {
		return false
	}
	for _, d := range m.Deletes {
		if d.Actor == author {
			return true
		}
	}
	return false
}

// Text returns the text to show: the author's latest edit if any, else
// the record's; empty if unknown or deleted.
func (m *MessageState) Text() (text string, edited bool) {
	author, ok := m.Author()
	if !ok || m.Deleted() {
		return "", false
	}
	for _, e := range m.Edits {
		if e.Actor == author {
			return e.Text, true
		}
	}
	return m.Record.Text, false
}

// ShownReactions returns, per emoji, the actors whose reaction is present
// (none on a deleted message).
func (m *MessageState) ShownReactions() map[string][][32]byte {
	if m.Deleted() {
		return nil
	}
	var out map[string][][32]byte
	for _, x := range m.Reactions {
		if !x.Present {
			continue
		}
		if out == nil {
			out = map[string][][32]byte{}
		}
		out[x.Emoji] = append(out[x.Emoji], x.Actor)
	}
	return out
}

// Clone returns a deep copy.
func (m *ContactState) Clone() *ContactState {
	c := *m
	c.Added = slices.Clone(m.Added)
	c.Removed = slices.Clone(m.Removed)
	c.Card = codec.Clone(m.Card)
	return &c
}

// Merge joins o into m (both the same account) and reports whether m
// changed.
func (m *ContactState) Merge(o *ContactState) bool {
	var c1, c2 bool
	m.Added, c1 = m.Added.join(o.Added)
	m.Removed, c2 = m.Removed.join(o.Removed)
	changed := c1 || c2
	if cmp.Or(o.InfoClock.Compare(m.InfoClock), cmp.Compare(o.Name, m.Name), bytes.Compare(o.Card, m.Card)) > 0 {
		m.InfoClock, m.Name, m.Card = o.InfoClock, o.Name, codec.Clone(o.Card)
		changed = true
	}
	if cmp.Or(o.VerifiedClock.Compare(m.VerifiedClock), boolCompare(o.Verified, m.Verified)) > 0 {
		m.VerifiedClock, m.Verified = o.VerifiedClock, o.Verified
		changed = true
	}
	return changed
}

// messageDelta turns a message-level sync message into the state it
// contributes to its message.
func messageDelta(m Message) *MessageState {
	switch m := m.(type) {
	case *Transcript:
		r := m.Record
		return &MessageState{Conv: r.Conv, ID: r.ID, Record: &r}
	case *Incoming:
		r := m.Record
		return &MessageState{Conv: r.Conv, ID: r.ID, Record: &r}
	case *Edit:
		return &MessageState{Conv: m.Conv, ID: m.Target, Edits: []EditEntry{{Actor: m.Actor, Clock: m.Clock, Text: m.Text}}}
	case *Delete:
		return &MessageState{Conv: m.Conv, ID: m.Target, Deletes: []DeleteEntry{{Actor: m.Actor, Clock: m.Clock}}}
	case *Reaction:
		return &MessageState{Conv: m.Conv, ID: m.Target,
			Reactions: []ReactionEntry{{Actor: m.Actor, Emoji: m.Emoji, Clock: m.Clock, Present: !m.Remove}}}
	case *Status:
		return &MessageState{Conv: m.Conv, ID: m.Target, Status: m.State}
	case *MessageState:
		return m
	}
	return nil
}

// contactDelta turns a contact-level sync message into the state it
// contributes to its contact.
func contactDelta(m Message) *ContactState {
	switch m := m.(type) {
	case *ContactAdd:
		return &ContactState{Account: m.Account,
			Added:     VersionVector{{Device: m.Clock.Device, Lamport: m.Clock.Lamport}},
			InfoClock: m.Clock, Name: m.Name, Card: m.Card}
	case *ContactRemove:
		return &ContactState{Account: m.Account, Removed: m.Seen}
	case *ContactVerify:
		return &ContactState{Account: m.Account, VerifiedClock: m.Clock, Verified: m.Verified}
	case *ContactState:
		return m
	}
	return nil
}
