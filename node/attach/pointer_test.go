package attach

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hushnet/hush/crypto/stream"
)

// fullPointer has every field at its limit.
func fullPointer() *Pointer {
	p := &Pointer{
		Size:       MaxSize,
		Name:       strings.Repeat("é", MaxNameSize/2) + "x",
		MIME:       strings.Repeat("a", MaxMIMESize),
		Thumb:      bytes.Repeat([]byte{0xff}, MaxThumbSize),
		Width:      1 << 31,
		Height:     7,
		DurationMS: 1 << 50,
	}
	p.EncSize = stream.EncryptedSize(p.Size)
	p.BlobSize = BlobSize(p.EncSize)
	for i := range p.Key {
		p.Key[i], p.Hash[i] = byte(i), byte(255-i)
	}
	for i := range MaxSources {
		s := Source{Kind: SourceRelay, Addr: "/ip4/127.0.0.1/tcp/4001/p2p/" + strings.Repeat("Q", MaxAddrSize-28)}
		s.TokenSeed[0] = byte(i + 1)
		p.Sources = append(p.Sources, s)
	}
	return p
}

func smallPointer() *Pointer {
	p := &Pointer{Size: 1234, Name: "photo.jpg", MIME: "image/jpeg", Sources: []Source{{Kind: SourceDirect}}}
	p.EncSize = stream.EncryptedSize(p.Size)
	p.BlobSize = BlobSize(p.EncSize)
	return p
}

func TestPointerRoundTrip(t *testing.T) {
	for _, p := range []*Pointer{smallPointer(), fullPointer(), {EncSize: 32, BlobSize: MinBlobSize}} {
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > MaxPointerSize {
			t.Fatalf("%d bytes over MaxPointerSize %d", len(b), MaxPointerSize)
		}
		q, err := ParsePointer(b)
		if err != nil {
			t.Fatal(err)
		}
		b2, err := q.Marshal()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("re-encoding differs (%v)", err)
		}
		if q.Name != p.Name || q.Size != p.Size || q.Key != p.Key || len(q.Sources) != len(p.Sources) {
			t.Fatal("fields lost")
		}
	}
	if b, _ := fullPointer().Marshal(); len(b) != MaxPointerSize {
		t.Fatalf("a pointer at every limit is %d bytes, MaxPointerSize %d", len(b), MaxPointerSize)
	}
}

func TestPointerRejects(t *testing.T) {
	cases := map[string]func(p *Pointer){
		"name with slash":    func(p *Pointer) { p.Name = "a/b" },
		"name with newline":  func(p *Pointer) { p.Name = "a\nb" },
		"name with NUL":      func(p *Pointer) { p.Name = "a\x00b" },
		"name with C1":       func(p *Pointer) { p.Name = "a\u0085b" },
		"name not UTF-8":     func(p *Pointer) { p.Name = "a\xffb" },
		"name dot-dot":       func(p *Pointer) { p.Name = ".." },
		"name too long":      func(p *Pointer) { p.Name = strings.Repeat("a", MaxNameSize+1) },
		"mime too long":      func(p *Pointer) { p.MIME = strings.Repeat("a", MaxMIMESize+1) },
		"mime control":       func(p *Pointer) { p.MIME = "text/plain\r\n" },
		"thumb too large":    func(p *Pointer) { p.Thumb = make([]byte, MaxThumbSize+1) },
		"five sources":       func(p *Pointer) { p.Sources = make([]Source, 5) },
		"unknown kind":       func(p *Pointer) { p.Sources[0].Kind = 3 },
		"direct with addr":   func(p *Pointer) { p.Sources[0].Addr = "/ip4/1.2.3.4" },
		"relay without addr": func(p *Pointer) { p.Sources[0].Kind = SourceRelay },
		"relay addr too long": func(p *Pointer) {
			p.Sources[0] = Source{Kind: SourceRelay, Addr: "/" + strings.Repeat("a", MaxAddrSize)}
		},
		"size over 1 TiB": func(p *Pointer) {
			p.Size = MaxSize + 1
			p.EncSize = stream.EncryptedSize(p.Size)
			p.BlobSize = BlobSize(p.EncSize)
		},
		"negative size":  func(p *Pointer) { p.Size = -1 },
		"enc_size wrong": func(p *Pointer) { p.EncSize++ },
		"blob_size wrong": func(p *Pointer) {
			p.BlobSize *= 2
		},
	}
	for name, mutate := range cases {
		p := smallPointer()
		mutate(p)
		if _, err := p.Marshal(); !errors.Is(err, ErrPointer) {
			t.Errorf("%s: Marshal accepted it (%v)", name, err)
		}
	}
	good, err := smallPointer().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string][]byte{
		"empty":      {},
		"version 2":  append([]byte{2}, good[1:]...),
		"trailing":   append(append([]byte{}, good...), 0),
		"truncated":  good[:len(good)-1],
		"too long":   make([]byte, MaxPointerSize+1),
		"5 sources":  append(append([]byte{}, good[:len(good)-2]...), 5, 1, 1, 1, 1, 1),
		"kind 9":     append(append([]byte{}, good[:len(good)-1]...), 9),
		"size 2^63":  patch(good, 1+KeySize, 0x80),
		"enc_size+1": patch(good, 1+KeySize+8+7, good[1+KeySize+8+7]+1),
	}
	for name, b := range bad {
		if _, err := ParsePointer(b); !errors.Is(err, ErrPointer) {
			t.Errorf("%s: ParsePointer accepted it (%v)", name, err)
		}
	}
}

func patch(b []byte, i int, v byte) []byte {
	c := append([]byte{}, b...)
	c[i] = v
	return c
}

func TestBlobSize(t *testing.T) {
	for _, c := range []struct{ enc, want int64 }{
		{-1, -1}, {0, MinBlobSize}, {32, MinBlobSize}, {MinBlobSize, MinBlobSize},
		{MinBlobSize + 1, MinBlobSize + 2048}, {1 << 20, 1 << 20}, {1<<20 + 1, 1<<20 + 32<<10},
		{stream.EncryptedSize(1 << 30), 1<<30 + 32<<20}, {1 << 62, 1 << 62}, {1<<62 + 1, -1},
	} {
		if got := BlobSize(c.enc); got != c.want {
			t.Errorf("BlobSize(%d) = %d, want %d", c.enc, got, c.want)
		}
	}
	// Padmé: never more than 12 % of padding, and few distinct sizes.
	sizes := map[int64]bool{}
	for enc := int64(MinBlobSize); enc < 64<<20; enc += 4099 {
		b := BlobSize(enc)
		if b < enc || float64(b-enc) > 0.12*float64(enc) {
			t.Fatalf("BlobSize(%d) = %d", enc, b)
		}
		sizes[b] = true
	}
	if len(sizes) > 400 {
		t.Errorf("%d distinct blob sizes between 64 KiB and 64 MiB", len(sizes))
	}
}
