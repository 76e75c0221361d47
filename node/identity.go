package node

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/pqxdh"
	"github.com/hushnet/hush/internal/store"
)

// Init creates a new identity (account, first device, prekeys, host key)
// in home. It fails with ErrIdentityExists if one is there.
func Init(home string, opts InitOptions) (*Self, error) {
	name, err := checkName(opts.Name)
	if err != nil {
		return nil, err
	}
	opts.Name = name
	deviceName, err := checkName(cmp.Or(opts.DeviceName, DefaultDeviceName()))
	if err != nil {
		return nil, fmt.Errorf("device name: %w", err)
	}
	if _, err := os.Stat(storeDir(home)); err == nil {
		return nil, ErrIdentityExists
	}
	db, err := openStore(home, opts.Passphrase, opts.KDF, false, nil)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	now := time.Now()
	account, err := identity.NewAccount()
	if err != nil {
		return nil, err
	}
	device, err := identity.NewDevice()
	if err != nil {
		return nil, err
	}
	cert, err := account.Certify(device, now)
	if err != nil {
		return nil, err
	}
	list, err := account.NewDeviceList(nil, []*identity.DeviceCert{cert}, now)
	if err != nil {
		return nil, err
	}
	prekeys, err := writeIdentity(db, account, device, cert, list, profileRec{Name: opts.Name, Created: now.UTC(), DeviceName: deviceName}, nil, now)
	if err != nil {
		return nil, err
	}
	c, err := buildCard(account, opts.Name, list, cert, prekeys, "", nil, nil, nil, now)
	if err != nil {
		return nil, err
	}
	return &Self{
		Name:        opts.Name,
		Account:     cert.Account().Hex(),
		Device:      cert.DeviceID().Hex(),
		Link:        c.Link(),
		Fingerprint: fingerprint(cert.Account()),
		Protected:   db.Protected(),
	}, nil
}

// DefaultDeviceName is the name a device gets when the user gives none:
// the machine's host name (as `hostname` prints it, shortened to its
// first label), or "device" when it has none that is a valid name. It is
// shown only to the account's own devices.
func DefaultDeviceName() string {
	h, err := os.Hostname()
	if err != nil {
		return "device"
	}
	h, _, _ = strings.Cut(h, ".")
	if n, err := checkName(h); err == nil && n != "" && n != "localhost" {
		return n
	}
	return "device"
}

// writeIdentity makes a device's prekeys and host key and commits them
// with its account key, keys, certificate, device list and profile (the
// records New loads) and what extra adds, in one batch.
func writeIdentity(db *store.DB, account *identity.Account, device *identity.Device, cert *identity.DeviceCert,
	list *identity.DeviceList, profile profileRec, extra func(*store.Batch, tables), now time.Time) (*pqxdh.PrekeyStore, error) {
	prekeys, err := pqxdh.NewPrekeyStore(device.SigningKey(), now)
	if err != nil {
		return nil, err
	}
	hostKey, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	hostBytes, err := crypto.MarshalPrivateKey(hostKey)
	if err != nil {
		return nil, err
	}
	accBytes, _ := account.MarshalBinary()
	devBytes, _ := device.MarshalBinary()
	pkBytes, err := prekeys.MarshalBinary()
	if err != nil {
		return nil, err
	}
	t := openTables(db)
	b := db.Batch()
	b.Put(t.identity, idAccount, accBytes)
	b.Put(t.identity, idDevice, devBytes)
	b.Put(t.identity, idHostKey, hostBytes)
	b.Put(t.identity, idCert, cert.Marshal())
	b.Put(t.identity, idList, list.Marshal())
	b.Put(t.identity, idPrekeys, pkBytes)
	putJSON(b, t.identity, idProfile, &profile)
	putJSON(b, t.identity, idSettings, &settingsRec{})
	if extra != nil {
		extra(b, t)
	}
	if err := b.Commit(); err != nil {
		return nil, fmt.Errorf("node: save identity: %w", err)
	}
	return prekeys, nil
}

func unmarshalPrekeys(b []byte, d *identity.Device) (*pqxdh.PrekeyStore, error) {
	s, err := pqxdh.UnmarshalPrekeyStore(b, d.SigningKey())
	if err != nil {
		return nil, fmt.Errorf("node: load prekeys: %w", err)
	}
	return s, nil
}

// buildCard makes the account's card: this device's entry, then the
// entries the account's other devices published (others). Prekey
// bundles in a card carry no one-time prekeys: a link may be opened by
// many people, and a one-time key must go to at most one.
func buildCard(a *identity.Account, name string, list *identity.DeviceList, cert *identity.DeviceCert,
	prekeys *pqxdh.PrekeyStore, pid peer.ID, addrs []ma.Multiaddr, boxes []card.Mailbox, others []card.Device, now time.Time) (*card.Card, error) {
	if a == nil {
		return nil, errors.New("node: this device does not hold the account key")
	}
	full, err := prekeys.Bundle(now)
	if err != nil {
		return nil, err
	}
	bundle := &pqxdh.Bundle{SignedPrekey: full.SignedPrekey, PQPrekey: full.PQPrekey}
	d := card.Device{ID: cert.DeviceID(), Bundle: bundle, Mailboxes: boxes}
	if pid != "" {
		d.PeerID = []byte(pid)
		for _, addr := range addrs {
			if len(d.Addrs) == card.MaxAddrs {
				break
			}
			d.Addrs = append(d.Addrs, addr.Bytes())
		}
	}
	return card.New(a, name, list, append([]card.Device{d}, others...), now)
}

// ownCardLocked builds the current card with live transport addresses.
// Prekey rotation happens inside Bundle; the rotated store is saved.
// The card is cached for cardTTL or until the addresses change: building
// one signs it and re-verifies every prekey (about a millisecond).
func (n *Node) ownCardLocked(now time.Time) (*card.Card, error) {
	if n.host == nil {
		return nil, ErrNotRunning
	}
	if n.own.revoked {
		return nil, ErrRevoked
	}
	fresh := n.ownCard != nil && n.ownCard.List.Hash() == n.list.Hash() && now.Sub(n.ownCardAt) < cardTTL && now.After(n.ownCardAt)
	if fresh && now.Sub(n.ownAddrsAt) < addrsCheckEvery && now.After(n.ownAddrsAt) {
		return n.ownCard, nil // every send asks; the addresses are read at most once a second
	}
	pid, addrs := n.host.ID(), n.host.Addrs()
	key := fmt.Sprint(pid, addrs)
	n.ownAddrsAt = now
	if fresh && n.ownCardKey == key {
		return n.ownCard, nil
	}
	c, err := buildCard(n.account, n.profile.Name, n.list, n.cert, n.local.Prekeys, pid, addrs, n.ownMailboxesLocked(), n.otherEntriesLocked(), now)
	if err != nil {
		return nil, err
	}
	if err := n.savePrekeysLocked(); err != nil {
		return nil, err
	}
	n.ownCard, n.ownCardKey, n.ownCardAt = c, key, now
	n.ownRouteKey = routeKey(c)
	return c, nil
}

// cardTTL bounds how long a built card is reused; addrsCheckEvery is how
// often the host's addresses are compared with the card's.
const (
	cardTTL         = 10 * time.Minute
	addrsCheckEvery = time.Second
)

func (n *Node) savePrekeysLocked() error {
	pk, err := n.local.Prekeys.MarshalBinary()
	if err != nil {
		return err
	}
	return n.tabs.identity.Put(idPrekeys, pk)
}

func (n *Node) hostKey() (crypto.PrivKey, error) {
	b, err := n.tabs.identity.Get(idHostKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoIdentity
	}
	if err != nil {
		return nil, err
	}
	return crypto.UnmarshalPrivateKey(b)
}
