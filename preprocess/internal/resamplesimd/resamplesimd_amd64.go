//go:build amd64 && !purego

package resamplesimd

// Rows is what HRows and HRows1 read (resamplesimd_amd64.s knows these offsets): the
// outputs [0, N) of four source rows, Src[r] and Dst[r] pointing at the rows' first
// bytes. Output i reads the pixels from XMin[i] for Cnt[i] taps rounded up to 4 (HRows:
// pixels of PS bytes, plus 2 bytes after the last one when PS = 3) or to 8 (HRows1),
// with weights K[i*KPS:], which must be zero from Cnt[i] on. It writes 3 bytes (HRows)
// or 1 byte (HRows1) at Dst[r] + 3i (or + i).
type Rows struct {
	Src  [4]*byte // 0
	Dst  [4]*byte // 32
	XMin *int32   // 64
	Cnt  *int32   // 72
	K    *int32   // 80
	KPS  int      // 88: row stride of K, in int32
	N    int      // 96
	PS   int      // 104: 3 or 4 (HRows)
}

// HRows is the horizontal pass for pixels of 3 or 4 bytes (R, G, B first) into packed
// RGB, over four rows at once: per output, four taps per step, each row's pixels as two
// 8-byte loads widened to eight int32 lanes and multiplied by the matching weights (the
// weights are spread over the lanes once per step for all four rows).
//
//go:noescape
func HRows(a *Rows)

// HRows1 is the horizontal pass for gray pixels over four rows at once, eight taps per
// step.
//
//go:noescape
func HRows1(a *Rows)

// VRow is the vertical pass for one output row: dst[0:n] from cnt source rows n bytes
// apart starting at src, with weights k[0:cnt]; n ≥ 8. It reads exactly the cnt·n
// source bytes and writes exactly dst[0:n].
//
//go:noescape
func VRow(dst, src *byte, n int, k *int32, cnt int)

// Rows8 is what HRows8 reads (resamplesimd_avx512_amd64.s knows these offsets): eight
// source rows SStride bytes apart from Src and eight output rows DStride bytes apart from
// Dst, outputs [0, N) as in Rows. Output i reads 16 bytes at each of its pixels XMin[i] +
// 4j for j < ⌈Cnt[i]/4⌉ (for PS = 3, 4 bytes past the last tap's pixel at most).
type Rows8 struct {
	Src     *byte  // 0
	SStride int    // 8
	Dst     *byte  // 16
	DStride int    // 24
	XMin    *int32 // 32
	Cnt     *int32 // 40
	K       *int32 // 48
	KPS     int    // 56
	N       int    // 64
	PS      int    // 72: 3 or 4
}

// HRows8 is HRows over eight rows at once with AVX-512F: a 16-byte load and one multiply
// per row for four taps, where HRows needs two of each (and AMD Zen 5 does 512-bit
// multiplies at the rate of 256-bit ones).
//
//go:noescape
func HRows8(a *Rows8)
