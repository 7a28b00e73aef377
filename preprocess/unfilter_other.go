//go:build !amd64 || purego

package preprocess

func paethSIMD(cur, prev []byte, n, bpp int) {
	panic("preprocess: no SIMD unfiltering in this build")
}

func paeth2SIMD(r0, r1, prev []byte, k, bpp int) {
	panic("preprocess: no SIMD unfiltering in this build")
}

func paeth4SIMD(rows []byte, stride, from, n, bpp int) {
	panic("preprocess: no SIMD unfiltering in this build")
}

func addBytesSIMD(dst, src []byte) int {
	panic("preprocess: no SIMD unfiltering in this build")
}
