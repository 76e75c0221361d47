package store

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/suite"
)

// File names inside the store directory.
const (
	keyringFile = "keyring"   // the wrapped data key
	keyFile     = "store.key" // the wrapping key when there is no passphrase
	dbDir       = "db"        // the goleveldb directory
)

// Keyring format constants (docs/protocol/store.md §11.2).
const (
	keyringVersion byte = 0x01

	kdfKeyFile  byte = 0x00 // KEK is the 32 random bytes in store.key
	kdfArgon2id byte = 0x01 // KEK = Argon2id(passphrase, salt, t, m, p, 32)

	saltSize       = 16
	dekSize        = suite.KeySize
	wrappedDEKSize = dekSize + suite.TagSize
	// keyringHeaderSize is everything before the nonce: version, kdf,
	// salt, t, m, p. All of it is the AEAD's associated data.
	keyringHeaderSize = 1 + 1 + saltSize + 4 + 4 + 1
	keyringSize       = keyringHeaderSize + suite.NonceSizeX + wrappedDEKSize

	labelKeyring = "hush/v1/keyring"
)

// Bounds on Argon2id parameters read from a keyring, so an edited keyring
// cannot make Open spin or allocate without limit.
const (
	maxKDFTime      = 64
	maxKDFMemoryKiB = 4 << 20 // 4 GiB
)

// KDFParams are Argon2id parameters (RFC 9106). The zero value means the
// defaults, RFC 9106 §4's second recommended option.
type KDFParams struct {
	// Time is the number of passes. Default 3.
	Time uint32
	// MemoryKiB is the memory cost in KiB. Default 65536 (64 MiB).
	MemoryKiB uint32
	// Threads is the degree of parallelism. Default 4.
	Threads uint8
}

// DefaultKDF is RFC 9106 §4's second recommended Argon2id option.
var DefaultKDF = KDFParams{Time: 3, MemoryKiB: 64 << 10, Threads: 4}

func (p KDFParams) withDefaults() KDFParams {
	if p.Time == 0 {
		p.Time = DefaultKDF.Time
	}
	if p.MemoryKiB == 0 {
		p.MemoryKiB = DefaultKDF.MemoryKiB
	}
	if p.Threads == 0 {
		p.Threads = DefaultKDF.Threads
	}
	return p
}

func (p KDFParams) validate() error {
	switch {
	case p.Time < 1 || p.Time > maxKDFTime:
		return fmt.Errorf("argon2id time %d outside 1..%d", p.Time, maxKDFTime)
	case p.Threads < 1:
		return errors.New("argon2id threads must be at least 1")
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxKDFMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB outside %d..%d", p.MemoryKiB, 8*uint32(p.Threads), maxKDFMemoryKiB)
	}
	return nil
}

// keyring is the decoded keyring file.
type keyring struct {
	kdf     byte
	salt    [saltSize]byte
	params  KDFParams // zero for kdfKeyFile
	nonce   [suite.NonceSizeX]byte
	wrapped [wrappedDEKSize]byte
}

// header returns the encoded fields before the nonce: the AEAD associated
// data suffix, so changing any KDF parameter makes unwrapping fail.
func (k *keyring) header() []byte {
	w := codec.NewWriter(keyringHeaderSize)
	w.U8(keyringVersion)
	w.U8(k.kdf)
	w.Fixed(k.salt[:])
	w.U32(k.params.Time)
	w.U32(k.params.MemoryKiB)
	w.U8(k.params.Threads)
	return w.Bytes()
}

func (k *keyring) ad() []byte {
	return append([]byte(labelKeyring), k.header()...)
}

func (k *keyring) encode() []byte {
	w := codec.NewWriter(keyringSize)
	w.Fixed(k.header())
	w.Fixed(k.nonce[:])
	w.Fixed(k.wrapped[:])
	return w.Bytes()
}

// decodeKeyring parses a keyring file. It checks the version, the KDF id
// and the parameter bounds, and rejects trailing bytes.
func decodeKeyring(b []byte) (*keyring, error) {
	if len(b) != keyringSize {
		return nil, fmt.Errorf("%w: keyring is %d bytes, want %d", ErrCorrupt, len(b), keyringSize)
	}
	r := codec.NewReader(b)
	k := new(keyring)
	if v := r.U8(); v != keyringVersion {
		return nil, fmt.Errorf("%w: keyring format version %d not supported", ErrCorrupt, v)
	}
	k.kdf = r.U8()
	copy(k.salt[:], r.Fixed(saltSize))
	k.params.Time = r.U32()
	k.params.MemoryKiB = r.U32()
	k.params.Threads = r.U8()
	copy(k.nonce[:], r.Fixed(suite.NonceSizeX))
	copy(k.wrapped[:], r.Fixed(wrappedDEKSize))
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: keyring: %v", ErrCorrupt, err)
	}
	switch k.kdf {
	case kdfKeyFile:
		if k.params != (KDFParams{}) || k.salt != [saltSize]byte{} {
			return nil, fmt.Errorf("%w: keyring: key-file mode with KDF parameters", ErrCorrupt)
		}
	case kdfArgon2id:
		if err := k.params.validate(); err != nil {
			return nil, fmt.Errorf("%w: keyring: %v", ErrCorrupt, err)
		}
	default:
		return nil, fmt.Errorf("%w: keyring: unknown kdf 0x%02x", ErrCorrupt, k.kdf)
	}
	return k, nil
}

// deriveKEK runs Argon2id over the passphrase with the keyring's salt and
// parameters.
func deriveKEK(passphrase []byte, k *keyring) []byte {
	p := k.params
	return argon2.IDKey(passphrase, k.salt[:], p.Time, p.MemoryKiB, p.Threads, dekSize)
}

// wrap seals dek under kek into k, with a fresh nonce.
func (k *keyring) wrap(kek, dek []byte) {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		panic("store: KEK must be 32 bytes")
	}
	rand.Read(k.nonce[:])
	aead.Seal(k.wrapped[:0], k.nonce[:], dek, k.ad())
}

// unwrap opens the DEK; any failure is ErrWrongPassphrase, since a wrong
// passphrase and an edited keyring cannot be told apart.
func (k *keyring) unwrap(kek []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	dek, err := aead.Open(nil, k.nonce[:], k.wrapped[:], k.ad())
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	return dek, nil
}

// newKeyring wraps dek for the given passphrase (empty: key-file mode,
// with kek the key-file contents).
func newKeyring(passphrase, keyFileKEK, dek []byte, params KDFParams) *keyring {
	k := new(keyring)
	if len(passphrase) == 0 {
		k.kdf = kdfKeyFile
		k.wrap(keyFileKEK, dek)
		return k
	}
	k.kdf = kdfArgon2id
	k.params = params
	rand.Read(k.salt[:])
	kek := deriveKEK(passphrase, k)
	k.wrap(kek, dek)
	clear(kek)
	return k
}

// writeFileAtomic writes data to dir/name through a temporary file, fsync
// and rename, then fsyncs the directory, so a crash leaves either the old
// or the new file, never a torn one.
func writeFileAtomic(dir, name string, data []byte, perm fs.FileMode) error {
	tmp, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // no-op after a successful rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmpName, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	// Some platforms cannot fsync a directory; the rename is still atomic.
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// readKeyFile reads the 32-byte key-file KEK. Like ssh with a private
// key, it refuses a key file that other users may read or write: the
// key in it opens the whole store.
func readKeyFile(dir string) ([]byte, error) {
	path := filepath.Join(dir, keyFile)
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, so other users can read the key that opens the store; run: chmod 600 %s",
			ErrKeyFileExposed, path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: store has no passphrase but %s is missing", ErrCorrupt, keyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("store: read %s: %w", keyFile, err)
	}
	if len(b) != dekSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, want %d", ErrCorrupt, keyFile, len(b), dekSize)
	}
	return b, nil
}

// loadDEK unwraps the data key from an existing keyring.
func loadDEK(dir string, k *keyring, passphrase []byte) ([]byte, error) {
	switch k.kdf {
	case kdfKeyFile:
		if len(passphrase) != 0 {
			return nil, ErrNotProtected
		}
		kek, err := readKeyFile(dir)
		if err != nil {
			return nil, err
		}
		dek, err := k.unwrap(kek)
		if err != nil {
			return nil, fmt.Errorf("%w: %s does not open the keyring", ErrCorrupt, keyFile)
		}
		return dek, nil
	default:
		if len(passphrase) == 0 {
			return nil, ErrPassphraseRequired
		}
		kek := deriveKEK(passphrase, k)
		defer clear(kek)
		return k.unwrap(kek)
	}
}

// readKeyring returns the decoded keyring, or nil if there is none.
func readKeyring(dir string) (*keyring, error) {
	b, err := os.ReadFile(filepath.Join(dir, keyringFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read keyring: %w", err)
	}
	return decodeKeyring(b)
}

// installKeyring makes k the store's keyring. In key-file mode kek is
// written to store.key first; in passphrase mode an old store.key is
// removed after the new keyring is durable.
func installKeyring(dir string, k *keyring, keyFileKEK []byte) error {
	if k.kdf == kdfKeyFile {
		if err := writeFileAtomic(dir, keyFile, keyFileKEK, 0o600); err != nil {
			return fmt.Errorf("store: write %s: %w", keyFile, err)
		}
	}
	if err := writeFileAtomic(dir, keyringFile, k.encode(), 0o600); err != nil {
		return fmt.Errorf("store: write keyring: %w", err)
	}
	if k.kdf != kdfKeyFile {
		err := os.Remove(filepath.Join(dir, keyFile))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("store: remove %s: %w", keyFile, err)
		}
		if err == nil {
			return syncDir(dir)
		}
	}
	return nil
}
