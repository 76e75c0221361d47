package node

import (
	"context"
	"errors"
	"log/slog"

	"github.com/hushnet/hush/internal/store"
)

// errTODO marks node methods whose implementation is in progress.
var errTODO = errors.New("node: not implemented yet")

// Config configures a node. The zero value needs only Home.
type Config struct {
	// Home is the node's directory; the encrypted store lives in
	// Home/store. Required.
	Home string
	// Passphrase unlocks the store; empty for a store made with
	// --no-passphrase.
	Passphrase []byte
	// ListenAddrs are libp2p multiaddrs; default DefaultListenAddrs.
	ListenAddrs []string
	// NoMDNS turns LAN discovery off.
	NoMDNS bool
	// KDF overrides the Argon2id parameters when a store is created (tests
	// use small ones). Zero means the RFC 9106 second recommended option.
	KDF store.KDFParams
	// Logger receives node events (never content, keys or identifiers);
	// discarded by default.
	Logger *slog.Logger
}

// InitOptions configures Init.
type InitOptions struct {
	Name       string
	Passphrase []byte // empty: no passphrase, the key is kept in a 0600 file
	KDF        store.KDFParams
}

// Init creates a new identity (account, first device, prekeys, host key)
// in home. It fails with ErrIdentityExists if one is there.
func Init(home string, opts InitOptions) (*Self, error) { return nil, errTODO }

// Node is a running hush device.
type Node struct {
	cfg Config
}

// New opens the store in cfg.Home and loads the identity. It does no
// network I/O; Run starts the host and the delivery loops.
func New(cfg Config) (*Node, error) { return nil, errTODO }

// Run serves until ctx is done, then releases everything it started.
func (n *Node) Run(ctx context.Context) error { return errTODO }

// Ready is closed once Run has the host listening.
func (n *Node) Ready() <-chan struct{} { return nil }

// Close releases the store. It is idempotent.
func (n *Node) Close() error { return nil }

// Self describes this device, including its contact link.
func (n *Node) Self() (Self, error) { return Self{}, errTODO }

// AddContact adds (or refreshes) a contact from a hush:// link. Adding the
// same link again is a no-op. If name is taken by another account and that
// contact is verified, the new key is recorded but sending stays blocked
// until VerifyContact; for an unverified contact the returned Contact has
// KeyChanged set so the caller can warn.
func (n *Node) AddContact(name, link string) (Contact, error) { return Contact{}, errTODO }

// Contacts lists the address book, sorted by name.
func (n *Node) Contacts() ([]Contact, error) { return nil, errTODO }

// RemoveContact deletes a contact, its sessions and its pending outbox
// entries; its message history is deleted too.
func (n *Node) RemoveContact(name string) error { return errTODO }

// VerifyContact marks the contact's current key as verified (the user
// compared safety numbers) and unblocks sending after a key change.
func (n *Node) VerifyContact(name string) (Contact, error) { return Contact{}, errTODO }

// SafetyNumber returns the 60-digit safety number with a contact.
func (n *Node) SafetyNumber(name string) (string, error) { return "", errTODO }

// Send stores the message durably, then returns it (state queued); the
// outbox delivers it in the background. A request whose TxnID was seen
// before returns the original message instead of sending again.
func (n *Node) Send(ctx context.Context, req SendRequest) (Message, error) { return Message{}, errTODO }

// WaitState blocks until message id reaches state (or a later one), the
// message fails, or ctx ends.
func (n *Node) WaitState(ctx context.Context, id string, state MessageState) (Message, error) {
	return Message{}, errTODO
}

// Messages returns the last limit messages with a contact (0: all),
// oldest first.
func (n *Node) Messages(contact string, limit int) ([]Message, error) { return nil, errTODO }

// MarkRead marks every incoming message from contact as read and, unless
// read receipts are off, tells the contact.
func (n *Node) MarkRead(contact string) error { return errTODO }

// SetTyping tells a contact this user is (or stopped) typing. Best effort:
// typing indicators are not queued.
func (n *Node) SetTyping(contact string, typing bool) error { return errTODO }

// SetReadReceipts turns sending read receipts on or off (default on).
func (n *Node) SetReadReceipts(on bool) error { return errTODO }

// Subscribe returns a channel of events after seq (0: only new ones) and a
// cancel function. A subscriber that falls too far behind is dropped: its
// channel is closed.
func (n *Node) Subscribe(after uint64) (<-chan Event, func()) { return nil, func() {} }
