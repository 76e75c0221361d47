package node

import (
	"errors"
	"fmt"

	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/internal/store"
)

// The auto-download policy (docs/protocol/files.md §19.4): a file offered
// in a conversation is fetched at once when its size is at most the
// conversation's limit, AutoFetchSize unless the user set another one
// for that conversation (0: off, every file waits for FetchFile). The
// setting belongs to this device, as a phone on mobile data and a laptop
// on a fixed line want different ones: it is not synced.

// convPrefs is a convprefs-table record, keyed by the conversation's key
// (the contact's account ID, or convKey of a group): this device's
// settings for one conversation.
type convPrefs struct {
	AutoFetch *int64 `json:"auto_fetch,omitempty"` // nil: AutoFetchSize
	// The conversation list's settings (conversations.go).
	Muted       bool   `json:"muted,omitempty"`
	Pinned      bool   `json:"pinned,omitempty"`
	Archived    bool   `json:"archived,omitempty"`
	ArchivedSeq uint64 `json:"archived_seq,omitempty"` // the conversation's last sequence number when it was archived
}

// autoFetchLimitLocked is the auto-download limit of the conversation
// with key conv: none for a message request (nothing a stranger sends
// is fetched unasked).
func (n *Node) autoFetchLimitLocked(conv []byte) int64 {
	if acc, err := identity.ParseAccountID(conv); err == nil && n.contacts[acc] != nil && n.contacts[acc].rec.Request {
		return 0
	}
	return n.autoDownloadLocked(conv).Limit
}

// convKeyLocked finds the key of the conversation with a contact or a
// group (exactly one of the two named).
func (n *Node) convKeyLocked(contactName, groupRef string) ([]byte, error) {
	switch {
	case (contactName == "") == (groupRef == ""):
		return nil, errors.New("name a contact or a group")
	case groupRef != "":
		gs, err := n.resolveGroupLocked(groupRef)
		if err != nil {
			return nil, err
		}
		return convKey(gs.eng.ID()), nil
	}
	c, err := n.contactByNameLocked(contactName)
	if err != nil {
		return nil, err
	}
	acc := c.account()
	return acc[:], nil
}

// AutoDownloadOf returns the auto-download policy of the conversation
// with a contact or a group.
func (n *Node) AutoDownloadOf(contactName, groupRef string) (AutoDownload, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	conv, err := n.convKeyLocked(contactName, groupRef)
	if err != nil {
		return AutoDownload{}, err
	}
	return n.autoDownloadLocked(conv), nil
}

func (n *Node) autoDownloadLocked(conv []byte) AutoDownload {
	var p convPrefs
	if err := n.getJSON(n.tabs.convPrefs, conv, &p); err != nil || p.AutoFetch == nil {
		return AutoDownload{Limit: AutoFetchSize, Default: true}
	}
	return AutoDownload{Limit: *p.AutoFetch}
}

// SetAutoDownload sets the auto-download limit of the conversation with a
// contact or a group: files up to limit bytes are fetched when offered,
// 0 turns it off, a negative limit goes back to the default. Files
// offered before keep their state.
func (n *Node) SetAutoDownload(contactName, groupRef string, limit int64) (AutoDownload, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return AutoDownload{}, ErrClosed
	}
	conv, err := n.convKeyLocked(contactName, groupRef)
	if err != nil {
		return AutoDownload{}, err
	}
	if limit > n.maxFileSize() {
		return AutoDownload{}, fmt.Errorf("%w: an auto-download limit of %d bytes, the file limit is %d", ErrFileTooLarge, limit, n.maxFileSize())
	}
	var p convPrefs
	if err := n.getJSON(n.tabs.convPrefs, conv, &p); err != nil && !errors.Is(err, store.ErrNotFound) {
		return AutoDownload{}, err
	}
	p.AutoFetch = nil
	if limit >= 0 {
		p.AutoFetch = &limit
	}
	b := n.db.Batch()
	putJSON(b, n.tabs.convPrefs, conv, &p)
	if err := n.commit(b); err != nil {
		return AutoDownload{}, fmt.Errorf("node: store: %w", err)
	}
	return n.autoDownloadLocked(conv), nil
}
