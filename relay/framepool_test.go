package relay

import "testing"

// A pooled frame buffer has the length asked for and the capacity of its
// class: at least that, under twice it past the first chunk (the frame
// budget holds the length); frames under the first chunk and over the
// largest class are not pooled (their buffers are their size).
func TestFrameBufClasses(t *testing.T) {
	for _, n := range []int{1, frameChunk - 1, frameChunk, frameChunk + 1, 3 * frameChunk, MaxFrame, framePoolMax, framePoolMax + 1} {
		b := getFrameBuf(n)
		if len(b) != n || cap(b) < n {
			t.Fatalf("getFrameBuf(%d): length %d, capacity %d", n, len(b), cap(b))
		}
		switch {
		case n > framePoolMax:
			if cap(b) != n {
				t.Fatalf("getFrameBuf(%d) over the largest class: capacity %d", n, cap(b))
			}
		case n > frameChunk && cap(b) >= 2*n, n == frameChunk && cap(b) != frameChunk, n < frameChunk && cap(b) != n:
			t.Fatalf("getFrameBuf(%d): capacity %d", n, cap(b))
		}
		putFrameBuf(b)
	}
	putFrameBuf(make([]byte, 5000)) // not a class's capacity: dropped
	if b := getFrameBuf(5000); cap(b) != 2*frameChunk {
		t.Fatalf("getFrameBuf(5000) capacity %d after a foreign buffer was given back", cap(b))
	}
}
