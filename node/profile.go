package node

// Profiles and names (docs/protocol/addresses.md §20.7). The account's
// display name and avatar travel end to end in a profile payload (type
// 19) to every contact and to the account's other devices; the name also
// goes into the card, for new contacts, and to the other devices as the
// synced setting "profile/name". A contact shows the name its profile
// gives, unless the user renamed it (RenameContact).

import (
	"bytes"
	"errors"
	"fmt"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/crypto/safety"
	"github.com/hushnet/hush/node/attach"
	msync "github.com/hushnet/hush/sync"
)

// Avatar limits: the sender re-encodes a picture as a JPEG of at most
// AvatarSide pixels a side; a receiver takes one only if it is at most
// MaxAvatarSize bytes, decodes, and is no larger than that.
const (
	AvatarSide    = attach.ThumbSide
	MaxAvatarSize = 16 << 10
	// maxAvatarFile bounds the picture SetProfile reads.
	maxAvatarFile = 32 << 20
)

// ProfileRequest is what SetProfile changes.
type ProfileRequest = apitypes.SetProfileParams

// ErrSafetyMismatch refuses a scanned safety number that is not the
// contact's.
var ErrSafetyMismatch = errors.New("the scanned safety number does not match: the contact was not verified")

// checkAvatar reports whether b is an acceptable avatar.
func checkAvatar(b []byte) error {
	if len(b) > MaxAvatarSize {
		return fmt.Errorf("avatar of %d bytes, the limit is %d", len(b), MaxAvatarSize)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("avatar is not a JPEG: %w", err)
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > AvatarSide || cfg.Height > AvatarSide {
		return fmt.Errorf("avatar of %d×%d pixels, the limit is %d×%d", cfg.Width, cfg.Height, AvatarSide, AvatarSide)
	}
	if _, err := jpeg.Decode(bytes.NewReader(b)); err != nil {
		return fmt.Errorf("avatar does not decode: %w", err)
	}
	return nil
}

// makeAvatar reads a JPEG or PNG picture and makes an avatar of it: the
// longest side scaled to AvatarSide pixels, a JPEG (attach.Inspect's
// thumbnail).
func makeAvatar(path string) ([]byte, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%w: the avatar's path must be absolute: %s", ErrNotAFile, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the avatar: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	switch {
	case err != nil:
		return nil, fmt.Errorf("cannot read the avatar: %w", err)
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("%w: %s", ErrNotAFile, path)
	case st.Size() > maxAvatarFile:
		return nil, fmt.Errorf("%w: an avatar picture of %d bytes, the limit is %d", ErrFileTooLarge, st.Size(), maxAvatarFile)
	}
	info, err := attach.Inspect(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("cannot read the avatar: %w", err)
	}
	if info.MIME != "image/jpeg" && info.MIME != "image/png" {
		return nil, fmt.Errorf("%w: the avatar must be a JPEG or PNG picture, not %s", ErrInvalidName, info.MIME)
	}
	if info.Thumb == nil || checkAvatar(info.Thumb) != nil {
		return nil, fmt.Errorf("%w: %s does not decode as a picture (or is over %d pixels)", ErrInvalidName, path, attach.MaxThumbPixels)
	}
	return info.Thumb, nil
}

// SetProfile changes the account's display name, its avatar, or both,
// and sends the profile to every contact that is neither a request nor
// blocked, and to the account's other devices. It returns Self.
func (n *Node) SetProfile(req ProfileRequest) (Self, error) {
	if req.Name == "" && req.AvatarPath == "" && !req.RemoveAvatar {
		return Self{}, fmt.Errorf("%w: nothing to change", ErrInvalidName)
	}
	if req.AvatarPath != "" && req.RemoveAvatar {
		return Self{}, fmt.Errorf("%w: an avatar and no avatar", ErrInvalidName)
	}
	var name string
	if req.Name != "" {
		var err error
		if name, err = checkName(req.Name); err != nil {
			return Self{}, err
		}
	}
	var avatar []byte
	if req.AvatarPath != "" {
		var err error
		if avatar, err = makeAvatar(req.AvatarPath); err != nil {
			return Self{}, err
		}
	}
	now := n.now()
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return Self{}, ErrClosed
	}
	t := n.newTxnLocked()
	prev := n.profile
	t.undo(func() { n.profile = prev; n.ownChangedLocked() })
	if name != "" && name != n.profile.Name {
		clock := n.tickLocked(t, now)
		n.profile.Name, n.profile.NameClock = name, clock.Lamport
		n.syncLocalLocked(t, &msync.Setting{Key: settingProfileName, Clock: clock, Value: []byte(name)}, now)
		n.ownChangedLocked() // the card carries the name
	}
	if avatar != nil || req.RemoveAvatar {
		n.profile.Avatar = avatar
		n.profile.AvatarAt = max(uint64(now.UnixMilli()), n.profile.AvatarAt+1)
	}
	putJSON(t.b, n.tabs.identity, idProfile, &n.profile)
	n.sendProfileLocked(t, now)
	n.saveSeqLocked(t)
	if err := n.commitReleasingLock(t); err != nil {
		n.mu.Unlock()
		return Self{}, fmt.Errorf("node: store: %w", err)
	}
	n.mu.Unlock()
	return n.Self()
}

// profilePayloadLocked is the account's profile as a payload.
func (n *Node) profilePayloadLocked(now time.Time) *payload {
	return &payload{Type: ptProfile, ID: newMessageID(), TimeMS: max(uint64(now.UnixMilli()), n.profile.AvatarAt),
		Text: n.profile.Name, Data: n.profile.Avatar}
}

// sendProfileLocked queues the profile for every contact that is neither
// a request nor blocked (nor held by a key change), and for the
// account's other devices. It does not ride a card on it (the route
// card goes with the next message of a type every version reads).
func (n *Node) sendProfileLocked(t *txn, now time.Time) {
	p := n.profilePayloadLocked(now)
	for _, c := range n.contacts {
		if c.rec.Request || n.sendableLocked(c) != nil {
			continue
		}
		if err := n.encryptToCardLocked(t, c.card, c.rec.Name, nil, p, false, now); err != nil {
			n.log.Debug("profile not queued for a contact", "err", err)
		}
	}
	if n.hasOtherDevicesLocked() {
		if err := n.encryptToCardLocked(t, n.siblingsLocked(), "this account's other devices", nil, p, false, now); err != nil {
			n.log.Debug("profile not queued for the other devices", "err", err)
		}
	}
}

// applyProfileLocked takes a profile from contact c: the newest one (by
// the sender's time) gives the display name and the avatar; the name is
// shown unless the user renamed the contact, and made free if another
// contact has it (or one like it). An avatar that fails checkAvatar is
// dropped (the name is still taken).
func (n *Node) applyProfileLocked(t *txn, c *contact, p *payload) {
	if p.TimeMS <= c.rec.ProfileAt {
		return // an older profile, arriving late
	}
	prev := c.rec
	t.undo(func() { c.rec = prev })
	c.rec.ProfileAt = p.TimeMS
	c.rec.ProfileName = ""
	if strings.TrimSpace(p.Text) != "" {
		c.rec.ProfileName = cleanDisplayName(p.Text)
	}
	c.rec.Avatar = nil
	if len(p.Data) > 0 {
		if err := checkAvatar(p.Data); err == nil {
			c.rec.Avatar = p.Data
		} else {
			n.log.Debug("contact's avatar refused", "err", err)
		}
	}
	if !c.rec.LocalName && c.rec.ProfileName != "" && !c.rec.Request && nameKey(c.rec.ProfileName) != nameKey(c.rec.Name) {
		name := c.rec.ProfileName
		if n.lookalikeLocked(name, c) != nil {
			name = n.freeNameLocked(name)
		}
		c.rec.Name = name
	}
	n.saveContact(t.b, c)
	if c.rec.Name != prev.Name || c.rec.ProfileName != prev.ProfileName || !bytes.Equal(c.rec.Avatar, prev.Avatar) {
		t.events = append(t.events, Event{Type: EventContact, Contact: ptr(c.view())})
	}
}

// applyOwnProfileLocked takes the avatar from the account's other device
// (the name comes as the setting "profile/name"): the newest wins.
func (n *Node) applyOwnProfileLocked(t *txn, p *payload) {
	if p.TimeMS <= n.profile.AvatarAt || (len(p.Data) > 0 && checkAvatar(p.Data) != nil) {
		return
	}
	prev := n.profile
	t.undo(func() { n.profile = prev })
	n.profile.Avatar, n.profile.AvatarAt = nil, p.TimeMS
	if len(p.Data) > 0 {
		n.profile.Avatar = p.Data
	}
	putJSON(t.b, n.tabs.identity, idProfile, &n.profile)
}

// RenameContact gives a contact a local name, which its profile names do
// not change from then on.
func (n *Node) RenameContact(oldName, newName string) (Contact, error) {
	newName, err := checkName(newName)
	if err != nil {
		return Contact{}, err
	}
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return Contact{}, ErrClosed
	}
	c, err := n.byNameLocked(oldName)
	if err != nil {
		return Contact{}, err
	}
	if other := n.lookalikeLocked(newName, c); other != nil {
		return Contact{}, fmt.Errorf("%w: %q", ErrContactExists, other.rec.Name)
	}
	prev := c.rec
	c.rec.Name, c.rec.LocalName = newName, true
	t := n.newTxnLocked()
	t.undo(func() { c.rec = prev })
	n.saveContact(t.b, c)
	if !c.rec.Request {
		n.syncContactAddLocked(t, c, now) // the other devices show the name too
	}
	t.events = append(t.events, Event{Type: EventContact, Contact: ptr(c.view())})
	n.saveSeqLocked(t)
	if err := n.commitReleasingLock(t); err != nil {
		return Contact{}, fmt.Errorf("node: store: %w", err)
	}
	return c.view(), nil
}

// VerifyScanned marks a contact verified if scanned (digits; spaces and
// other separators are ignored) is its safety number; otherwise it
// changes nothing and returns ErrSafetyMismatch.
func (n *Node) VerifyScanned(name, scanned string) (Contact, error) {
	digits := strings.Map(func(r rune) rune {
		switch {
		case r >= '0' && r <= '9':
			return r
		case r == ' ' || r == '-' || r == '\t' || r == '\n' || r == '\r':
			return -1
		}
		return 'x' // anything else: no match
	}, scanned)
	n.mu.Lock()
	c, err := n.byNameLocked(name)
	if err != nil {
		n.mu.Unlock()
		return Contact{}, err
	}
	want := safety.Number(n.cert.Account(), c.account())
	n.mu.Unlock()
	if digits != want {
		return Contact{}, fmt.Errorf("%w (%s)", ErrSafetyMismatch, name)
	}
	return n.VerifyContact(name)
}
