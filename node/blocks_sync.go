package node

// Blocks on every device of the account (docs/protocol/addresses.md
// §20.6, sync.md §18.5): a block or unblock is the synced setting
// "block/ACCOUNT" (the account ID in lower-case base32), whose value is
// the contact's name when it was blocked, empty once unblocked. The
// setting is last-writer-wins by its clock like every setting, so a
// block and an unblock made on two devices at once end the same way on
// both; the history transfer carries it to a new device.

import (
	"strings"
	"time"

	"github.com/hushnet/hush/crypto/identity"
	msync "github.com/hushnet/hush/sync"
)

// settingBlockPrefix starts the synced setting of an account's block
// (8 + 52 characters: within a setting key's 64).
const settingBlockPrefix = "block/"

func blockSettingKey(acc identity.AccountID) string {
	return settingBlockPrefix + strings.ToLower(timerB32.EncodeToString(acc[:]))
}

// blockSettingAccount is blockSettingKey's inverse.
func blockSettingAccount(key string) (identity.AccountID, bool) {
	b, err := timerB32.DecodeString(strings.ToUpper(strings.TrimPrefix(key, settingBlockPrefix)))
	if err != nil || len(b) != identity.AccountIDSize {
		return identity.AccountID{}, false
	}
	return identity.AccountID(b), true
}

// syncBlockLocked tells the account's other devices, in t, that acc is
// blocked (name set) or unblocked (name empty).
func (n *Node) syncBlockLocked(t *txn, acc identity.AccountID, name string, now time.Time) {
	n.syncLocalLocked(t, &msync.Setting{Key: blockSettingKey(acc), Clock: n.tickLocked(t, now), Value: []byte(name)}, now)
}

// applyBlockSettingLocked takes a block or unblock made on another
// device of the account, if it is newer than the one held.
func (n *Node) applyBlockSettingLocked(t *txn, s *msync.Setting, now time.Time) (bool, error) {
	n.observeClockLocked(t, s.Clock)
	acc, ok := blockSettingAccount(s.Key)
	if !ok || acc == n.cert.Account() {
		return false, nil
	}
	if newer, err := n.keepNewerSettingLocked(t, s); !newer || err != nil {
		return false, err
	}
	if len(s.Value) == 0 {
		n.unblockLocked(t, acc)
		return true, nil
	}
	name, err := checkName(string(s.Value))
	if err != nil {
		name = "blocked account"
	}
	if c := n.contacts[acc]; c != nil {
		name = c.rec.Name
	}
	n.blockLocked(t, acc, name, now)
	return true, nil
}

// blockSettingsLocked lists the block settings a history transfer
// carries: those stored, and one for each block made before blocks were
// synced (its clock the lowest, so any later change wins).
func (n *Node) blockSettingsLocked(stored map[string]*msync.Setting) []*msync.Setting {
	var out []*msync.Setting
	for key, s := range stored {
		if strings.HasPrefix(key, settingBlockPrefix) {
			out = append(out, s)
		}
	}
	for acc, rec := range n.blocks {
		if stored[blockSettingKey(acc)] == nil {
			name := rec.Name
			if _, err := checkName(name); err != nil {
				name = "blocked account"
			}
			out = append(out, &msync.Setting{Key: blockSettingKey(acc), Clock: derivedClock(1, n.cert.DeviceID()), Value: []byte(name)})
		}
	}
	return out
}
