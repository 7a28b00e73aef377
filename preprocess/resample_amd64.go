//go:build amd64 && !purego

package preprocess

import (
	"github.com/icthp/icthp/preprocess/internal/resamplesimd"
	"golang.org/x/sys/cpu"
)

// useSIMD selects the AVX2 passes of package resamplesimd (x/sys/cpu also checks that the OS
// saves the YMM registers). It is set once, when the package is loaded; build with
// -tags purego to get the pure-Go passes on amd64 too.
var useSIMD = cpu.X86.HasAVX2

// bestPass is the horizontal pass's best code on this CPU: the eight-row AVX-512 kernel
// where it has AVX-512F (on AMD Zen 5, 1024 rows of 1024 RGB pixels to 224: 0.67–0.70 ms
// against the AVX2 kernel's 1.02–1.03; BenchmarkPasses).
var bestPass = func() passCode {
	switch {
	case useSIMD && cpu.X86.HasAVX512F:
		return passAVX512
	case useSIMD:
		return passAVX2
	}
	return passGo
}()

// hpassSIMD is hpass for ps = 1 (gray) and ps = 3 or 4 with R, G, B at offsets 0, 1, 2;
// wide: whole groups of eight rows of 3- or 4-byte pixels go to the AVX-512 kernel. The
// vector code reads, from a row's start, up to c.reach[m-1]*ps + 2 bytes (AVX-512: + 4)
// for outputs [0, m): it gets the longest prefix of outputs that stays inside src for the
// group's last row (rows before it have more bytes after them), and pure Go does the rest.
func hpassSIMD(wide bool, dst, src []byte, srcStride, ps, rows int, c *coeffs) {
	if c.n == 0 || rows <= 0 {
		return
	}
	w := c.n * 3
	if ps == 1 {
		w = c.n
	}
	_ = dst[rows*w-1] // the vector code writes rows × w bytes
	r := 0
	if wide && ps != 1 {
		a := resamplesimd.Rows8{SStride: srcStride, DStride: w, XMin: &c.xmin[0], Cnt: &c.cnt[0], K: &c.kp[0], KPS: c.kps, PS: ps}
		for ; r+8 <= rows; r += 8 {
			last := r + 7
			rem := len(src) - last*srcStride
			m := c.n
			for m > 0 && int(c.reach[m-1])*ps+4 > rem {
				m--
			}
			if m > 0 {
				a.Src, a.Dst, a.N = &src[r*srcStride], &dst[r*w], m
				resamplesimd.HRows8(&a)
			}
			for rr := r; m < c.n && rr <= last; rr++ {
				hrowGo(dst[rr*w:(rr+1)*w], src[rr*srcStride:], ps, 1, 2, c, m)
			}
		}
	}
	a := resamplesimd.Rows{XMin: &c.xmin[0], Cnt: &c.cnt[0], K: &c.kp[0], KPS: c.kps, PS: ps}
	for ; r < rows; r += 4 {
		last := min(r+3, rows-1)
		for j := range 4 {
			rr := min(r+j, last)
			a.Src[j] = &src[rr*srcStride]
			a.Dst[j] = &dst[rr*w]
		}
		rem := len(src) - last*srcStride
		m := c.n
		for m > 0 && int(c.reach[m-1])*ps+2 > rem {
			m--
		}
		if m > 0 {
			a.N = m
			if ps == 1 {
				resamplesimd.HRows1(&a)
			} else {
				resamplesimd.HRows(&a)
			}
		}
		for rr := r; m < c.n && rr <= last; rr++ {
			hrowGo(dst[rr*w:(rr+1)*w], src[rr*srcStride:], ps, 1, 2, c, m)
		}
	}
}

// vrowSIMD is vrowGo in AVX2 (rows of at least 8 bytes).
func vrowSIMD(out, rows []byte, k []int32) {
	n := len(out)
	if len(k) == 0 || n < 8 {
		panic("preprocess: vrowSIMD needs taps and 8 bytes")
	}
	_ = rows[len(k)*n-1] // the vector code reads len(k) rows of n bytes
	resamplesimd.VRow(&out[0], &rows[0], n, &k[0], len(k))
}
