//go:build amd64 && !purego

package pngsimd

// Paeth undoes the Paeth filter (PNG §9.4) on the first n pixels of a row of bpp-byte
// pixels (bpp 3 or 4) at cur, the unfiltered row above at prev, the pixel left of the
// first one taken as zero. It reads and writes 4 bytes at each pixel: for bpp = 3 the
// fourth is the next pixel's first byte, written back unchanged, so the caller keeps at
// least one pixel after the n (in both rows) and does it itself. It needs AVX.
//
//go:noescape
func Paeth(cur, prev *byte, n, bpp int)

// Paeth2 undoes the Paeth filter on two consecutive rows at once, the second one pixel
// behind the first (its pixel above-left and above are the first row's, decoded in the
// step before): step i decodes pixel i+1 of r0 and pixel i of r1, for i in [0, n).
// Pixel 0 of r0 must be decoded already; prev is the unfiltered row above r0. It reads
// 4 bytes at the start of each pixel it decodes (and of r0's pixel 0, prev's pixels 0
// to n) and writes bpp bytes at each.
//
//go:noescape
func Paeth2(r0, r1, prev *byte, n, bpp int)

// Paeth4 undoes the Paeth filter on four consecutive rows at once, each two pixels behind
// the one above it: r0 is row 0's first pixel, row k (0 to 3) starts at r0 + k·stride and
// the unfiltered row above row 0 at r0 - stride. Step s (from from to from+n-1) decodes
// pixel s - 2k of each row k; from ≥ 8, and the pixels before each row's first one must
// be decoded already. It reads 4 bytes at the start of each pixel it decodes, of the row
// above's pixels from-1 to from+n-1, and of the decoded pixels from-2-2k and from-1-2k
// of row k and of the row above it; it writes bpp bytes at each pixel it decodes.
//
//go:noescape
func Paeth4(r0 *byte, stride, from, n, bpp int)

// AddBytes adds src to dst byte by byte, modulo 256, for the first n bytes (n a multiple
// of 32): the Up filter undone. It needs AVX2.
//
//go:noescape
func AddBytes(dst, src *byte, n int)
