package models

import (
	"context"
	"fmt"
	"math"
	"unsafe"

	"github.com/x448/float16"
	ort "github.com/yalue/onnxruntime_go"
)

// HalfFromFloat32 writes the IEEE binary16 value of each src[i] into dst[i]
// (len(dst) >= len(src)), rounded to nearest-even as onnxruntime's Cast to
// float16 rounds: what a float16-input graph is fed when a caller hands it
// float32 rows. It equals float16.Fromfloat32 for every input (normal,
// subnormal, ties, overflow to infinity, NaN payloads); the tests hold it
// to that. It is the bit trick of F. Giesen's float_to_half_fast3_rtne
// (rounding bias, and one float32 add for the subnormal results), 1.4–3×
// faster than calling Fromfloat32 per value (BENCHMARKS.md, "fp16 pixels on
// the host"). The preprocessors do not need it: they write halves through
// a rounded table (preprocess.ImagePipeline.TensorRGBHalf).
func HalfFromFloat32(dst []float16.Float16, src []float32) {
	dst = dst[:len(src)]
	for i, f := range src {
		dst[i] = float16.Float16(halfBits(math.Float32bits(f)))
	}
}

// floatFromHalf writes the float32 value of each src[i] into dst[i]
// (len(dst) >= len(src)): exact, every binary16 value is a float32 one.
func floatFromHalf(dst []float32, src []float16.Float16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = h.Float32()
	}
}

const (
	f32Inf      = 0xff << 23
	f16Overflow = (127 + 16) << 23                   // smallest |f| that rounds to infinity or is not finite
	f16MinNorm  = (127 - 14) << 23                   // smallest |f| whose half is normal
	denormMagic = ((127 - 15) + (23 - 10) + 1) << 23 // 0.5: aligns a subnormal half's bits at the bottom
)

// halfBits converts one float32 (as bits) to binary16 bits.
func halfBits(u uint32) uint16 {
	sign := uint16(u>>16) & 0x8000
	u &^= 0x80000000
	switch {
	case u >= f16Overflow:
		if u > f32Inf { // NaN: quiet, the payload's top bits kept (as Fromfloat32)
			return sign | 0x7e00 | uint16((u&0x007fffff)>>13)
		}
		return sign | 0x7c00
	case u < f16MinNorm:
		// Adding 0.5 leaves the half's subnormal bits at the bottom of the
		// mantissa, rounded to nearest-even by the float32 add itself.
		f := math.Float32frombits(u) + math.Float32frombits(denormMagic)
		return sign | uint16(math.Float32bits(f)-denormMagic)
	default:
		odd := (u >> 13) & 1
		u = u - (127-15)<<23 + 0xfff + odd // rebias; round half to even
		return sign | uint16(u>>13)
	}
}

// halfAsBytes is h as the bytes onnxruntime reads (native byte order, as
// every tensor the binding makes).
func halfAsBytes(h []float16.Float16) []byte {
	if len(h) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&h[0])), 2*len(h))
}

// HalfInput says whether the session's input is float16 (the image graph of
// an --fp16 model directory of format 2): RunHalf feeds it without a
// conversion, RunFloat with one.
func (s *Session) HalfInput() bool { return s.input.DataType == ort.TensorElementDataTypeFloat16 }

// RunHalf runs n items of binary16 values laid out row after row, as
// RunFloat. A float16 input takes them as they are. A float32 input gets
// them widened, which is exact: for the older --fp16 graphs, which cast
// their float32 pixel_values to float16 inside, the outputs are the same as
// RunFloat's on the float32 values the halves were rounded from; for a
// float32 graph they are the outputs for the rounded pixels.
func (s *Session) RunHalf(ctx context.Context, in []float16.Float16, n int) ([][]float32, error) {
	if s.input.DataType == ort.TensorElementDataTypeInt64 {
		return nil, fmt.Errorf("RunHalf: the graph's input is int64")
	}
	return runBatches(ctx, s, n, func(lo, hi int) (ort.Value, error) {
		rows := in[lo*s.rowLen() : hi*s.rowLen()]
		if s.HalfInput() {
			return ort.NewCustomDataTensor(s.batchShape(lo, hi), halfAsBytes(rows), ort.TensorElementDataTypeFloat16)
		}
		f := make([]float32, len(rows))
		floatFromHalf(f, rows)
		return ort.NewTensor(s.batchShape(lo, hi), f)
	}, len(in))
}

// checkPixelType holds the manifest's pixel_type to the vision graph's input
// type: a directory whose files were mixed (a format-2 manifest over an
// older graph, or the reverse) is refused when it opens.
func (m *Model) checkPixelType() error {
	s := m.sessions["vision"]
	if s == nil {
		return nil
	}
	graph := "float32"
	if s.HalfInput() {
		graph = PrecisionFloat16
	}
	want := m.Manifest.PixelType
	if want == "" {
		want = "float32"
	}
	if graph != want {
		return fmt.Errorf("the manifest's pixel_type is %s, the vision graph's %s is %s", want, s.input.Name, graph)
	}
	return nil
}

// HalfPixels says whether the vision graph takes float16 pixels
// (Manifest.PixelType): then EncodeImagesHalf feeds it without a conversion
// pass and with half the bytes of EncodeImages.
func (m *Model) HalfPixels() bool { return m.Manifest.PixelType == PrecisionFloat16 }

// EncodeImagesHalf is EncodeImages for images preprocessed into binary16
// values (preprocess.ImagePipeline.TensorRGBHalf): see Session.RunHalf.
func (m *Model) EncodeImagesHalf(ctx context.Context, pixels []float16.Float16, n int) ([][]float32, error) {
	s := m.sessions["vision"]
	if s == nil {
		return nil, fmt.Errorf("model %s has no vision graph", m.Dir)
	}
	return s.RunHalf(ctx, pixels, n)
}
