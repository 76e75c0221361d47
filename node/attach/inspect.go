package attach

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
)

// Thumbnail parameters (docs/protocol/files.md §19.2).
const (
	// ThumbSide is the longest side of a thumbnail, in pixels.
	ThumbSide = 96
	// ThumbQuality is the JPEG quality of a thumbnail.
	ThumbQuality = 60
	// MaxThumbPixels is the largest image (width × height) Inspect
	// decodes for a thumbnail. Decoding holds the whole image in memory,
	// 1.5 to 8 bytes a pixel depending on the format, so larger images get
	// their dimensions but no thumbnail.
	MaxThumbPixels = 50_000_000
	// sniffLen is how much net/http.DetectContentType looks at.
	sniffLen = 512
)

// Info is what Inspect learns about a file.
type Info struct {
	MIME   string // from the content (net/http.DetectContentType, refined for audio and video)
	Width  int    // pixels of an image, 0: unknown
	Height int    // pixels of an image, 0: unknown
	Thumb  []byte // JPEG thumbnail of at most MaxThumbSize bytes, or nil
	// DurationMS is the duration of audio or video in milliseconds
	// (rounded down) as its container states it, 0: unknown.
	DurationMS uint64
}

// Inspect sniffs the type of the size bytes in r from the first 512 bytes
// (never from a name) and, for a JPEG, PNG or GIF, reads the dimensions
// and makes a thumbnail: the longest side scaled to ThumbSide pixels (never
// up), JPEG quality ThumbQuality, dropped if over MaxThumbSize. It uses
// the standard library's decoders only. For an MP4 (M4A, QuickTime, 3GPP),
// WAV or Ogg Opus or Vorbis file it reads the duration the container
// states (duration.go; the media are never decoded). A malformed or huge
// image is not an error: it gets no dimensions or no thumbnail; nor is a
// malformed container: its duration is 0. Only a failure to read the
// first bytes is.
func Inspect(r io.ReaderAt, size int64) (Info, error) {
	head := make([]byte, min(size, sniffLen))
	if n, err := r.ReadAt(head, 0); n < len(head) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Info{}, fmt.Errorf("attach: reading the start of the file: %w", err)
	}
	info := Info{MIME: sniffMedia(http.DetectContentType(head), head)}
	var decodeConfig func(io.Reader) (image.Config, error)
	var decode func(io.Reader) (image.Image, error)
	switch info.MIME {
	case "image/jpeg":
		decodeConfig, decode = jpeg.DecodeConfig, jpeg.Decode
	case "image/png":
		decodeConfig, decode = png.DecodeConfig, png.Decode
	case "image/gif":
		decodeConfig, decode = gif.DecodeConfig, gif.Decode // the first frame
	default:
		info.DurationMS = mediaDuration(r, size, info.MIME, head)
		return info, nil
	}
	cfg, err := decodeConfig(io.NewSectionReader(r, 0, size))
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 {
		return info, nil
	}
	info.Width, info.Height = cfg.Width, cfg.Height
	if int64(cfg.Width)*int64(cfg.Height) > MaxThumbPixels {
		return info, nil
	}
	img, err := decode(io.NewSectionReader(r, 0, size))
	if err != nil {
		return info, nil
	}
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		return info, nil
	}
	info.Thumb = encodeThumb(thumbnail(img, ThumbSide), MaxThumbSize)
	return info, nil
}

// encodeThumb encodes a thumbnail as JPEG, or returns nil if that takes
// more than limit bytes.
func encodeThumb(img image.Image, limit int) []byte {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: ThumbQuality}); err != nil || buf.Len() > limit {
		return nil
	}
	return buf.Bytes()
}

// thumbSamples is how many source pixels per axis thumbnail averages for
// one output pixel: a box filter over a grid of samples, so the cost does
// not grow with the source image.
const thumbSamples = 4

// thumbnail scales img so that its longest side is at most side pixels,
// averaging a grid of samples in each output pixel's box and compositing
// transparency over white (JPEG has no alpha).
func thumbnail(img image.Image, side int) *image.RGBA {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	tw, th := w, h
	if w > side || h > side {
		if w >= h {
			tw, th = side, max(1, (h*side+w/2)/w)
		} else {
			tw, th = max(1, (w*side+h/2)/h), side
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, tw, th))
	for y := range th {
		y0, y1 := y*h/th, max((y+1)*h/th, y*h/th+1)
		for x := range tw {
			x0, x1 := x*w/tw, max((x+1)*w/tw, x*w/tw+1)
			sy, sx := min(thumbSamples, y1-y0), min(thumbSamples, x1-x0)
			var r, g, bl, n uint64
			for j := range sy {
				py := b.Min.Y + y0 + (2*j+1)*(y1-y0)/(2*sy)
				for i := range sx {
					px := b.Min.X + x0 + (2*i+1)*(x1-x0)/(2*sx)
					cr, cg, cb, ca := img.At(px, py).RGBA() // premultiplied, 16 bits
					white := 0xffff - uint64(ca)
					r += uint64(cr) + white
					g += uint64(cg) + white
					bl += uint64(cb) + white
					n++
				}
			}
			dst.SetRGBA(x, y, color.RGBA{uint8(r / n >> 8), uint8(g / n >> 8), uint8(bl / n >> 8), 0xff})
		}
	}
	return dst
}
