package build

import og "github.com/icthp/icthp/models/onnxgraph"

// Weights are a checkpoint's tensors as a builder reads them (clip.Weights
// and blip.Weights are).
type Weights interface {
	Shaper
	Float32er
}

// Builder carries the graph, the weights and the options while a model's
// towers are written: what the CLIP and BLIP builders share (each embeds it
// and adds its architecture's layers).
type Builder struct {
	G    *og.Graph
	W    Weights
	Opts Options
	DT   og.DataType // compute type
}

// NewBuilder starts graph name (NewGraph) reading w.
func NewBuilder(name string, opset int64, w Weights, opts Options) *Builder {
	g, dt := NewGraph(name, opset, opts)
	return &Builder{G: g, W: w, Opts: opts, DT: dt}
}

// Read returns a Source reading a weight as it is.
func (b *Builder) Read(name string) og.Source { return Read(b.W, name) }

// ReadT returns a Source reading a torch Linear weight [rows=out, cols=in]
// transposed to [in, out], as MatMul wants it.
func (b *Builder) ReadT(name string, rows, cols int) og.Source { return ReadT(b.W, name, rows, cols) }

// LayerMatMul is x·W for a weight inside a transformer layer (a ViT block,
// a BERT layer), given as an [in, out] Source (already transposed): a
// MatMul, or with Int8 a DynamicQuantizeMatMul over the int8 codes of W.
// biasName, when not "", is the name of the [out] bias weight (read from
// bias) added to the product; it is written after the weight, so that float
// graphs keep their weight order and version.
func (b *Builder) LayerMatMul(x, name string, in, out int, wt og.Source, biasName string, bias og.Source) string {
	return b.G.MatMulWeight(x, name, in, out, wt, biasName, bias, b.Opts.Int8)
}

// LayerLinear is torch's Linear(name) inside a transformer layer
// (LayerMatMul with the weight transposed and the bias).
func (b *Builder) LayerLinear(x, name string, in, out int) string {
	return b.LayerMatMul(x, name+".weight", in, out, b.ReadT(name+".weight", out, in), name+".bias", b.Read(name+".bias"))
}
