package node

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hushnet/hush/internal/wire"
)

// A frame queue hands frames over in order and whole, reads ahead of the
// taker by at most its buffers, reports the stream's end as an error,
// and stops (its goroutine ends) even while its buffers are all taken
// and the stream has more to send.
func TestFrameQueue(t *testing.T) {
	for round := range 3 {
		local, remote := net.Pipe()
		const frames = 3 * fetchFrames
		sent := make(chan int, 1)
		go func() {
			k := 0
			for ; k < frames; k++ {
				payload := bytes.Repeat([]byte{byte(k)}, 1000+k)
				if round == 2 && k == frames-1 {
					payload = make([]byte, fileFrameData)
				}
				if wire.WriteFrame(remote, payload) != nil {
					break
				}
			}
			if round != 1 {
				remote.Close()
			}
			sent <- k
		}()
		q := readFrames(local)
		switch round {
		case 0, 2: // every frame, then the end as an error
			for k := range frames {
				b, err := q.next()
				if err != nil {
					t.Fatalf("frame %d: %v", k, err)
				}
				want := bytes.Repeat([]byte{byte(k)}, 1000+k)
				if round == 2 && k == frames-1 {
					want = make([]byte, fileFrameData)
				}
				if !bytes.Equal(b, want) {
					t.Fatalf("frame %d: %d bytes, not what was sent", k, len(b))
				}
			}
			if _, err := q.next(); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("after the last frame: %v, want io.ErrUnexpectedEOF", err)
			}
			if _, err := q.next(); err == nil {
				t.Fatal("a second call after the end read a frame")
			}
		case 1: // one frame taken, the rest still coming: stop ends it
			if _, err := q.next(); err != nil {
				t.Fatal(err)
			}
		}
		stopped := make(chan struct{})
		go func() { q.stop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: stop never returned", round)
		}
		remote.Close()
		if k := <-sent; round == 1 && k == frames {
			t.Errorf("the queue read all %d frames though only one was taken", frames)
		}
	}
}
