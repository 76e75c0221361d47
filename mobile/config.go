package mobile

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// config is the JSON an app passes to Start (docs/MOBILE.md lists every
// field).
type config struct {
	// Home is the node's directory in the app's private storage; absolute.
	Home string `json:"home"`
	// Name creates an identity with that display name when Home has none.
	Name string `json:"name,omitempty"`
	// Passphrase unlocks the store (Argon2id at the desktop's cost).
	Passphrase string `json:"passphrase,omitempty"`
	// Key is 32 random bytes in hex that the app keeps in the iOS
	// Keychain or the Android Keystore; it unlocks the store instead of
	// a passphrase, with a cheap KDF (the key needs no stretching).
	Key string `json:"key,omitempty"`
	// Relays are relay multiaddrs ending in /p2p/<id>.
	Relays []string `json:"relays,omitempty"`
	// Listen are libp2p listen multiaddrs; default node.DefaultListenAddrs.
	Listen []string `json:"listen,omitempty"`
	// Since delivers the stored events after this sequence number first
	// (the last seq the app handled); 0: only new events.
	Since uint64 `json:"since,omitempty"`
	// Offline opens the store without starting the network: Call works
	// on what is stored, Drain starts the network when it runs.
	Offline bool `json:"offline,omitempty"`
	// NoFsync skips the fsync after each commit (node.Config.NoSync).
	NoFsync bool `json:"noFsync,omitempty"`
	// MDNS turns LAN discovery on; refused on android and ios builds.
	MDNS bool `json:"mdns,omitempty"`
}

// keySize is the size of an app-held store key.
const keySize = 32

// parseConfig decodes and checks the JSON an app passed to Start. Every
// error names the field.
func parseConfig(s string) (config, error) {
	var c config
	if strings.TrimSpace(s) == "" {
		return c, errors.New("mobile: config is empty: want a JSON object with at least \"home\" and \"key\" or \"passphrase\"")
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("mobile: config: %w", err)
	}
	if dec.More() {
		return c, errors.New("mobile: config: trailing data after the JSON object")
	}
	switch {
	case c.Home == "":
		return c, errors.New("mobile: config: \"home\" is required (a directory in the app's private storage)")
	case !filepath.IsAbs(c.Home):
		return c, fmt.Errorf("mobile: config: \"home\" must be an absolute path, not %q", c.Home)
	case c.Key != "" && c.Passphrase != "":
		return c, errors.New("mobile: config: give \"key\" or \"passphrase\", not both")
	case c.Key == "" && c.Passphrase == "":
		return c, errors.New("mobile: config: \"key\" (32 random bytes in hex, kept in the Keychain or Keystore) or \"passphrase\" is required")
	case c.MDNS && !mdnsAllowed:
		return c, errors.New("mobile: config: \"mdns\" is not available on phones (LAN discovery drains the battery)")
	}
	if c.Key != "" {
		k, err := hex.DecodeString(c.Key)
		if err != nil || len(k) != keySize {
			return c, fmt.Errorf("mobile: config: \"key\" must be %d random bytes in hex (%d hex digits)", keySize, 2*keySize)
		}
	}
	return c, nil
}

// secret is what unlocks the store: the key's bytes, or the passphrase.
func (c config) secret() []byte {
	if c.Key != "" {
		k, _ := hex.DecodeString(c.Key) // checked by parseConfig
		return k
	}
	return []byte(c.Passphrase)
}
