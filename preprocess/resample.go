package preprocess

// A port of Pillow 9.4's src/libImaging/Resample.c, BICUBIC filter, 8 bits per channel.
//
// Why not github.com/nfnt/resize or golang.org/x/image/draw: neither is Pillow. nfnt/resize is
// unmaintained, works in 16-bit with its own rounding and kernel normalisation, and
// x/image/draw's CatmullRom (a = -0.5 too) is a float kernel with different support
// scaling, edge handling and rounding. The models were trained on Pillow's output, and the
// parity target is Pillow's bytes, so this file reproduces Resample.c exactly:
//
//   - precompute_coeffs: for every output index xx, center = (xx + 0.5) * scale with
//     scale = in/out; when downscaling the filter support (2.0) is stretched by
//     filterscale = scale (antialiasing); xmin/xmax are rounded with (int)(v + 0.5)
//     (truncation toward zero) and clamped to the input; the weights are the bicubic
//     kernel (a = -0.5) at (x + xmin - center + 0.5) / filterscale, divided by their sum.
//     Every double operation is done in the same order as the C code, and each product is
//     wrapped in an explicit float64 conversion so the Go compiler can never fuse a
//     multiply-add into an FMA (gcc builds Pillow for baseline x86-64, which has no FMA).
//   - normalize_coeffs_8bpc: weights become int32 with PRECISION_BITS = 22, rounded half
//     away from zero via (int)(±0.5 + w * 2^22).
//   - the horizontal pass runs first, over only the source rows the vertical pass needs
//     (Pillow 9.4 does the same: ybox_first..ybox_last), then the vertical pass; each sum
//     starts at 1 << 21 (rounding) and is clipped to 0..255 after >> 22 (clip8).
//   - a pass is skipped when that dimension does not change (need_horizontal /
//     need_vertical); an unchanged size is a plain copy.
//
// Each output pixel depends only on its own coefficient row, so computing only the output
// rows and columns that survive the center crop gives exactly the bytes Pillow produces
// for those pixels, at a fraction of the cost. Integer sums are done in int32 like the C
// code (they cannot overflow: the positive weights of a row sum to < 1.2 × 2^22).

import (
	"math"
	"sync"
)

const (
	precisionBits  = 32 - 8 - 2
	bicubicSupport = 2.0
	roundingHalf   = int32(1) << (precisionBits - 1)
)

// bicubicFilter is Pillow's bicubic_filter with a = -0.5.
func bicubicFilter(x float64) float64 {
	const a = -0.5
	if x < 0.0 {
		x = -x
	}
	if x < 1.0 {
		// ((a + 2.0) * x - (a + 3.0)) * x * x + 1
		t := float64((a+2.0)*x) - (a + 3.0)
		t = float64(t * x)
		t = float64(t * x)
		return t + 1
	}
	if x < 2.0 {
		// (((x - 5) * x + 8) * x - 4) * a
		t := float64((x-5)*x) + 8
		t = float64(t*x) - 4
		return t * a
	}
	return 0.0
}

// coeffs are the fixed-point weights of outputs [start, start+n) of a resize of inSize
// samples to outSize samples, as precompute_coeffs + normalize_coeffs_8bpc compute them.
type coeffs struct {
	ksize int
	start int
	n     int
	xmin  []int32 // first input index of each output
	cnt   []int32 // number of taps of each output (Pillow's "xmax" after xmax -= xmin)
	k     []int32 // n × ksize weights, zero beyond cnt

	// For the SIMD passes, which sum taps in groups of 4 or 8: the same weights with rows
	// kps = ksize rounded up to 8 apart (zero beyond cnt, so a group may run past cnt), and
	// reach[i], the largest xmin[j] + cnt[j] rounded up to 8 over j ≤ i: outputs [0, i]
	// read no input index at or beyond reach[i] (non-decreasing, so a bound on the
	// bytes a row's outputs touch is a binary decision per prefix).
	kps   int
	kp    []int32
	reach []int32
}

func computeCoeffs(inSize, outSize, start, n int) *coeffs {
	// float in0 = 0, in1 = inSize: (double)(in1 - in0) is exact for any int32 size.
	scale := float64(float32(inSize)) / float64(outSize)
	filterscale := scale
	if filterscale < 1.0 {
		filterscale = 1.0
	}
	support := bicubicSupport * filterscale
	ksize := int(math.Ceil(support))*2 + 1

	c := &coeffs{
		ksize: ksize, start: start, n: n,
		xmin: make([]int32, n), cnt: make([]int32, n), k: make([]int32, n*ksize),
	}
	w := make([]float64, ksize)
	ss := 1.0 / filterscale
	for i := 0; i < n; i++ {
		xx := start + i
		center := float64((float64(xx) + 0.5) * scale)
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		if xmax > ksize { // cannot happen (ksize bounds the window); keeps indexing safe
			xmax = ksize
		}
		ww := 0.0
		for x := 0; x < xmax; x++ {
			v := bicubicFilter(float64((float64(x+xmin) - center + 0.5) * ss))
			w[x] = v
			ww += v
		}
		k := c.k[i*ksize : (i+1)*ksize]
		for x := 0; x < xmax; x++ {
			v := w[x]
			if ww != 0.0 {
				v /= ww
			}
			if v < 0 {
				k[x] = int32(-0.5 + float64(v*(1<<precisionBits)))
			} else {
				k[x] = int32(0.5 + float64(v*(1<<precisionBits)))
			}
		}
		c.xmin[i] = int32(xmin)
		c.cnt[i] = int32(xmax)
	}
	c.padSIMD()
	return c
}

// padSIMD fills kps, kp and reach from ksize, k, xmin and cnt.
func (c *coeffs) padSIMD() {
	c.kps = (c.ksize + 7) &^ 7
	c.kp = make([]int32, c.n*c.kps)
	c.reach = make([]int32, c.n)
	r := int32(0)
	for i := 0; i < c.n; i++ {
		copy(c.kp[i*c.kps:], c.k[i*c.ksize:(i+1)*c.ksize])
		if e := c.xmin[i] + (c.cnt[i]+7)&^7; e > r {
			r = e
		}
		c.reach[i] = r
	}
}

// first and last (exclusive) input index touched by these outputs.
func (c *coeffs) inputSpan() (int, int) {
	if c.n == 0 {
		return 0, 0
	}
	lo, hi := int(c.xmin[0]), int(c.xmin[0]+c.cnt[0])
	for i := 1; i < c.n; i++ {
		if a := int(c.xmin[i]); a < lo {
			lo = a
		}
		if b := int(c.xmin[i] + c.cnt[i]); b > hi {
			hi = b
		}
	}
	return lo, hi
}

// The coefficient cache: a service sees a few common (in, out) sizes over and over; the
// map is bounded (cleared when full) because arbitrary uploads bring arbitrary sizes.
type coeffKey struct{ in, out, start, n int }

var coeffCache struct {
	sync.RWMutex
	m map[coeffKey]*coeffs
}

const coeffCacheMax = 512

func getCoeffs(inSize, outSize, start, n int) *coeffs {
	key := coeffKey{inSize, outSize, start, n}
	coeffCache.RLock()
	c := coeffCache.m[key]
	coeffCache.RUnlock()
	if c != nil {
		return c
	}
	c = computeCoeffs(inSize, outSize, start, n)
	coeffCache.Lock()
	if coeffCache.m == nil || len(coeffCache.m) >= coeffCacheMax {
		coeffCache.m = make(map[coeffKey]*coeffs, 64)
	}
	coeffCache.m[key] = c
	coeffCache.Unlock()
	return c
}

func clip8(v int32) uint8 {
	v >>= precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// passCode is the code a horizontal pass runs: pure Go, the AVX2 kernels, or the AVX-512
// kernel for eight rows of 3- and 4-byte pixels (with the AVX2 ones for the rest).
type passCode uint8

const (
	passGo passCode = iota
	passAVX2
	passAVX512
)

// hpass resamples rows of src horizontally into dst. src rows start every srcStride bytes;
// a pixel is ps bytes with its R, G, B at offsets 0, o1, o2 (ps = 1 means one gray
// channel, and dst then has 1 byte per pixel; otherwise dst is packed RGB). Where the CPU
// allows (bestPass), layouts 1, 3 and 4 go to the vector code (resample_amd64.go and
// package resamplesimd).
func hpass(dst []byte, src []byte, srcStride, ps, o1, o2, rows int, c *coeffs) {
	hpassWith(bestPass, dst, src, srcStride, ps, o1, o2, rows, c)
}

// hpassWith is hpass with the choice of code made by the caller (the tests run each).
//
// In the pure-Go code each layout has its own small row function, so that the accumulators
// and the pointers stay in registers, R and B share one 64-bit multiply (lane, below), and the tap loops
// are unrolled by four; integer addition is
// associative (int32 wraps the same way in any order, and the true sums fit anyway), so
// the result is the C loop's.
func hpassWith(code passCode, dst []byte, src []byte, srcStride, ps, o1, o2, rows int, c *coeffs) {
	if code != passGo && (ps == 1 || (ps == 3 || ps == 4) && o1 == 1 && o2 == 2) {
		hpassSIMD(code == passAVX512, dst, src, srcStride, ps, rows, c)
		return
	}
	w := c.n * 3
	if ps == 1 {
		w = c.n
	}
	for r := 0; r < rows; r++ {
		hrowGo(dst[r*w:(r+1)*w], src[r*srcStride:], ps, o1, o2, c, 0)
	}
}

// hrowGo computes outputs [from, c.n) of one row in pure Go.
func hrowGo(drow, srow []byte, ps, o1, o2 int, c *coeffs, from int) {
	switch ps {
	case 1:
		hrow1(drow, srow, c, from)
	case 3:
		hrow3(drow, srow, c, from)
	case 4:
		hrow4(drow, srow, c, from)
	default:
		hrowN(drow, srow, ps, o1, o2, c, from)
	}
}

func hrow1(drow, srow []byte, c *coeffs, from int) {
	ks := c.ksize
	drow = drow[:c.n]
	for i := from; i < len(drow); i++ {
		xmin, cnt := int(c.xmin[i]), int(c.cnt[i])
		k := c.k[i*ks : i*ks+cnt]
		s := srow[xmin : xmin+cnt]
		s = s[:len(k)]
		ss := roundingHalf
		x := 0
		for ; x+1 < len(k); x += 2 {
			ss += int32(s[x])*k[x] + int32(s[x+1])*k[x+1]
		}
		if x < len(k) {
			ss += int32(s[x]) * k[x]
		}
		drow[i] = clip8(ss)
	}
}

func hrow3(drow, srow []byte, c *coeffs, from int) {
	ks := c.ksize
	for i := from; i < c.n; i++ {
		xmin, cnt := int(c.xmin[i]), int(c.cnt[i])
		k := c.k[i*ks : i*ks+cnt]
		s := srow[xmin*3 : (xmin+cnt)*3]
		rb, g := laneHalf, roundingHalf // R and B in the two lanes of rb, G in g
		x := 0
		for ; x+3 < len(k); x += 4 {
			p := s[x*3 : x*3+12 : x*3+12]
			kk := k[x : x+4 : x+4]
			k0, k1, k2, k3 := kk[0], kk[1], kk[2], kk[3]
			rb += lane(p[0], p[2])*uint64(int64(k0)) + lane(p[3], p[5])*uint64(int64(k1)) + lane(p[6], p[8])*uint64(int64(k2)) + lane(p[9], p[11])*uint64(int64(k3))
			g += int32(p[1])*k0 + int32(p[4])*k1 + int32(p[7])*k2 + int32(p[10])*k3
		}
		for ; x < len(k); x++ {
			p := s[x*3 : x*3+3 : x*3+3]
			kv := k[x]
			rb += lane(p[0], p[2]) * uint64(int64(kv))
			g += int32(p[1]) * kv
		}
		r, b := unlane(rb)
		d := drow[i*3 : i*3+3 : i*3+3]
		d[0] = clip8(r)
		d[1] = clip8(g)
		d[2] = clip8(b)
	}
}

func hrow4(drow, srow []byte, c *coeffs, from int) {
	ks := c.ksize
	for i := from; i < c.n; i++ {
		xmin, cnt := int(c.xmin[i]), int(c.cnt[i])
		k := c.k[i*ks : i*ks+cnt]
		s := srow[xmin*4 : (xmin+cnt)*4]
		rb, g := laneHalf, roundingHalf // R and B in the two lanes of rb, G in g
		x := 0
		for ; x+3 < len(k); x += 4 {
			p := s[x*4 : x*4+16 : x*4+16]
			kk := k[x : x+4 : x+4]
			k0, k1, k2, k3 := kk[0], kk[1], kk[2], kk[3]
			rb += lane(p[0], p[2])*uint64(int64(k0)) + lane(p[4], p[6])*uint64(int64(k1)) + lane(p[8], p[10])*uint64(int64(k2)) + lane(p[12], p[14])*uint64(int64(k3))
			g += int32(p[1])*k0 + int32(p[5])*k1 + int32(p[9])*k2 + int32(p[13])*k3
		}
		for ; x < len(k); x++ {
			p := s[x*4 : x*4+3 : x*4+3]
			kv := k[x]
			rb += lane(p[0], p[2]) * uint64(int64(kv))
			g += int32(p[1]) * kv
		}
		r, b := unlane(rb)
		d := drow[i*3 : i*3+3 : i*3+3]
		d[0] = clip8(r)
		d[1] = clip8(g)
		d[2] = clip8(b)
	}
}

// Two channels share one multiply: lane packs a (bits 0-31) and b (bits 32-63) into a
// uint64, and lane(a, b) * uint64(int64(k)) adds a*k + (b*k)<<32 modulo 2^64. A sum of
// such terms is A + B<<32 (mod 2^64), A and B being the two channels' true int32 sums
// (they fit in int32, see the file comment), so unlane recovers both exactly: the low
// 32 bits, read as int32, are A; subtracting A leaves B<<32.
func lane(a, b byte) uint64 { return uint64(a) | uint64(b)<<32 }

const laneHalf = uint64(roundingHalf) | uint64(roundingHalf)<<32

func unlane(v uint64) (a, b int32) {
	a = int32(uint32(v))
	b = int32((v - uint64(int64(a))) >> 32)
	return a, b
}

// hrowN is the general layout (16-bit RGBA: the high bytes at offsets 0, 2, 4).
func hrowN(drow, srow []byte, ps, o1, o2 int, c *coeffs, from int) {
	ks := c.ksize
	for i := from; i < c.n; i++ {
		xmin, cnt := int(c.xmin[i]), int(c.cnt[i])
		k := c.k[i*ks : i*ks+cnt]
		s := srow[xmin*ps : (xmin+cnt)*ps]
		ss0, ss1, ss2 := roundingHalf, roundingHalf, roundingHalf
		for x, kv := range k {
			p := s[x*ps:]
			ss0 += int32(p[0]) * kv
			ss1 += int32(p[o1]) * kv
			ss2 += int32(p[o2]) * kv
		}
		d := drow[i*3 : i*3+3 : i*3+3]
		d[0] = clip8(ss0)
		d[1] = clip8(ss1)
		d[2] = clip8(ss2)
	}
}

// vpass resamples vertically: src holds consecutive rows of rowLen bytes, the first of
// which is input row srcRow0; output row i (of c) is written to dst[i*rowLen:].
// acc is scratch of at least rowLen int32 (for the pure-Go code). Rows of 8 bytes or more
// go to the vector code where the CPU allows (useSIMD).
func vpass(dst, src []byte, rowLen, srcRow0 int, c *coeffs, acc []int32) {
	vpassWith(useSIMD, dst, src, rowLen, srcRow0, c, acc)
}

// vpassWith is vpass with the choice of code made by the caller (the tests run both).
func vpassWith(simd bool, dst, src []byte, rowLen, srcRow0 int, c *coeffs, acc []int32) {
	ks := c.ksize
	for i := 0; i < c.n; i++ {
		ymin, cnt := int(c.xmin[i])-srcRow0, int(c.cnt[i])
		k := c.k[i*ks : i*ks+cnt]
		rows := src[ymin*rowLen : (ymin+cnt)*rowLen]
		out := dst[i*rowLen : (i+1)*rowLen]
		if simd && rowLen >= 8 {
			vrowSIMD(out, rows, k)
		} else {
			vrowGo(out, rows, k, acc)
		}
	}
}

// vrowGo computes one output row from the len(k) source rows in rows. Four taps are
// summed per sweep over acc, so that acc is loaded and stored once per four input rows.
func vrowGo(out, rows []byte, k []int32, acc []int32) {
	acc = acc[:len(out)]
	n := len(acc)
	rowLen := n
	row := func(y int) []byte { return rows[y*rowLen : y*rowLen+n] }
	for j := range acc {
		acc[j] = roundingHalf
	}
	y := 0
	for ; y+3 < len(k); y += 4 {
		r0, r1, r2, r3 := row(y), row(y+1), row(y+2), row(y+3)
		r0, r1, r2, r3 = r0[:len(acc)], r1[:len(acc)], r2[:len(acc)], r3[:len(acc)]
		k0, k1, k2, k3 := k[y], k[y+1], k[y+2], k[y+3]
		for j := range acc {
			acc[j] += int32(r0[j])*k0 + int32(r1[j])*k1 + int32(r2[j])*k2 + int32(r3[j])*k3
		}
	}
	for ; y+1 < len(k); y += 2 {
		r0, r1 := row(y)[:len(acc)], row(y + 1)[:len(acc)]
		k0, k1 := k[y], k[y+1]
		for j := range acc {
			acc[j] += int32(r0[j])*k0 + int32(r1[j])*k1
		}
	}
	if y < len(k) {
		r0, k0 := row(y)[:len(acc)], k[y]
		for j := range acc {
			acc[j] += int32(r0[j]) * k0
		}
	}
	out = out[:len(acc)]
	for j, v := range acc {
		out[j] = clip8(v)
	}
}
