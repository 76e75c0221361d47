package node

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	msync "github.com/hushnet/hush/sync"
)

// linkDevice links a new home to r's account through the real link
// protocol and returns the new home (not running).
func linkDevice(t testing.TB, r *running, name string) string {
	t.Helper()
	offer, err := r.n.LinkDevice(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(t.TempDir(), name)
	var last HistoryProgress
	self, err := JoinDevice(context.Background(), home, JoinOptions{Code: offer.Code, Name: name, KDF: testKDF,
		Progress: func(p HistoryProgress) { last = p }})
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	if !last.Complete {
		t.Fatalf("join returned before the transfer completed: %+v", last)
	}
	if self.Account != r.n.cert.Account().Hex() {
		t.Fatal("joined another account")
	}
	return home
}

func deviceNames(t testing.TB, n *Node) map[string]bool {
	t.Helper()
	ds, err := n.Devices()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, d := range ds {
		out[d.Name] = d.This
	}
	return out
}

// A device links with a code: both devices list both, the new one has
// the account's name and contacts, the code works once only, and the
// laptop learns the phone's route once the phone runs.
func TestLinkDevice(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	befriend(t, a, b)
	offer, err := a.n.LinkDevice(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	phoneHome := filepath.Join(t.TempDir(), "phone")
	if _, err := JoinDevice(context.Background(), phoneHome, JoinOptions{Code: offer.Code, Name: "phone", KDF: testKDF}); err != nil {
		t.Fatal(err)
	}
	// The code is spent.
	if _, err := JoinDevice(context.Background(), filepath.Join(t.TempDir(), "thief"), JoinOptions{Code: offer.Code, Name: "x", KDF: testKDF}); !errors.Is(err, msync.ErrRefused) {
		t.Fatalf("second use of a code: %v", err)
	}
	// A home with an identity is refused.
	if _, err := JoinDevice(context.Background(), newHome(t, "other"), JoinOptions{Code: offer.Code, KDF: testKDF}); !errors.Is(err, ErrIdentityExists) {
		t.Fatalf("join on a home with an account: %v", err)
	}
	phone := startNode(t, phoneHome)
	defer phone.stop(t)
	if got := deviceNames(t, a.n); len(got) != 2 || got["phone"] || !got["device"] {
		t.Fatalf("laptop lists %v", got)
	}
	if got := deviceNames(t, phone.n); len(got) != 2 || !got["phone"] {
		t.Fatalf("phone lists %v", got)
	}
	self, err := phone.n.Self()
	if err != nil {
		t.Fatal(err)
	}
	if self.Name != a.n.profile.Name || self.History != nil {
		t.Fatalf("phone self: name %q history %+v", self.Name, self.History)
	}
	waitFor(t, "the laptop to learn the phone's entry", func() bool {
		a.n.mu.Lock()
		defer a.n.mu.Unlock()
		return a.n.siblingsLocked().Device(phone.n.cert.DeviceID()) != nil
	})
}

// Bad codes get clear errors and change nothing.
func TestJoinBadCodes(t *testing.T) {
	a := startNode(t, newHome(t, "alice"))
	defer a.stop(t)
	offer, err := a.n.LinkDevice(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	code, err := msync.ParseCode(offer.Code, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	code.Secret[0] ^= 1 // a wrong code that parses
	wrong, _ := code.Text()
	for _, tc := range []struct {
		code string
		want error
	}{
		{"HUSH-LINK:AAAA", msync.ErrCodeMalformed},
		{offer.Code[:len(offer.Code)-2] + "AA", msync.ErrCodeChecksum},
		{wrong, msync.ErrRefused},
	} {
		home := filepath.Join(t.TempDir(), "new")
		_, err := JoinDevice(context.Background(), home, JoinOptions{Code: tc.code, Name: "x", KDF: testKDF})
		if !errors.Is(err, tc.want) {
			t.Errorf("code %.20s…: %v, want %v", tc.code, err, tc.want)
		}
	}
	// The wrong code did not spend the offer.
	linkDevice(t, a, "phone")
	if got := deviceNames(t, a.n); len(got) != 2 {
		t.Fatalf("devices %v", got)
	}
}
