package preprocess

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// resampleRef is Resample.c's two passes written as plainly as the C code (one tap at a
// time, full output, no unrolling, no cropping), the reference for the optimised hpass and
// vpass: ImagingResampleHorizontal_8bpc then ImagingResampleVertical_8bpc.
func resampleRef(src []byte, w, h, ps, o1, o2, outW, outH int) []byte {
	nch := 3
	if ps == 1 {
		nch = 1
	}
	off := [3]int{0, o1, o2}
	tmp := src
	tw, tps := w, ps
	if outW != w {
		hc := computeCoeffs(w, outW, 0, outW)
		tmp = make([]byte, h*outW*nch)
		for y := 0; y < h; y++ {
			for xx := 0; xx < outW; xx++ {
				for c := 0; c < nch; c++ {
					ss := roundingHalf
					for x := 0; x < int(hc.cnt[xx]); x++ {
						ss += int32(src[y*w*ps+(int(hc.xmin[xx])+x)*ps+off[c]]) * hc.k[xx*hc.ksize+x]
					}
					tmp[(y*outW+xx)*nch+c] = clip8(ss)
				}
			}
		}
		tw, tps = outW, nch
		off = [3]int{0, 1, 2}
	}
	out := make([]byte, outH*tw*nch)
	vc := computeCoeffs(h, outH, 0, outH)
	for yy := 0; yy < outH; yy++ {
		for x := 0; x < tw; x++ {
			for c := 0; c < nch; c++ {
				if outH == h {
					out[(yy*tw+x)*nch+c] = tmp[(yy*tw+x)*tps+off[c]]
					continue
				}
				ss := roundingHalf
				for y := 0; y < int(vc.cnt[yy]); y++ {
					ss += int32(tmp[((int(vc.xmin[yy])+y)*tw+x)*tps+off[c]]) * vc.k[yy*vc.ksize+y]
				}
				out[(yy*tw+x)*nch+c] = clip8(ss)
			}
		}
	}
	return out
}

// TestResampleMatchesReference: for random sizes (up and down, by small and large
// factors), pixel layouts (gray, RGB, RGBX, 16-bit RGBA high bytes) and crop sizes, the
// pipeline's crop equals the center crop of the plain full resize.
func TestResampleMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 60; i++ {
		w, h := 1+rng.IntN(300), 1+rng.IntN(300)
		size := 1 + rng.IntN(120)
		crop := 1 + rng.IntN(size+10)
		ps := []int{1, 3, 4, 8}[i%4]
		pix := make([]byte, w*h*ps)
		for j := range pix {
			pix[j] = uint8(rng.IntN(256))
		}
		pb := &pixbuf{w: w, h: h, ps: ps, stride: w * ps, pix: pix}
		o1, o2 := pb.offsets()
		p := clipPipeline(t, size, crop)
		got := make([]byte, crop*crop*3)
		if err := cropCLIP(p.Options(), pb, got); err != nil {
			t.Fatal(err)
		}
		W, H, _ := resizedSize(w, h, size)
		full := resampleRef(pix, w, h, ps, o1, o2, W, H)
		nch := 3
		if ps == 1 {
			nch = 1
		}
		want := make([]byte, crop*crop*3)
		xoff, _, _ := cropSpan(W, crop)
		yoff, _, _ := cropSpan(H, crop)
		for y := 0; y < crop; y++ {
			for x := 0; x < crop; x++ {
				sx, sy := x+xoff, y+yoff
				if sx < 0 || sy < 0 || sx >= W || sy >= H {
					continue // zero padding
				}
				for c := 0; c < 3; c++ {
					cc := c
					if nch == 1 {
						cc = 0
					}
					want[(y*crop+x)*3+c] = full[(sy*W+sx)*nch+cc]
				}
			}
		}
		if !bytes.Equal(got, want) {
			n, maxd := diffStats(got, want)
			t.Fatalf("case %d: %dx%d ps %d → %dx%d crop %d: %d bytes differ (max %d)", i, w, h, ps, W, H, crop, n, maxd)
		}
	}
}

// TestLanes: two int32 sums carried in one uint64 come back exactly, for sums of products
// of bytes and signed weights of any sign, including the extremes of int32.
func TestLanes(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for i := 0; i < 100000; i++ {
		v, a, b := laneHalf, int64(roundingHalf), int64(roundingHalf)
		for j := 0; j < 1+rng.IntN(40); j++ {
			pa, pb := byte(rng.IntN(256)), byte(rng.IntN(256))
			k := int32(rng.IntN(1<<23)) - 1<<22 // |k| ≤ 2^22, as the normalised weights
			if a+int64(pa)*int64(k) > 1<<31-1 || a+int64(pa)*int64(k) < -1<<31 ||
				b+int64(pb)*int64(k) > 1<<31-1 || b+int64(pb)*int64(k) < -1<<31 {
				continue // keep the true sums in int32, as Resample.c's are
			}
			v += lane(pa, pb) * uint64(int64(k))
			a += int64(pa) * int64(k)
			b += int64(pb) * int64(k)
		}
		if ga, gb := unlane(v); int64(ga) != a || int64(gb) != b {
			t.Fatalf("unlane = %d, %d; want %d, %d", ga, gb, a, b)
		}
	}
	for _, c := range [][2]int32{{-1 << 31, 1<<31 - 1}, {1<<31 - 1, -1 << 31}, {-1, -1}, {0, -1}, {-1, 0}} {
		v := uint64(int64(c[0])) + uint64(int64(c[1]))<<32
		if a, b := unlane(v); a != c[0] || b != c[1] {
			t.Fatalf("unlane(%d, %d) = %d, %d", c[0], c[1], a, b)
		}
	}
}
