//go:build !amd64 || purego

package preprocess

// useSIMD: no vector passes on this architecture (or with -tags purego); hpass and vpass
// run their pure-Go code.
const useSIMD = false

// bestPass: the pure-Go passes.
const bestPass = passGo

func hpassSIMD(wide bool, dst, src []byte, srcStride, ps, rows int, c *coeffs) {
	panic("preprocess: no SIMD resampling in this build")
}

func vrowSIMD(out, rows []byte, k []int32) {
	panic("preprocess: no SIMD resampling in this build")
}
