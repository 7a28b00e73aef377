package base64simd

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"testing"
)

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// same decodes s with enc both ways and fails unless the bytes and the error are equal.
func same(t *testing.T, enc *base64.Encoding, s string) {
	t.Helper()
	want, werr := enc.DecodeString(s)
	got, gerr := DecodeString(enc, s)
	if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Fatalf("%.80q: error %v, want %v", s, gerr, werr)
	}
	if werr == nil && !bytes.Equal(got, want) {
		t.Fatalf("%.80q: decoded bytes differ", s)
	}
}

// TestEveryByte: each of the 256 byte values at each position of a block of 32
// characters (the rest 'A'..), then more blocks: the block is decoded by the vector code
// exactly when the byte is in the alphabet, and the result is encoding/base64's.
func TestEveryByte(t *testing.T) {
	base := []byte(alphabet[:32] + alphabet[32:] + alphabet)
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 32; pos += 5 {
			s := bytes.Clone(base)
			s[pos] = byte(c)
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
				same(t, enc, string(s))
			}
			dst := make([]byte, 200)
			in, out := decodeBlocks(dst, string(s))
			valid := bytes.IndexByte([]byte(alphabet), byte(c)) >= 0
			if hasAVX2() && (in == 0) == valid {
				t.Fatalf("byte %#x at %d: the vector code read %d characters (in the alphabet: %v)", c, pos, in, valid)
			}
			if in != 4*out/3 {
				t.Fatalf("read %d characters, wrote %d bytes", in, out)
			}
		}
	}
}

// TestRandom: strings of random alphabet characters of every length to 300 and some long
// ones, encoded data and with a stray character (padding, line break, '-', space, a
// non-ASCII byte) dropped in at random: encoding/base64's bytes and errors.
func TestRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	stray := []byte{'=', '\n', '\r', '-', '_', ' ', 0xff, 0}
	lengths := []int{}
	for n := 0; n <= 300; n++ {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 4096, 100_000, 1<<20+3)
	for _, n := range lengths {
		raw := make([]byte, n)
		for i := range raw {
			raw[i] = byte(rng.IntN(256))
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding} {
			s := []byte(enc.EncodeToString(raw))
			same(t, enc, string(s))
			if len(s) > 0 {
				s[rng.IntN(len(s))] = stray[rng.IntN(len(stray))]
				same(t, enc, string(s))
			}
		}
		s := make([]byte, n)
		for i := range s {
			s[i] = alphabet[rng.IntN(64)]
		}
		same(t, base64.StdEncoding, string(s))
		same(t, base64.RawStdEncoding, string(s))
	}
}

func FuzzDecodeString(f *testing.F) {
	f.Add(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("icthp"), 40)), true)
	f.Add(alphabet+alphabet+"=", false)
	f.Fuzz(func(t *testing.T, s string, raw bool) {
		enc := base64.StdEncoding
		if raw {
			enc = base64.RawStdEncoding
		}
		same(t, enc, s)
	})
}

func BenchmarkDecodeString(b *testing.B) {
	raw := make([]byte, 2<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range raw {
		raw[i] = byte(rng.IntN(256))
	}
	s := base64.StdEncoding.EncodeToString(raw)
	b.Run("encoding-base64", func(b *testing.B) {
		b.SetBytes(int64(len(s)))
		for b.Loop() {
			if _, err := base64.StdEncoding.DecodeString(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("base64simd", func(b *testing.B) {
		b.SetBytes(int64(len(s)))
		for b.Loop() {
			if _, err := DecodeString(base64.StdEncoding, s); err != nil {
				b.Fatal(err)
			}
		}
	})
}
