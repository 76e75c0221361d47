package pushbridge

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/hushnet/hush/pushbridge/provider"
)

func testSealer(t testing.TB) *sealer {
	s, err := newSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHandleRoundTrip(t *testing.T) {
	s := testSealer(t)
	sub := `{"endpoint":"https://push.example/x","keys":{"p256dh":"BCd","auth":"q1"}}`
	for _, c := range []struct {
		kind  provider.Kind
		token string
	}{
		{provider.APNs, token(1)},
		{provider.FCM, strings.Repeat("f", 163)},
		{provider.WebPush, sub},
		{provider.WebPush, strings.Repeat("w", MaxTokenSize)},
	} {
		h, err := s.seal(c.kind, c.token)
		if err != nil {
			t.Fatal(err)
		}
		key, kind, tok, err := s.open(h)
		if err != nil || kind != c.kind || tok != c.token {
			t.Fatalf("open(seal(%s)) = %s, %v", c.kind, kind, err)
		}
		raw, _ := base64.RawURLEncoding.DecodeString(h)
		if key != keyOf(raw) {
			t.Fatal("key is not the hash of the handle")
		}
		if len(h) > MaxHandleSize {
			t.Fatalf("handle of %d bytes, max %d", len(h), MaxHandleSize)
		}
	}
}

func TestHandleLengthHidesService(t *testing.T) {
	s := testSealer(t)
	a, _ := s.seal(provider.APNs, token(1))
	f, _ := s.seal(provider.FCM, strings.Repeat("f", 300))
	w, _ := s.seal(provider.WebPush, `{"endpoint":"https://fcm.googleapis.com/fcm/send/`+strings.Repeat("e", 150)+`","keys":{"p256dh":"`+strings.Repeat("k", 87)+`","auth":"`+strings.Repeat("a", 22)+`"}}`)
	if len(a) != 748 || len(a) != len(f) || len(a) != len(w) {
		t.Fatalf("handle lengths %d, %d, %d differ", len(a), len(f), len(w))
	}
}

func TestHandleSealRefuses(t *testing.T) {
	s := testSealer(t)
	if _, err := s.seal("pigeon", "x"); !errors.Is(err, ErrUnknownProvider) {
		t.Fatal(err)
	}
	for _, tok := range []string{"", strings.Repeat("x", MaxTokenSize+1)} {
		if _, err := s.seal(provider.APNs, tok); !errors.Is(err, ErrBadToken) {
			t.Fatal(err)
		}
	}
}

func TestHandleOtherKey(t *testing.T) {
	s := testSealer(t)
	other, _ := newSealer(bytes.Repeat([]byte{8}, 32))
	h, _ := other.seal(provider.APNs, token(1))
	if _, _, _, err := s.open(h); err != ErrBadHandle {
		t.Fatalf("foreign handle: %v", err)
	}
	// Every single-byte change fails to open.
	h, _ = s.seal(provider.APNs, token(1))
	raw, _ := base64.RawURLEncoding.DecodeString(h)
	for i := range raw {
		c := bytes.Clone(raw)
		c[i] ^= 0x40
		if _, _, _, err := s.open(base64.RawURLEncoding.EncodeToString(c)); err != ErrBadHandle {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	// Trailing or missing characters make no handle.
	for _, bad := range []string{h + "=", h + "A", h + "AA", h[:len(h)-1]} {
		if _, _, _, err := s.open(bad); err != ErrBadHandle {
			t.Fatalf("%q…: %v", bad[:10], err)
		}
	}
}

func FuzzOpenHandle(f *testing.F) {
	s := testSealer(f)
	h, _ := s.seal(provider.APNs, token(1))
	f.Add(h)
	f.Add("")
	junk := make([]byte, 600)
	rand.Read(junk)
	junk[0] = handleVersion
	f.Add(base64.RawURLEncoding.EncodeToString(junk))
	f.Fuzz(func(t *testing.T, in string) {
		key, kind, tok, err := s.open(in)
		if err != nil {
			if err != ErrBadHandle {
				t.Fatalf("error %v is not ErrBadHandle", err)
			}
			return
		}
		// Only the seed handles (sealed anew in each fuzz process) open.
		if kind != provider.APNs || tok != token(1) {
			t.Fatalf("opened a handle the sealer did not make")
		}
		if raw, _ := base64.RawURLEncoding.DecodeString(in); key != keyOf(raw) {
			t.Fatal("key is not the hash of the handle")
		}
	})
}

func TestWakePayloadIsConstant(t *testing.T) {
	// Golden: the only bytes a wake-up ever carries.
	if string(WakePayload) != `{"t":"wake"}` || CollapseID != "wake" {
		t.Fatalf("wake payload %q, collapse ID %q", WakePayload, CollapseID)
	}
}
