package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/hushnet/hush/internal/wire"
)

// frameBudget bounds the bytes of request frames the relay holds at once:
// relay-wide (Config.MaxFrameBytes) and per network (MaxFrameBytesPerIP).
// A stream holds budget for its frame's buffer as the buffer grows (it
// starts at frameChunk and at most doubles as bytes arrive, as
// wire.ReadFrame's does) until its request is answered. A stream that
// needs more than is free waits up to frameBudgetWait for other streams
// to give some back, then is reset. Per-stream incremental reads keep a
// declared size from committing memory; this keeps many streams that do
// send their bytes from committing, together, more than MaxFrameBytes.
type frameBudget struct {
	total, perNet int64
	m             Metrics
	log           *slog.Logger
	logged        logLimit

	// mu guards the fields below.
	mu      sync.Mutex
	used    int64
	byNet   map[string]int64
	waiting int           // streams waiting for budget
	freed   chan struct{} // closed (and replaced) when budget is given back to waiters
}

// frameBudgetWait is how long a stream waits for frame budget before the
// relay resets it.
const frameBudgetWait = time.Second

// frameChunk is the first buffer of a frame's payload (wire's readChunk).
const frameChunk = 4 << 10

// errFrameBudget is a frame the relay had no budget to read.
var errFrameBudget = errors.New("relay: frame byte budget exhausted")

// errCutFrame marks a frame whose bytes stopped coming after some had
// come (a truncated frame, as against a stream idle or ended between
// frames).
var errCutFrame = errors.New("relay: frame cut short")

func newFrameBudget(cfg Config) *frameBudget {
	return &frameBudget{total: cfg.MaxFrameBytes, perNet: cfg.MaxFrameBytesPerIP, m: cfg.Metrics,
		log: cfg.Logger, byNet: make(map[string]int64), freed: make(chan struct{})}
}

// acquire takes n bytes for network net, waiting up to wait for them.
func (b *frameBudget) acquire(net string, n int64, wait time.Duration) bool {
	var timer *time.Timer
	for {
		b.mu.Lock()
		if b.used+n <= b.total && b.byNet[net]+n <= b.perNet {
			b.used += n
			b.byNet[net] += n
			b.mu.Unlock()
			if timer != nil {
				timer.Stop()
			}
			return true
		}
		b.waiting++
		freed := b.freed
		b.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(wait)
		}
		expired := false
		select {
		case <-freed:
		case <-timer.C:
			expired = true
		}
		b.mu.Lock()
		b.waiting--
		b.mu.Unlock()
		if expired {
			return false
		}
	}
}

// release gives back n bytes of network net.
func (b *frameBudget) release(net string, n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if b.byNet[net] -= n; b.byNet[net] <= 0 {
		delete(b.byNet, net)
	}
	if b.waiting > 0 {
		close(b.freed)
		b.freed = make(chan struct{})
	}
}

// refused counts and logs (at most once a minute) a stream reset for
// want of budget.
func (b *frameBudget) refused() {
	b.m.FrameRefused()
	if b.logged.allow() {
		b.log.Warn("stream reset: the relay holds as many request frame bytes as it may",
			"max_frame_bytes", b.total, "max_frame_bytes_per_ip", b.perNet)
	}
}

// frameHold is the budget one stream holds for its current frame, and
// the frame's buffer.
type frameHold struct {
	b   *frameBudget
	net string
	n   int64
	buf []byte // the frame read (its buffer from getFrameBuf)
	// recycle: nothing refers into buf once the request is answered
	// (set for deposit frames), so release gives buf back for reuse.
	recycle bool
}

func (b *frameBudget) hold(net string) *frameHold { return &frameHold{b: b, net: net} }

// grow makes the hold size bytes.
func (h *frameHold) grow(size int) bool {
	if int64(size) <= h.n {
		return true
	}
	if !h.b.acquire(h.net, int64(size)-h.n, frameBudgetWait) {
		return false
	}
	h.n = int64(size)
	return true
}

// release gives the hold back (the frame's request was answered), and
// the frame's buffer too when recycle is set. A nil hold holds nothing.
func (h *frameHold) release() {
	if h == nil {
		return
	}
	if h.n > 0 {
		h.b.release(h.net, h.n)
		h.n = 0
	}
	if h.recycle && h.buf != nil {
		putFrameBuf(h.buf)
	}
	h.buf = nil
}

// read reads one request frame of at most MaxFrame bytes from r, as
// wire.ReadFrame does (the same errors), holding budget for its buffer as
// it grows; errFrameBudget when the budget stays full. The caller
// releases the hold once the request is answered.
func (h *frameHold) read(r io.Reader) ([]byte, error) { return h.readMax(r, MaxFrame) }

// readMax is read with a frame cap of limit bytes (the blob store's
// frames are larger than the mailbox protocol's).
func (h *frameHold) readMax(r io.Reader, limit int) ([]byte, error) {
	size, err := readFrameSize(r, limit)
	if err != nil {
		return nil, err
	}
	buf := min(size, frameChunk)
	if !h.grow(buf) {
		return nil, errFrameBudget
	}
	body := getFrameBuf(buf) // framepool.go
	n := 0
	for {
		m, err := io.ReadFull(r, body[n:])
		n += m
		if err != nil {
			putFrameBuf(body)
			return nil, fmt.Errorf("%w: %w: payload has %d of %d bytes (%v)", wire.ErrTruncated, errCutFrame, n, size, err)
		}
		if n == size {
			h.buf = body
			return body, nil
		}
		// Every byte so far has arrived: grow, at most doubling.
		next := min(size, 2*len(body))
		if !h.grow(next) {
			putFrameBuf(body)
			return nil, errFrameBudget
		}
		if next <= cap(body) {
			body = body[:next]
			continue
		}
		grown := getFrameBuf(next)
		copy(grown, body[:n])
		putFrameBuf(body)
		body = grown
	}
}

// readFrameSize reads a frame's length prefix and checks it against
// limit. A clean end of stream before the first byte is io.EOF.
func readFrameSize(r io.Reader, limit int) (int, error) {
	var hdr [wire.HeaderSize]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return 0, io.EOF
		}
		if n > 0 {
			return 0, fmt.Errorf("%w: %w: length prefix has %d of %d bytes (%v)", wire.ErrTruncated, errCutFrame, n, wire.HeaderSize, err)
		}
		return 0, fmt.Errorf("%w: length prefix has %d of %d bytes (%v)", wire.ErrTruncated, n, wire.HeaderSize, err)
	}
	size := int(binary.BigEndian.Uint32(hdr[:]))
	if size > limit {
		return 0, fmt.Errorf("%w: declared %d bytes, limit %d", wire.ErrFrameTooLarge, size, limit)
	}
	return size, nil
}
