package build

import (
	"fmt"

	og "github.com/icthp/icthp/models/onnxgraph"
)

// The pieces of graph writing that the CLIP and BLIP builders do alike.

// NewGraph starts a graph of the given opset for opts: with the com.microsoft domain when
// fused or int8 kernels will be written, with float16 weights for FP16. It returns the
// compute type (Float16 for FP16, else Float).
func NewGraph(name string, opset int64, opts Options) (*og.Graph, og.DataType) {
	g := og.New(name, opset)
	if opts.Fused || opts.Int8 || len(opts.Fuse) > 0 {
		g.UseDomain("com.microsoft", 1)
	}
	if opts.FP16 {
		g.WeightType = og.Float16
		return g, og.Float16
	}
	return g, og.Float
}

// Float32er reads a weight's values (clip.Weights and blip.Weights do).
type Float32er interface {
	Float32(name string) ([]float32, error)
}

// Read returns a Source reading weight name of w as it is.
func Read(w Float32er, name string) og.Source {
	return func() ([]float32, error) { return w.Float32(name) }
}

// ReadT returns a Source reading the [rows, cols] weight name of w transposed to
// [cols, rows], as MatMul wants torch's Linear weights [out, in].
func ReadT(w Float32er, name string, rows, cols int) og.Source {
	return func() ([]float32, error) {
		v, err := w.Float32(name)
		if err != nil {
			return nil, err
		}
		if len(v) != rows*cols {
			return nil, fmt.Errorf("%s has %d values, want %d×%d", name, len(v), rows, cols)
		}
		return Transpose(v, rows, cols), nil
	}
}

// Transpose returns the [cols, rows] transpose of the row-major [rows, cols] matrix v.
func Transpose(v []float32, rows, cols int) []float32 {
	t := make([]float32, len(v))
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			t[c*rows+r] = v[r*cols+c]
		}
	}
	return t
}

// ToCompute casts a float32 tensor x to the compute type dt (nothing to do for Float).
func ToCompute(g *og.Graph, dt og.DataType, x string) string {
	if dt == og.Float16 {
		return g.Op("Cast", []string{x}, og.AttrInt("to", int64(og.Float16)))
	}
	return x
}

// PixelInput declares the image input name of a graph with compute type dt and returns
// it in the compute type: a float16 input for FP16 graphs (nothing to cast), else a
// float32 input, cast inside when the graph computes in float16 (FP32Pixels).
func PixelInput(g *og.Graph, dt og.DataType, opts Options, name string, dims ...og.Dim) string {
	if dt == og.Float16 && !opts.FP32Pixels {
		return g.Input(name, og.Float16, dims...)
	}
	return ToCompute(g, dt, g.Input(name, og.Float, dims...))
}

// Output makes x, of the compute type dt, the float32 graph output name.
func Output(g *og.Graph, dt og.DataType, x, name string, dims ...og.Dim) {
	if dt == og.Float16 {
		x = g.Op("Cast", []string{x}, og.AttrInt("to", int64(og.Float)))
	}
	g.Node("", "Identity", []string{x}, []string{name})
	g.Output(name, og.Float, dims...)
}
