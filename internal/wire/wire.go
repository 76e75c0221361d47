// Package wire frames the messages hush exchanges on its libp2p streams
// (/hush/msg/1, /hush/mailbox/1, /hush/sync/1, /hush/file/1).
//
// A frame is a big-endian uint32 length followed by that many payload
// bytes. Readers state a maximum frame size and the declared length is
// checked against it before any buffer is allocated; below the cap the
// payload is read incrementally, its buffer growing only as bytes arrive,
// so a peer that declares a large frame and sends little commits little
// memory (at most twice what it sent, and at least readChunk). A payload
// usually starts with a one-byte message Kind (EncodeMessage,
// DecodeMessage); the body is encoded with crypto/codec by the protocol
// that owns it.
//
// The format is specified in docs/protocol/wire.md.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame limits.
const (
	// HeaderSize is the size of the length prefix.
	HeaderSize = 4
	// DefaultMaxFrame is the cap ReadFrame and FrameReader use when the
	// caller passes max <= 0: 1 MiB, the same as GossipSub's default
	// message size. Protocols with larger units (file chunks) state their
	// own cap.
	DefaultMaxFrame = 1 << 20
	// MaxFrame is the largest payload WriteFrame will send and the largest
	// cap a reader may ask for: 16 MiB. Anything larger is a bug, not a
	// message.
	MaxFrame = 16 << 20
)

// Sentinel errors. ErrTruncated wraps io.ErrUnexpectedEOF, so callers that
// only know the io conventions still recognise a cut stream.
var (
	ErrFrameTooLarge = errors.New("wire: frame larger than limit")
	ErrTruncated     = fmt.Errorf("wire: truncated frame: %w", io.ErrUnexpectedEOF)
	ErrEmptyMessage  = errors.New("wire: empty message")
	ErrUnknownKind   = errors.New("wire: unknown message kind")
)

// clampMax maps a caller's max to the effective cap.
func clampMax(max int) int {
	if max <= 0 {
		return DefaultMaxFrame
	}
	if max > MaxFrame {
		return MaxFrame
	}
	return max
}

// AppendFrame appends the frame for payload (length prefix then payload)
// to dst and returns the extended slice. It returns ErrFrameTooLarge if
// payload is longer than MaxFrame.
func AppendFrame(dst, payload []byte) ([]byte, error) {
	if len(payload) > MaxFrame {
		return dst, fmt.Errorf("%w: payload of %d bytes, limit %d", ErrFrameTooLarge, len(payload), MaxFrame)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...), nil
}

// PutHeader writes the length prefix of a frame of size payload bytes
// into dst[:HeaderSize], for a writer that reads the payload straight
// into dst[HeaderSize:] (a file served in frames). It returns
// ErrFrameTooLarge if size is over MaxFrame or negative.
func PutHeader(dst []byte, size int) error {
	if size < 0 || size > MaxFrame {
		return fmt.Errorf("%w: payload of %d bytes, limit %d", ErrFrameTooLarge, size, MaxFrame)
	}
	binary.BigEndian.PutUint32(dst[:HeaderSize], uint32(size))
	return nil
}

// WriteFrame writes payload as one frame with a single Write call, so a
// frame is never interleaved with another writer's bytes on a stream that
// serialises Writes. It returns ErrFrameTooLarge if payload is longer than
// MaxFrame.
func WriteFrame(w io.Writer, payload []byte) error {
	buf, err := AppendFrame(make([]byte, 0, HeaderSize+len(payload)), payload)
	if err != nil {
		return err
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("wire: write frame: %w", err)
	}
	return nil
}

// readHeader reads the length prefix into hdr and checks it against max.
// A clean end of stream before the first byte is io.EOF.
func readHeader(r io.Reader, hdr []byte, max int) (int, error) {
	n, err := io.ReadFull(r, hdr)
	switch {
	case err == io.EOF:
		return 0, io.EOF
	case err == io.ErrUnexpectedEOF:
		return 0, fmt.Errorf("%w: length prefix has %d of %d bytes", ErrTruncated, n, HeaderSize)
	case err != nil:
		return 0, fmt.Errorf("wire: read frame length: %w", err)
	}
	size := binary.BigEndian.Uint32(hdr)
	if uint64(size) > uint64(max) {
		return 0, fmt.Errorf("%w: declared %d bytes, limit %d", ErrFrameTooLarge, size, max)
	}
	return int(size), nil
}

// readChunk is the first buffer a frame's payload is read into; larger
// payloads grow it by doubling as their bytes arrive.
const readChunk = 4 << 10

// readBody reads a payload of size bytes from r into buf (reused when it
// already has the capacity, as FrameReader's does) and returns it. It
// never holds more than max(readChunk, twice the bytes read so far)
// beyond what buf had: a declared size commits no memory before its bytes
// arrive. A short read is ErrTruncated.
func readBody(r io.Reader, size int, buf []byte) ([]byte, error) {
	var body []byte
	switch {
	case cap(buf) >= size:
		body = buf[:size]
	case size <= readChunk:
		body = make([]byte, size)
	case cap(buf) > readChunk:
		body = buf[:cap(buf)]
	default:
		body = make([]byte, readChunk)
	}
	n := 0
	for {
		m, err := io.ReadFull(r, body[n:])
		n += m
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: payload has %d of %d bytes", ErrTruncated, n, size)
		}
		if err != nil {
			return nil, fmt.Errorf("wire: read frame payload: %w", err)
		}
		if n == size {
			return body, nil
		}
		// Every byte so far has arrived: grow, at most doubling.
		grown := make([]byte, min(size, 2*len(body)))
		copy(grown, body)
		body = grown
	}
}

// ReadFrame reads one frame of at most max payload bytes (max <= 0 means
// DefaultMaxFrame; max is clamped to MaxFrame). A declared length over max
// is rejected with ErrFrameTooLarge before anything is allocated for the
// payload; the stream is then out of sync and should be reset. Below max
// the payload's buffer grows only as its bytes arrive. A stream that ends
// cleanly before the first byte returns io.EOF; one that ends inside a
// frame returns ErrTruncated. The returned slice is the caller's.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	var hdr [HeaderSize]byte
	size, err := readHeader(r, hdr[:], clampMax(max))
	if err != nil {
		return nil, err
	}
	return readBody(r, size, nil)
}

// FrameReader reads successive frames from one stream into a reused
// buffer, for hot paths where a fresh allocation per frame matters. It is
// not safe for concurrent use. The zero value is not usable; call
// NewFrameReader.
type FrameReader struct {
	r   io.Reader
	max int
	hdr [HeaderSize]byte
	buf []byte
}

// NewFrameReader returns a FrameReader over r with the payload cap max
// (max <= 0 means DefaultMaxFrame; max is clamped to MaxFrame). It does no
// I/O.
func NewFrameReader(r io.Reader, max int) *FrameReader {
	return &FrameReader{r: r, max: clampMax(max)}
}

// Next reads the next frame, with the same errors as ReadFrame. The
// returned slice aliases the reader's buffer and is valid only until the
// next call; callers that keep it must copy it. The buffer grows, as
// bytes arrive, to the largest frame seen and never beyond the cap.
func (fr *FrameReader) Next() ([]byte, error) {
	size, err := readHeader(fr.r, fr.hdr[:], fr.max)
	if err != nil {
		return nil, err
	}
	body, err := readBody(fr.r, size, fr.buf)
	if err != nil {
		return nil, err
	}
	if cap(body) > cap(fr.buf) {
		fr.buf = body
	}
	return body, nil
}

// Kind is the first byte of a message payload: which message of a
// protocol the body holds. Each protocol defines its own kinds.
type Kind uint8

// KindSet is the set of kinds a protocol accepts. The zero value is empty.
type KindSet struct {
	bits [4]uint64
}

// NewKindSet returns the set holding kinds.
func NewKindSet(kinds ...Kind) KindSet {
	var s KindSet
	for _, k := range kinds {
		s.bits[k>>6] |= 1 << (k & 63)
	}
	return s
}

// Has reports whether k is in the set.
func (s KindSet) Has(k Kind) bool { return s.bits[k>>6]&(1<<(k&63)) != 0 }

// EncodeMessage returns kind followed by body.
func EncodeMessage(kind Kind, body []byte) []byte {
	out := make([]byte, 0, 1+len(body))
	out = append(out, byte(kind))
	return append(out, body...)
}

// DecodeMessage splits a payload into its kind and body, rejecting an
// empty payload (ErrEmptyMessage) and a kind not in known
// (ErrUnknownKind). The body aliases b and may be empty; the body's own
// decoder rejects trailing bytes.
func DecodeMessage(b []byte, known KindSet) (Kind, []byte, error) {
	if len(b) == 0 {
		return 0, nil, ErrEmptyMessage
	}
	k := Kind(b[0])
	if !known.Has(k) {
		return 0, nil, fmt.Errorf("%w: 0x%02x", ErrUnknownKind, b[0])
	}
	return k, b[1:], nil
}
