package envelope

import (
	"crypto/hpke"
	"testing"

	"github.com/hushnet/hush/crypto/suite"
	"github.com/hushnet/hush/crypto/x25519"
)

func BenchmarkSealOpen256(b *testing.B) {
	priv := x25519.GenerateKey()
	o, _ := NewOpener(priv)
	in := testInner(256, KindMessage)
	b.SetBytes(256)
	for b.Loop() {
		sealed, err := Seal(priv.PublicKey(), in)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := o.Open(sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHPKEOnly256 is plain hpke.Seal+hpke.Open of the same padded
// plaintext size, the baseline for BenchmarkSealOpen256.
func BenchmarkHPKEOnly256(b *testing.B) {
	priv := x25519.GenerateKey()
	pk, _ := hpke.NewDHKEMPublicKey(priv.PublicKey())
	sk, _ := hpke.NewDHKEMPrivateKey(priv)
	n, _ := BucketSize(256)
	pt := make([]byte, n-Overhead)
	inf := info(MailboxID(priv.PublicKey()))
	b.SetBytes(256)
	for b.Loop() {
		ct, err := hpke.Seal(pk, kdf, aead, inf, pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := hpke.Open(sk, kdf, aead, inf, ct); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkXChaCha256 is suite.Seal+Open of 256 bytes: the symmetric cost
// alone, for comparison.
func BenchmarkXChaCha256(b *testing.B) {
	key := make([]byte, 32)
	pt := make([]byte, 256)
	b.SetBytes(256)
	for b.Loop() {
		ct := suite.Seal(key, pt, nil)
		if _, err := suite.Open(key, ct, nil); err != nil {
			b.Fatal(err)
		}
	}
}
