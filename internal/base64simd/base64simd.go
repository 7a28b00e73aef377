// Package base64simd decodes standard-alphabet base64 (encoding/base64's StdEncoding and
// RawStdEncoding) with AVX2 where the CPU has it: 32 characters to 24 bytes a step, by
// Wojciech Muła and Daniel Lemire's method (nibble lookups that validate and translate,
// multiply-adds that pack the 6-bit values). Images sent as JSON arrive as megabytes of
// base64, and encoding/base64 decodes about 2.4 GB/s here (1.2 ms for a 2 MB PNG).
//
// The vector code decodes the longest run of whole 32-character blocks of the alphabet
// at the start of the string; encoding/base64 decodes the rest. Base64 decodes four
// characters at a time independently of the others, so the result, and whether there is
// an error, are encoding/base64's on the whole string (error offsets count from the part
// encoding/base64 decoded). Padding, line breaks and other characters all end the vector
// part.
package base64simd

import (
	"encoding/base64"
	"unsafe"
)

// DecodeString decodes s with enc as enc.DecodeString does. The vector code runs for
// base64.StdEncoding and base64.RawStdEncoding; any other encoding decodes alone.
func DecodeString(enc *base64.Encoding, s string) ([]byte, error) {
	dst := make([]byte, enc.DecodedLen(len(s)))
	n, err := Decode(enc, dst, s)
	return dst[:n], err
}

// Decode is enc.Decode from a string: it writes at most enc.DecodedLen(len(s)) bytes to
// dst and returns how many.
func Decode(enc *base64.Encoding, dst []byte, s string) (int, error) {
	in, out := 0, 0
	if std(enc) {
		in, out = decodeBlocks(dst, s)
	}
	// enc.Decode only reads its source: the string's bytes, without a copy.
	tail := unsafe.Slice(unsafe.StringData(s[in:]), len(s)-in)
	n, err := enc.Decode(dst[out:], tail)
	if err != nil {
		if ce, ok := err.(base64.CorruptInputError); ok {
			err = ce + base64.CorruptInputError(in)
		}
	}
	return out + n, err
}

func std(enc *base64.Encoding) bool {
	return enc == base64.StdEncoding || enc == base64.RawStdEncoding
}
