package shortlink

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

func link(t testing.TB, addr string) *Link {
	t.Helper()
	l, err := New(ma.StringCast(addr), [RelayKeySize]byte{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The text form: at most 120 characters for IPv4 and IPv6 relays, QR
// alphanumeric characters only, and it parses back to the same link,
// whatever the case and surrounding white space.
func TestLinkRoundTrip(t *testing.T) {
	for addr, want := range map[string]int{"/ip4/203.0.113.7/tcp/4001": 98, "/ip4/203.0.113.7/udp/4001/quic-v1": 103,
		"/ip6/2001:db8::7/tcp/4001": 117} {
		l := link(t, addr)
		s, err := l.String()
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != want || len(s) > MaxLength {
			t.Errorf("%s: a link of %d characters, want %d", addr, len(s), want)
		}
		if strings.Trim(s, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:") != "" {
			t.Errorf("%q has characters outside QR alphanumeric mode", s)
		}
		for _, v := range []string{s, strings.ToLower(s), "  " + s + "\n"} {
			got, err := Parse(v)
			if err != nil {
				t.Fatalf("%q: %v", v, err)
			}
			if !got.RelayAddr.Equal(l.RelayAddr) || got.RelayKey != l.RelayKey || got.Secret != l.Secret {
				t.Fatalf("%q came back as %+v", v, got)
			}
		}
	}
	if _, err := New(ma.StringCast("/dns4/a-rather-long-relay-name.example.community/tcp/4001"), [RelayKeySize]byte{}); !errors.Is(err, ErrTooLong) {
		t.Fatalf("a long relay name: %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	good, _ := link(t, "/ip4/203.0.113.7/tcp/4001").String()
	body := good[len(Prefix):]
	p2p := &Link{RelayAddr: ma.StringCast("/ip4/1.2.3.4/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN")}
	withPeer, _ := p2p.String()
	for name, s := range map[string]string{
		"empty":        "",
		"long link":    "hush://AAAA",
		"no prefix":    body,
		"other scheme": "HUSH-LINK:" + body,
		"bad base32":   Prefix + body[:10] + "1" + body[11:],
		"cut":          good[:len(good)-4],
		"trailing":     good + "AAAA",
		"version":      Prefix + "AI" + body[2:],
		"peer in addr": withPeer,
		"too long":     Prefix + strings.Repeat("A", MaxLength),
	} {
		if _, err := Parse(s); err == nil {
			t.Errorf("%s: %q parsed", name, s)
		}
	}
}

// A record opens only with its own link; a tampered or swapped one is
// ErrRecord.
func TestRecordSealOpen(t *testing.T) {
	l, other := link(t, "/ip4/203.0.113.7/tcp/4001"), link(t, "/ip4/203.0.113.7/tcp/4001")
	if l.ID() == other.ID() {
		t.Fatal("two links share an ID")
	}
	rec := &Record{Kind: KindInvitation, Card: []byte("SIGNED-CARD-MARKER"), Token: [TokenSize]byte{9}, Label: "for carol"}
	sealed, err := l.Seal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("SIGNED-CARD-MARKER")) || bytes.Contains(sealed, []byte("for carol")) {
		t.Fatal("the sealed record shows its plaintext")
	}
	got, err := l.Open(sealed)
	if err != nil || got.Kind != rec.Kind || string(got.Card) != string(rec.Card) || got.Token != rec.Token || got.Label != rec.Label {
		t.Fatalf("opened %+v, %v", got, err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	theirs, _ := other.Seal(rec)
	for name, b := range map[string][]byte{"other link's": theirs, "tampered": tampered, "short": sealed[:10], "empty": nil} {
		if _, err := l.Open(b); !errors.Is(err, ErrRecord) {
			t.Errorf("%s record: %v", name, err)
		}
	}
	for name, r := range map[string]*Record{
		"no card":  {Kind: KindAddress},
		"kind":     {Kind: 7, Card: []byte("c")},
		"big card": {Kind: KindAddress, Card: make([]byte, MaxCardSize+1)},
		"label":    {Kind: KindInvitation, Card: []byte("c"), Label: strings.Repeat("x", MaxLabelSize+1)},
	} {
		if _, err := l.Seal(r); err == nil {
			t.Errorf("%s: sealed", name)
		}
	}
}

func FuzzParse(f *testing.F) {
	good, _ := link(f, "/ip4/203.0.113.7/tcp/4001").String()
	f.Add(good)
	f.Add("HUSH:")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			return
		}
		again, err := l.String()
		if err != nil {
			t.Fatalf("a parsed link does not print: %v", err)
		}
		if l2, err := Parse(again); err != nil || l2.Secret != l.Secret || l2.RelayKey != l.RelayKey {
			t.Fatalf("%q does not round-trip", s)
		}
	})
}
