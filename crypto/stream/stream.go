// Package stream encrypts large payloads (file attachments, transfers) in
// authenticated 64 KiB chunks, byte for byte compatible with the payload
// format of age (https://age-encryption.org/v1, "Payload"), which is a
// variant of the STREAM construction (Hoang, Reyhanitabar, Rogaway,
// Vizár, 2015).
//
// A payload is a 16-byte random nonce followed by chunks. The payload key is
// HKDF-SHA-256(ikm = file key, salt = nonce, info = "payload"), 32 bytes.
// Each chunk is at most 64 KiB of plaintext sealed with ChaCha20-Poly1305
// under the nonce counter(11 bytes, big endian) ‖ flag, where flag is 0x01
// for the final chunk and 0x00 otherwise. Only the final chunk may be
// shorter than 64 KiB, and it may be empty only when the whole plaintext is
// empty. Truncation, reordering, duplication and appended data are all
// detected.
//
// NewWriter and NewReader process a payload sequentially; NewReaderAt
// decrypts any range of a stored payload, so an interrupted transfer can
// resume at any offset; an Opener authenticates one chunk held in memory,
// for a receiver that checks each chunk as it arrives.
package stream

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/hushnet/hush/crypto/suite"
)

// Sizes of the payload format.
const (
	ChunkSize = 64 * 1024                  // plaintext bytes per full chunk
	NonceSize = 16                         // payload nonce at the start
	TagSize   = chacha20poly1305.Overhead  // Poly1305 tag per chunk
	encChunk  = ChunkSize + TagSize        // bytes of a full sealed chunk
	nonceLen  = chacha20poly1305.NonceSize // 12-byte per-chunk AEAD nonce
	keyLen    = chacha20poly1305.KeySize   // 32-byte payload key
	lastFlag  = 0x01                       // last byte of the final chunk's nonce
)

// labelPayload is the HKDF info for the payload key. It is age's label,
// not a hush/v1/ one, so that payloads stay byte-compatible with age and
// the C2SP CCTV vectors apply unchanged; separation from other hush keys
// comes from the file key, which is random per payload.
const labelPayload = "payload"

// Errors. ErrDecrypt is the single error for any chunk that fails
// authentication; the others describe the payload's framing.
var (
	ErrDecrypt      = errors.New("stream: payload authentication failed")
	ErrTruncated    = errors.New("stream: payload truncated")
	ErrTrailingData = errors.New("stream: data after the final chunk")
	ErrInvalidSize  = errors.New("stream: impossible payload size")
	ErrKeySize      = errors.New("stream: file key must be 16 or 32 bytes")
	ErrClosed       = errors.New("stream: writer already closed")
)

// payloadAEAD derives the payload key from the file key and the payload
// nonce and returns the ChaCha20-Poly1305 instance for the chunks.
func payloadAEAD(fileKey, nonce []byte) (cipher.AEAD, error) {
	if len(fileKey) != 16 && len(fileKey) != 32 {
		return nil, ErrKeySize
	}
	key := suite.HKDF(fileKey, nonce, labelPayload, keyLen)
	return chacha20poly1305.New(key)
}

// chunkNonce returns the AEAD nonce of chunk i: 11-byte big-endian counter
// then the final-chunk flag. Counters above 2^63 are never reached because
// sizes are int64.
func chunkNonce(i uint64, last bool) [nonceLen]byte {
	var n [nonceLen]byte
	binary.BigEndian.PutUint64(n[3:11], i)
	if last {
		n[11] = lastFlag
	}
	return n
}

// EncryptedSize returns the payload size (nonce and tags included) for a
// plaintext of plaintextSize bytes, or -1 if plaintextSize is negative or
// the result would not fit an int64.
func EncryptedSize(plaintextSize int64) int64 {
	if plaintextSize < 0 {
		return -1
	}
	chunks := plaintextSize / ChunkSize
	if plaintextSize%ChunkSize != 0 || plaintextSize == 0 {
		chunks++
	}
	overhead := NonceSize + chunks*TagSize
	if plaintextSize > math.MaxInt64-overhead {
		return -1
	}
	return plaintextSize + overhead
}

// PlaintextSize returns the plaintext size of a payload of encryptedSize
// bytes (nonce and tags included). It returns ErrInvalidSize for a size no
// well-formed payload has: shorter than a nonce and one tag, or with a
// final chunk that holds only a tag after full chunks.
func PlaintextSize(encryptedSize int64) (int64, error) {
	_, pt, err := layout(encryptedSize)
	return pt, err
}

// layout returns the chunk count and plaintext size for a payload size.
func layout(encryptedSize int64) (chunks, plaintext int64, err error) {
	if encryptedSize < NonceSize+TagSize {
		return 0, 0, fmt.Errorf("%w: %d bytes", ErrInvalidSize, encryptedSize)
	}
	e := encryptedSize - NonceSize
	chunks = e / encChunk
	if e%encChunk != 0 {
		chunks++
	}
	plaintext = e - chunks*TagSize
	want := plaintext / ChunkSize
	if plaintext%ChunkSize != 0 || plaintext == 0 {
		want++
	}
	if plaintext < 0 || want != chunks {
		return 0, 0, fmt.Errorf("%w: %d bytes", ErrInvalidSize, encryptedSize)
	}
	return chunks, plaintext, nil
}

// ---- Writer -----------------------------------------------------------------

type writer struct {
	dst   io.Writer
	nonce []byte // payload nonce, written before the first chunk
	aead  cipher.AEAD
	buf   []byte // pending plaintext, len <= ChunkSize, cap encChunk
	count uint64 // index of the next chunk
	err   error  // sticky: a write error or ErrClosed
}

// NewWriter returns a WriteCloser that encrypts everything written to it
// under fileKey (16 or 32 bytes) and writes the payload to dst: a fresh
// random nonce, then the chunks. A chunk is written once it is full and
// more data follows; Close writes the final chunk and must be called. Close
// does not close dst. NewWriter itself writes nothing.
func NewWriter(dst io.Writer, fileKey []byte) (io.WriteCloser, error) {
	nonce := make([]byte, NonceSize)
	rand.Read(nonce)
	return newWriter(dst, fileKey, nonce)
}

// newWriter is NewWriter with a given nonce, for test vectors.
func newWriter(dst io.Writer, fileKey, nonce []byte) (*writer, error) {
	aead, err := payloadAEAD(fileKey, nonce)
	if err != nil {
		return nil, err
	}
	return &writer{dst: dst, nonce: nonce, aead: aead, buf: make([]byte, 0, encChunk)}, nil
}

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	total := len(p)
	for len(p) > 0 {
		if len(w.buf) == ChunkSize {
			// Full and more data follows, so this chunk is not the last.
			if err := w.flush(false); err != nil {
				return total - len(p), err
			}
		}
		n := min(len(p), ChunkSize-len(w.buf))
		w.buf = append(w.buf, p[:n]...)
		p = p[n:]
	}
	return total, nil
}

// Close seals and writes the final chunk. Later calls return ErrClosed.
func (w *writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if err := w.flush(true); err != nil {
		return err
	}
	w.err = ErrClosed
	return nil
}

func (w *writer) flush(last bool) error {
	if w.nonce != nil {
		if _, err := w.dst.Write(w.nonce); err != nil {
			w.err = fmt.Errorf("stream: writing payload nonce: %w", err)
			return w.err
		}
		w.nonce = nil
	}
	n := chunkNonce(w.count, last)
	sealed := w.aead.Seal(w.buf[:0], n[:], w.buf, nil)
	w.count++
	w.buf = w.buf[:0]
	if _, err := w.dst.Write(sealed); err != nil {
		w.err = fmt.Errorf("stream: writing chunk: %w", err)
		return w.err
	}
	return nil
}

// ---- Reader -------------------------------------------------------------------

type reader struct {
	src     io.Reader
	fileKey []byte
	aead    cipher.AEAD // nil until the nonce is read
	buf     []byte      // one sealed chunk
	out     []byte      // its plaintext; separate because a failed Open zeroes dst
	unread  []byte      // authenticated plaintext not yet returned
	count   uint64      // index of the next chunk
	err     error       // sticky: io.EOF after the final chunk, or a failure
}

// NewReader returns a Reader that decrypts the payload read from src with
// fileKey (16 or 32 bytes). It returns only plaintext from chunks that
// authenticated; once the payload ends it returns io.EOF, and after any
// failure it keeps returning that error: ErrDecrypt for a chunk that fails
// authentication, ErrTruncated when the nonce, a tag or the final chunk is
// missing, ErrTrailingData when bytes follow the final chunk (the final
// chunk's plaintext has then already been returned), or a wrapped read
// error from src. NewReader reads nothing from src.
func NewReader(src io.Reader, fileKey []byte) (io.Reader, error) {
	if len(fileKey) != 16 && len(fileKey) != 32 {
		return nil, ErrKeySize
	}
	return &reader{src: src, fileKey: append([]byte(nil), fileKey...)}, nil
}

func (r *reader) Read(p []byte) (int, error) {
	if len(r.unread) > 0 {
		n := copy(p, r.unread)
		r.unread = r.unread[n:]
		return n, nil
	}
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.aead == nil {
		if err := r.start(); err != nil {
			r.err = err
			return 0, err
		}
	}
	last, err := r.readChunk()
	if err != nil {
		r.err = err
		return 0, err
	}
	if last {
		r.err = r.checkEnd()
	}
	n := copy(p, r.unread)
	r.unread = r.unread[n:]
	return n, nil
}

func (r *reader) start() error {
	nonce := make([]byte, NonceSize)
	if _, err := io.ReadFull(r.src, nonce); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("%w: missing nonce", ErrTruncated)
		}
		return fmt.Errorf("stream: reading payload nonce: %w", err)
	}
	aead, err := payloadAEAD(r.fileKey, nonce)
	if err != nil {
		return err
	}
	r.aead = aead
	r.buf = make([]byte, encChunk)
	r.out = make([]byte, 0, encChunk)
	return nil
}

// readChunk reads, authenticates and decrypts the next chunk into
// r.unread, reporting whether it was the final one.
func (r *reader) readChunk() (last bool, err error) {
	n, err := io.ReadFull(r.src, r.buf)
	in := r.buf[:n]
	switch {
	case err == io.EOF:
		return false, fmt.Errorf("%w: no final chunk", ErrTruncated)
	case err == io.ErrUnexpectedEOF:
		// A short chunk can only be the final one.
		last = true
		if n < TagSize {
			return false, fmt.Errorf("%w: chunk %d shorter than a tag", ErrTruncated, r.count)
		}
		if n == TagSize && r.count > 0 {
			return false, fmt.Errorf("%w: empty final chunk after data", ErrDecrypt)
		}
	case err != nil:
		return false, fmt.Errorf("stream: reading chunk: %w", err)
	}
	nonce := chunkNonce(r.count, last)
	out, err := r.aead.Open(r.out[:0], nonce[:], in, nil)
	if err != nil && !last {
		// A full-size chunk may be the final one.
		last = true
		nonce = chunkNonce(r.count, true)
		out, err = r.aead.Open(r.out[:0], nonce[:], in, nil)
	}
	if err != nil {
		return false, ErrDecrypt
	}
	r.count++
	r.unread = out
	return last, nil
}

// checkEnd returns io.EOF if src is exhausted after the final chunk.
func (r *reader) checkEnd() error {
	var one [1]byte
	n, err := io.ReadFull(r.src, one[:])
	switch {
	case n > 0:
		return ErrTrailingData
	case err == io.EOF:
		return io.EOF
	default:
		return fmt.Errorf("stream: reading after final chunk: %w", err)
	}
}

// ---- ReaderAt -------------------------------------------------------------------

// ---- Opener -------------------------------------------------------------------

// Opener authenticates and decrypts the chunks of one payload of a known
// size, one chunk at a time, from bytes the caller holds, in any order.
// Each chunk is opened with its own index and with the final-chunk flag
// exactly when it is the last chunk the size implies, as ReaderAt does, so
// a chunk from another position or another payload, a short or long chunk
// and a final chunk where the size says there is none all fail. An Opener
// is safe for concurrent use.
type Opener struct {
	aead    cipher.AEAD
	encSize int64 // payload size, nonce included
	size    int64 // plaintext size
	chunks  int64
}

// NewOpener returns an Opener for the payload of encryptedSize bytes whose
// first NonceSize bytes are nonce, under fileKey (16 or 32 bytes). It
// fails with ErrInvalidSize if encryptedSize is impossible, ErrKeySize, or
// ErrTruncated if nonce is not NonceSize bytes. It authenticates nothing:
// only Open does.
func NewOpener(fileKey, nonce []byte, encryptedSize int64) (*Opener, error) {
	if len(fileKey) != 16 && len(fileKey) != 32 {
		return nil, ErrKeySize
	}
	chunks, size, err := layout(encryptedSize)
	if err != nil {
		return nil, err
	}
	if len(nonce) != NonceSize {
		return nil, fmt.Errorf("%w: nonce of %d bytes", ErrTruncated, len(nonce))
	}
	aead, err := payloadAEAD(fileKey, nonce)
	if err != nil {
		return nil, err
	}
	return &Opener{aead: aead, encSize: encryptedSize, size: size, chunks: chunks}, nil
}

// Chunks returns the number of chunks in the payload.
func (o *Opener) Chunks() int64 { return o.chunks }

// Size returns the plaintext size the payload's size implies.
func (o *Opener) Size() int64 { return o.size }

// ChunkRange returns where sealed chunk i lies in the payload: its offset
// (the nonce comes first) and its size, tag included. It panics if i is
// not in [0, Chunks()).
func (o *Opener) ChunkRange(i int64) (off, n int64) {
	if i < 0 || i >= o.chunks {
		panic(fmt.Sprintf("stream: chunk %d of %d", i, o.chunks))
	}
	off = NonceSize + i*encChunk
	return off, min(int64(encChunk), o.encSize-off)
}

// Open authenticates sealed, which must be exactly chunk i as ChunkRange
// gives it, and appends its plaintext to dst. It returns ErrDecrypt if the
// chunk does not authenticate at that index and finality, ErrTruncated or
// ErrTrailingData if sealed is shorter or longer than chunk i, and an
// error for an index out of range. As with cipher.AEAD, dst may be
// sealed[:0] to decrypt in place; sealed is then overwritten even on
// failure.
func (o *Opener) Open(dst, sealed []byte, i int64) ([]byte, error) {
	if i < 0 || i >= o.chunks {
		return nil, fmt.Errorf("%w: no chunk %d in %d", ErrInvalidSize, i, o.chunks)
	}
	_, n := o.ChunkRange(i)
	switch {
	case int64(len(sealed)) < n:
		return nil, fmt.Errorf("%w: chunk %d has %d of %d bytes", ErrTruncated, i, len(sealed), n)
	case int64(len(sealed)) > n:
		return nil, fmt.Errorf("%w: chunk %d has %d bytes, %d expected", ErrTrailingData, i, len(sealed), n)
	}
	nonce := chunkNonce(uint64(i), i == o.chunks-1)
	out, err := o.aead.Open(dst, nonce[:], sealed, nil)
	if err != nil {
		return nil, ErrDecrypt
	}
	return out, nil
}

// ---- ReaderAt -------------------------------------------------------------------

// ReaderAt decrypts arbitrary ranges of a stored payload. It is safe for
// concurrent use, as io.ReaderAt requires.
type ReaderAt struct {
	src   io.ReaderAt
	o     *Opener
	size  int64                       // plaintext size
	cache atomic.Pointer[cachedChunk] // last chunk decrypted
}

type cachedChunk struct {
	index int64
	data  []byte // immutable once stored
}

// NewReaderAt returns a ReaderAt over the plaintext of the payload held in
// the first encryptedSize bytes of src. It reads the nonce and
// authenticates the final chunk first, so Size is trustworthy before any
// data is returned; it fails with ErrInvalidSize if encryptedSize is
// impossible, ErrDecrypt if the final chunk does not authenticate (for
// example because the payload was truncated or extended at a chunk
// boundary), or a wrapped read error. Bytes of src beyond encryptedSize are
// never read: the caller decides where the payload ends.
func NewReaderAt(src io.ReaderAt, encryptedSize int64, fileKey []byte) (*ReaderAt, error) {
	if len(fileKey) != 16 && len(fileKey) != 32 {
		return nil, ErrKeySize
	}
	if _, _, err := layout(encryptedSize); err != nil {
		return nil, err
	}
	nonce := make([]byte, NonceSize)
	if err := readFullAt(src, nonce, 0); err != nil {
		return nil, fmt.Errorf("stream: reading payload nonce: %w", err)
	}
	o, err := NewOpener(fileKey, nonce, encryptedSize)
	if err != nil {
		return nil, err
	}
	ra := &ReaderAt{src: src, o: o, size: o.Size()}
	if _, err := ra.chunk(o.Chunks() - 1); err != nil {
		return nil, err
	}
	return ra, nil
}

// Size returns the plaintext size.
func (ra *ReaderAt) Size() int64 { return ra.size }

// ReadAt reads len(p) plaintext bytes at off. It returns io.EOF when fewer
// bytes remain, ErrDecrypt if a chunk it needs fails authentication.
func (ra *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("stream: negative offset")
	}
	if off > ra.size || (off == ra.size && len(p) > 0) {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off < ra.size {
		data, err := ra.chunk(off / ChunkSize)
		if err != nil {
			return n, err
		}
		c := copy(p[n:], data[off%ChunkSize:])
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// chunk returns the authenticated plaintext of chunk i.
func (ra *ReaderAt) chunk(i int64) ([]byte, error) {
	if c := ra.cache.Load(); c != nil && c.index == i {
		return c.data, nil
	}
	off, size := ra.o.ChunkRange(i)
	buf := make([]byte, size)
	if err := readFullAt(ra.src, buf, off); err != nil {
		return nil, fmt.Errorf("stream: reading chunk %d: %w", i, err)
	}
	data, err := ra.o.Open(buf[:0], buf, i)
	if err != nil {
		return nil, err
	}
	ra.cache.Store(&cachedChunk{index: i, data: data})
	return data, nil
}

// readFullAt reads exactly len(p) bytes at off, accepting the io.EOF an
// io.ReaderAt may return together with the last bytes.
func readFullAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	switch {
	case n == len(p):
		return nil
	case err == nil || errors.Is(err, io.EOF):
		return io.ErrUnexpectedEOF
	default:
		return err
	}
}
