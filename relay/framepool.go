package relay

import (
	"math/bits"
	"sync"
)

// Request frame buffers of frameChunk bytes and more are pooled by
// power-of-two capacity, up to framePoolMax, so that the frames of a
// busy deposit stream (DepositMany frames of up to MaxFrame, read at a
// growing size: frameHold.readMax) reuse buffers instead of allocating
// and zeroing new ones. A buffer is given back only by a request that
// holds no reference into it once answered (deposits:
// frameHold.recycle); its old bytes are never seen, as a frame is
// returned only once every byte of it has been read into the buffer.

// framePoolMax is the largest pooled capacity: the power of two at or
// above MaxFrame. Larger frames (the blob store's) are not pooled.
const framePoolMax = 1 << 19

// framePoolClasses is the number of capacities pooled: frameChunk,
// 2·frameChunk, … framePoolMax.
var framePoolClasses = bits.Len(uint(framePoolMax / frameChunk))

// framePools holds one pool per capacity class.
var framePools [8]sync.Pool

func init() {
	if MaxFrame > framePoolMax || framePoolClasses != len(framePools) {
		panic("relay: frame pool classes do not cover MaxFrame")
	}
}

// frameClass is the class of the smallest pooled capacity of at least
// n bytes; framePoolClasses when n is over framePoolMax.
func frameClass(n int) int {
	if n <= frameChunk {
		return 0
	}
	return bits.Len(uint((n - 1) / frameChunk))
}

// getFrameBuf returns a buffer of length n: pooled (its capacity the
// class's) from frameChunk to framePoolMax, else a new one of exactly n
// (a small frame, which a request may keep a part of, holds no more
// memory than its bytes).
func getFrameBuf(n int) []byte {
	c := frameClass(n)
	if n < frameChunk || c >= framePoolClasses {
		return make([]byte, n)
	}
	if p, ok := framePools[c].Get().(*[]byte); ok {
		return (*p)[:n]
	}
	return make([]byte, n, frameChunk<<c)
}

// putFrameBuf gives b back for reuse: only a buffer with a class's
// capacity (one getFrameBuf pooled), and nothing may use it afterwards.
func putFrameBuf(b []byte) {
	c := frameClass(cap(b))
	if c >= framePoolClasses || cap(b) != frameChunk<<c {
		return
	}
	b = b[:0]
	framePools[c].Put(&b)
}
