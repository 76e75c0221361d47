package stream

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"io"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/cryptotest"
	"testing/iotest"

	"github.com/hushnet/hush/crypto/internal/kattest"
)

var update = flag.Bool("update", false, "rewrite testdata")

// pattern returns the n-byte test plaintext: byte i is i mod 251.
func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i % 251)
	}
	return p
}

func newKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

func encrypt(t testing.TB, key, pt []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, key)
	if err != nil {
		t.Fatal(err)
	}
	// Uneven write sizes exercise the chunk buffering.
	for rest, i := pt, 0; len(rest) > 0; i++ {
		n := min(len(rest), 1+(i*7919)%(ChunkSize+3))
		if m, err := w.Write(rest[:n]); err != nil || m != n {
			t.Fatalf("Write = %d, %v", m, err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decrypt returns what NewReader released and the error that ended it
// (nil for a clean io.EOF).
func decrypt(t testing.TB, key, payload []byte) ([]byte, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(payload), key)
	if err != nil {
		t.Fatal(err)
	}
	return io.ReadAll(r)
}

// decryptAt reads the whole plaintext through a ReaderAt.
func decryptAt(key, payload []byte) ([]byte, error) {
	ra, err := NewReaderAt(bytes.NewReader(payload), int64(len(payload)), key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, ra.Size())
	n, err := ra.ReadAt(out, 0)
	if err != nil && !(err == io.EOF && n == len(out)) {
		return nil, err
	}
	return out, nil
}

var sizes = []int{0, 1, 100, ChunkSize - 1, ChunkSize, ChunkSize + 1, 2 * ChunkSize, 3*ChunkSize + 5}

func TestRoundTrip(t *testing.T) {
	for _, n := range sizes {
		for _, keyLen := range []int{16, 32} {
			key := newKey()[:keyLen]
			pt := pattern(n)
			payload := encrypt(t, key, pt)
			if int64(len(payload)) != EncryptedSize(int64(n)) {
				t.Fatalf("size %d: payload %d bytes, EncryptedSize %d", n, len(payload), EncryptedSize(int64(n)))
			}
			if ps, err := PlaintextSize(int64(len(payload))); err != nil || ps != int64(n) {
				t.Fatalf("size %d: PlaintextSize = %d, %v", n, ps, err)
			}
			got, err := decrypt(t, key, payload)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("size %d: reader: %d bytes, %v", n, len(got), err)
			}
			got, err = decryptAt(key, payload)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("size %d: ReaderAt: %d bytes, %v", n, len(got), err)
			}
			// A byte-at-a-time source and one-byte reads give the same.
			r, _ := NewReader(iotest.OneByteReader(bytes.NewReader(payload)), key)
			got, err = io.ReadAll(iotest.OneByteReader(r))
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("size %d: one-byte reader: %v", n, err)
			}
		}
	}
}

func TestReaderConformsToIOTest(t *testing.T) {
	key := newKey()
	pt := pattern(2*ChunkSize + 77)
	r, _ := NewReader(bytes.NewReader(encrypt(t, key, pt)), key)
	if err := iotest.TestReader(r, pt); err != nil {
		t.Fatal(err)
	}
}

func TestWrongKey(t *testing.T) {
	key := newKey()
	payload := encrypt(t, key, pattern(10))
	other := newKey()
	if got, err := decrypt(t, other, payload); !errors.Is(err, ErrDecrypt) || len(got) != 0 {
		t.Fatalf("wrong key: %d bytes, %v", len(got), err)
	}
	if _, err := decryptAt(other, payload); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong key ReaderAt: %v", err)
	}
}

func TestKeySize(t *testing.T) {
	for _, n := range []int{0, 15, 17, 31, 33, 64} {
		k := make([]byte, n)
		if _, err := NewWriter(io.Discard, k); !errors.Is(err, ErrKeySize) {
			t.Errorf("NewWriter(%d-byte key) = %v", n, err)
		}
		if _, err := NewReader(bytes.NewReader(nil), k); !errors.Is(err, ErrKeySize) {
			t.Errorf("NewReader(%d-byte key) = %v", n, err)
		}
		if _, err := NewReaderAt(bytes.NewReader(make([]byte, 32)), 32, k); !errors.Is(err, ErrKeySize) {
			t.Errorf("NewReaderAt(%d-byte key) = %v", n, err)
		}
	}
}

func TestSizes(t *testing.T) {
	const e = ChunkSize + TagSize
	valid := []struct{ pt, enc int64 }{
		{0, 32},
		{1, 33},
		{ChunkSize, 16 + e},
		{ChunkSize + 1, 16 + e + 17},
		{2 * ChunkSize, 16 + 2*e},
	}
	for _, v := range valid {
		if got := EncryptedSize(v.pt); got != v.enc {
			t.Errorf("EncryptedSize(%d) = %d, want %d", v.pt, got, v.enc)
		}
		if got, err := PlaintextSize(v.enc); err != nil || got != v.pt {
			t.Errorf("PlaintextSize(%d) = %d, %v; want %d", v.enc, got, err, v.pt)
		}
	}
	for _, enc := range []int64{-1, 0, 16, 31, 16 + e + 16, 16 + 2*e + 1, 16 + 2*e + 15} {
		if _, err := PlaintextSize(enc); !errors.Is(err, ErrInvalidSize) {
			t.Errorf("PlaintextSize(%d) = %v, want ErrInvalidSize", enc, err)
		}
		if _, err := NewReaderAt(bytes.NewReader(nil), enc, newKey()); !errors.Is(err, ErrInvalidSize) {
			t.Errorf("NewReaderAt(size %d) = %v, want ErrInvalidSize", enc, err)
		}
	}
	for _, pt := range []int64{-1, math.MaxInt64, math.MaxInt64 - 40} {
		if got := EncryptedSize(pt); got != -1 {
			t.Errorf("EncryptedSize(%d) = %d, want -1", pt, got)
		}
	}
	// Every size near the limit either maps back or is rejected, never wraps.
	for i := range int64(100) {
		enc := int64(math.MaxInt64) - i*1999
		if pt, err := PlaintextSize(enc); err == nil && EncryptedSize(pt) != enc {
			t.Fatalf("PlaintextSize(%d) = %d does not invert", enc, pt)
		}
	}
}

// chunkOffsets returns the offsets where each sealed chunk starts.
func chunkOffsets(payloadLen int) []int {
	var offs []int
	for off := NonceSize; off < payloadLen; off += encChunk {
		offs = append(offs, off)
	}
	return offs
}

func TestTruncationAtEveryChunkBoundary(t *testing.T) {
	key := newKey()
	pt := pattern(3*ChunkSize + 1000)
	payload := encrypt(t, key, pt)
	var cuts []int
	for _, off := range append(chunkOffsets(len(payload)), len(payload)) {
		for _, d := range []int{-17, -16, -1, 0, 1, 16, 17} {
			if c := off + d; c >= 0 && c < len(payload) {
				cuts = append(cuts, c)
			}
		}
	}
	cuts = append(cuts, 0, 1, NonceSize-1)
	for _, cut := range cuts {
		got, err := decrypt(t, key, payload[:cut])
		if err == nil {
			t.Fatalf("cut at %d: reader succeeded", cut)
		}
		if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrDecrypt) {
			t.Fatalf("cut at %d: reader error %v", cut, err)
		}
		if !bytes.HasPrefix(pt, got) || len(got)%ChunkSize != 0 {
			t.Fatalf("cut at %d: released %d bytes that are not whole leading chunks", cut, len(got))
		}
		if _, err := decryptAt(key, payload[:cut]); err == nil {
			t.Fatalf("cut at %d: ReaderAt succeeded", cut)
		}
		if _, err := decryptOpener(key, payload[:cut]); err == nil {
			t.Fatalf("cut at %d: Opener succeeded", cut)
		}
	}
}

func TestReorderedChunks(t *testing.T) {
	key := newKey()
	pt := pattern(3*ChunkSize + 1000)
	payload := encrypt(t, key, pt)
	offs := chunkOffsets(len(payload))
	chunk := func(i int) []byte { return payload[offs[i]:min(offs[i]+encChunk, len(payload))] }
	build := func(order ...int) []byte {
		out := append([]byte(nil), payload[:NonceSize]...)
		for _, i := range order {
			out = append(out, chunk(i)...)
		}
		return out
	}
	tests := []struct {
		name  string
		order []int
		want  error
	}{
		{"swap first two", []int{1, 0, 2, 3}, ErrDecrypt},
		{"swap middle", []int{0, 2, 1, 3}, ErrDecrypt},
		{"drop middle", []int{0, 1, 3}, ErrDecrypt},
		{"duplicate first", []int{0, 0, 1, 2, 3}, ErrDecrypt},
		{"final chunk early", []int{0, 3}, ErrDecrypt},
		{"final chunk twice", []int{0, 1, 2, 3, 3}, ErrDecrypt},
		{"original", []int{0, 1, 2, 3}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := build(tc.order...)
			got, err := decrypt(t, key, p)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("reader error %v, want %v", err, tc.want)
			}
			if !bytes.HasPrefix(pt, got) {
				t.Fatal("released plaintext is not a prefix of the original")
			}
			if _, err := decryptAt(key, p); (err == nil) != (tc.want == nil) {
				t.Fatalf("ReaderAt error %v, want failure=%v", err, tc.want != nil)
			}
		})
	}
}

func TestTamperEveryChunk(t *testing.T) {
	key := newKey()
	pt := pattern(2*ChunkSize + 10)
	payload := encrypt(t, key, pt)
	for _, pos := range []int{0, 5, NonceSize, NonceSize + 100, NonceSize + encChunk - 1, NonceSize + encChunk, len(payload) - 1} {
		p := append([]byte(nil), payload...)
		p[pos] ^= 0x40
		got, err := decrypt(t, key, p)
		if !errors.Is(err, ErrDecrypt) {
			t.Fatalf("flip at %d: %v", pos, err)
		}
		if !bytes.HasPrefix(pt, got) {
			t.Fatalf("flip at %d: released unauthenticated data", pos)
		}
		if _, err := decryptAt(key, p); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("flip at %d: ReaderAt %v", pos, err)
		}
	}
}

func TestTrailingData(t *testing.T) {
	key := newKey()
	for _, n := range []int{0, 10, ChunkSize} {
		pt := pattern(n)
		payload := encrypt(t, key, pt)
		for _, extra := range []int{1, 16, encChunk} {
			p := append(append([]byte(nil), payload...), make([]byte, extra)...)
			got, err := decrypt(t, key, p)
			if err == nil {
				t.Fatalf("size %d + %d trailing: reader succeeded", n, extra)
			}
			// After a full final chunk the extra bytes are seen as
			// trailing; after a short one they make that chunk fail.
			want := ErrDecrypt
			if n == ChunkSize {
				want = ErrTrailingData
			}
			if !errors.Is(err, want) {
				t.Fatalf("size %d + %d trailing: %v, want %v", n, extra, err, want)
			}
			if !bytes.HasPrefix(pt, got) {
				t.Fatal("released plaintext is not a prefix")
			}
		}
	}
}

func TestStickyError(t *testing.T) {
	key := newKey()
	payload := encrypt(t, key, pattern(2*ChunkSize+1))
	payload[len(payload)-1] ^= 1
	r, _ := NewReader(bytes.NewReader(payload), key)
	io.ReadAll(r)
	for range 3 {
		if n, err := r.Read(make([]byte, 10)); n != 0 || !errors.Is(err, ErrDecrypt) {
			t.Fatalf("Read after failure = %d, %v", n, err)
		}
	}
	// A failing source is reported, wrapped, and sticks too.
	boom := errors.New("boom")
	r, _ = NewReader(iotest.ErrReader(boom), key)
	for range 2 {
		if _, err := r.Read(make([]byte, 10)); !errors.Is(err, boom) {
			t.Fatalf("Read = %v, want boom", err)
		}
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(p), nil
}

func TestWriterErrors(t *testing.T) {
	key := newKey()
	w, _ := NewWriter(io.Discard, key)
	w.Write([]byte("x"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("y")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close = %v", err)
	}
	if err := w.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	// The destination failing on the nonce, then on a chunk.
	for _, okWrites := range []int{0, 1} {
		w, _ := NewWriter(&failWriter{n: okWrites}, key)
		_, err := w.Write(pattern(3 * ChunkSize))
		if err == nil {
			err = w.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("ok writes %d: error %v", okWrites, err)
		}
		if err2 := w.Close(); err2 == nil {
			t.Fatal("Close after a write error succeeded")
		}
	}
	// NewWriter writes nothing; an empty payload is nonce + one tag.
	var buf bytes.Buffer
	w, _ = NewWriter(&buf, key)
	if buf.Len() != 0 {
		t.Fatal("NewWriter wrote")
	}
	w.Close()
	if buf.Len() != NonceSize+TagSize {
		t.Fatalf("empty payload is %d bytes", buf.Len())
	}
}

func TestReaderAtRandomOffsets(t *testing.T) {
	key := newKey()
	pt := pattern(5*ChunkSize + 333)
	payload := encrypt(t, key, pt)
	ra, err := NewReaderAt(bytes.NewReader(payload), int64(len(payload)), key)
	if err != nil {
		t.Fatal(err)
	}
	if ra.Size() != int64(len(pt)) {
		t.Fatalf("Size = %d", ra.Size())
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	for range 300 {
		off := rng.Int64N(int64(len(pt)) + 10)
		n := rng.IntN(3 * ChunkSize)
		buf := make([]byte, n)
		got, err := ra.ReadAt(buf, off)
		end := min(off+int64(n), int64(len(pt)))
		want := []byte{}
		if off < int64(len(pt)) {
			want = pt[off:end]
		}
		if got != len(want) || !bytes.Equal(buf[:got], want) {
			t.Fatalf("ReadAt(%d, %d) = %d bytes, want %d", n, off, got, len(want))
		}
		if got < n && err != io.EOF {
			t.Fatalf("short ReadAt without io.EOF: %v", err)
		}
		if got == n && err != nil {
			t.Fatalf("full ReadAt with error %v", err)
		}
	}
	if _, err := ra.ReadAt(make([]byte, 1), -1); err == nil {
		t.Fatal("negative offset accepted")
	}
	// Resume from the middle: reading the tail equals the plain reader's tail.
	sr := io.NewSectionReader(ra, 2*ChunkSize+7, ra.Size())
	tail, err := io.ReadAll(sr)
	if err != nil || !bytes.Equal(tail, pt[2*ChunkSize+7:]) {
		t.Fatalf("section tail: %v", err)
	}
	// Concurrent use is race free.
	done := make(chan error, 4)
	for g := range 4 {
		go func() {
			buf := make([]byte, 1000)
			for i := range 20 {
				off := int64((g*20+i)*7777) % (ra.Size() - 1000)
				if _, err := ra.ReadAt(buf, off); err != nil || !bytes.Equal(buf, pt[off:off+1000]) {
					done <- errors.New("concurrent ReadAt mismatch")
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestReaderAtLazyAuthentication(t *testing.T) {
	// A corrupted middle chunk is only found when read; other ranges work.
	key := newKey()
	pt := pattern(3*ChunkSize + 5)
	payload := encrypt(t, key, pt)
	payload[NonceSize+encChunk+3] ^= 1
	ra, err := NewReaderAt(bytes.NewReader(payload), int64(len(payload)), key)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := ra.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, pt[:10]) {
		t.Fatalf("chunk 0: %v", err)
	}
	if _, err := ra.ReadAt(buf, ChunkSize+1); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("chunk 1: %v", err)
	}
}

// ---- known-answer vectors ------------------------------------------------------

type katFile struct {
	Description string      `json:"description"`
	Generator   string      `json:"generator"`
	Vectors     []katVector `json:"vectors"`
}

type katVector struct {
	Name            string `json:"name"`
	Seed            uint64 `json:"seed"`
	PlaintextLen    int    `json:"plaintext_len"`
	PlaintextSHA256 string `json:"plaintext_sha256"`
	FileKey         string `json:"file_key"`
	Nonce           string `json:"nonce"`
	PayloadKey      string `json:"payload_key"`
	Payload         string `json:"payload"`
}

const katPath = "testdata/kat_stream.json"

func katCase(t *testing.T, name string, seed uint64, n int) katVector {
	cryptotest.SetGlobalRandom(t, seed)
	key := newKey()
	pt := pattern(n)
	payload := encrypt(t, key, pt)
	nonce := payload[:NonceSize]
	sum := sha256.Sum256(pt)
	return katVector{
		Name: name, Seed: seed, PlaintextLen: n,
		PlaintextSHA256: hex.EncodeToString(sum[:]),
		FileKey:         hex.EncodeToString(key),
		Nonce:           hex.EncodeToString(nonce),
		PayloadKey:      hex.EncodeToString(payloadKeyForTest(key, nonce)),
		Payload:         hex.EncodeToString(payload),
	}
}

func TestKAT(t *testing.T) {
	cases := []struct {
		name string
		n    int
	}{
		{"empty", 0},
		{"one byte", 1},
		{"exactly one chunk", ChunkSize},
		{"one chunk plus one byte", ChunkSize + 1},
		{"200 KiB", 200 * 1024},
	}
	var fresh []katVector
	for i, c := range cases {
		fresh = append(fresh, katCase(t, c.name, uint64(i+1), c.n))
	}
	if *update {
		f := katFile{
			Description: "crypto/stream payloads (age STREAM): file key and nonce from crypto/rand seeded with seed; plaintext byte i is i mod 251",
			Generator:   "go test ./crypto/stream -run TestKAT -update",
			Vectors:     fresh,
		}
		kattest.Write(t, katPath, f)
	}
	var f katFile
	kattest.Read(t, katPath, &f)
	if len(f.Vectors) != len(cases) {
		t.Fatalf("%d vectors, want %d", len(f.Vectors), len(cases))
	}
	for i, v := range f.Vectors {
		// Opening: independent of how the runtime draws randomness.
		key, _ := hex.DecodeString(v.FileKey)
		payload, _ := hex.DecodeString(v.Payload)
		pt, err := decrypt(t, key, payload)
		sum := sha256.Sum256(pt)
		if err != nil || len(pt) != v.PlaintextLen || hex.EncodeToString(sum[:]) != v.PlaintextSHA256 || !bytes.Equal(pt, pattern(v.PlaintextLen)) {
			t.Fatalf("%s: opening failed: %v", v.Name, err)
		}
		if got, err := decryptAt(key, payload); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%s: ReaderAt opening failed: %v", v.Name, err)
		}
		if hex.EncodeToString(payloadKeyForTest(key, payload[:NonceSize])) != v.PayloadKey {
			t.Fatalf("%s: payload key differs", v.Name)
		}
		// The writer with the stored nonce reproduces the payload exactly.
		var buf bytes.Buffer
		w, _ := newWriter(&buf, key, payload[:NonceSize])
		w.Write(pt)
		w.Close()
		if !bytes.Equal(buf.Bytes(), payload) {
			t.Fatalf("%s: writer with stored nonce differs", v.Name)
		}
		// Regeneration from the seed.
		if fresh[i] != v {
			t.Errorf("%s: regeneration from seed %d differs (see docs/protocol/kat.md)", v.Name, v.Seed)
		}
	}
}

// payloadKeyForTest recomputes the payload key with crypto/hkdf directly.
func payloadKeyForTest(fileKey, nonce []byte) []byte {
	return hkdfForTest(fileKey, nonce, "payload")
}

// ---- CCTV age vectors -------------------------------------------------------------

type cctvVector struct {
	name    string
	expect  string
	payload string // sha256 of the released plaintext, hex; may be empty
	fileKey []byte
	body    []byte // the age payload: nonce ‖ chunks
}

func loadCCTV(t *testing.T) []cctvVector {
	files, err := filepath.Glob("testdata/cctv/stream_*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no CCTV vectors: %v", err)
	}
	var out []cctvVector
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		v := cctvVector{name: filepath.Base(name)}
		br := bufio.NewReader(bytes.NewReader(data))
		compressed := false
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: preamble: %v", name, err)
			}
			line = strings.TrimSuffix(line, "\n")
			if line == "" {
				break
			}
			k, val, _ := strings.Cut(line, ": ")
			switch k {
			case "expect":
				v.expect = val
			case "payload":
				v.payload = val
			case "file key":
				v.fileKey, _ = hex.DecodeString(val)
			case "compressed":
				compressed = val == "zlib"
			}
		}
		age, _ := io.ReadAll(br)
		if compressed {
			zr, err := zlib.NewReader(bytes.NewReader(age))
			if err != nil {
				t.Fatal(err)
			}
			if age, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		// Skip the age header, up to and including the "--- " MAC line.
		i := bytes.Index(age, []byte("\n--- "))
		if i < 0 {
			t.Fatalf("%s: no MAC line", name)
		}
		j := bytes.IndexByte(age[i+1:], '\n')
		if j < 0 {
			t.Fatalf("%s: unterminated MAC line", name)
		}
		v.body = age[i+1+j+1:]
		out = append(out, v)
	}
	return out
}

func TestCCTV(t *testing.T) {
	ran := 0
	for _, v := range loadCCTV(t) {
		t.Run(v.name, func(t *testing.T) {
			ran++
			got, err := decrypt(t, v.fileKey, v.body)
			sum := sha256.Sum256(got)
			if v.payload != "" && hex.EncodeToString(sum[:]) != v.payload {
				t.Errorf("released plaintext hash %x, want %s (err %v)", sum, v.payload, err)
			}
			atGot, atErr := decryptAt(v.fileKey, v.body)
			opGot, opErr := decryptOpener(v.fileKey, v.body)
			switch v.expect {
			case "success":
				if err != nil {
					t.Fatalf("reader: %v", err)
				}
				if atErr != nil || !bytes.Equal(atGot, got) {
					t.Fatalf("ReaderAt: %v", atErr)
				}
				if opErr != nil || !bytes.Equal(opGot, got) {
					t.Fatalf("Opener: %v", opErr)
				}
				// Round trip through the writer with the same nonce.
				var buf bytes.Buffer
				w, err := newWriter(&buf, v.fileKey, v.body[:NonceSize])
				if err != nil {
					t.Fatal(err)
				}
				w.Write(got)
				w.Close()
				if !bytes.Equal(buf.Bytes(), v.body) {
					t.Fatal("writer does not reproduce the payload")
				}
			case "payload failure", "header failure":
				if err == nil {
					t.Fatal("reader accepted a bad payload")
				}
				if atErr == nil {
					t.Fatal("ReaderAt accepted a bad payload")
				}
				if opErr == nil {
					t.Fatal("Opener accepted a bad payload")
				}
			default:
				t.Fatalf("unexpected expect %q", v.expect)
			}
		})
	}
	if ran == 0 {
		t.Fatal("no CCTV vectors ran")
	}
}

// ---- fuzz and benchmark ---------------------------------------------------------------

func FuzzReader(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 32)
	// Small chunks keep the fuzzer fast; seeds cover every framing case.
	for _, n := range []int{0, 1, 40, ChunkSize, ChunkSize + 1} {
		var buf bytes.Buffer
		w, _ := newWriter(&buf, key, make([]byte, NonceSize))
		w.Write(pattern(n))
		w.Close()
		p := buf.Bytes()
		f.Add(p)
		f.Add(p[:len(p)-1])
		f.Add(append(append([]byte(nil), p...), 0))
	}
	f.Add([]byte{})
	f.Add(make([]byte, NonceSize+TagSize-1))
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, err := NewReader(bytes.NewReader(payload), key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		atGot, atErr := decryptAt(key, payload)
		if err != nil {
			if atErr == nil && !errors.Is(err, ErrTrailingData) {
				t.Fatalf("ReaderAt accepted what the reader rejected (%v)", err)
			}
			return
		}
		if atErr != nil || !bytes.Equal(atGot, got) {
			t.Fatalf("ReaderAt disagrees: %v", atErr)
		}
		// Accepted payloads are canonical: re-encrypting reproduces them.
		var buf bytes.Buffer
		w, _ := newWriter(&buf, key, payload[:NonceSize])
		w.Write(got)
		w.Close()
		if !bytes.Equal(buf.Bytes(), payload) {
			t.Fatal("accepted payload is not the canonical encryption")
		}
	})
}

func BenchmarkStream(b *testing.B) {
	key := newKey()
	pt := pattern(1 << 20)
	b.SetBytes(int64(len(pt)))
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		w, _ := NewWriter(&buf, key)
		w.Write(pt)
		w.Close()
		r, _ := NewReader(&buf, key)
		if n, err := io.Copy(io.Discard, r); err != nil || n != int64(len(pt)) {
			b.Fatal(n, err)
		}
	}
}

func hkdfForTest(secret, salt []byte, info string) []byte {
	k, err := hkdf.Key(sha256.New, secret, salt, info, 32)
	if err != nil {
		panic(err)
	}
	return k
}
