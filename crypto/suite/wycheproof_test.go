package suite

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// The Wycheproof files (Apache-2.0, C2SP/wycheproof) live at the module
// root; see testdata/wycheproof/README.md for provenance.
const wycheproofDir = "../../testdata/wycheproof/"

// hexBytes decodes a JSON hex string.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

func loadWycheproof(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(wycheproofDir + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// checkCount fails the test if no vector ran or some were skipped.
func checkCount(t *testing.T, ran, declared int) {
	t.Helper()
	if ran == 0 {
		t.Fatal("no vectors ran")
	}
	if ran != declared {
		t.Fatalf("ran %d vectors, file declares %d", ran, declared)
	}
	t.Logf("ran %d vectors", ran)
}

type aeadFile struct {
	NumberOfTests int `json:"numberOfTests"`
	TestGroups    []struct {
		IvSize int `json:"ivSize"`
		Tests  []struct {
			TcID   int      `json:"tcId"`
			Flags  []string `json:"flags"`
			Key    hexBytes `json:"key"`
			IV     hexBytes `json:"iv"`
			AAD    hexBytes `json:"aad"`
			Msg    hexBytes `json:"msg"`
			CT     hexBytes `json:"ct"`
			Tag    hexBytes `json:"tag"`
			Result string   `json:"result"`
		} `json:"tests"`
	} `json:"testGroups"`
}

// runAEAD checks every vector of an AEAD file against newAEAD, and, when
// sealed is non-nil, against the protocol-level open function too.
func runAEAD(t *testing.T, file string, newAEAD func([]byte) (aeadIface, error), open func(key, sealed, ad []byte) ([]byte, error)) {
	var f aeadFile
	loadWycheproof(t, file, &f)
	ran := 0
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			ran++
			valid := tc.Result == "valid"
			aead, err := newAEAD(tc.Key)
			if err != nil {
				t.Fatalf("tc %d: key: %v", tc.TcID, err)
			}
			ctTag := slices.Concat(tc.CT, tc.Tag)
			// The AEAD panics on a wrong nonce size: check first.
			if len(tc.IV) != aead.NonceSize() {
				if valid {
					t.Errorf("tc %d: valid vector with %d-byte nonce", tc.TcID, len(tc.IV))
				}
			} else {
				pt, err := aead.Open(nil, tc.IV, ctTag, tc.AAD)
				switch {
				case valid && (err != nil || !bytes.Equal(pt, tc.Msg)):
					t.Errorf("tc %d: Open = %x, %v", tc.TcID, pt, err)
				case !valid && err == nil:
					t.Errorf("tc %d: invalid vector opened", tc.TcID)
				}
				if valid {
					if got := aead.Seal(nil, tc.IV, tc.Msg, tc.AAD); !bytes.Equal(got, ctTag) {
						t.Errorf("tc %d: Seal = %x, want %x", tc.TcID, got, ctTag)
					}
				}
			}
			if open != nil {
				// Open takes nonce ‖ ct ‖ tag with a 24-byte nonce; a
				// vector with another nonce length reads as a different
				// (wrong) split and must fail.
				pt, err := open(tc.Key, slices.Concat(tc.IV, ctTag), tc.AAD)
				if valid && len(tc.IV) == NonceSizeX {
					if err != nil || !bytes.Equal(pt, tc.Msg) {
						t.Errorf("tc %d: suite.Open = %x, %v", tc.TcID, pt, err)
					}
				} else if err == nil {
					t.Errorf("tc %d: suite.Open accepted an invalid vector", tc.TcID)
				}
			}
		}
	}
	checkCount(t, ran, f.NumberOfTests)
}

type aeadIface = interface {
	NonceSize() int
	Seal(dst, nonce, plaintext, ad []byte) []byte
	Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
}

func TestWycheproofXChaCha20Poly1305(t *testing.T) {
	runAEAD(t, "wycheproof_xchacha20_poly1305_test.json",
		func(k []byte) (aeadIface, error) { return chacha20poly1305.NewX(k) }, Open)
}

func TestWycheproofChaCha20Poly1305(t *testing.T) {
	runAEAD(t, "wycheproof_chacha20_poly1305_test.json",
		func(k []byte) (aeadIface, error) { return chacha20poly1305.New(k) }, nil)
}

func TestWycheproofHKDFSHA256(t *testing.T) {
	var f struct {
		NumberOfTests int `json:"numberOfTests"`
		TestGroups    []struct {
			Tests []struct {
				TcID   int      `json:"tcId"`
				IKM    hexBytes `json:"ikm"`
				Salt   hexBytes `json:"salt"`
				Info   hexBytes `json:"info"`
				Size   int      `json:"size"`
				OKM    hexBytes `json:"okm"`
				Result string   `json:"result"`
				Flags  []string `json:"flags"`
			} `json:"tests"`
		} `json:"testGroups"`
	}
	loadWycheproof(t, "wycheproof_hkdf_sha256_test.json", &f)
	ran := 0
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			ran++
			if tc.Result == "valid" {
				if got := HKDF(tc.IKM, tc.Salt, string(tc.Info), tc.Size); !bytes.Equal(got, tc.OKM) {
					t.Errorf("tc %d: HKDF = %x, want %x", tc.TcID, got, tc.OKM)
				}
				continue
			}
			if !slices.Contains(tc.Flags, "SizeTooLarge") {
				t.Fatalf("tc %d: unexpected invalid vector %v", tc.TcID, tc.Flags)
			}
			if _, err := hkdf.Key(sha256.New, tc.IKM, tc.Salt, string(tc.Info), tc.Size); err == nil {
				t.Errorf("tc %d: hkdf.Key accepted size %d", tc.TcID, tc.Size)
			}
		}
	}
	checkCount(t, ran, f.NumberOfTests)
}

func TestWycheproofHMACSHA256(t *testing.T) {
	var f struct {
		NumberOfTests int `json:"numberOfTests"`
		TestGroups    []struct {
			TagSize int `json:"tagSize"`
			Tests   []struct {
				TcID   int      `json:"tcId"`
				Key    hexBytes `json:"key"`
				Msg    hexBytes `json:"msg"`
				Tag    hexBytes `json:"tag"`
				Result string   `json:"result"`
			} `json:"tests"`
		} `json:"testGroups"`
	}
	loadWycheproof(t, "wycheproof_hmac_sha256_test.json", &f)
	ran := 0
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			ran++
			if len(tc.Tag)*8 != g.TagSize {
				t.Fatalf("tc %d: tag is %d bits, group says %d", tc.TcID, len(tc.Tag)*8, g.TagSize)
			}
			m := hmac.New(sha256.New, tc.Key)
			m.Write(tc.Msg)
			full := m.Sum(nil)
			ok := hmac.Equal(full[:len(tc.Tag)], tc.Tag)
			if ok != (tc.Result == "valid") {
				t.Errorf("tc %d: tag match %v, result %s", tc.TcID, ok, tc.Result)
			}
		}
	}
	checkCount(t, ran, f.NumberOfTests)
}

func TestWycheproofEd25519(t *testing.T) {
	var f struct {
		NumberOfTests int `json:"numberOfTests"`
		TestGroups    []struct {
			PublicKey struct {
				PK hexBytes `json:"pk"`
			} `json:"publicKey"`
			Tests []struct {
				TcID   int      `json:"tcId"`
				Msg    hexBytes `json:"msg"`
				Sig    hexBytes `json:"sig"`
				Result string   `json:"result"`
			} `json:"tests"`
		} `json:"testGroups"`
	}
	loadWycheproof(t, "wycheproof_ed25519_test.json", &f)
	ran := 0
	for _, g := range f.TestGroups {
		if len(g.PublicKey.PK) != ed25519.PublicKeySize {
			t.Fatalf("public key of %d bytes", len(g.PublicKey.PK))
		}
		pub := ed25519.PublicKey(g.PublicKey.PK)
		for _, tc := range g.Tests {
			ran++
			if ok := ed25519.Verify(pub, tc.Msg, tc.Sig); ok != (tc.Result == "valid") {
				t.Errorf("tc %d: Verify = %v, result %s", tc.TcID, ok, tc.Result)
			}
		}
	}
	checkCount(t, ran, f.NumberOfTests)
}

func TestWycheproofMLKEM1024(t *testing.T) {
	var f struct {
		NumberOfTests int `json:"numberOfTests"`
		TestGroups    []struct {
			Tests []struct {
				TcID    int      `json:"tcId"`
				Comment string   `json:"comment"`
				Seed    hexBytes `json:"seed"`
				EK      hexBytes `json:"ek"`
				C       hexBytes `json:"c"`
				K       hexBytes `json:"K"`
				Result  string   `json:"result"`
			} `json:"tests"`
		} `json:"testGroups"`
	}
	loadWycheproof(t, "wycheproof_mlkem_1024_test.json", &f)
	ran := 0
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			ran++
			valid := tc.Result == "valid"
			dk, err := mlkem.NewDecapsulationKey1024(tc.Seed)
			if err != nil {
				if valid {
					t.Errorf("tc %d: seed rejected: %v", tc.TcID, err)
				}
				continue
			}
			if len(tc.EK) > 0 && !bytes.Equal(dk.EncapsulationKey().Bytes(), tc.EK) {
				t.Errorf("tc %d: encapsulation key differs", tc.TcID)
			}
			k, err := dk.Decapsulate(tc.C)
			switch {
			case valid && (err != nil || !bytes.Equal(k, tc.K)):
				t.Errorf("tc %d: Decapsulate = %x, %v", tc.TcID, k, err)
			case !valid && err == nil:
				t.Errorf("tc %d (%s): invalid vector decapsulated", tc.TcID, tc.Comment)
			}
		}
	}
	checkCount(t, ran, f.NumberOfTests)
}

func TestWycheproofMLKEM1024Encaps(t *testing.T) {
	var f struct {
		NumberOfTests int `json:"numberOfTests"`
		TestGroups    []struct {
			Tests []struct {
				TcID    int      `json:"tcId"`
				Comment string   `json:"comment"`
				M       hexBytes `json:"m"`
				EK      hexBytes `json:"ek"`
				C       hexBytes `json:"c"`
				K       hexBytes `json:"K"`
				Result  string   `json:"result"`
			} `json:"tests"`
		} `json:"testGroups"`
	}
	loadWycheproof(t, "wycheproof_mlkem_1024_encaps_test.json", &f)
	ran := 0
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			ran++
			ek, err := mlkem.NewEncapsulationKey1024(tc.EK)
			if tc.Result != "valid" {
				if err == nil {
					t.Errorf("tc %d (%s): invalid encapsulation key accepted", tc.TcID, tc.Comment)
				}
				continue
			}
			if err != nil {
				t.Errorf("tc %d: NewEncapsulationKey1024: %v", tc.TcID, err)
				continue
			}
			k, c, err := mlkemtest.Encapsulate1024(ek, tc.M)
			if err != nil || !bytes.Equal(k, tc.K) || !bytes.Equal(c, tc.C) {
				t.Errorf("tc %d: Encapsulate1024 differs (%v)", tc.TcID, err)
			}
		}
	}
	checkCount(t, ran, f.NumberOfTests)
}
