package apitest

import (
	"context"
	"fmt"
	"strings"

	"github.com/hushnet/hush/node"
)

// fakeLinks is the fake's address and invitations (no relay: links are
// made up).
type fakeLinks struct {
	address *node.ShortLink
	invites []*node.ShortLink
	next    int
	txns    map[string]string // txnId → link ID
}

func (f *fakeLinks) remember(txnID, id string) {
	if txnID == "" {
		return
	}
	if f.txns == nil {
		f.txns = map[string]string{}
	}
	f.txns[txnID] = id
}

func (b *Backend) newLinkLocked(kind, label string) *node.ShortLink {
	b.short.next++
	return &node.ShortLink{ID: fmt.Sprintf("%032x", b.short.next), Kind: kind, Label: label, Created: b.Now(),
		Link: fmt.Sprintf("HUSH:AE%06dTESTLINK", b.short.next)}
}

// CreateAddress implements api.Backend.
func (b *Backend) CreateAddress(_ context.Context, rotate bool, txnID string) (node.ShortLink, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if txnID != "" && b.short.address != nil && b.short.txns[txnID] == b.short.address.ID {
		return *b.short.address, nil
	}
	if b.short.address != nil && !rotate {
		return node.ShortLink{}, node.ErrAddressExists
	}
	b.short.address = b.newLinkLocked("address", "")
	b.short.remember(txnID, b.short.address.ID)
	return *b.short.address, nil
}

// Address implements api.Backend.
func (b *Backend) Address() (node.ShortLink, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.short.address == nil {
		return node.ShortLink{}, node.ErrNoAddress
	}
	return *b.short.address, nil
}

// DeleteAddress implements api.Backend.
func (b *Backend) DeleteAddress(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.short.address == nil {
		return node.ErrNoAddress
	}
	b.short.address = nil
	return nil
}

// CreateInvite implements api.Backend.
func (b *Backend) CreateInvite(_ context.Context, label, txnID string) (node.ShortLink, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.short.invites {
		if txnID != "" && b.short.txns[txnID] == l.ID {
			return *l, nil
		}
	}
	l := b.newLinkLocked("invitation", label)
	b.short.invites = append(b.short.invites, l)
	b.short.remember(txnID, l.ID)
	return *l, nil
}

// Invites implements api.Backend.
func (b *Backend) Invites() ([]node.ShortLink, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []node.ShortLink
	for _, l := range b.short.invites {
		out = append(out, *l)
	}
	return out, nil
}

// DeleteInvite implements api.Backend.
func (b *Backend) DeleteInvite(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, l := range b.short.invites {
		if len(id) >= 8 && strings.HasPrefix(l.ID, id) {
			b.short.invites = append(b.short.invites[:i], b.short.invites[i+1:]...)
			return nil
		}
	}
	return node.ErrUnknownInvite
}
