package attach

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	mp4 "github.com/abema/go-mp4"
)

// box is an ISO base media box: a 32-bit size, the type, the payload.
func box(typ string, payload ...[]byte) []byte {
	body := bytes.Join(payload, nil)
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	return append(append(b, typ...), body...)
}

// largeBox is a box with a 64-bit size (size field 1).
func largeBox(typ string, payload []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, 1)
	b = append(b, typ...)
	b = binary.BigEndian.AppendUint64(b, uint64(16+len(payload)))
	return append(b, payload...)
}

func ftyp(major string, compat ...string) []byte {
	return box("ftyp", []byte(major), []byte{0, 0, 2, 0}, []byte(strings.Join(compat, "")))
}

// marshal is a box written by go-mp4 (header included).
func marshal(t testing.TB, b mp4.IBox) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := mp4.Marshal(&buf, b, mp4.Context{}); err != nil {
		t.Fatal(err)
	}
	return box(b.GetType().String(), buf.Bytes())
}

func mvhd0(t testing.TB, timescale, duration uint32) []byte {
	return marshal(t, &mp4.Mvhd{Timescale: timescale, DurationV0: duration, Rate: 0x10000, Volume: 0x100, NextTrackID: 2})
}

func mvhd1(t testing.TB, timescale uint32, duration uint64) []byte {
	return marshal(t, &mp4.Mvhd{FullBox: mp4.FullBox{Version: 1}, Timescale: timescale, DurationV1: duration, Rate: 0x10000, Volume: 0x100, NextTrackID: 2})
}

// trak is a stand-in track: Inspect never looks inside.
var trak = box("trak", box("tkhd", make([]byte, 84)), box("mdia", box("hdlr", make([]byte, 25))))

func TestInspectMP4Duration(t *testing.T) {
	mdat := box("mdat", bytes.Repeat([]byte{0xab}, 5000))
	for _, c := range []struct {
		name string
		file []byte
		mime string
		ms   uint64
	}{
		{"mp4 v0, moov last", bytes.Join([][]byte{ftyp("isom", "isom", "iso2", "avc1", "mp41"), mdat,
			box("moov", mvhd0(t, 1000, 12345), trak)}, nil), "video/mp4", 12345},
		{"mp4 without an mp4x brand", bytes.Join([][]byte{ftyp("isom", "isom", "iso2", "avc1"),
			box("moov", mvhd0(t, 600, 600*61+599)), mdat}, nil), "video/mp4", 61998},
		{"m4a v1, 5 hours at 90 kHz", bytes.Join([][]byte{ftyp("M4A ", "M4A ", "mp42", "isom"),
			box("free", nil), box("moov", mvhd1(t, 90000, 90000*3600*5+45000), trak), mdat}, nil), "audio/mp4", 18000500},
		{"mov", bytes.Join([][]byte{ftyp("qt  ", "qt  "), box("wide"), mdat,
			box("moov", box("udta"), mvhd0(t, 600, 4500))}, nil), "video/quicktime", 7500},
		{"3gp", bytes.Join([][]byte{ftyp("3gp4", "isom", "3gp4"), box("moov", mvhd0(t, 8000, 8000*9+7)), mdat}, nil), "video/3gpp", 9000},
		{"64-bit mdat size, moov to the end of the file", bytes.Join([][]byte{ftyp("mp42", "mp42", "isom"),
			largeBox("mdat", make([]byte, 3000)), {0, 0, 0, 0}, []byte("moov"), mvhd0(t, 44100, 44100*2)}, nil), "video/mp4", 2000},
		{"fragmented, mehd", bytes.Join([][]byte{ftyp("iso6", "iso6", "dash"), box("moov", mvhd0(t, 1000, 0), trak,
			box("mvex", box("trex", make([]byte, 24)), marshal(t, &mp4.Mehd{FullBox: mp4.FullBox{Version: 1}, FragmentDurationV1: 3_600_001}))),
			box("moof"), mdat}, nil), "video/mp4", 3_600_001},
		{"fragmented, mehd v0", bytes.Join([][]byte{ftyp("iso6", "iso6", "dash"), box("moov", mvhd1(t, 48000, 0),
			box("mvex", marshal(t, &mp4.Mehd{FragmentDurationV0: 48000 * 10}))), box("moof"), mdat}, nil), "video/mp4", 10000},
		{"fragmented, no mehd", bytes.Join([][]byte{ftyp("iso6", "iso6", "dash"), box("moov", mvhd0(t, 1000, 0), trak,
			box("mvex", box("trex", make([]byte, 24)))), box("moof"), mdat}, nil), "video/mp4", 0},
		{"duration all ones: unknown", bytes.Join([][]byte{ftyp("isom", "mp41"), box("moov", mvhd0(t, 1000, 0xffffffff))}, nil), "video/mp4", 0},
		{"v1 duration all ones: unknown", bytes.Join([][]byte{ftyp("isom", "mp41"), box("moov", mvhd1(t, 1000, ^uint64(0)))}, nil), "video/mp4", 0},
		{"duration overflows milliseconds", bytes.Join([][]byte{ftyp("isom", "mp41"), box("moov", mvhd1(t, 1, 1<<62))}, nil), "video/mp4", 0},
		{"timescale 0", bytes.Join([][]byte{ftyp("isom", "mp41"), box("moov", mvhd0(t, 0, 1000))}, nil), "video/mp4", 0},
		{"no moov", bytes.Join([][]byte{ftyp("isom", "mp41"), mdat}, nil), "video/mp4", 0},
		{"moov without mvhd", bytes.Join([][]byte{ftyp("isom", "mp41"), box("moov", trak)}, nil), "video/mp4", 0},
		{"heic is not video", bytes.Join([][]byte{ftyp("heic", "mif1", "heic"), box("meta"), box("moov", mvhd0(t, 1000, 5000))}, nil), "application/octet-stream", 0},
	} {
		info := inspectBytes(t, c.file)
		if info.MIME != c.mime || info.DurationMS != c.ms || info.Width != 0 || info.Thumb != nil {
			t.Errorf("%s: %q %d ms, want %q %d ms", c.name, info.MIME, info.DurationMS, c.mime, c.ms)
		}
	}
}

// Hostile box sizes and layouts: 0, no error, and little read.
func TestInspectMP4Malformed(t *testing.T) {
	head := ftyp("isom", "isom", "mp41")
	moov := box("moov", mvhd0(t, 1000, 5000))
	huge := func(b []byte, size uint32) []byte {
		b = bytes.Clone(b)
		binary.BigEndian.PutUint32(b, size)
		return b
	}
	big := append(bytes.Clone(moov), make([]byte, 2000)...)
	binary.BigEndian.PutUint32(big[8:], uint32(len(big)-8)) // an mvhd of 2 KB
	binary.BigEndian.PutUint32(big, uint32(len(big)))
	tiny := bytes.Repeat(box("free"), mp4MaxBoxes+1)
	mvhd2 := bytes.Clone(moov)
	mvhd2[16] = 2 // version 2
	for _, c := range []struct {
		name string
		file []byte
	}{
		{"moov size past the end", append(head, huge(moov, 0xffffffff)...)},
		{"moov size under its header", append(head, huge(moov, 4)...)},
		{"64-bit size 2^63", append(append(head, 0, 0, 0, 1, 'f', 'r', 'e', 'e', 0x80, 0, 0, 0, 0, 0, 0, 0), moov...)},
		{"64-bit size in 12 bytes", append(head, 0, 0, 0, 1, 'm', 'o', 'o', 'v', 0, 0, 0, 0)},
		{"mvhd past moov", append(head, huge(moov, 16)...)},
		{"mvhd over the bound", append(head, big...)},
		{"mvhd truncated", append(head, box("moov", mvhd0(t, 1000, 5000)[:20])...)},
		{"mvhd version 2", append(head, mvhd2...)},
		{"more boxes than the budget", append(append(head, tiny...), moov...)},
	} {
		start := time.Now()
		info := inspectBytes(t, c.file)
		if info.MIME != "video/mp4" || info.DurationMS != 0 {
			t.Errorf("%s: %q %d ms", c.name, info.MIME, info.DurationMS)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: %v", c.name, d)
		}
	}
	// The same moov within the budget is read: the bound is what failed.
	if info := inspectBytes(t, append(append(head, tiny[:8*(mp4MaxBoxes-10)]...), moov...)); info.DurationMS != 5000 {
		t.Fatalf("moov after %d boxes: %d ms", mp4MaxBoxes-10, info.DurationMS)
	}
	// Every truncation of a good file: no error, no panic.
	good := bytes.Join([][]byte{head, box("moov", mvhd1(t, 1000, 5000), trak,
		box("mvex", marshal(t, &mp4.Mehd{FragmentDurationV0: 1}))), box("mdat", make([]byte, 100))}, nil)
	for n := range len(good) {
		inspectBytes(t, good[:n])
	}
}

// wav is a RIFF/WAVE file: a fmt chunk, the chunks in extra, then a data
// chunk of data bytes.
func wav(format, channels uint16, rate, byteRate uint32, align, bitsPer uint16, extra []byte, data int) []byte {
	chunk := func(id string, body []byte) []byte {
		b := append([]byte(id), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...)
		b = append(b, body...)
		if len(body)%2 == 1 {
			b = append(b, 0)
		}
		return b
	}
	var f []byte
	f = binary.LittleEndian.AppendUint16(f, format)
	f = binary.LittleEndian.AppendUint16(f, channels)
	f = binary.LittleEndian.AppendUint32(f, rate)
	f = binary.LittleEndian.AppendUint32(f, byteRate)
	f = binary.LittleEndian.AppendUint16(f, align)
	f = binary.LittleEndian.AppendUint16(f, bitsPer)
	body := append([]byte("WAVE"), chunk("fmt ", f)...)
	body = append(body, extra...)
	body = append(body, chunk("data", make([]byte, data))...)
	return append(append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...), body...)
}

func TestInspectWAVDuration(t *testing.T) {
	list := append([]byte("LIST\x05\x00\x00\x00INFO!"), 0) // odd length, padded
	setU32 := func(b []byte, off int, v uint32) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	cd := wav(1, 2, 44100, 176400, 4, 16, list, 176400*2+17640)
	dataSize := len(cd) - 4 - (176400*2 + 17640) // offset of the data chunk's size
	fmtLast := append([]byte("RIFF\x00\x00\x00\x00WAVEdata\xc0\x5d\x00\x00"), make([]byte, 24000)...)
	fmtLast = append(fmtLast, wav(1, 1, 8000, 16000, 2, 16, nil, 0)[12:36]...) // data first: 24000 bytes at 16000 B/s
	for _, c := range []struct {
		name string
		file []byte
		ms   uint64
	}{
		{"cd stereo 2.1 s", cd, 2100},
		{"float mono 48 kHz", wav(3, 1, 48000, 192000, 4, 32, nil, 192000/4), 250},
		{"mu-law", wav(7, 1, 8000, 8000, 1, 8, nil, 8000*3+4), 3000},
		{"fmt after data", fmtLast, 1500},
		{"empty data", wav(1, 1, 8000, 16000, 2, 16, nil, 0), 0},
		{"streamed: data size 0xffffffff", setU32(cd, dataSize, 0xffffffff), 0},
		{"data size past the end", setU32(cd, dataSize, uint32(176400*2+17640+1)), 0},
		{"byte rate lies", wav(1, 2, 44100, 88200, 4, 16, nil, 1000), 0},
		{"byte rate 0", wav(2, 1, 8000, 0, 256, 4, nil, 1000), 0},
		{"chunk size past the end", append(cd[:36:36], "LIST\xff\xff\xff\x7f"...), 0},
		{"no data chunk", cd[:36], 0},
		{"more chunks than the bound", append(append(cd[:36:36], bytes.Repeat([]byte("junk\x00\x00\x00\x00"), wavMaxChunks)...), cd[36+len(list):]...), 0},
	} {
		info := inspectBytes(t, c.file)
		if info.MIME != "audio/wave" || info.DurationMS != c.ms {
			t.Errorf("%s: %q %d ms, want %d ms", c.name, info.MIME, info.DurationMS, c.ms)
		}
	}
	for n := range 200 {
		inspectBytes(t, cd[:n])
	}
}

// oggPageBytes is one Ogg page holding packet (whole, or its end if
// continued) with the granule position and flags given.
func oggPageBytes(flags byte, granule uint64, serial, seq uint32, packet []byte) []byte {
	var lacing []byte
	for n := len(packet); ; n -= 255 {
		if n < 255 {
			lacing = append(lacing, byte(n))
			break
		}
		lacing = append(lacing, 255)
	}
	p := append([]byte("OggS"), 0, flags)
	p = binary.LittleEndian.AppendUint64(p, granule)
	p = binary.LittleEndian.AppendUint32(p, serial)
	p = binary.LittleEndian.AppendUint32(p, seq)
	p = append(p, 0, 0, 0, 0, byte(len(lacing)))
	p = append(append(p, lacing...), packet...)
	binary.LittleEndian.PutUint32(p[22:], oggCRC(0, p))
	return p
}

func opusHead(preSkip uint16) []byte {
	h := append([]byte("OpusHead"), 1, 2)
	h = binary.LittleEndian.AppendUint16(h, preSkip)
	h = binary.LittleEndian.AppendUint32(h, 44100) // the input's rate: not the granule's
	return append(h, 0, 0, 0)
}

func vorbisID(rate uint32) []byte {
	h := append([]byte("\x01vorbis"), 0, 0, 0, 0, 2)
	h = binary.LittleEndian.AppendUint32(h, rate)
	return append(h, make([]byte, 14)...) // bitrates, block sizes, framing
}

// ogg is an Ogg file: the identification page, a comment page, and audio
// pages with the granule positions given.
func ogg(id []byte, granules ...uint64) []byte {
	const serial = 0x1234
	f := oggPageBytes(2, 0, serial, 0, id)
	f = append(f, oggPageBytes(0, 0, serial, 1, []byte("OpusTags-or-comments"))...)
	for i, g := range granules {
		flags := byte(0)
		if i == len(granules)-1 {
			flags = 4
		}
		f = append(f, oggPageBytes(flags, g, serial, uint32(2+i), bytes.Repeat([]byte{byte(i)}, 4000))...)
	}
	return f
}

func TestInspectOggDuration(t *testing.T) {
	opus := ogg(opusHead(312), 48000+312, 96000+312, 48000*3+480+312)
	vorbis := ogg(vorbisID(44100), 44100, 44100*2+4410)
	badCRC := bytes.Clone(opus)
	badCRC[len(badCRC)-1] ^= 1
	noEnd := append(bytes.Clone(opus), oggPageBytes(0, ^uint64(0), 0x1234, 9, make([]byte, 300))...)
	other := append(bytes.Clone(vorbis), oggPageBytes(4, 1<<40, 0x999, 0, make([]byte, 30))...)
	multiplexed := append(oggPageBytes(2, 0, 0x1234, 0, opusHead(0)), oggPageBytes(2, 0, 0x77, 0, []byte("\x80theora"))...)
	multiplexed = append(multiplexed, oggPageBytes(4, 48000*2, 0x1234, 1, make([]byte, 10))...)
	long := ogg(vorbisID(44100), 44100*60*60*3) // 3 hours, and a big last page
	long = append(long[:len(long)-4000-27-16], oggPageBytes(4, 44100*60*60*3, 0x1234, 2, make([]byte, 255*255-1))...)
	for _, c := range []struct {
		name string
		file []byte
		mime string
		ms   uint64
	}{
		{"opus", opus, "audio/ogg", 3010},
		{"vorbis", vorbis, "audio/ogg", 2100},
		{"last page corrupt: the one before", badCRC, "audio/ogg", 2000},
		{"last page ends no packet", noEnd, "audio/ogg", 3010},
		{"another stream's page last", other, "audio/ogg", 2100},
		{"cut mid-page", opus[:len(opus)-100], "audio/ogg", 2000},
		{"with video", multiplexed, "application/ogg", 2000},
		{"largest last page", long, "audio/ogg", 3 * 3600 * 1000},
		{"granule under the pre-skip", ogg(opusHead(312), 100), "audio/ogg", 0},
		{"only headers", ogg(opusHead(312)), "audio/ogg", 0},
		{"vorbis rate 0", ogg(vorbisID(0), 1000), "application/ogg", 0},
		{"not opus or vorbis", ogg([]byte("\x7fFLAC\x01\x00"), 44100), "application/ogg", 0},
	} {
		info := inspectBytes(t, c.file)
		if info.MIME != c.mime || info.DurationMS != c.ms {
			t.Errorf("%s: %q %d ms, want %q %d ms", c.name, info.MIME, info.DurationMS, c.mime, c.ms)
		}
	}
	for n := range len(vorbis) {
		inspectBytes(t, vorbis[:n])
	}
	// A tail full of page starts is checked a bounded number of times.
	junk := append(bytes.Clone(opus), bytes.Repeat([]byte("OggS\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x34\x12\x00\x00"), oggMaxPage/18)...)
	start := time.Now()
	if info := inspectBytes(t, junk); info.DurationMS != 0 || time.Since(start) > time.Second {
		t.Fatalf("junk tail: %d ms in %v", info.DurationMS, time.Since(start))
	}
}

func TestToMS(t *testing.T) {
	for _, c := range []struct{ units, rate, ms uint64 }{
		{0, 1000, 0}, {999, 1000, 999}, {1, 3, 333}, {2, 3, 666}, {5, 0, 0},
		{^uint64(0), 1000, ^uint64(0)}, {^uint64(0), 999, 0}, {1 << 62, 1 << 62, 1000},
	} {
		if got := toMS(c.units, c.rate); got != c.ms {
			t.Errorf("toMS(%d, %d) = %d, want %d", c.units, c.rate, got, c.ms)
		}
	}
}
