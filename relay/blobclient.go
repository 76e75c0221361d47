package relay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/internal/wire"
)

// blobWindow is how many writes or reads a blob client keeps in flight on
// one stream (4 MiB).
const blobWindow = 4

// blobStream is one /hush/blob/1 stream of a Client call.
type blobStream struct {
	st      network.Stream
	timeout time.Duration
	fr      *wire.FrameReader
	stop    func() bool
}

// openBlob connects to the relay and opens a blob stream, reset when ctx
// ends; close ends it.
func (c *Client) openBlob(ctx context.Context, h host.Host, relay peer.AddrInfo) (*blobStream, error) {
	cctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	if len(relay.Addrs) > 0 {
		if err := h.Connect(cctx, relay); err != nil {
			return nil, fmt.Errorf("relay: connect: %w", err)
		}
	}
	st, err := h.NewStream(cctx, relay.ID, BlobProtocolID)
	if err != nil {
		return nil, fmt.Errorf("relay: open blob stream: %w", err)
	}
	return &blobStream{st: st, timeout: c.timeout(), fr: wire.NewFrameReader(st, blobMaxAnswer),
		stop: context.AfterFunc(ctx, func() { st.Reset() })}, nil
}

func (b *blobStream) close() {
	b.stop()
	b.st.Close()
}

func (b *blobStream) send(q *blobReq) error {
	b.st.SetWriteDeadline(time.Now().Add(b.timeout))
	if err := wire.WriteFrame(b.st, q.encode()); err != nil {
		return fmt.Errorf("relay: blob request: %w", err)
	}
	return nil
}

// answer reads the next answer into fields (see decodeAnswer). The
// bytes fields reads are valid until the next answer.
func (b *blobStream) answer(fields func(r *codec.Reader)) error {
	b.st.SetReadDeadline(time.Now().Add(b.timeout))
	f, err := b.fr.Next()
	if err != nil {
		return fmt.Errorf("relay: blob answer: %w", err)
	}
	return decodeAnswer(f, fields)
}

func (b *blobStream) ask(q *blobReq, fields func(r *codec.Reader)) error {
	if err := b.send(q); err != nil {
		return err
	}
	return b.answer(fields)
}

// blobCall runs one request on a fresh blob stream.
func (c *Client) blobCall(ctx context.Context, h host.Host, relay peer.AddrInfo, q *blobReq, fields func(r *codec.Reader)) error {
	b, err := c.openBlob(ctx, h, relay)
	if err != nil {
		return err
	}
	defer b.close()
	return b.ask(q, fields)
}

// BlobLimits asks a relay what its blob store takes (files.md §19.5).
// A relay with no blob store fails to open the stream (protocols not
// supported).
func (c *Client) BlobLimits(ctx context.Context, h host.Host, relay peer.AddrInfo) (BlobLimits, error) {
	var l BlobLimits
	err := c.blobCall(ctx, h, relay, &blobReq{kind: blobKindLimits}, func(r *codec.Reader) { readLimits(r, &l) })
	return l, err
}

// BlobStat asks a relay how much of a blob it holds; ErrBlobUnknown if
// none.
func (c *Client) BlobStat(ctx context.Context, h host.Host, relay peer.AddrInfo, hash BlobHash) (BlobState, error) {
	var s BlobState
	err := c.blobCall(ctx, h, relay, &blobReq{kind: blobKindStat, hash: hash}, func(r *codec.Reader) { readState(r, &s) })
	return s, err
}

// BlobDone presents a recipient device's receipt token for a blob
// (BlobToken) after its download and returns how many registered tokens
// are still to come; the relay deletes the blob when that reaches 0.
// A token whose hash was not registered is ErrBlobBadToken and changes
// nothing; one presented before is answered as if new.
func (c *Client) BlobDone(ctx context.Context, h host.Host, relay peer.AddrInfo, hash BlobHash, token [32]byte) (int, error) {
	left := 0
	err := c.blobCall(ctx, h, relay, &blobReq{kind: blobKindDone, hash: hash, token: token},
		func(r *codec.Reader) { left = int(r.U16()) })
	return left, err
}

// PutBlob uploads the blob of size bytes that src holds, whose SHA-256 is
// hash, with the hashes of its recipients' receipt tokens
// (BlobTokenHash, at most MaxBlobReceipts). It resumes: the put answers
// with what the relay already has (as stat), and only the rest is read
// from src and sent, in writes of BlobChunk bytes with up to 4 in
// flight. It returns the data bytes it sent, and nil once the relay has
// the whole blob and found its hash right (ErrBlobHashMismatch if not:
// the relay deleted it). After any other failure, calling it again goes
// on from what the relay acknowledged. Memory: one BlobChunk buffer.
func (c *Client) PutBlob(ctx context.Context, h host.Host, relay peer.AddrInfo, hash BlobHash, size int64, receipts []BlobHash, src io.ReaderAt) (int64, error) {
	return c.PutBlobProgress(ctx, h, relay, hash, size, receipts, src, nil)
}

// PutBlobProgress is PutBlob that calls progress (unless nil) with the
// bytes the relay holds of the blob: after the put's answer, and after
// each write's. It is called on PutBlobProgress's goroutine.
func (c *Client) PutBlobProgress(ctx context.Context, h host.Host, relay peer.AddrInfo, hash BlobHash, size int64, receipts []BlobHash, src io.ReaderAt, progress func(have int64)) (int64, error) {
	if progress == nil {
		progress = func(int64) {}
	}
	if len(receipts) > MaxBlobReceipts {
		return 0, fmt.Errorf("%w: %d receipts, at most %d", ErrBlobBadRequest, len(receipts), MaxBlobReceipts)
	}
	if size <= 0 {
		return 0, fmt.Errorf("%w: size %d", ErrBlobBadRange, size)
	}
	b, err := c.openBlob(ctx, h, relay)
	if err != nil {
		return 0, err
	}
	defer b.close()
	var state BlobState
	err = b.ask(&blobReq{kind: blobKindPut, hash: hash, size: uint64(size), receipts: receipts},
		func(r *codec.Reader) { readState(r, &state) })
	if err != nil {
		return 0, err
	}
	progress(int64(state.Have))
	if state.Complete {
		return 0, nil
	}
	if state.Have > uint64(size) {
		return 0, fmt.Errorf("%w: relay has %d of %d bytes", ErrBlobBadRange, state.Have, size)
	}

	// The writer reads src and sends writes, at most blobWindow ahead of
	// the answers, which this goroutine reads in order.
	inflight := make(chan int64, blobWindow-1)
	var werr error
	go func() {
		defer close(inflight)
		buf := make([]byte, 0, wire.HeaderSize+blobMaxFrame)
		for off := int64(state.Have); off < size; {
			n := min(int64(BlobChunk), size-off)
			buf = buf[:0]
			buf = append(buf, 0, 0, 0, 0, byte(blobKindWrite))
			buf = append(buf, hash[:]...)
			buf = binary.BigEndian.AppendUint64(buf, uint64(off))
			buf = binary.BigEndian.AppendUint32(buf, uint32(n))
			head := len(buf)
			buf = buf[:head+int(n)]
			if k, err := src.ReadAt(buf[head:], off); int64(k) != n {
				if err == nil || errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				werr = fmt.Errorf("relay: read blob source: %w", err)
				return
			}
			binary.BigEndian.PutUint32(buf, uint32(len(buf)-wire.HeaderSize))
			b.st.SetWriteDeadline(time.Now().Add(b.timeout))
			if _, err := b.st.Write(buf); err != nil {
				werr = fmt.Errorf("relay: blob write: %w", err)
				return
			}
			inflight <- n
			off += n
		}
	}()
	var sent int64
	var rerr error
	for n := range inflight {
		sent += n
		if rerr != nil {
			continue
		}
		if err := b.answer(func(r *codec.Reader) { readState(r, &state) }); err != nil {
			rerr = err
			b.st.Reset() // stops the writer
			continue
		}
		progress(int64(state.Have))
	}
	switch {
	case rerr != nil:
		return sent, rerr
	case werr != nil:
		return sent, werr
	case !state.Complete:
		return sent, fmt.Errorf("%w: relay has %d of %d bytes after the last write", ErrBlobBadRange, state.Have, size)
	}
	return sent, nil
}

// ReadBlob reads length bytes of a complete blob from offset (fewer if
// the blob ends first). For large ranges, OpenBlob streams instead.
func (c *Client) ReadBlob(ctx context.Context, h host.Host, relay peer.AddrInfo, hash BlobHash, offset, length int64) ([]byte, error) {
	if length < 0 {
		return nil, fmt.Errorf("%w: length %d", ErrBlobBadRange, length)
	}
	r, err := c.openBlobRange(ctx, h, relay, hash, offset, length)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out := make([]byte, 0, min(length, r.Size()-offset))
	for {
		if len(r.buf) == 0 {
			if err := r.fill(); err == io.EOF {
				return out, nil
			} else if err != nil {
				return out, err
			}
		}
		out = append(out, r.buf...)
		r.pos += uint64(len(r.buf))
		r.buf = nil
	}
}

// BlobReader streams a complete blob from a relay: reads of BlobChunk
// bytes, up to 4 in flight on one stream. It is not safe for concurrent
// use.
type BlobReader struct {
	b       *blobStream
	hash    BlobHash
	size    uint64
	end     uint64 // where reading stops
	next    uint64 // offset of the next read request
	pos     uint64 // offset of the next byte Read returns
	pending []uint64
	buf     []byte // bytes answered, not yet returned (aliases the frame reader's buffer)
	err     error
}

// OpenBlob opens a complete blob on a relay for reading from offset to
// its end: ErrBlobUnknown if the relay has no such blob,
// ErrBlobIncomplete while it is being uploaded. After an error (a
// dropped connection, a relay restart), open it again at the offset
// reached: a download resumes.
func (c *Client) OpenBlob(ctx context.Context, h host.Host, relay peer.AddrInfo, hash BlobHash, offset int64) (*BlobReader, error) {
	return c.openBlobRange(ctx, h, relay, hash, offset, -1)
}

func (c *Client) openBlobRange(ctx context.Context, h host.Host, relay peer.AddrInfo, hash BlobHash, offset, length int64) (*BlobReader, error) {
	if offset < 0 {
		return nil, fmt.Errorf("%w: offset %d", ErrBlobBadRange, offset)
	}
	b, err := c.openBlob(ctx, h, relay)
	if err != nil {
		return nil, err
	}
	var s BlobState
	if err := b.ask(&blobReq{kind: blobKindStat, hash: hash}, func(r *codec.Reader) { readState(r, &s) }); err != nil {
		b.close()
		return nil, err
	}
	if !s.Complete {
		b.close()
		return nil, &BlobError{Status: BlobIncomplete}
	}
	if uint64(offset) > s.Size {
		b.close()
		return nil, fmt.Errorf("%w: offset %d past the blob's %d bytes", ErrBlobBadRange, offset, s.Size)
	}
	end := s.Size
	if length >= 0 {
		end = min(end, uint64(offset)+uint64(length))
	}
	return &BlobReader{b: b, hash: hash, size: s.Size, end: end, next: uint64(offset), pos: uint64(offset)}, nil
}

// Size is the blob's size in bytes.
func (r *BlobReader) Size() int64 { return int64(r.size) }

// Offset is where the next Read starts.
func (r *BlobReader) Offset() int64 { return int64(r.pos) }

// Read reads the blob's next bytes.
func (r *BlobReader) Read(p []byte) (int, error) {
	if len(r.buf) == 0 {
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	r.pos += uint64(n)
	return n, nil
}

// fill keeps the window of reads in flight and takes the next answer
// into buf; io.EOF at the end.
func (r *BlobReader) fill() error {
	if r.err != nil {
		return r.err
	}
	if r.pos >= r.end {
		return io.EOF
	}
	for len(r.pending) < blobWindow && r.next < r.end {
		n := min(uint64(BlobChunk), r.end-r.next)
		if err := r.b.send(&blobReq{kind: blobKindRead, hash: r.hash, offset: r.next, length: n}); err != nil {
			r.err = err
			return err
		}
		r.pending = append(r.pending, n)
		r.next += n
	}
	want := r.pending[0]
	r.pending = r.pending[1:]
	var data []byte
	err := r.b.answer(func(rd *codec.Reader) { data = rd.Bytes32(BlobChunk) })
	if err == nil && uint64(len(data)) != want {
		err = fmt.Errorf("%w: read answered %d of %d bytes", ErrBlobBadRange, len(data), want)
	}
	if err != nil {
		r.err = err
		return err
	}
	r.buf = data
	return nil
}

// Close ends the stream.
func (r *BlobReader) Close() error {
	r.b.close()
	return nil
}
