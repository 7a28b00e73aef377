//go:build amd64 && !purego

package base64simd

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// decodeBlocks decodes the whole 32-character blocks of the alphabet at the start of s
// while dst has room for the 32 bytes each step stores (24 of them the block's), and
// says how many characters it read and bytes it wrote.
func decodeBlocks(dst []byte, s string) (in, out int) {
	if !cpu.X86.HasAVX2 || len(s) < 32 || len(dst) < 32 {
		return 0, 0
	}
	blocks := min(len(s)/32, (len(dst)-8)/24)
	if blocks <= 0 {
		return 0, 0
	}
	k := decodeAVX2(&dst[0], unsafe.StringData(s), blocks)
	return 32 * k, 24 * k
}

// decodeAVX2 decodes up to n blocks of 32 characters at src into 24 bytes each at dst
// (storing 32 bytes a step: dst must hold 24n+8), stopping before the first block with a
// character outside the alphabet; it returns the blocks decoded.
//
//go:noescape
func decodeAVX2(dst, src *byte, n int) int
