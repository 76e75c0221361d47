package attach

import (
	"bytes"
	"testing"
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
