//go:build amd64 && !purego

package preprocess

import "github.com/icthp/icthp/preprocess/internal/pngsimd"

// paethSIMD undoes the Paeth filter on the first n pixels of cur (bpp 3 or 4) with the
// AVX kernel, which reads and writes 4 bytes at each of them: cur and prev must hold
// at least one pixel more.
func paethSIMD(cur, prev []byte, n, bpp int) {
	if n <= 0 {
		return
	}
	_, _ = cur[(n+1)*bpp-1], prev[(n+1)*bpp-1]
	pngsimd.Paeth(&cur[0], &prev[0], n, bpp)
}

// paeth2SIMD undoes the Paeth filter on rows r0 and r1 (prev above r0) with the AVX
// kernel for two rows: r0's pixels 1 to k, r1's pixels 0 to k-1 (r0's pixel 0 must be
// decoded). It reads 4 bytes at each pixel's start: r0 and prev must hold k+2 pixels, r1
// k+1.
func paeth2SIMD(r0, r1, prev []byte, k, bpp int) {
	if k <= 0 {
		return
	}
	_, _, _ = r0[(k+2)*bpp-1], prev[(k+2)*bpp-1], r1[(k+1)*bpp-1]
	pngsimd.Paeth2(&r0[0], &r1[0], &prev[0], k, bpp)
}

// paeth4SIMD undoes the Paeth filter on four rows with the AVX2 kernel: rows holds the
// row above (without its filter byte) and the four rows (with theirs), stride bytes apart;
// steps from to from+n-1 (pngsimd.Paeth4).
func paeth4SIMD(rows []byte, stride, from, n, bpp int) {
	if n <= 0 {
		return
	}
	if from < 8 || (from+n+1)*bpp > stride-1 || len(rows) < 5*stride-1 {
		panic("preprocess: paeth4SIMD out of bounds")
	}
	pngsimd.Paeth4(&rows[stride], stride, from, n, bpp)
}

// addBytesSIMD adds src to dst (as long) with the AVX2 kernel for the whole 32-byte blocks
// and returns how many bytes it did.
func addBytesSIMD(dst, src []byte) int {
	n := len(dst) &^ 31
	if n == 0 {
		return 0
	}
	_ = src[n-1]
	pngsimd.AddBytes(&dst[0], &src[0], n)
	return n
}
