package onnxgraph

import (
	"fmt"
	"math"
)

// QuantizeColumns turns an [in, out] float weight (row-major) into int8
// codes with one scale per output column (symmetric, zero point 0), the
// scheme onnxruntime's own quantiser uses for per-channel weights:
//
//	scale_j = float32(max_i |w_ij|) / 127   (in float32; 0 for a zero column)
//	code_ij = round-half-even(w_ij / scale_j), within ±127
//
// so that code·scale is the nearest representable weight.
func QuantizeColumns(w []float32, in, out int) ([]int8, []float32) {
	scale := make([]float32, out)
	for i := 0; i < in; i++ {
		for j, v := range w[i*out : (i+1)*out] {
			scale[j] = max(scale[j], float32(math.Abs(float64(v))))
		}
	}
	for j := range scale {
		scale[j] /= 127
	}
	codes := make([]int8, in*out)
	for i := 0; i < in; i++ {
		for j, v := range w[i*out : (i+1)*out] {
			if scale[j] == 0 {
				continue
			}
			c := math.RoundToEven(float64(v) / float64(scale[j]))
			codes[i*out+j] = int8(max(-127, min(127, c)))
		}
	}
	return codes, scale
}

// MatMulWeight adds x·W (+ bias) for an [in, out] weight read from w: a
// MatMul of the weight stored as g.WeightType, then an Add of the bias
// (written after the weight, as builders always have, so that float
// graphs keep their weight order and version); or, with int8, a
// DynamicQuantizeMatMul. biasName "" means no bias.
func (g *Graph) MatMulWeight(x, name string, in, out int, w Source, biasName string, bias Source, int8 bool) string {
	if int8 {
		return g.DynamicQuantizeMatMul(x, name, in, out, w, biasName, bias)
	}
	y := g.Op("MatMul", []string{x, g.Weight(name, []int64{int64(in), int64(out)}, w)})
	if biasName != "" {
		y = g.Op("Add", []string{y, g.Weight(biasName, []int64{int64(out)}, bias)})
	}
	return y
}

// DynamicQuantizeMatMul adds x·W, W an [in, out] weight read from w and
// stored as the int8 codes of QuantizeColumns with their float32 scales,
// as onnxruntime's com.microsoft DynamicQuantizeMatMul: x is quantised to
// uint8 with one scale per run, the product is an integer GEMM. When
// biasName is not "", the [out] bias read from bias is added inside the
// node. The graph must use the com.microsoft domain.
func (g *Graph) DynamicQuantizeMatMul(x, name string, in, out int, w Source, biasName string, bias Source) string {
	q := &quantized{src: w, in: in, out: out}
	codes := g.WeightEncoded(name+".int8", Int8, []int64{int64(in), int64(out)}, q.codes)
	scale := g.WeightFloat32(name+".scale", []int64{int64(out)}, q.scales)
	zero := g.WeightEncoded(name+".zero_point", Int8, []int64{int64(out)}, func() ([]byte, error) { return make([]byte, out), nil })
	ins := []string{x, codes, scale, zero}
	if biasName != "" {
		ins = append(ins, g.WeightFloat32(biasName, []int64{int64(out)}, bias))
	}
	return g.OpMS("DynamicQuantizeMatMul", ins, 1)[0]
}

// quantized is one weight on its way to DynamicQuantizeMatMul's
// initializers. The codes are written first; the scales are kept until the
// writer asks for them right after, so the weight is read once.
type quantized struct {
	src     Source
	in, out int
	scale   []float32
}

func (q *quantized) codes() ([]byte, error) {
	w, err := q.src()
	if err != nil {
		return nil, err
	}
	if len(w) != q.in*q.out {
		return nil, fmt.Errorf("weight has %d values, want %d×%d", len(w), q.in, q.out)
	}
	codes, scale := QuantizeColumns(w, q.in, q.out)
	q.scale = scale
	raw := make([]byte, len(codes))
	for i, c := range codes {
		raw[i] = byte(c)
	}
	return raw, nil
}

func (q *quantized) scales() ([]float32, error) {
	if q.scale == nil {
		if _, err := q.codes(); err != nil {
			return nil, err
		}
	}
	s := q.scale
	q.scale = nil
	return s, nil
}
