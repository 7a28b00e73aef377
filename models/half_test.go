package models

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/x448/float16"
	ort "github.com/yalue/onnxruntime_go"

	og "github.com/icthp/icthp/models/onnxgraph"
)

// halfClasses are float32 values of every class a conversion to binary16
// must get right, each with its neighbours one float32 ulp away: zeros,
// the smallest and largest subnormal and normal halves, ties between two
// halves (even and odd below), values that round up into the next binade,
// the largest finite half and the ties and overflow above it, infinities,
// NaNs with payloads, and float32 subnormals.
func halfClasses() []float32 {
	var vs []float32
	add := func(bits ...uint32) {
		for _, b := range bits {
			for _, d := range []int32{-1, 0, 1} {
				u := uint32(int32(b) + d)
				vs = append(vs, math.Float32frombits(u), -math.Float32frombits(u))
			}
		}
	}
	half := func(h uint16) uint32 { return math.Float32bits(float16.Float16(h).Float32()) }
	tie := func(h uint16) uint32 { return half(h) + 1<<12 } // h + half an ulp (h normal)
	add(0, 1, 0x00400000, 0x007fffff)                       // zero, float32 subnormals
	for _, h := range []uint16{0x0001, 0x0002, 0x0003, 0x01ff, 0x0200, 0x03ff, 0x0400, 0x0401, 0x3c00, 0x3c01, 0x3bff, 0x7bfe, 0x7bff} {
		add(half(h))
	}
	// Ties: normal halves (even and odd mantissas), and subnormal ones, whose
	// half-ulp 2⁻²⁵ is a float32 value.
	for _, h := range []uint16{0x0400, 0x0401, 0x3c00, 0x3c01, 0x3bff, 0x4500, 0x4501, 0x7bfe, 0x7bff} {
		add(tie(h))
	}
	for _, h := range []uint16{0x0000, 0x0001, 0x0002, 0x01ff, 0x03fe, 0x03ff} {
		add(math.Float32bits(float16.Float16(h).Float32() + 0x1p-25))
	}
	add(math.Float32bits(65520), math.Float32bits(65536), math.Float32bits(1e6), math.Float32bits(math.MaxFloat32))
	add(math.Float32bits(0x1p-24), math.Float32bits(0x1p-25), math.Float32bits(0x1p-26), math.Float32bits(0x1p-14))
	add(0x7f800000, 0x7fc00000, 0x7f802000, 0x7fbfffff) // infinity, NaNs (with payloads)
	return vs
}

// nearestHalf is an independent reference: the finite half nearest to f
// (ties to the even mantissa), found among all halves by binary search in
// float64, or infinity past the largest half plus half an ulp; NaN for NaN.
func nearestHalf(f float32, finite []float64) uint16 {
	x := float64(f)
	if math.IsNaN(x) {
		return 0x7e00
	}
	sign := uint16(0)
	if math.Signbit(x) {
		sign, x = 0x8000, -x
	}
	if x >= 65520 { // 65504 + half its ulp of 32: a tie that rounds to the even infinity
		return sign | 0x7c00
	}
	i, _ := slices.BinarySearch(finite, x) // finite[i-1] < x <= finite[i]
	if finite[i] == x || i == 0 {
		return sign | uint16(i)
	}
	lo, hi := finite[i-1], finite[i]
	switch {
	case x-lo < hi-x:
		return sign | uint16(i-1)
	case x-lo > hi-x:
		return sign | uint16(i)
	case (i-1)%2 == 0: // a tie: the even mantissa (the halves' bits are their index)
		return sign | uint16(i-1)
	}
	return sign | uint16(i)
}

// finiteHalves are the non-negative finite halves in order (their bits are
// their index), then 65536, where the next one would be.
func finiteHalves() []float64 {
	h := make([]float64, 0x7c00, 0x7c01)
	for i := range h {
		h[i] = float64(float16.Float16(i).Float32())
	}
	return append(h, 65536)
}

// HalfFromFloat32 equals float16.Fromfloat32 on every value class and on a
// sweep of a million bit patterns spread over all 2³² (every 4099th), and
// both equal the nearest-even half found by search (NaNs: both quiet, with
// the same payload).
func TestHalfFromFloat32MatchesFromfloat32(t *testing.T) {
	vs := halfClasses()
	for u := uint64(0); u < 1<<32; u += 4099 {
		vs = append(vs, math.Float32frombits(uint32(u)))
	}
	got := make([]float16.Float16, len(vs))
	HalfFromFloat32(got, vs)
	finite := finiteHalves()
	bad := 0
	for i, f := range vs {
		want := float16.Fromfloat32(f)
		ref := nearestHalf(f, finite)
		if got[i] != want || (!math.IsNaN(float64(f)) && uint16(want) != ref) || (math.IsNaN(float64(f)) && !want.IsNaN()) {
			if bad++; bad <= 10 {
				t.Errorf("%g (%#08x): HalfFromFloat32 %#04x, Fromfloat32 %#04x, nearest-even %#04x", f, math.Float32bits(f), uint16(got[i]), uint16(want), ref)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d values differ", bad, len(vs))
	}
}

// The host's rounding is onnxruntime's: a graph that casts float32 to
// float16 gives, on every value class but NaN payloads, the bits
// HalfFromFloat32 gives (NaNs: a NaN).
func TestHalfFromFloat32MatchesCastOp(t *testing.T) {
	needORT(t)
	vs := halfClasses()
	g := og.New("cast", 17)
	x := g.Input("x", og.Float, og.D(int64(len(vs))))
	g.Node("", "Cast", []string{x}, []string{"y"}, og.AttrInt("to", int64(og.Float16)))
	g.Output("y", og.Float16, og.D(int64(len(vs))))
	path := filepath.Join(t.TempDir(), "cast.onnx")
	if _, err := g.Save(path); err != nil {
		t.Fatal(err)
	}
	sess, err := ort.NewDynamicAdvancedSession(path, []string{"x"}, []string{"y"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Destroy()
	in, err := ort.NewTensor(ort.NewShape(int64(len(vs))), vs)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	// The output is given (onnxruntime_go v1.27 mis-sizes a float16 output
	// it allocates itself).
	y, err := ort.NewCustomDataTensor(ort.NewShape(int64(len(vs))), make([]byte, 2*len(vs)), ort.TensorElementDataTypeFloat16)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Destroy()
	if err := sess.Run([]ort.Value{in}, []ort.Value{y}); err != nil {
		t.Fatal(err)
	}
	host := make([]float16.Float16, len(vs))
	HalfFromFloat32(host, vs)
	for i, f := range vs {
		cast := float16.Float16(binary.NativeEndian.Uint16(y.GetData()[2*i:]))
		if math.IsNaN(float64(f)) {
			if !cast.IsNaN() || !host[i].IsNaN() {
				t.Errorf("NaN %#08x: Cast gives %#04x, the host %#04x", math.Float32bits(f), uint16(cast), uint16(host[i]))
			}
			continue
		}
		if cast != host[i] {
			t.Errorf("%g (%#08x): Cast gives %#04x, the host %#04x", f, math.Float32bits(f), uint16(cast), uint16(host[i]))
		}
	}
}

// The cost of rounding one 224² image's float32 tensor (3×224×224 values)
// to binary16: calling Fromfloat32 per value, or HalfFromFloat32.
func BenchmarkHalfConversion(b *testing.B) {
	src := make([]float32, 3*224*224)
	for i := range src {
		src[i] = float32(i%511-255) / 58.4 // the range of normalised pixels
	}
	dst := make([]float16.Float16, len(src))
	// Process CPU time per run besides wall time: on a shared machine the
	// wall time swings with the load.
	cpu := func(b *testing.B, f func()) {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		c0 := ru.Utime.Nano() + ru.Stime.Nano()
		for b.Loop() {
			f()
		}
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		b.ReportMetric(float64(ru.Utime.Nano()+ru.Stime.Nano()-c0)/1e3/float64(b.N), "cpu-µs/op")
	}
	b.Run("Fromfloat32", func(b *testing.B) {
		cpu(b, func() {
			for i, f := range src {
				dst[i] = float16.Fromfloat32(f)
			}
		})
	})
	b.Run("HalfFromFloat32", func(b *testing.B) {
		cpu(b, func() { HalfFromFloat32(dst, src) })
	})
}
