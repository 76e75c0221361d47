package apitest

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/hushnet/hush/node"
)

// Contacts and profiles (docs/protocol/addresses.md §20.6, §20.7), as
// the fake does them: a block is kept by account, the avatar is the
// file's bytes as given (the node re-encodes it).

// VerifyScanned implements api.Backend: the contact is verified if the
// digits of scanned are its safety number.
func (b *Backend) VerifyScanned(name, scanned string) (node.Contact, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.contacts[name]
	if !ok {
		return node.Contact{}, node.ErrUnknownContact
	}
	if strings.Join(strings.Fields(scanned), "") != b.safety[name] {
		return node.Contact{}, fmt.Errorf("%w (%s)", node.ErrSafetyMismatch, name)
	}
	c.Verified, c.KeyChanged = true, false
	return *c, nil
}

// RenameContact implements api.Backend.
func (b *Backend) RenameContact(name, newName string) (node.Contact, error) {
	if err := validName(newName); err != nil {
		return node.Contact{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.contacts[name]
	if !ok {
		return node.Contact{}, node.ErrUnknownContact
	}
	if _, taken := b.contacts[newName]; taken && newName != name {
		return node.Contact{}, fmt.Errorf("%w: %q", node.ErrContactExists, newName)
	}
	delete(b.contacts, name)
	c.Name = newName
	b.contacts[newName] = c
	b.msgs[newName], b.safety[newName] = b.msgs[name], b.safety[name]
	if newName != name {
		delete(b.msgs, name)
		delete(b.safety, name)
	}
	b.publishLocked(node.Event{Type: node.EventContact, Contact: ptr(*c)})
	return *c, nil
}

// BlockContact implements api.Backend.
func (b *Backend) BlockContact(name string) (node.Contact, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.contacts[name]
	if !ok {
		return node.Contact{}, node.ErrUnknownContact
	}
	if b.blocks == nil {
		b.blocks = map[string]node.BlockedAccount{}
	}
	if !c.Blocked {
		c.Blocked = true
		b.blocks[c.Account] = node.BlockedAccount{Account: c.Account, Name: c.Name, Contact: true, Since: b.Now()}
		b.publishLocked(node.Event{Type: node.EventContact, Contact: ptr(*c)})
	}
	return *c, nil
}

// UnblockContact implements api.Backend: by contact name or account.
func (b *Backend) UnblockContact(nameOrAccount string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	acc := nameOrAccount
	c, ok := b.contacts[nameOrAccount]
	if ok {
		acc = c.Account
	}
	if _, blocked := b.blocks[acc]; !blocked {
		if !ok {
			return node.ErrUnknownContact
		}
		return fmt.Errorf("%s is not blocked", nameOrAccount)
	}
	delete(b.blocks, acc)
	if ok {
		c.Blocked = false
		b.publishLocked(node.Event{Type: node.EventContact, Contact: ptr(*c)})
	}
	return nil
}

// BlockedAccounts implements api.Backend.
func (b *Backend) BlockedAccounts() ([]node.BlockedAccount, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []node.BlockedAccount
	for _, e := range b.blocks {
		out = append(out, e)
	}
	slices.SortFunc(out, func(x, y node.BlockedAccount) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// SetProfile implements api.Backend: the avatar is the file's bytes.
func (b *Backend) SetProfile(req node.ProfileRequest) (node.Self, error) {
	var avatar []byte
	if req.AvatarPath != "" {
		var err error
		if avatar, err = os.ReadFile(req.AvatarPath); err != nil {
			return node.Self{}, fmt.Errorf("cannot read the avatar: %w", err)
		}
	}
	if req.Name != "" {
		if err := validName(req.Name); err != nil {
			return node.Self{}, err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if req.Name != "" {
		b.self.Name = req.Name
	}
	if avatar != nil || req.RemoveAvatar {
		b.self.Avatar = avatar
	}
	return b.self, nil
}
