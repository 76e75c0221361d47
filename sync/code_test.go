package sync

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Unix(1_800_000_000, 0)

// fixedReader returns the same byte forever.
type fixedReader byte

func (f fixedReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(f)
	}
	return len(p), nil
}

func testCode(t testing.TB) *LinkCode {
	t.Helper()
	o, err := NewOffer(OfferConfig{
		PeerID: bytes.Repeat([]byte{0x12}, 38),
		Addrs:  [][]byte{{0x04, 127, 0, 0, 1, 0x06, 0x0f, 0xa1}, bytes.Repeat([]byte{0xa5}, 51)},
		Now:    t0,
		Rand:   fixedReader(7),
	})
	if err != nil {
		t.Fatal(err)
	}
	return o.Code()
}

func TestCodeRoundTrip(t *testing.T) {
	c := testCode(t)
	text, err := c.Text()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, CodePrefix) {
		t.Fatalf("text %q lacks the prefix", text)
	}
	// The size docs/protocol/sync.md §18.1 states for this shape.
	if b, _ := c.Marshal(); len(b) != 134 || len(text) != 10+215 {
		t.Fatalf("code of %d bytes, %d characters; the spec says 134 and 225", len(b), len(text))
	}
	for _, variant := range []string{
		text,
		strings.ToLower(text),
		"  " + text + "\n",
		grouped(text),
	} {
		got, err := ParseCode(variant, t0)
		if err != nil {
			t.Fatalf("ParseCode(%q): %v", variant, err)
		}
		if got.Secret != c.Secret || !got.Expires.Equal(c.Expires) || !bytes.Equal(got.PeerID, c.PeerID) || len(got.Addrs) != 2 ||
			!bytes.Equal(got.Addrs[1], c.Addrs[1]) {
			t.Fatalf("round trip changed the code: %+v", got)
		}
	}
	if !c.Expires.Equal(t0.Add(CodeTTL)) {
		t.Fatalf("expires %v, want %v", c.Expires, t0.Add(CodeTTL))
	}
}

// grouped prints the code in groups of four separated by dashes.
func grouped(text string) string {
	body := text[len(CodePrefix):]
	var parts []string
	for len(body) > 4 {
		parts = append(parts, body[:4])
		body = body[4:]
	}
	parts = append(parts, body)
	return CodePrefix + strings.Join(parts, "-")
}

func TestCodeLANForm(t *testing.T) {
	o, err := NewOffer(OfferConfig{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := o.Code().Marshal()
	text, _ := o.Code().Text()
	if len(b) != 33 || len(text) != 10+53 {
		t.Fatalf("LAN form of %d bytes, %d characters; the spec says 33 and 63", len(b), len(text))
	}
	if _, err := ParseCode(text, t0); err != nil {
		t.Fatal(err)
	}
}

func TestCodeSecretIsRandom(t *testing.T) {
	a, _ := NewOffer(OfferConfig{Now: t0})
	b, _ := NewOffer(OfferConfig{Now: t0})
	if a.Code().Secret == b.Code().Secret || a.Code().Secret == ([CodeSecretSize]byte{}) {
		t.Fatal("two offers share a secret")
	}
}

func TestParseCodeErrors(t *testing.T) {
	c := testCode(t)
	text, _ := c.Text()
	raw, _ := c.Marshal()

	// A typo: one character of the body changed to another base32 letter.
	i := len(CodePrefix) + 20
	other := "A"
	if text[i] == 'A' {
		other = "B"
	}
	typo := text[:i] + other + text[i+1:]

	v2 := append([]byte(nil), raw[:len(raw)-4]...)
	v2[0] = 2
	sum := codeChecksum(v2)
	v2 = append(v2, sum[:]...)

	trailing := append([]byte(nil), raw[:len(raw)-4]...)
	trailing = append(trailing, 0)
	sum = codeChecksum(trailing)
	trailing = append(trailing, sum[:]...)

	for _, tc := range []struct {
		name string
		text string
		now  time.Time
		want error
	}{
		{"no prefix", text[len(CodePrefix):], t0, ErrCodeMalformed},
		{"card link", "hush://ABCD", t0, ErrCodeMalformed},
		{"not base32", CodePrefix + "0189!", t0, ErrCodeMalformed},
		{"cut", text[:len(text)-10], t0, ErrCodeChecksum},
		{"typo", typo, t0, ErrCodeChecksum},
		{"too short", CodePrefix + "AAAA", t0, ErrCodeMalformed},
		{"too long", CodePrefix + strings.Repeat("A", MaxCodeText), t0, ErrCodeMalformed},
		{"version 2", CodePrefix + codeEncoding.EncodeToString(v2), t0, ErrCodeVersion},
		{"trailing byte", CodePrefix + codeEncoding.EncodeToString(trailing), t0, ErrCodeMalformed},
		{"expired", text, t0.Add(CodeTTL), ErrCodeExpired},
		{"long expired", text, t0.Add(time.Hour), ErrCodeExpired},
	} {
		_, err := ParseCode(tc.text, tc.now)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := ParseCode(text, t0.Add(CodeTTL-time.Second)); err != nil {
		t.Errorf("a second before expiry: %v", err)
	}
}

func TestOfferLimits(t *testing.T) {
	for _, cfg := range []OfferConfig{
		{PeerID: make([]byte, MaxPeerIDSize+1)},
		{Addrs: make([][]byte, MaxCodeAddrs+1)},
		{Addrs: [][]byte{make([]byte, MaxAddrSize+1)}},
		{Addrs: [][]byte{{}}},
	} {
		cfg.Now = t0
		if _, err := NewOffer(cfg); !errors.Is(err, ErrCodeMalformed) {
			t.Errorf("NewOffer(%d-byte peer, %d addrs): got %v", len(cfg.PeerID), len(cfg.Addrs), err)
		}
	}
	// The largest code still parses.
	c := &LinkCode{Expires: t0, PeerID: make([]byte, MaxPeerIDSize)}
	for range MaxCodeAddrs {
		c.Addrs = append(c.Addrs, bytes.Repeat([]byte{1}, MaxAddrSize))
	}
	b, err := c.Marshal()
	if err != nil || len(b) != MaxCodeSize {
		t.Fatalf("largest code: %d bytes, %v; want %d", len(b), err, MaxCodeSize)
	}
	text, _ := c.Text()
	if len(text) > MaxCodeText {
		t.Fatalf("largest code text of %d characters, over MaxCodeText", len(text))
	}
	if _, err := ParseCode(text, t0.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseCode(f *testing.F) {
	c := testCode(f)
	text, _ := c.Text()
	raw, _ := c.Marshal()
	f.Add(text)
	f.Add(grouped(text))
	f.Add(CodePrefix + codeEncoding.EncodeToString(raw[:20]))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseCode(s, t0.Add(-time.Hour))
		if err != nil {
			return
		}
		// An accepted code re-encodes to a text that parses to it again.
		again, err := got.Text()
		if err != nil {
			t.Fatalf("accepted code does not re-encode: %v", err)
		}
		back, err := ParseCode(again, t0.Add(-time.Hour))
		if err != nil || back.Secret != got.Secret || !bytes.Equal(back.PeerID, got.PeerID) {
			t.Fatalf("re-encoded code parses differently: %v", err)
		}
	})
}

func FuzzParseCodeBytes(f *testing.F) {
	raw, _ := testCode(f).Marshal()
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCodeBytes(b)
		if err != nil {
			return
		}
		again, err := c.Marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted code does not re-encode to itself: %v", err)
		}
	})
}
