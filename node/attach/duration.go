package attach

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/bits"
	"slices"

	mp4 "github.com/abema/go-mp4"
)

// Reading an audio or video duration (docs/protocol/files.md §19.2): only
// what the container states, never by decoding the media. Every reader is
// bounded in what it reads and allocates whatever the file claims, and
// returns 0 (unknown) for anything malformed, unsupported or overflowing.
const (
	// mp4MaxBoxes is how many box headers mp4Duration reads in all (the
	// top level and inside moov): enough for any real file, whose moov
	// has a handful of children, and a bound for a file of tiny boxes.
	mp4MaxBoxes = 4096
	// mp4MaxHeaderBox is the largest mvhd or mehd payload accepted (a
	// version 1 mvhd has 108 bytes).
	mp4MaxHeaderBox = 1024
	// wavMaxChunks is how many RIFF chunk headers wavDuration reads.
	wavMaxChunks = 64
	// oggMaxPage is the largest Ogg page: a 27-byte header, 255 lacing
	// values and 255 segments of 255 bytes. The last page lies within
	// the file's last oggMaxPage bytes.
	oggMaxPage = 27 + 255 + 255*255
	// oggMaxChecks is how many candidate pages of the tail oggDuration
	// checksums, so that a tail full of "OggS" costs a bounded time.
	oggMaxChecks = 64
)

// mediaDuration returns the duration in milliseconds that the container of
// a file of type mime states, or 0.
func mediaDuration(r io.ReaderAt, size int64, mime string, head []byte) uint64 {
	switch mime {
	case "video/mp4", "audio/mp4", "video/quicktime", "video/3gpp", "video/3gpp2":
		return mp4Duration(r, size)
	case "audio/wave":
		return wavDuration(r, size)
	case "audio/ogg", "application/ogg":
		return oggDuration(r, size, head)
	}
	return 0
}

// toMS is units ÷ perSecond in whole milliseconds (rounded down), or 0 if
// perSecond is 0 or the result does not fit in 64 bits.
func toMS(units, perSecond uint64) uint64 {
	if perSecond == 0 {
		return 0
	}
	hi, lo := bits.Mul64(units, 1000)
	if hi >= perSecond {
		return 0
	}
	ms, _ := bits.Div64(hi, lo, perSecond)
	return ms
}

// sniffMedia refines the type net/http.DetectContentType found for the
// audio and video containers it does not tell apart (or misses): an ISO
// base media file by the brands of its ftyp box (MP4, M4A, QuickTime,
// 3GPP), an Ogg file whose first stream is Opus or Vorbis alone. Other
// files keep their type.
func sniffMedia(mime string, head []byte) string {
	if t := ftypMIME(head); t != "" {
		return t
	}
	if mime == "application/ogg" && oggAudioOnly(head) {
		return "audio/ogg"
	}
	return mime
}

// ftypMIME is the type of an ISO base media file from its ftyp box's
// major brand, or else its compatible brands; "" if head does not start
// with an ftyp box or its brands are not audio or video ones (HEIF and
// AVIF images are ISO base media files too).
func ftypMIME(head []byte) string {
	if len(head) < 16 || string(head[4:8]) != "ftyp" {
		return ""
	}
	n := int(binary.BigEndian.Uint32(head))
	if n < 16 || n%4 != 0 {
		return ""
	}
	n = min(n, len(head)) &^ 3
	major := string(head[8:12])
	switch {
	case major == "qt  ":
		return "video/quicktime"
	case major == "M4A " || major == "M4B " || major == "M4P ":
		return "audio/mp4"
	case major[:3] == "3gp":
		return "video/3gpp"
	case major[:3] == "3g2":
		return "video/3gpp2"
	case slices.Contains(imageBrands, major):
		return ""
	}
	brands := []string{major}
	for i := 16; i+4 <= n; i += 4 { // after the minor version
		brands = append(brands, string(head[i:i+4]))
	}
	for _, b := range brands {
		switch {
		case b == "qt  ":
			return "video/quicktime"
		case b == "M4A ":
			return "audio/mp4"
		case slices.Contains(mp4Brands, b):
			return "video/mp4"
		}
	}
	return ""
}

// mp4Brands are ftyp brands of MP4 files (ISO/IEC 14496-12 and -14,
// Apple's M4V, DASH).
var mp4Brands = []string{"isom", "iso2", "iso3", "iso4", "iso5", "iso6", "iso7", "iso8", "iso9",
	"mp41", "mp42", "avc1", "M4V ", "M4VH", "M4VP", "dash", "mmp4", "MSNV", "f4v "}

// imageBrands are the major brands of HEIF and AVIF images.
var imageBrands = []string{"mif1", "msf1", "heic", "heix", "hevc", "hevx", "heim", "heis", "avif", "avis"}

// mp4Duration reads moov/mvhd with github.com/abema/go-mp4: duration ÷
// timescale; for a fragmented file whose mvhd states no duration,
// moov/mvex/mehd's fragment duration. It reads box headers and the two
// small boxes only, at most mp4MaxBoxes headers.
func mp4Duration(r io.ReaderAt, size int64) (ms uint64) {
	defer func() {
		// go-mp4 reads hostile input with reflection; whatever it does
		// with a file it does not expect, the answer is "unknown".
		if recover() != nil {
			ms = 0
		}
	}()
	budget := mp4MaxBoxes
	moov := mp4Find(r, 0, size, mp4.BoxTypeMoov(), &budget)
	if moov == nil {
		return 0
	}
	start, end := int64(moov.Offset+moov.HeaderSize), int64(moov.Offset+moov.Size)
	mvhdInfo := mp4Find(r, start, end, mp4.BoxTypeMvhd(), &budget)
	if mvhdInfo == nil {
		return 0
	}
	var mvhd mp4.Mvhd
	if !mp4Read(r, mvhdInfo, &mvhd) || mvhd.Timescale == 0 {
		return 0
	}
	d := mvhd.GetDuration()
	if (mvhd.GetVersion() == 0 && d == 0xffffffff) || d == ^uint64(0) {
		d = 0 // all ones: "unknown"
	}
	if d == 0 {
		mvex := mp4Find(r, start, end, mp4.BoxTypeMvex(), &budget)
		if mvex == nil {
			return 0
		}
		mehdInfo := mp4Find(r, int64(mvex.Offset+mvex.HeaderSize), int64(mvex.Offset+mvex.Size), mp4.BoxTypeMehd(), &budget)
		var mehd mp4.Mehd
		if mehdInfo == nil || !mp4Read(r, mehdInfo, &mehd) {
			return 0
		}
		d = mehd.GetFragmentDuration()
		if (mehd.GetVersion() == 0 && d == 0xffffffff) || d == ^uint64(0) {
			return 0
		}
	}
	return toMS(d, uint64(mvhd.Timescale))
}

// mp4Find returns the first box of type typ among the boxes that fill
// [start, end), or nil if there is none, a box header is malformed or
// runs past end, or the budget of box headers runs out.
func mp4Find(r io.ReaderAt, start, end int64, typ mp4.BoxType, budget *int) *mp4.BoxInfo {
	sr := io.NewSectionReader(r, 0, end) // a box of size 0 extends to end
	for off := start; end-off >= mp4.SmallHeaderSize; {
		if *budget <= 0 {
			return nil
		}
		*budget--
		if _, err := sr.Seek(off, io.SeekStart); err != nil {
			return nil
		}
		bi, err := mp4.ReadBoxInfo(sr)
		if err != nil || bi.Offset != uint64(off) || bi.Size < bi.HeaderSize || bi.Size > uint64(end-off) {
			return nil
		}
		if bi.Type == typ {
			return bi
		}
		off += int64(bi.Size)
	}
	return nil
}

// mp4Read decodes the payload of the box bi into box, reading at most
// mp4MaxHeaderBox bytes.
func mp4Read(r io.ReaderAt, bi *mp4.BoxInfo, box mp4.IBox) bool {
	n := bi.Size - bi.HeaderSize
	if n > mp4MaxHeaderBox {
		return false
	}
	payload := io.NewSectionReader(r, int64(bi.Offset+bi.HeaderSize), int64(n))
	_, err := mp4.Unmarshal(payload, n, box, mp4.Context{})
	return err == nil
}

// wavDuration reads a RIFF/WAVE file's fmt chunk (the byte rate) and data
// chunk size: size ÷ byte rate. A data chunk that claims more bytes than
// the file holds (a streamed file's 0xffffffff, a truncated or lying
// file) states no duration.
func wavDuration(r io.ReaderAt, size int64) uint64 {
	var hdr [12]byte
	if size < 12 || readFull(r, hdr[:], 0) != nil || string(hdr[:4]) != "RIFF" || string(hdr[8:]) != "WAVE" {
		return 0
	}
	var byteRate, dataSize uint64
	var haveFmt, haveData bool
	off := int64(12)
	for range wavMaxChunks {
		var ch [8]byte
		if size-off < 8 || readFull(r, ch[:], off) != nil {
			return 0
		}
		n := int64(binary.LittleEndian.Uint32(ch[4:]))
		body := off + 8
		if n > size-body {
			return 0
		}
		switch string(ch[:4]) {
		case "fmt ":
			var f [16]byte
			if n < 16 || readFull(r, f[:], body) != nil {
				return 0
			}
			format := binary.LittleEndian.Uint16(f[0:])
			channels := binary.LittleEndian.Uint16(f[2:])
			rate := binary.LittleEndian.Uint32(f[4:])
			byteRate = uint64(binary.LittleEndian.Uint32(f[8:]))
			align := binary.LittleEndian.Uint16(f[12:])
			if channels == 0 || rate == 0 || byteRate == 0 {
				return 0
			}
			// PCM and IEEE float (plain or extensible): the byte rate
			// is the sample rate times the frame size, or the header lies.
			if (format == 1 || format == 3 || format == 0xfffe) && byteRate != uint64(rate)*uint64(align) {
				return 0
			}
			haveFmt = true
		case "data":
			dataSize, haveData = uint64(n), true
		}
		if haveFmt && haveData {
			return toMS(dataSize, byteRate)
		}
		off = body + n + n&1 // chunks are padded to an even length
	}
	return 0
}

// readFull reads len(b) bytes at off.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// oggStream is what the first page of an Ogg file says of its stream.
type oggStream struct {
	serial  uint32
	rate    uint64 // granule positions per second
	preSkip uint64 // Opus: samples at 48 kHz to drop at the start
	next    int    // offset of the second page in head
}

// oggFirst parses the first page of an Ogg file, which must start an Opus
// or Vorbis stream (its identification header, RFC 7845 §5.1, Vorbis I
// §4.2.2).
func oggFirst(head []byte) (oggStream, bool) {
	n, ok := oggPage(head)
	if !ok || head[5]&2 == 0 { // not a beginning-of-stream page
		return oggStream{}, false
	}
	s := oggStream{serial: binary.LittleEndian.Uint32(head[14:]), next: n}
	segs := int(head[26])
	if segs == 0 || head[27] == 255 { // the identification packet is small and alone
		return oggStream{}, false
	}
	p := head[27+segs : 27+segs+int(head[27])]
	switch {
	case len(p) >= 19 && string(p[:8]) == "OpusHead" && p[8]>>4 == 0:
		s.rate, s.preSkip = 48000, uint64(binary.LittleEndian.Uint16(p[10:]))
	case len(p) >= 30 && string(p[:7]) == "\x01vorbis" && binary.LittleEndian.Uint32(p[7:]) == 0:
		s.rate = uint64(binary.LittleEndian.Uint32(p[12:]))
	default:
		return oggStream{}, false
	}
	return s, s.rate > 0
}

// oggAudioOnly reports whether an Ogg file starts an Opus or Vorbis stream
// and no other stream with it (all beginning-of-stream pages come first).
func oggAudioOnly(head []byte) bool {
	s, ok := oggFirst(head)
	if !ok {
		return false
	}
	if rest := head[s.next:]; len(rest) >= 6 && string(rest[:4]) == "OggS" {
		return rest[5]&2 == 0
	}
	return true // the second page is past the head: take the first's word
}

// oggDuration reads the granule position of the last page of the first
// stream, found in the file's last oggMaxPage bytes: for Opus, 48 kHz
// samples minus the pre-skip; for Vorbis, samples at the stream's rate.
func oggDuration(r io.ReaderAt, size int64, head []byte) uint64 {
	s, ok := oggFirst(head)
	if !ok {
		return 0
	}
	tail := make([]byte, min(size, oggMaxPage))
	if readFull(r, tail, size-int64(len(tail))) != nil {
		return 0
	}
	checks := 0
	for i := bytes.LastIndex(tail, []byte("OggS")); i >= 0 && checks < oggMaxChecks; i = bytes.LastIndex(tail[:i], []byte("OggS")) {
		p := tail[i:]
		if len(p) < 27 || p[4] != 0 || binary.LittleEndian.Uint32(p[14:]) != s.serial {
			continue
		}
		checks++
		if _, ok := oggPage(p); !ok {
			continue
		}
		g := binary.LittleEndian.Uint64(p[6:])
		if g == ^uint64(0) { // no packet ends on this page
			continue
		}
		if g < s.preSkip {
			return 0
		}
		return toMS(g-s.preSkip, s.rate)
	}
	return 0
}

// oggPage checks that b starts with a whole Ogg page (version 0, its CRC
// right) and returns the page's length.
func oggPage(b []byte) (int, bool) {
	if len(b) < 27 || string(b[:4]) != "OggS" || b[4] != 0 {
		return 0, false
	}
	segs := int(b[26])
	if len(b) < 27+segs {
		return 0, false
	}
	n := 27 + segs
	for _, l := range b[27 : 27+segs] {
		n += int(l)
	}
	if len(b) < n {
		return 0, false
	}
	crc := oggCRC(0, b[:22])
	crc = oggCRC(crc, []byte{0, 0, 0, 0})
	crc = oggCRC(crc, b[26:n])
	return n, crc == binary.LittleEndian.Uint32(b[22:])
}

// oggCRCTable is the Ogg page checksum's table: CRC-32 with polynomial
// 0x04c11db7, not reflected, initial value 0, no final xor.
var oggCRCTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04c11db7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

func oggCRC(crc uint32, b []byte) uint32 {
	for _, x := range b {
		crc = crc<<8 ^ oggCRCTable[byte(crc>>24)^x]
	}
	return crc
}
