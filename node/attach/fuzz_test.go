package attach

import (
	"bytes"
	"testing"

	mp4 "github.com/abema/go-mp4"
)

// Every input ParsePointer accepts re-encodes to itself: one encoding per
// pointer.
func FuzzParsePointer(f *testing.F) {
	for _, p := range []*Pointer{smallPointer(), fullPointer(), {EncSize: 32, BlobSize: MinBlobSize}} {
		b, err := p.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	relay := smallPointer()
	relay.Sources = append(relay.Sources, Source{Kind: SourceRelay, Addr: "/dns4/relay.example/tcp/4001/p2p/12D3KooW"})
	b, err := relay.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePointer(b)
		if err != nil {
			return
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatalf("accepted pointer does not marshal: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatal("accepted pointer does not re-encode to itself")
		}
	})
}

// Inspect never fails on a whole file, never panics, and states a
// duration only for audio and video containers.
func FuzzInspect(f *testing.F) {
	f.Add(bytes.Join([][]byte{ftyp("isom", "isom", "mp41"), box("moov", mvhd1(f, 1000, 5000),
		box("mvex", marshal(f, &mp4.Mehd{FragmentDurationV0: 1}))), box("mdat", make([]byte, 16))}, nil))
	f.Add(bytes.Join([][]byte{ftyp("qt  ", "qt  "), largeBox("mdat", nil), box("moov", mvhd0(f, 600, 6000))}, nil))
	f.Add(wav(1, 1, 8000, 16000, 2, 16, []byte("LIST\x01\x00\x00\x00x\x00"), 64))
	f.Add(ogg(opusHead(312), 48000+312))
	f.Add(ogg(vorbisID(44100), 44100))
	f.Add(encode(f, "png", gradient(3, 2)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := Inspect(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		switch info.MIME {
		case "video/mp4", "audio/mp4", "video/quicktime", "video/3gpp", "video/3gpp2", "audio/wave", "audio/ogg", "application/ogg":
		default:
			if info.DurationMS != 0 {
				t.Fatalf("%q with a duration", info.MIME)
			}
		}
	})
}
