package wire

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

func frame(payload []byte) []byte {
	b, err := AppendFrame(nil, payload)
	if err != nil {
		panic(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	payloads := [][]byte{{}, {0}, []byte("hello"), bytes.Repeat([]byte{0xAB}, 70000)}
	var stream bytes.Buffer
	for _, p := range payloads {
		if err := WriteFrame(&stream, p); err != nil {
			t.Fatal(err)
		}
	}
	wantLen := 0
	for _, p := range payloads {
		wantLen += HeaderSize + len(p)
	}
	if stream.Len() != wantLen {
		t.Fatalf("stream is %d bytes, want %d", stream.Len(), wantLen)
	}
	raw := bytes.Clone(stream.Bytes())

	for _, p := range payloads {
		got, err := ReadFrame(&stream, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("got %d bytes, want %d", len(got), len(p))
		}
	}
	if _, err := ReadFrame(&stream, 0); err != io.EOF {
		t.Fatalf("after last frame: %v, want io.EOF", err)
	}

	fr := NewFrameReader(bytes.NewReader(raw), 0)
	for _, p := range payloads {
		got, err := fr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("FrameReader: got %d bytes, want %d", len(got), len(p))
		}
	}
	if _, err := fr.Next(); err != io.EOF {
		t.Fatalf("FrameReader after last frame: %v, want io.EOF", err)
	}
}

func TestWireFormat(t *testing.T) {
	var b bytes.Buffer
	if err := WriteFrame(&b, []byte{0xCA, 0xFE}); err != nil {
		t.Fatal(err)
	}
	if want := []byte{0, 0, 0, 2, 0xCA, 0xFE}; !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("encoding %x, want %x", b.Bytes(), want)
	}
}

// PutHeader writes the same prefix AppendFrame does, and refuses what
// WriteFrame refuses.
func TestPutHeader(t *testing.T) {
	for _, n := range []int{0, 1, 65503, MaxFrame} {
		b := make([]byte, HeaderSize+2)
		if err := PutHeader(b, n); err != nil {
			t.Fatal(err)
		}
		want, _ := AppendFrame(nil, make([]byte, n))
		if !bytes.Equal(b[:HeaderSize], want[:HeaderSize]) {
			t.Errorf("size %d: prefix %x, want %x", n, b[:HeaderSize], want[:HeaderSize])
		}
	}
	for _, n := range []int{-1, MaxFrame + 1} {
		if err := PutHeader(make([]byte, HeaderSize), n); !errors.Is(err, ErrFrameTooLarge) {
			t.Errorf("size %d: %v, want ErrFrameTooLarge", n, err)
		}
	}
}

// countingWriter records how many Write calls it saw.
type countingWriter struct {
	calls int
	bytes.Buffer
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.calls++
	return c.Buffer.Write(p)
}

func TestWriteFrameSingleWrite(t *testing.T) {
	var w countingWriter
	if err := WriteFrame(&w, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if w.calls != 1 {
		t.Fatalf("%d Write calls, want 1", w.calls)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("boom") }

func TestWriteFrameErrors(t *testing.T) {
	if err := WriteFrame(failWriter{}, []byte("x")); err == nil {
		t.Fatal("write error swallowed")
	}
	if err := WriteFrame(io.Discard, make([]byte, MaxFrame+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized payload: %v, want ErrFrameTooLarge", err)
	}
}

func TestEveryTruncation(t *testing.T) {
	full := frame([]byte("truncate me please"))
	for n := 1; n < len(full); n++ {
		_, err := ReadFrame(bytes.NewReader(full[:n]), 0)
		if !errors.Is(err, ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("prefix of %d bytes: %v, want ErrTruncated wrapping io.ErrUnexpectedEOF", n, err)
		}
		_, err = NewFrameReader(bytes.NewReader(full[:n]), 0).Next()
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("FrameReader prefix of %d bytes: %v, want ErrTruncated", n, err)
		}
	}
	if _, err := ReadFrame(bytes.NewReader(nil), 0); err != io.EOF {
		t.Fatalf("empty stream: %v, want exactly io.EOF", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestReadErrorPassedThrough(t *testing.T) {
	sentinel := errors.New("stream reset")
	_, err := ReadFrame(errReader{sentinel}, 0)
	if !errors.Is(err, sentinel) || errors.Is(err, ErrTruncated) {
		t.Fatalf("got %v, want the reader's error", err)
	}
	r := io.MultiReader(bytes.NewReader([]byte{0, 0, 0, 9, 1}), errReader{sentinel})
	if _, err := ReadFrame(r, 0); !errors.Is(err, sentinel) {
		t.Fatalf("mid-payload: got %v, want the reader's error", err)
	}
}

func TestLimits(t *testing.T) {
	p := make([]byte, 100)
	if _, err := ReadFrame(bytes.NewReader(frame(p)), 100); err != nil {
		t.Fatalf("frame at the limit: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader(frame(p)), 99); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("frame over the limit: %v", err)
	}
	big := frame(make([]byte, DefaultMaxFrame+1))
	if _, err := ReadFrame(bytes.NewReader(big), 0); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("default limit not applied: %v", err)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], MaxFrame+1)
	if _, err := ReadFrame(bytes.NewReader(hdr[:]), 1<<30); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("cap above MaxFrame not clamped: %v", err)
	}
}

// bytesPerRun reports the heap bytes fn allocates per call, on average.
func bytesPerRun(runs int, fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		fn()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// An attacker's header declaring 4 GiB must cost nothing but the error
// value: the check happens before the payload buffer is allocated.
func TestOversizedDeclaredLengthNoAllocation(t *testing.T) {
	hdr := []byte{0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3}
	rd := bytes.NewReader(hdr)
	fr := NewFrameReader(rd, 0)
	if per := bytesPerRun(100, func() {
		rd.Reset(hdr)
		if _, err := fr.Next(); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("got %v", err)
		}
	}); per > 512 {
		t.Fatalf("FrameReader allocated %d bytes per rejected frame", per)
	}
	if per := bytesPerRun(100, func() {
		rd.Reset(hdr)
		if _, err := ReadFrame(rd, 0); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("got %v", err)
		}
	}); per > 512 {
		t.Fatalf("ReadFrame allocated %d bytes per rejected frame", per)
	}
	// Control: the same measurement does see an accepted large frame.
	ok := frame(make([]byte, 64<<10))
	if per := bytesPerRun(10, func() {
		rd.Reset(ok)
		if _, err := ReadFrame(rd, 0); err != nil {
			t.Fatal(err)
		}
	}); per < 64<<10 {
		t.Fatalf("measurement broken: accepted 64 KiB frame cost %d bytes", per)
	}
}

// A header declaring a frame under the cap, followed by 1 KiB and the end
// of the stream, must commit memory for what arrived, not for what was
// declared: many such streams at once are the relay attack of issue 12
// item 5.
func TestDeclaredLengthCommitsOnlyWhatArrives(t *testing.T) {
	const declared, sent = 1 << 20, 1 << 10
	partial := binary.BigEndian.AppendUint32(nil, declared)
	partial = append(partial, make([]byte, sent)...)
	rd := bytes.NewReader(partial)
	if per := bytesPerRun(20, func() {
		rd.Reset(partial)
		if _, err := ReadFrame(rd, 0); !errors.Is(err, ErrTruncated) {
			t.Fatalf("got %v, want ErrTruncated", err)
		}
	}); per > 16<<10 {
		t.Fatalf("ReadFrame committed %d bytes for a frame declaring %d and sending %d", per, declared, sent)
	}
	if per := bytesPerRun(20, func() {
		rd.Reset(partial)
		if _, err := NewFrameReader(rd, 0).Next(); !errors.Is(err, ErrTruncated) {
			t.Fatalf("got %v, want ErrTruncated", err)
		}
	}); per > 16<<10 {
		t.Fatalf("FrameReader committed %d bytes for a frame declaring %d and sending %d", per, declared, sent)
	}
}

// Frames around and far above the first chunk, delivered a few bytes at
// a time, come out whole; the truncation error counts what arrived.
func TestIncrementalReadSizes(t *testing.T) {
	for _, size := range []int{0, 1, 4095, 4096, 4097, 3*4096 + 7, 405 << 10, DefaultMaxFrame} {
		p := make([]byte, size)
		rand.Read(p)
		got, err := ReadFrame(iotest.OneByteReader(bytes.NewReader(frame(p))), 0)
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("size %d: err %v, equal %v", size, err, bytes.Equal(got, p))
		}
		var two bytes.Buffer
		two.Write(frame(p))
		two.Write(frame(p[:size/2]))
		fr := NewFrameReader(iotest.HalfReader(&two), 0)
		for _, want := range [][]byte{p, p[:size/2]} {
			got, err := fr.Next()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("size %d: FrameReader err %v, equal %v", size, err, bytes.Equal(got, want))
			}
		}
		if size > 0 {
			_, err := ReadFrame(bytes.NewReader(frame(p)[:HeaderSize+size-1]), 0)
			if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), fmt.Sprintf("%d of %d", size-1, size)) {
				t.Fatalf("size %d cut by one: %v", size, err)
			}
		}
	}
}

func TestFrameReaderReusesBuffer(t *testing.T) {
	var stream bytes.Buffer
	for range 3 {
		WriteFrame(&stream, make([]byte, 512))
	}
	fr := NewFrameReader(&stream, 0)
	a, _ := fr.Next()
	b, err := fr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if &a[0] != &b[0] {
		t.Fatal("FrameReader allocated a new buffer for an equal-size frame")
	}
	one := frame(make([]byte, 256))
	rd := bytes.NewReader(one)
	fr = NewFrameReader(rd, 0)
	fr.Next()
	if allocs := testing.AllocsPerRun(50, func() {
		rd.Reset(one)
		if _, err := fr.Next(); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Fatalf("FrameReader.Next: %.0f allocations per frame, want 0", allocs)
	}
}

func TestGarbage(t *testing.T) {
	// A random-looking stream either yields frames within the cap, or an
	// error; never a panic or an over-cap frame.
	garbage := []byte{0x00, 0x00, 0x00, 0x03, 'a', 'b', 'c', 0x7F, 0xFF, 0x00, 0x00, 0x12}
	fr := NewFrameReader(bytes.NewReader(garbage), 64)
	f, err := fr.Next()
	if err != nil || string(f) != "abc" {
		t.Fatalf("first frame %q, %v", f, err)
	}
	if _, err := fr.Next(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("second frame: %v, want ErrFrameTooLarge", err)
	}
}

func TestMessage(t *testing.T) {
	const (
		kindText Kind = 1
		kindAck  Kind = 200
	)
	known := NewKindSet(kindText, kindAck)
	for _, k := range []Kind{kindText, kindAck} {
		enc := EncodeMessage(k, []byte("body"))
		got, body, err := DecodeMessage(enc, known)
		if err != nil || got != k || string(body) != "body" {
			t.Fatalf("kind %d: got %d %q %v", k, got, body, err)
		}
	}
	got, body, err := DecodeMessage([]byte{byte(kindAck)}, known)
	if err != nil || got != kindAck || len(body) != 0 {
		t.Fatalf("empty body: %d %q %v", got, body, err)
	}
	for _, k := range []Kind{0, 2, 63, 64, 199, 201, 255} {
		if _, _, err := DecodeMessage([]byte{byte(k), 1}, known); !errors.Is(err, ErrUnknownKind) {
			t.Fatalf("kind %d accepted: %v", k, err)
		}
	}
	if _, _, err := DecodeMessage(nil, known); !errors.Is(err, ErrEmptyMessage) {
		t.Fatalf("empty payload: %v", err)
	}
	if _, _, err := DecodeMessage([]byte{1}, KindSet{}); !errors.Is(err, ErrUnknownKind) {
		t.Fatal("zero KindSet accepted a kind")
	}
	for k := range 256 {
		set := NewKindSet(Kind(k))
		for j := range 256 {
			if set.Has(Kind(j)) != (j == k) {
				t.Fatalf("set of {%d}: Has(%d) = %v", k, j, set.Has(Kind(j)))
			}
		}
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(frame([]byte("hello")), 16)
	f.Add([]byte{0, 0, 0}, 0)
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF}, 0)
	f.Add(append(frame(nil), frame([]byte{1, 2})...), 4)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		max %= 1 << 16
		limit := clampMax(max)
		fr := NewFrameReader(bytes.NewReader(data), max)
		rd := bytes.NewReader(data)
		for {
			a, errA := ReadFrame(rd, max)
			b, errB := fr.Next()
			if (errA == nil) != (errB == nil) {
				t.Fatalf("ReadFrame %v, FrameReader %v", errA, errB)
			}
			if errA != nil {
				if errA == io.EOF && errB != io.EOF {
					t.Fatalf("EOF mismatch: %v %v", errA, errB)
				}
				if errA != io.EOF && !errors.Is(errA, ErrTruncated) && !errors.Is(errA, ErrFrameTooLarge) {
					t.Fatalf("unexpected error %v", errA)
				}
				return
			}
			if len(a) > limit || !bytes.Equal(a, b) {
				t.Fatalf("frame of %d bytes (limit %d), readers disagree: %v", len(a), limit, !bytes.Equal(a, b))
			}
			// Re-encoding gives back the bytes consumed.
			if enc := frame(a); !bytes.Contains(data, enc) {
				t.Fatal("re-encoded frame not found in input")
			}
		}
	})
}

func BenchmarkFrameRoundTrip(b *testing.B) {
	for _, size := range []int{256, 16 << 10} {
		b.Run(byteSize(size), func(b *testing.B) {
			payload := make([]byte, size)
			var buf bytes.Buffer
			fr := NewFrameReader(&buf, 0)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := WriteFrame(&buf, payload); err != nil {
					b.Fatal(err)
				}
				if _, err := fr.Next(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func byteSize(n int) string {
	if n >= 1<<10 {
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}
