package apitest

import (
	"cmp"
	"strconv"
	"strings"
	"time"

	"github.com/hushnet/hush/node"
	"github.com/hushnet/hush/node/search"
)

// Search implements api.Backend with the node's own word rules
// (node/search): every word of the text, as a word or a word's start,
// newest first, deleted messages left out.
func (b *Backend) Search(req node.SearchRequest) ([]node.Message, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if strings.TrimSpace(req.Text) == "" {
		return nil, node.ErrEmptyMessage
	}
	var convs [][]*node.Message
	switch {
	case req.Contact != "":
		if _, ok := b.contacts[req.Contact]; !ok {
			return nil, node.ErrUnknownContact
		}
		convs = append(convs, b.msgs[req.Contact])
	case req.Group != "":
		g, err := b.groupLocked(req.Group)
		if err != nil {
			return nil, err
		}
		convs = append(convs, g.msgs)
	default:
		for name, ms := range b.msgs {
			if _, ok := b.contacts[name]; ok {
				convs = append(convs, ms)
			}
		}
		for _, g := range b.groups {
			convs = append(convs, g.msgs)
		}
	}
	x := search.New()
	byID := map[search.ID]*node.Message{}
	n := 0
	for _, ms := range convs {
		for _, m := range ms {
			if m.Deleted || m.Direction == "system" {
				continue
			}
			var id search.ID
			n++
			id[0], id[1], id[2] = byte(n>>16), byte(n>>8), byte(n)
			byID[id] = m
			made, _ := strconv.Atoi(strings.TrimPrefix(m.ID, "m")) // the fake's IDs count up
			x.Put(id, "", m.Time.UnixNano()+int64(made), m.Text)   // equal times: the later made is newer
		}
	}
	limit := cmp.Or(req.Limit, node.DefaultSearchResults)
	out := []node.Message{}
	for _, h := range x.Search(req.Text, min(limit, node.MaxSearchResults), nil) {
		out = append(out, *byID[h.ID])
	}
	return out, nil
}

// SetTimer implements api.Backend: it keeps the timer (Timer reads it).
func (b *Backend) SetTimer(req node.TimerRequest) (time.Duration, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.timers == nil {
		b.timers = map[string]time.Duration{}
	}
	if req.Group != "" {
		if _, err := b.groupLocked(req.Group); err != nil {
			return 0, err
		}
		b.timers["group:"+req.Group] = req.TTL
		return req.TTL, nil
	}
	if _, ok := b.contacts[req.Contact]; !ok {
		return 0, node.ErrUnknownContact
	}
	b.timers[req.Contact] = req.TTL
	return req.TTL, nil
}

// GroupTimer implements api.Backend: what SetTimer kept for group.
func (b *Backend) GroupTimer(group string) (time.Duration, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.groupLocked(group); err != nil {
		return 0, err
	}
	return b.timers["group:"+group], nil
}

// Timer implements api.Backend: what SetTimer kept for contact.
func (b *Backend) Timer(contact string) (time.Duration, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.contacts[contact]; !ok {
		return 0, node.ErrUnknownContact
	}
	return b.timers[contact], nil
}
