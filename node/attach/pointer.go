package attach

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/stream"
)

// Pointer format and limits (docs/protocol/files.md §19.1, §19.6).
const (
	// PointerVersion is the first byte of an encoded Pointer.
	PointerVersion byte = 1
	// KeySize is the size of a file key: a fresh random STREAM key.
	KeySize = 32
	// HashSize is the size of a blob's SHA-256, its ID everywhere.
	HashSize = 32
	// TokenSeedSize is the size of a relay source's deletion token seed.
	TokenSeedSize = 32
	// MaxSize is the largest plaintext a Pointer may describe (1 TiB);
	// the node's own limit (max_file_size) is much lower.
	MaxSize = 1 << 40
	// MaxNameSize is the longest file name, in bytes of UTF-8.
	MaxNameSize = 255
	// MaxMIMESize is the longest MIME type.
	MaxMIMESize = 127
	// MaxThumbSize is the largest thumbnail (a JPEG).
	MaxThumbSize = 8 << 10
	// MaxSources is the most sources a Pointer lists.
	MaxSources = 4
	// MaxAddrSize is the longest relay multiaddr (text form).
	MaxAddrSize = 512
	// MaxPointerSize is the largest encoding Parse accepts: every field at
	// its limit, four relay sources included. It is a little over the 9 KiB
	// of the design's table and well under the 16 KiB an extension value
	// may hold.
	MaxPointerSize = 1 + KeySize + 3*8 + HashSize +
		2 + MaxNameSize + 2 + MaxMIMESize + 2 + MaxThumbSize +
		4 + 4 + 8 + 1 + MaxSources*(1+2+MaxAddrSize+TokenSeedSize)
)

// SourceKind says where a blob can be fetched.
type SourceKind uint8

// Source kinds.
const (
	// SourceDirect: the sending device serves the blob on /hush/file/1.
	SourceDirect SourceKind = 1
	// SourceRelay: a relay's blob store (/hush/blob/1) holds it.
	SourceRelay SourceKind = 2
)

// Source is one place a blob can be fetched from.
type Source struct {
	Kind SourceKind
	// Addr is the relay's multiaddr in text form, /p2p/ID included
	// (SourceRelay only; empty for SourceDirect).
	Addr string
	// TokenSeed derives the per-device deletion tokens (§19.5;
	// SourceRelay only, zero for SourceDirect).
	TokenSeed [TokenSeedSize]byte
}

// Pointer is an attachment pointer: everything a recipient needs to
// fetch, verify and decrypt one file (docs/protocol/files.md §19.1).
type Pointer struct {
	Key        [KeySize]byte  // STREAM file key, never reused
	Size       int64          // plaintext bytes, ≤ MaxSize
	EncSize    int64          // STREAM payload bytes: stream.EncryptedSize(Size)
	BlobSize   int64          // stored blob bytes: BlobSize(EncSize)
	Hash       [HashSize]byte // SHA-256 of the whole blob, padding included
	Name       string         // file name as sent (ValidName)
	MIME       string         // sniffed type (Inspect), never from the name
	Thumb      []byte         // JPEG thumbnail of an image, or empty
	Width      uint32         // pixels of an image, 0: unknown
	Height     uint32         // pixels of an image, 0: unknown
	DurationMS uint64         // audio or video duration, 0: unknown
	Sources    []Source       // at most MaxSources, in the order to try
}

// ErrPointer is wrapped by every error about a malformed Pointer.
var ErrPointer = errors.New("attach: malformed attachment pointer")

// ValidName reports whether name may be sent as a file name: valid UTF-8
// of at most MaxNameSize bytes with no '/', no control character and not
// "." or "..". An empty name is allowed (the receiver names the file).
func ValidName(name string) error {
	switch {
	case len(name) > MaxNameSize:
		return fmt.Errorf("%w: name over %d bytes", ErrPointer, MaxNameSize)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: name is not UTF-8", ErrPointer)
	case strings.ContainsRune(name, '/'):
		return fmt.Errorf("%w: name contains '/'", ErrPointer)
	case name == "." || name == "..":
		return fmt.Errorf("%w: name %q", ErrPointer, name)
	case strings.ContainsFunc(name, unicode.IsControl):
		return fmt.Errorf("%w: name contains a control character", ErrPointer)
	}
	return nil
}

// printableASCII reports whether s is only bytes 0x20 to 0x7e.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Validate checks every rule Parse checks, so a Pointer that validates
// encodes to bytes every recipient accepts.
func (p *Pointer) Validate() error {
	if p.Size < 0 || p.Size > MaxSize {
		return fmt.Errorf("%w: size %d out of range", ErrPointer, p.Size)
	}
	if want := stream.EncryptedSize(p.Size); p.EncSize != want {
		return fmt.Errorf("%w: enc_size %d, want %d for size %d", ErrPointer, p.EncSize, want, p.Size)
	}
	if want := BlobSize(p.EncSize); p.BlobSize != want {
		return fmt.Errorf("%w: blob_size %d, want %d for enc_size %d", ErrPointer, p.BlobSize, want, p.EncSize)
	}
	if err := ValidName(p.Name); err != nil {
		return err
	}
	if len(p.MIME) > MaxMIMESize || !printableASCII(p.MIME) {
		return fmt.Errorf("%w: MIME type over %d bytes or not printable ASCII", ErrPointer, MaxMIMESize)
	}
	if len(p.Thumb) > MaxThumbSize {
		return fmt.Errorf("%w: thumbnail over %d bytes", ErrPointer, MaxThumbSize)
	}
	if len(p.Sources) > MaxSources {
		return fmt.Errorf("%w: %d sources, at most %d", ErrPointer, len(p.Sources), MaxSources)
	}
	for i, s := range p.Sources {
		switch s.Kind {
		case SourceDirect:
			if s.Addr != "" || s.TokenSeed != ([TokenSeedSize]byte{}) {
				return fmt.Errorf("%w: source %d: direct source with relay fields", ErrPointer, i)
			}
		case SourceRelay:
			if s.Addr == "" || len(s.Addr) > MaxAddrSize || s.Addr[0] != '/' || !printableASCII(s.Addr) {
				return fmt.Errorf("%w: source %d: relay address empty, over %d bytes or not a text multiaddr", ErrPointer, i, MaxAddrSize)
			}
		default:
			return fmt.Errorf("%w: source %d: unknown kind %d", ErrPointer, i, s.Kind)
		}
	}
	return nil
}

// Marshal encodes p after checking it with Validate.
func (p *Pointer) Marshal() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	w := codec.NewWriter(128 + len(p.Name) + len(p.MIME) + len(p.Thumb) + len(p.Sources)*(3+MaxAddrSize+TokenSeedSize))
	w.U8(PointerVersion)
	w.Fixed(p.Key[:])
	w.U64(uint64(p.Size))
	w.U64(uint64(p.EncSize))
	w.U64(uint64(p.BlobSize))
	w.Fixed(p.Hash[:])
	w.String16(p.Name)
	w.String16(p.MIME)
	w.Bytes16(p.Thumb)
	w.U32(p.Width)
	w.U32(p.Height)
	w.U64(p.DurationMS)
	w.U8(uint8(len(p.Sources)))
	for _, s := range p.Sources {
		w.U8(uint8(s.Kind))
		if s.Kind == SourceRelay {
			w.String16(s.Addr)
			w.Fixed(s.TokenSeed[:])
		}
	}
	return w.Bytes(), nil
}

// ParsePointer decodes and validates a Pointer. Every length is checked
// against its limit before anything is allocated, and trailing bytes are
// refused, so an accepted input is exactly what Marshal writes for the
// result. The result does not alias b.
func ParsePointer(b []byte) (*Pointer, error) {
	if len(b) > MaxPointerSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrPointer, len(b), MaxPointerSize)
	}
	r := codec.NewReader(b)
	if v := r.U8(); r.Err() == nil && v != PointerVersion {
		return nil, fmt.Errorf("%w: version %d", ErrPointer, v)
	}
	p := &Pointer{}
	copy(p.Key[:], r.Fixed(KeySize))
	size, encSize, blobSize := r.U64(), r.U64(), r.U64()
	if r.Err() == nil && (size > MaxSize || encSize > 2*MaxSize || blobSize > 4*MaxSize) {
		return nil, fmt.Errorf("%w: sizes out of range", ErrPointer)
	}
	p.Size, p.EncSize, p.BlobSize = int64(size), int64(encSize), int64(blobSize)
	copy(p.Hash[:], r.Fixed(HashSize))
	p.Name = r.String16(MaxNameSize)
	p.MIME = r.String16(MaxMIMESize)
	if t := r.Bytes16(MaxThumbSize); len(t) > 0 {
		p.Thumb = codec.Clone(t)
	}
	p.Width = r.U32()
	p.Height = r.U32()
	p.DurationMS = r.U64()
	n := int(r.U8())
	if r.Err() == nil && n > MaxSources {
		return nil, fmt.Errorf("%w: %d sources, at most %d", ErrPointer, n, MaxSources)
	}
	for i := 0; i < n && r.Err() == nil; i++ {
		s := Source{Kind: SourceKind(r.U8())}
		switch s.Kind {
		case SourceDirect:
		case SourceRelay:
			s.Addr = r.String16(MaxAddrSize)
			copy(s.TokenSeed[:], r.Fixed(TokenSeedSize))
		default:
			r.Fail(fmt.Errorf("source %d: unknown kind %d", i, s.Kind))
		}
		p.Sources = append(p.Sources, s)
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPointer, err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}
