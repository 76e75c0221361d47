package mobile

import "github.com/hushnet/hush/node"

// The Argon2id costs used when Start creates a store. A passphrase is
// stretched at the desktop's cost (node's default). A key from the
// Keychain or Keystore is 32 random bytes: stretching adds nothing, so
// the cost is the least Argon2id allows, which spares a phone 64 MiB
// and a second at each unlock.
var (
	passphraseKDF = node.KDFParams{}
	keyKDF        = node.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}
)
