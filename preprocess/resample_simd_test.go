package preprocess

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// The vector passes (resample_amd64.go, package resamplesimd) against the pure-Go passes
// and against resampleRef, the plain transcription of Resample.c: same bytes, for every
// pixel layout, sizes from 1 to 4000, up and down, whole outputs and crop windows, and
// source buffers that end exactly where the last row ends.

// passModes are the codes a test runs: pure Go always, the vector code where this build
// and CPU have it (the AVX2 kernels alone, and with the AVX-512 one).
func passModes() []passCode {
	return []passCode{passGo, passAVX2, passAVX512}[:bestPass+1]
}

// guard bytes after every output buffer: the passes must not write past what they own
// (inputs are fenced: see fenced).
const guardLen = 64

func guarded(n int) ([]byte, []byte) {
	b := make([]byte, n+guardLen)
	for i := n; i < len(b); i++ {
		b[i] = 0xa5
	}
	return b[:n], b
}

func checkGuard(t *testing.T, what string, full []byte, n int) {
	t.Helper()
	for i := n; i < len(full); i++ {
		if full[i] != 0xa5 {
			t.Fatalf("%s: byte %d past the end was overwritten", what, i-n)
		}
	}
}

// resizeWindow runs the two passes as cropCLIP does (the horizontal pass over only the
// source rows the vertical pass needs, then the vertical pass) for the outputs
// [x0, x0+nx) × [y0, y0+ny) of a w×h → W×H resize of pix (rows stride bytes apart).
func resizeWindow(t *testing.T, code passCode, pix []byte, w, h, stride, ps, W, H, x0, nx, y0, ny int) []byte {
	t.Helper()
	pb := &pixbuf{w: w, h: h, ps: ps, stride: stride, pix: pix}
	o1, o2 := pb.offsets()
	nch := 3
	if ps == 1 {
		nch = 1
	}
	var vc *coeffs
	sy0, sy1 := y0, y0+ny
	if H != h {
		vc = computeCoeffs(h, H, y0, ny)
		sy0, sy1 = vc.inputSpan()
	}
	rows, rowLen := sy1-sy0, nx*nch
	tmp, tmpFull := guarded(rows * rowLen)
	src := pix[sy0*stride:]
	if W != w {
		hpassWith(code, tmp, src, stride, ps, o1, o2, rows, computeCoeffs(w, W, x0, nx))
	} else {
		copyColumns(tmp, src, stride, ps, o1, o2, rows, x0, nx)
	}
	checkGuard(t, "horizontal pass", tmpFull, len(tmp))
	if vc == nil {
		return tmp
	}
	in := fenced(t, len(tmp)) // the vertical pass must not read past its input either
	copy(in, tmp)
	res, resFull := guarded(ny * rowLen)
	vpassWith(code != passGo, res, in, rowLen, sy0, vc, make([]int32, rowLen))
	checkGuard(t, "vertical pass", resFull, len(res))
	return res
}

// testPixels fills a w×h image of ps-byte pixels, rows stride bytes apart, the buffer
// ending with the last row's last pixel. Pattern 0 is random bytes; 1 alternates 0 and
// 255 (the bicubic lobes then overshoot, so clip8 clamps both ways); 2 is all 255.
func testPixels(rng *rand.Rand, w, h, ps, stride, pattern int) []byte {
	pix := make([]byte, (h-1)*stride+w*ps)
	for i := range pix {
		switch pattern {
		case 0:
			pix[i] = uint8(rng.IntN(256))
		case 1:
			if (i/ps+i/stride)%2 == 0 {
				pix[i] = 255
			}
		default:
			pix[i] = 255
		}
	}
	return pix
}

// refWindow is resampleRef's full W×H result, cut to the window.
func refWindow(pix []byte, w, h, stride, ps, W, H, x0, nx, y0, ny int) []byte {
	tight := make([]byte, w*h*ps)
	for y := 0; y < h; y++ {
		copy(tight[y*w*ps:(y+1)*w*ps], pix[y*stride:])
	}
	pb := &pixbuf{ps: ps}
	o1, o2 := pb.offsets()
	full := resampleRef(tight, w, h, ps, o1, o2, W, H)
	nch := 3
	if ps == 1 {
		nch = 1
	}
	out := make([]byte, 0, nx*ny*nch)
	for y := y0; y < y0+ny; y++ {
		out = append(out, full[(y*W+x0)*nch:(y*W+x0+nx)*nch]...)
	}
	return out
}

type resizeCase struct {
	w, h, W, H, ps int
	pad            int // stride - w*ps
	x0, nx, y0, ny int // output window; nx = 0: all of it
	pattern        int
}

func (rc resizeCase) String() string {
	return fmt.Sprintf("%dx%d_ps%d_pad%d_to_%dx%d_win%d+%d,%d+%d_pat%d",
		rc.w, rc.h, rc.ps, rc.pad, rc.W, rc.H, rc.x0, rc.nx, rc.y0, rc.ny, rc.pattern)
}

// check runs one case in every mode and compares with the reference.
func (rc resizeCase) check(t *testing.T, rng *rand.Rand) {
	t.Helper()
	if rc.nx == 0 {
		rc.x0, rc.nx, rc.y0, rc.ny = 0, rc.W, 0, rc.H
	}
	stride := rc.w*rc.ps + rc.pad
	pix := testPixels(rng, rc.w, rc.h, rc.ps, stride, rc.pattern)
	fpix := fenced(t, len(pix)) // the passes must not read past the last pixel
	copy(fpix, pix)
	pix = fpix
	want := refWindow(pix, rc.w, rc.h, stride, rc.ps, rc.W, rc.H, rc.x0, rc.nx, rc.y0, rc.ny)
	for _, code := range passModes() {
		got := resizeWindow(t, code, pix, rc.w, rc.h, stride, rc.ps, rc.W, rc.H, rc.x0, rc.nx, rc.y0, rc.ny)
		if !bytes.Equal(got, want) {
			n, maxd := diffStats(got, want)
			t.Fatalf("%v, code %v: %d of %d bytes differ from the reference (max %d)", rc, code, n, len(want), maxd)
		}
	}
}

// TestPassesMatchReference: fixed cases at the edges of the vector code (sizes 1, rows of
// fewer than 8, exactly 8, 31, 32, 33 bytes, 4000-wide rows, large and small factors, odd
// strides, crop windows at both ends), for every pixel layout.
func TestPassesMatchReference(t *testing.T) {
	cases := []resizeCase{
		{w: 1, h: 1, W: 5, H: 3},
		{w: 1, h: 40, W: 3, H: 17},
		{w: 37, h: 1, W: 11, H: 4},
		{w: 3, h: 2, W: 1, H: 1},
		{w: 2, h: 3, W: 8, H: 9},
		{w: 333, h: 211, W: 101, H: 67, pad: 5},
		{w: 7, h: 9, W: 224, H: 224},
		{w: 50, h: 20, W: 32, H: 7},
		{w: 50, h: 20, W: 11, H: 7, pad: 1},
		{w: 50, h: 20, W: 10, H: 7},
		{w: 17, h: 20, W: 33, H: 21},
		{w: 4000, h: 3, W: 224, H: 2},
		{w: 4000, h: 5, W: 4001, H: 1},
		{w: 3, h: 4000, W: 2, H: 224},
		{w: 1024, h: 1024, W: 224, H: 224, x0: 100, nx: 124, y0: 0, ny: 30},
		{w: 640, h: 480, W: 298, H: 224, x0: 37, nx: 224, y0: 0, ny: 224, pattern: 1},
		{w: 640, h: 480, W: 298, H: 224, x0: 290, nx: 8, y0: 200, ny: 24, pattern: 2},
		{w: 97, h: 89, W: 301, H: 277, x0: 290, nx: 11, y0: 270, ny: 7, pattern: 1},
		{w: 999, h: 7, W: 3, H: 7},
	}
	rng := rand.New(rand.NewPCG(11, 12))
	for _, rc := range cases {
		for _, ps := range []int{1, 3, 4, 8} {
			rc.ps = ps
			t.Run(rc.String(), func(t *testing.T) { rc.check(t, rng) })
		}
	}
}

// TestPassesRandom: random sizes, layouts, strides, windows and pixel patterns.
func TestPassesRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	n := 300
	if testing.Short() {
		n = 60
	}
	dim := func(max int) int { // mostly small, sometimes up to max
		if rng.IntN(3) == 0 {
			return 1 + rng.IntN(max)
		}
		return 1 + rng.IntN(24)
	}
	for i := 0; i < n; i++ {
		rc := resizeCase{w: dim(400), h: dim(200), W: dim(300), H: dim(200),
			ps: []int{1, 3, 4, 8}[rng.IntN(4)], pad: rng.IntN(3) * rng.IntN(9), pattern: rng.IntN(3)}
		if rng.IntN(2) == 0 {
			rc.x0 = rng.IntN(rc.W)
			rc.nx = 1 + rng.IntN(rc.W-rc.x0)
			rc.y0 = rng.IntN(rc.H)
			rc.ny = 1 + rng.IntN(rc.H-rc.y0)
		}
		rc.check(t, rng)
	}
}

// BenchmarkPasses times each pass alone, pure Go and vector, on the work of a 1024² RGB
// image → 224² (the horizontal pass over 1024 rows, the vertical over 224 output rows).
func BenchmarkPasses(b *testing.B) {
	const w, h, W, H = 1024, 1024, 224, 224
	rng := rand.New(rand.NewPCG(1, 2))
	pix := testPixels(rng, w, h, 3, w*3, 0)
	hc, vc := computeCoeffs(w, W, 0, W), computeCoeffs(h, H, 0, H)
	tmp, res := make([]byte, h*W*3), make([]byte, H*W*3)
	acc := make([]int32, W*3)
	for _, code := range passModes() {
		name := []string{"go", "simd", "avx512"}[code]
		b.Run(name+"/horizontal", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				hpassWith(code, tmp, pix, w*3, 3, 1, 2, h, hc)
			}
		})
		b.Run(name+"/vertical", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				vpassWith(code != passGo, res, tmp, W*3, 0, vc, acc)
			}
		})
	}
}
