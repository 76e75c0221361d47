package attach

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// gradient is a w×h image with smooth colours.
func gradient(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255})
		}
	}
	return img
}

func encode(t testing.TB, format string, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	var err error
	switch format {
	case "png":
		err = png.Encode(&b, img)
	case "jpeg":
		err = jpeg.Encode(&b, img, &jpeg.Options{Quality: 90})
	case "gif":
		err = gif.Encode(&b, img, &gif.Options{NumColors: 256})
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func inspectBytes(t *testing.T, b []byte) Info {
	t.Helper()
	info, err := Inspect(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestInspectImages(t *testing.T) {
	for _, c := range []struct {
		format, mime string
		w, h         int
		tw, th       int
	}{
		{"png", "image/png", 640, 480, 96, 72},
		{"jpeg", "image/jpeg", 1000, 300, 96, 29},
		{"gif", "image/gif", 50, 120, 40, 96},
		{"png", "image/png", 40, 30, 40, 30}, // small: not scaled up
		{"jpeg", "image/jpeg", 1, 5000, 1, 96},
	} {
		info := inspectBytes(t, encode(t, c.format, gradient(c.w, c.h)))
		if info.MIME != c.mime || info.Width != c.w || info.Height != c.h {
			t.Fatalf("%s %dx%d: got %q %dx%d", c.format, c.w, c.h, info.MIME, info.Width, info.Height)
		}
		if len(info.Thumb) == 0 || len(info.Thumb) > MaxThumbSize {
			t.Fatalf("%s %dx%d: thumbnail of %d bytes", c.format, c.w, c.h, len(info.Thumb))
		}
		thumb, err := jpeg.Decode(bytes.NewReader(info.Thumb))
		if err != nil {
			t.Fatalf("%s: thumbnail is not a JPEG: %v", c.format, err)
		}
		if b := thumb.Bounds(); b.Dx() != c.tw || b.Dy() != c.th {
			t.Fatalf("%s %dx%d: thumbnail %dx%d, want %dx%d", c.format, c.w, c.h, b.Dx(), b.Dy(), c.tw, c.th)
		}
		// The colours survive: the bottom-right corner is red and green.
		r, g, _, _ := thumb.At(c.tw-1, c.th-1).RGBA()
		if c.w > 1 && c.h > 1 && (r>>8 < 150 || g>>8 < 150) {
			t.Fatalf("%s: thumbnail corner colour %d,%d", c.format, r>>8, g>>8)
		}
	}
}

// Transparent pixels become white, not black.
func TestInspectTransparency(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 200, 200))
	info := inspectBytes(t, encode(t, "png", img))
	thumb, err := jpeg.Decode(bytes.NewReader(info.Thumb))
	if err != nil {
		t.Fatal(err)
	}
	if r, g, b, _ := thumb.At(48, 48).RGBA(); r>>8 < 240 || g>>8 < 240 || b>>8 < 240 {
		t.Fatalf("transparent pixel became %d,%d,%d", r>>8, g>>8, b>>8)
	}
}

// Noise compresses badly, yet a 96-pixel thumbnail of it at quality 60
// stays under 8 KiB; one over the limit is dropped, never sent.
func TestInspectNoiseThumbBounded(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	img := image.NewRGBA(image.Rect(0, 0, ThumbSide, ThumbSide))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	info := inspectBytes(t, encode(t, "png", img))
	if info.Width != ThumbSide || len(info.Thumb) == 0 || len(info.Thumb) > MaxThumbSize {
		t.Fatalf("noise: %dx%d, thumbnail %d bytes", info.Width, info.Height, len(info.Thumb))
	}
	t.Logf("thumbnail of %d×%d noise: %d bytes", ThumbSide, ThumbSide, len(info.Thumb))
	if encodeThumb(img, len(info.Thumb)-1) != nil {
		t.Fatal("a thumbnail over the limit was kept")
	}
}

// A PNG whose header claims 20000×20000 pixels gets its dimensions but is
// not decoded (it would need 1.6 GB).
func TestInspectHugeImageNotDecoded(t *testing.T) {
	b := encode(t, "png", gradient(8, 8))
	// IHDR: length(4) "IHDR" width(4) height(4) … crc(4), after the signature.
	binary.BigEndian.PutUint32(b[16:], 20000)
	binary.BigEndian.PutUint32(b[20:], 20000)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	info := inspectBytes(t, b)
	if info.MIME != "image/png" || info.Width != 20000 || info.Height != 20000 || info.Thumb != nil {
		t.Fatalf("huge PNG: %q %dx%d, thumbnail %d bytes", info.MIME, info.Width, info.Height, len(info.Thumb))
	}
}

// The type comes from the content: a PNG named .txt is image/png.
func TestInspectIgnoresName(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, encode(t, "png", gradient(10, 10)), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	info, err := Inspect(f, fi.Size())
	if err != nil || info.MIME != "image/png" {
		t.Fatalf("%q, %v", info.MIME, err)
	}
}

func TestInspectOtherFiles(t *testing.T) {
	for _, c := range []struct {
		data []byte
		mime string
	}{
		{nil, "text/plain; charset=utf-8"},
		{[]byte("hello, world\n"), "text/plain; charset=utf-8"},
		{[]byte("%PDF-1.7\n"), "application/pdf"},
		{[]byte("\x89PNG\r\n\x1a\nbroken"), "image/png"}, // no dimensions, no error
		{plaintext(10_000, 1)[100:], "application/octet-stream"},
	} {
		info := inspectBytes(t, c.data)
		if info.MIME != c.mime || info.Width != 0 || info.Thumb != nil {
			t.Fatalf("%q: %+v", c.data[:min(len(c.data), 10)], info)
		}
	}
	if _, err := Inspect(bytes.NewReader([]byte("short")), 100); err == nil {
		t.Fatal("a file shorter than its size inspected")
	}
}
