package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/internal/wire"
	"github.com/hushnet/hush/node/attach"
)

// The downloader's side of /hush/file/1 (docs/protocol/files.md §19.3).

// fetchFrames is how many frames the reading goroutine of a direct
// download may hold that the verifier has not taken yet (64 KiB each): it
// keeps reading while the verifier works, so the stream's flow-control
// window is drained at once and the sender is not held up. The requests
// in flight bound what arrives, so this adds nothing to what a killed
// receiver is sent again.
const fetchFrames = 16

// fetchDirect asks the sending device for the rest of the blob on
// /hush/file/1, a request at a time, and feeds what arrives to d.
func (n *Node) fetchDirect(ctx context.Context, id string, d *attach.Download, p *attach.Pointer, from identity.DeviceID) error {
	n.mu.Lock()
	pid, ok := n.peerOfLocked(from)
	h := n.host
	n.mu.Unlock()
	if !ok || h == nil {
		return errors.New("unreachable: the device that sent the file is not known here")
	}
	dctx, cancel := context.WithTimeout(ctx, fetchDialTime)
	s, err := h.NewStream(dctx, pid, protocol.ID(ProtocolFile))
	cancel()
	if err != nil {
		return fmt.Errorf("unreachable: %w", err)
	}
	frames := readFrames(s)
	defer frames.stop()
	context.AfterFunc(ctx, func() { s.Reset() })
	var left uint64      // bytes of the current answer still to come
	var pending []uint64 // lengths of the requests sent and not yet answered
	sent := d.Offset()   // where the next request starts
	// ask keeps up to fetchWindow requests in flight, and no more than
	// fetchWindow requests' bytes past what is written to the .part (the
	// Download holds verified blocks in memory before it writes them, and
	// frames wait for the verifier), so a receiver killed is sent at most
	// one window again.
	ask := func() error {
		for len(pending) < fetchWindow && sent < p.BlobSize {
			q := fileRequest{hash: p.Hash, offset: uint64(sent), length: uint64(min(int64(fetchRequest), p.BlobSize-sent))}
			if len(pending) > 0 && sent+int64(q.length)-d.Stored() > fetchWindow*fetchRequest {
				return nil
			}
			if err := wire.WriteFrame(s, q.marshal()); err != nil {
				return fmt.Errorf("unreachable: %w", err)
			}
			pending = append(pending, q.length)
			sent += int64(q.length)
		}
		return nil
	}
	return n.feed(id, d, p, func() ([]byte, error) {
		if left == 0 {
			if err := ask(); err != nil {
				return nil, err
			}
			if len(pending) == 0 {
				return nil, errors.New("the whole file was asked for and did not verify")
			}
			st, err := frames.next()
			if err != nil {
				return nil, fmt.Errorf("unreachable: %w", err)
			}
			if len(st) != 1 {
				return nil, errors.New("the sending device sent data where a status belongs")
			}
			switch st[0] {
			case fileStatusOK:
			case fileStatusNone:
				return nil, fmt.Errorf("%w: the sending device no longer has the file", errGone)
			case fileStatusDeny:
				return nil, errors.New("the sending device refused: this device is not one the file was sent to")
			default:
				return nil, fmt.Errorf("the sending device refused the request (status %d)", st[0])
			}
			// The answer being read stays in the window: the next
			// request goes out when it is all here.
			left, pending = pending[0], pending[1:]
		}
		b, err := frames.next()
		if err != nil {
			return nil, fmt.Errorf("unreachable: %w", err)
		}
		if uint64(len(b)) > left {
			return nil, errors.New("the sending device sent more than asked")
		}
		left -= uint64(len(b))
		return b, nil
	})
}

// frameQueue is a goroutine reading a stream's frames (of at most
// fileFrameData bytes) ahead of the one taking them, into fetchFrames+1
// reused buffers: the reader blocks when they are all taken and not
// given back.
type frameQueue struct {
	s     frameSource
	full  chan frameRead
	free  chan []byte
	taken []byte // the buffer the last next returned, given back by the next call
}

// frameSource is what a frameQueue reads: a stream.
type frameSource interface {
	io.ReadCloser
	SetReadDeadline(time.Time) error
}

// frameRead is one frame read, or the error that ended the reading.
type frameRead struct {
	b   []byte
	err error
}

// readFrames starts reading s's frames. stop ends it.
func readFrames(s frameSource) *frameQueue {
	q := &frameQueue{s: s, full: make(chan frameRead, fetchFrames), free: make(chan []byte, fetchFrames+1)}
	for range fetchFrames + 1 {
		q.free <- make([]byte, 0, fileFrameData)
	}
	go q.run()
	return q
}

func (q *frameQueue) run() {
	defer close(q.full)
	br := bufio.NewReaderSize(q.s, 128<<10)
	for {
		buf := <-q.free
		q.s.SetReadDeadline(time.Now().Add(fileStreamIdle))
		b, err := wire.ReadFrameInto(br, fileFrameData, buf)
		q.full <- frameRead{b, err}
		if err != nil {
			return
		}
	}
}

// next returns the next frame; the slice is valid until the next call.
func (q *frameQueue) next() ([]byte, error) {
	if q.taken != nil {
		q.free <- q.taken[:0]
		q.taken = nil
	}
	r, ok := <-q.full
	if !ok || r.err != nil {
		if r.err == nil || errors.Is(r.err, io.EOF) {
			r.err = io.ErrUnexpectedEOF
		}
		return nil, r.err
	}
	q.taken = r.b
	return r.b, nil
}

// stop closes the stream, which ends the reading, and waits for the
// reader to end, giving back what it read so that it is never stuck
// waiting for a buffer.
func (q *frameQueue) stop() {
	q.s.Close()
	for r := range q.full {
		if r.b != nil {
			q.free <- r.b[:0]
		}
	}
}
