package clipref

import (
	"math"

	"github.com/icthp/icthp/models/clip"
)

// The int8 reference: what a graph built with clip.BuildOptions.Int8 computes
// in each transformer layer's Linear, written from the definitions (ONNX
// DynamicQuantizeLinear for the activations, symmetric per-output-channel
// weights) and evaluated in float64 apart from the two scales, which the
// graph holds as float32. Everything outside the layers' Linears stays as in
// ImageFeatures and TextFeatures.

// ImageFeaturesInt8 is ImageFeatures with every Linear inside the vision
// transformer layers quantised; each image is its own activation tensor.
func ImageFeaturesInt8(cfg *clip.Config, w clip.Weights, pixels []float32, n int) ([][]float64, error) {
	return imageFeatures(cfg, w, pixels, n, Int8Linear)
}

// TextFeaturesInt8 is TextFeatures with the text transformer's Linears
// quantised; each row of ids is its own activation tensor.
func TextFeaturesInt8(cfg *clip.Config, w clip.Weights, ids []int64, n int) ([][]float64, error) {
	return textFeatures(cfg, w, ids, n, Int8Linear)
}

// WeightScales returns the per-output-channel scales and codes of a torch
// Linear weight W [out, in]: scale_o = float32(max_i |W_oi|) / 127 in
// float32, code = round-half-even(W_oi / scale_o) within ±127 (0 for an
// all-zero channel).
func WeightScales(W []float64, out, in int) ([]float32, []int8) {
	scales := make([]float32, out)
	codes := make([]int8, out*in)
	for o := 0; o < out; o++ {
		m := 0.0
		for _, v := range W[o*in : (o+1)*in] {
			m = math.Max(m, math.Abs(v))
		}
		s := float32(m) / 127
		scales[o] = s
		if s == 0 {
			continue
		}
		for i, v := range W[o*in : (o+1)*in] {
			c := math.RoundToEven(v / float64(s))
			codes[o*in+i] = int8(math.Max(-127, math.Min(127, c)))
		}
	}
	return scales, codes
}

// QuantizeActivations is ONNX DynamicQuantizeLinear over the whole sequence
// x: the range [min(0, min x), max(0, max x)] mapped onto 0..255,
// scale = (max − min)/255 in float32, zero point = round-half-even(−min/scale)
// within 0..255, q = round-half-even(x/scale) + zero point within 0..255.
func QuantizeActivations(x [][]float64) (q [][]uint8, scale float32, zero int) {
	lo, hi := 0.0, 0.0
	for _, row := range x {
		for _, v := range row {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	scale = (float32(hi) - float32(lo)) / 255
	if scale == 0 {
		scale = 1 // an all-zero tensor: any scale gives zeros
	}
	sc := float64(scale)
	zero = int(math.Max(0, math.Min(255, math.RoundToEven(-float64(float32(lo))/sc))))
	q = make([][]uint8, len(x))
	for s, row := range x {
		q[s] = make([]uint8, len(row))
		for i, v := range row {
			q[s][i] = uint8(math.Max(0, math.Min(255, math.RoundToEven(float64(float32(v))/sc)+float64(zero))))
		}
	}
	return q, scale, zero
}

// Int8Linear is DynamicQuantizeMatMul with a bias (b may be nil) over one
// sequence x [S][in], its activation scale taken over x: (Σ_i (q_si − zero) ·
// code_oi) · scale_x · scale_o + b_o, the integer sum exact.
func Int8Linear(x [][]float64, W, b []float64, out, in int) [][]float64 {
	ws, codes := WeightScales(W, out, in)
	q, xs, zero := QuantizeActivations(x)
	y := make([][]float64, len(x))
	for s := range x {
		y[s] = make([]float64, out)
		for o := 0; o < out; o++ {
			acc := int64(0)
			row := codes[o*in : (o+1)*in]
			for i, c := range row {
				acc += (int64(q[s][i]) - int64(zero)) * int64(c)
			}
			v := float64(acc) * float64(xs) * float64(ws[o])
			if b != nil {
				v += b[o]
			}
			y[s][o] = v
		}
	}
	return y
}
