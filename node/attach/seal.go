package attach

import (
	"crypto/aes"
	"crypto/cipher"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/bits"

	"github.com/hushnet/hush/crypto/stream"
)

// MinBlobSize is the smallest bucket: every blob is at least 64 KiB.
const MinBlobSize = 64 << 10

// BlobSize returns the size of the stored blob for a STREAM payload of
// encSize bytes (docs/protocol/files.md §19.5): at least 64 KiB, and
// above that encSize rounded up by Padmé (Nikitin et al., "Reducing
// Metadata Leakage from Encrypted Files and Communication with PURBs",
// PETS 2019): a size of E+1 significant bits keeps its top
// ⌊log2 E⌋+1 bits, so a relay learns O(log log size) bits of it, for at
// most 12 % of padding (3 % at 64 KiB, 3 % at 1 GiB). It returns -1 for
// a negative size or one whose bucket would not fit an int64.
func BlobSize(encSize int64) int64 {
	switch {
	case encSize < 0 || encSize > 1<<62:
		return -1
	case encSize <= MinBlobSize:
		return MinBlobSize
	}
	l := uint64(encSize)
	e := bits.Len64(l) - 1          // ⌊log2 l⌋
	keep := bits.Len64(uint64(e))   // ⌊log2 e⌋ + 1
	mask := uint64(1)<<(e-keep) - 1 // the low bits rounded up
	return int64((l + mask) &^ mask)
}

// ErrSizeChanged is wrapped by Seal's error when the source yields more
// or fewer bytes than the size it was given: the file changed while it
// was being sent.
var ErrSizeChanged = errors.New("attach: file changed while being read")

// ErrTooLarge is returned for a file over MaxSize.
var ErrTooLarge = errors.New("attach: file too large")

// Sealed describes a blob written by Seal.
type Sealed struct {
	Key      [KeySize]byte  // the fresh file key
	Hash     [HashSize]byte // SHA-256 of the blob, padding included
	Size     int64          // plaintext bytes
	EncSize  int64          // STREAM payload bytes
	BlobSize int64          // blob bytes written to dst
}

// Pointer returns a Pointer with the key, sizes and hash of s; the caller
// adds the name, type, thumbnail and sources.
func (s *Sealed) Pointer() *Pointer {
	return &Pointer{Key: s.Key, Hash: s.Hash, Size: s.Size, EncSize: s.EncSize, BlobSize: s.BlobSize}
}

// Seal encrypts the size bytes of src under a fresh random file key with
// STREAM into dst, then pads the blob to its bucket (BlobSize) with
// pseudo-random bytes, hashing everything it writes. It streams: memory
// stays flat whatever the size. rand supplies the key and the padding
// seed (nil: crypto/rand); the STREAM nonce always comes from crypto/rand.
//
// If src ends before size bytes or has bytes after them, Seal fails with
// an error wrapping ErrSizeChanged; dst then holds a partial blob, which
// the caller discards.
func Seal(dst io.Writer, src io.Reader, size int64, rand io.Reader) (*Sealed, error) {
	if size < 0 {
		return nil, fmt.Errorf("attach: negative size %d", size)
	}
	if size > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, size, int64(MaxSize))
	}
	if rand == nil {
		rand = cryptorand.Reader
	}
	s := &Sealed{Size: size, EncSize: stream.EncryptedSize(size)}
	s.BlobSize = BlobSize(s.EncSize)
	if _, err := io.ReadFull(rand, s.Key[:]); err != nil {
		return nil, fmt.Errorf("attach: drawing the file key: %w", err)
	}
	h := sha256.New()
	cw := &countWriter{w: dst, h: h}
	enc, err := stream.NewWriter(cw, s.Key[:])
	if err != nil {
		return nil, err
	}
	buf := make([]byte, stream.ChunkSize)
	n, err := io.CopyBuffer(onlyWriter{enc}, io.LimitReader(src, size), buf)
	if err != nil {
		return nil, fmt.Errorf("attach: sealing: %w", err)
	}
	if n < size {
		return nil, fmt.Errorf("%w: read %d bytes, expected %d", ErrSizeChanged, n, size)
	}
	switch m, err := io.ReadFull(src, buf[:1]); {
	case m > 0:
		return nil, fmt.Errorf("%w: more than the expected %d bytes", ErrSizeChanged, size)
	case err != io.EOF:
		return nil, fmt.Errorf("attach: reading the end of the file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("attach: sealing: %w", err)
	}
	if cw.n != s.EncSize {
		return nil, fmt.Errorf("attach: sealing: wrote %d payload bytes, expected %d", cw.n, s.EncSize)
	}
	if err := writePadding(cw, s.BlobSize-s.EncSize, rand, buf); err != nil {
		return nil, err
	}
	h.Sum(s.Hash[:0])
	return s, nil
}

// writePadding writes n pseudo-random bytes to w: an AES-256-CTR keystream
// under a key drawn from rand, indistinguishable from ciphertext to
// whoever stores the blob, and far faster than drawing n bytes from rand.
func writePadding(w io.Writer, n int64, rand io.Reader, buf []byte) error {
	var seed [32 + aes.BlockSize]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return fmt.Errorf("attach: drawing the padding seed: %w", err)
	}
	block, err := aes.NewCipher(seed[:32])
	if err != nil {
		return err
	}
	ctr := cipher.NewCTR(block, seed[32:])
	clear(buf)
	for n > 0 {
		chunk := buf[:min(int64(len(buf)), n)]
		ctr.XORKeyStream(chunk, chunk)
		if _, err := w.Write(chunk); err != nil {
			return fmt.Errorf("attach: writing padding: %w", err)
		}
		clear(chunk)
		n -= int64(len(chunk))
	}
	return nil
}

// countWriter counts and hashes what it passes to w.
type countWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}

// onlyWriter hides every method but Write, so io.CopyBuffer uses the
// buffer it is given.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }
