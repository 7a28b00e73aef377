package clip

import (
	"fmt"
	"math"
	"strconv"

	"github.com/icthp/icthp/models/build"
	og "github.com/icthp/icthp/models/onnxgraph"
)

// BuildOptions choose how a graph is written (build.Options, shared with models/blip).
// For CLIP: Fused writes onnxruntime's Attention, SkipLayerNormalization, BiasGelu and
// QuickGelu; FP16 takes float16 pixel_values and keeps input_ids int64 and the outputs
// float32 (casts inside); Int8 quantises q/k/v,
// out_proj, fc1 and fc2 of every layer, per output channel, and on CPUs with AMX those
// matmuls take a fifth of the time (see BENCHMARKS.md, "int8").
type BuildOptions = build.Options

// ErrOptions reports build options that cannot go together (build.ErrOptions).
var ErrOptions = build.ErrOptions

// Tensor names of the graphs' inputs and outputs, recorded in model.json.
const (
	InputPixels  = "pixel_values"
	InputIDs     = "input_ids"
	OutputImage  = "image_embeds"
	OutputText   = "text_embeds"
	OutputHPLogi = "hp_logit"
)

const opset = 17

// builder writes CLIP's towers on the shared build.Builder.
type builder struct{ *build.Builder }

func newBuilder(name string, w Weights, opts BuildOptions) *builder {
	return &builder{build.NewBuilder(name, opset, w, opts)}
}

// linear applies torch's Linear(name): x·Wᵀ + b (bias optional), in float.
func (b *builder) linear(x, name string, in, out int, bias bool) string {
	wt := b.G.Weight(name+".weight", []int64{int64(in), int64(out)}, b.ReadT(name+".weight", out, in))
	y := b.G.Op("MatMul", []string{x, wt})
	if bias {
		y = b.G.Op("Add", []string{y, b.G.Weight(name+".bias", []int64{int64(out)}, b.Read(name+".bias"))})
	}
	return y
}

func (b *builder) layerNorm(x, name string, h int, eps float64) string {
	gamma := b.G.Weight(name+".weight", []int64{int64(h)}, b.Read(name+".weight"))
	beta := b.G.Weight(name+".bias", []int64{int64(h)}, b.Read(name+".bias"))
	return b.G.Op("LayerNormalization", []string{x, gamma, beta}, og.AttrInt("axis", -1), og.AttrFloat("epsilon", float32(eps)))
}

func (b *builder) scalar(v float64) string { return b.G.ConstFloat("c", []int64{}, float32(v)) }

// activation decomposes the MLP non-linearity into standard operators.
func (b *builder) activation(x string, act Activation) string {
	g := b.G
	switch act {
	case QuickGELU:
		return g.Op("Mul", []string{x, g.Op("Sigmoid", []string{g.Op("Mul", []string{x, b.scalar(1.702)})})})
	case GELUTanh:
		// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
		x3 := g.Op("Mul", []string{g.Op("Mul", []string{x, x}), x})
		inner := g.Op("Mul", []string{g.Op("Add", []string{x, g.Op("Mul", []string{x3, b.scalar(0.044715)})}), b.scalar(math.Sqrt(2 / math.Pi))})
		return g.Op("Mul", []string{g.Op("Mul", []string{x, b.scalar(0.5)}), g.Op("Add", []string{g.Op("Tanh", []string{inner}), b.scalar(1)})})
	default: // exact erf GELU: 0.5·x·(1 + erf(x/√2))
		e := g.Op("Erf", []string{g.Op("Mul", []string{x, b.scalar(1 / math.Sqrt2)})})
		return g.Op("Mul", []string{g.Op("Mul", []string{x, b.scalar(0.5)}), g.Op("Add", []string{e, b.scalar(1)})})
	}
}

// qkv returns Sources for the concatenated [h, 3h] projection weight and
// [3h] bias (q, k, v side by side), the layout com.microsoft.Attention and
// the plain graph's single MatMul both use.
func (b *builder) qkv(prefix string, h int) (og.Source, og.Source) {
	w := func() ([]float32, error) {
		out := make([]float32, h*3*h)
		for j, p := range []string{"q_proj", "k_proj", "v_proj"} {
			v, err := b.W.Float32(prefix + p + ".weight")
			if err != nil {
				return nil, err
			}
			// torch weight [out=h, in=h]; out[i][j*h+o] = W[o][i].
			for o := 0; o < h; o++ {
				for i := 0; i < h; i++ {
					out[i*3*h+j*h+o] = v[o*h+i]
				}
			}
		}
		return out, nil
	}
	bias := func() ([]float32, error) {
		out := make([]float32, 0, 3*h)
		for _, p := range []string{"q_proj", "k_proj", "v_proj"} {
			v, err := b.W.Float32(prefix + p + ".bias")
			if err != nil {
				return nil, err
			}
			out = append(out, v...)
		}
		return out, nil
	}
	return w, bias
}

// encoder writes the transformer layers over x ([B, S, H]) and returns the
// residual stream after the last layer.
func (b *builder) encoder(x, prefix string, t *TowerConfig, seq int, causal bool) string {
	if len(b.Opts.Fuse) > 0 {
		return b.encoderKinds(x, prefix, t, seq, causal)
	}
	if b.Opts.Fused {
		return b.encoderFused(x, prefix, t, seq, causal)
	}
	g := b.G
	h := t.HiddenSize
	attn := b.newAttention(t, seq, causal)
	for l := 0; l < t.NumLayers; l++ {
		p := prefix + ".encoder.layers." + strconv.Itoa(l) + "."
		y := b.layerNorm(x, p+"layer_norm1", h, t.LayerNormEps)
		ws, bs := b.qkv(p+"self_attn.", h)
		qkv := b.LayerMatMul(y, p+"self_attn.qkv.weight", h, 3*h, ws, p+"self_attn.qkv.bias", bs)
		a := attn.apply(p, qkv)
		x = g.Op("Add", []string{x, b.LayerLinear(a, p+"self_attn.out_proj", h, h)})
		y = b.layerNorm(x, p+"layer_norm2", h, t.LayerNormEps)
		m := b.activation(b.LayerLinear(y, p+"mlp.fc1", h, t.IntermediateSize), t.HiddenAct)
		x = g.Op("Add", []string{x, b.LayerLinear(m, p+"mlp.fc2", t.IntermediateSize, h)})
	}
	return x
}

// attention is scaled dot-product attention over a projected [B, S, 3H]
// q|k|v tensor in standard operators, as transformers 4.27 computes it:
// q scaled before q·kᵀ, the causal mask added, softmax, ·v.
type attention struct {
	b                                   *builder
	headShape, mergeShape, split, scale string
	mask                                string // "" unless causal
}

func (b *builder) newAttention(t *TowerConfig, seq int, causal bool) *attention {
	g := b.G
	h, heads, hd := t.HiddenSize, t.NumHeads, t.HeadDim()
	a := &attention{b: b,
		headShape:  g.ConstInt64("head_shape", []int64{4}, 0, 0, int64(heads), int64(hd)),
		mergeShape: g.ConstInt64("merge_shape", []int64{3}, 0, 0, int64(h)),
		split:      g.ConstInt64("split", []int64{3}, int64(h), int64(h), int64(h)),
		scale:      b.scalar(math.Pow(float64(hd), -0.5)),
	}
	if causal {
		// transformers 4.27 fills the upper triangle with the dtype's minimum.
		m := make([]float32, seq*seq)
		minv := float32(-math.MaxFloat32)
		if b.Opts.FP16 {
			minv = -65504
		}
		for i := 0; i < seq; i++ {
			for j := i + 1; j < seq; j++ {
				m[i*seq+j] = minv
			}
		}
		a.mask = g.ConstFloat("causal_mask", []int64{int64(seq), int64(seq)}, m...)
	}
	return a
}

// apply returns the merged heads [B, S, H] of layer p.
func (a *attention) apply(p, qkv string) string {
	g := a.b.G
	outs := []string{p + "q", p + "k", p + "v"}
	g.Node("", "Split", []string{qkv, a.split}, outs, og.AttrInt("axis", 2))
	q := g.Op("Transpose", []string{g.Op("Reshape", []string{g.Op("Mul", []string{outs[0], a.scale}), a.headShape})}, og.AttrInts("perm", 0, 2, 1, 3))
	k := g.Op("Transpose", []string{g.Op("Reshape", []string{outs[1], a.headShape})}, og.AttrInts("perm", 0, 2, 3, 1))
	v := g.Op("Transpose", []string{g.Op("Reshape", []string{outs[2], a.headShape})}, og.AttrInts("perm", 0, 2, 1, 3))
	s := g.Op("MatMul", []string{q, k})
	if a.mask != "" {
		s = g.Op("Add", []string{s, a.mask})
	}
	o := g.Op("MatMul", []string{g.Op("Softmax", []string{s}, og.AttrInt("axis", -1)), v})
	return g.Op("Reshape", []string{g.Op("Transpose", []string{o}, og.AttrInts("perm", 0, 2, 1, 3)), a.mergeShape})
}

// encoderFused is encoder with onnxruntime's contrib kernels: one Attention
// node per layer (q/k/v projection, scaled dot product, causal mask), and
// SkipLayerNormalization folding each residual add and bias into the next
// LayerNorm.
func (b *builder) encoderFused(x, prefix string, t *TowerConfig, seq int, causal bool) string {
	g := b.G
	h, inter := t.HiddenSize, t.IntermediateSize
	uni := int64(0)
	if causal {
		uni = 1
	}
	ln := func(name string) (string, string) {
		return g.Weight(name+".weight", []int64{int64(h)}, b.Read(name+".weight")),
			g.Weight(name+".bias", []int64{int64(h)}, b.Read(name+".bias"))
	}
	matmulT := func(x, name string, in, out int) string {
		return b.LayerMatMul(x, name+".weight", in, out, b.ReadT(name+".weight", out, in), "", nil)
	}
	var attn *attention
	if b.Opts.Int8 {
		// com.microsoft.Attention takes float weights: with int8 ones the
		// projection is a DynamicQuantizeMatMul and the rest plain operators.
		attn = b.newAttention(t, seq, causal)
	}
	bias := func(name string, n int) string {
		return g.Weight(name+".bias", []int64{int64(n)}, b.Read(name+".bias"))
	}
	eps := og.AttrFloat("epsilon", float32(t.LayerNormEps))
	// The first LayerNorm has no residual to fold.
	y := b.layerNorm(x, prefix+".encoder.layers.0.layer_norm1", h, t.LayerNormEps)
	for l := 0; l < t.NumLayers; l++ {
		p := prefix + ".encoder.layers." + strconv.Itoa(l) + "."
		ws, bs := b.qkv(p+"self_attn.", h)
		var a string
		if attn != nil {
			a = attn.apply(p, b.LayerMatMul(y, p+"self_attn.qkv.weight", h, 3*h, ws, p+"self_attn.qkv.bias", bs))
		} else {
			wqkv := g.Weight(p+"self_attn.qkv.weight", []int64{int64(h), int64(3 * h)}, ws)
			bqkv := g.Weight(p+"self_attn.qkv.bias", []int64{int64(3 * h)}, bs)
			a = g.OpMS("Attention", []string{y, wqkv, bqkv}, 1,
				og.AttrInt("num_heads", int64(t.NumHeads)), og.AttrInt("unidirectional", uni))[0]
		}
		a = matmulT(a, p+"self_attn.out_proj", h, h)
		g2, b2 := ln(p + "layer_norm2")
		outs := g.OpMS("SkipLayerNormalization", []string{a, x, g2, b2, bias(p+"self_attn.out_proj", h)}, 4, eps)
		y, x = outs[0], outs[3]
		m := matmulT(y, p+"mlp.fc1", h, inter)
		switch t.HiddenAct {
		case GELU:
			m = g.OpMS("BiasGelu", []string{m, bias(p+"mlp.fc1", inter)}, 1)[0]
		case GELUTanh:
			m = g.OpMS("FastGelu", []string{m, bias(p+"mlp.fc1", inter)}, 1)[0]
		default:
			m = g.OpMS("QuickGelu", []string{g.Op("Add", []string{m, bias(p+"mlp.fc1", inter)})}, 1, og.AttrFloat("alpha", 1.702))[0]
		}
		m = matmulT(m, p+"mlp.fc2", inter, h)
		if l+1 < t.NumLayers {
			g1, b1 := ln(prefix + ".encoder.layers." + strconv.Itoa(l+1) + ".layer_norm1")
			outs := g.OpMS("SkipLayerNormalization", []string{m, x, g1, b1, bias(p+"mlp.fc2", h)}, 4, eps)
			y, x = outs[0], outs[3]
		} else {
			x = g.Op("Add", []string{g.Op("Add", []string{x, m}), bias(p+"mlp.fc2", h)})
		}
	}
	return x
}

// output names a float32 graph output.
func (b *builder) output(x, name string, dims ...og.Dim) { build.Output(b.G, b.DT, x, name, dims...) }

// vision writes get_image_features from pixel_values and returns the
// image_embeds value (compute type).
func (b *builder) vision(c *Config) string {
	g, v := b.G, &c.Vision
	h, p, n := v.HiddenSize, v.PatchSize, c.NumPatches()
	px := build.PixelInput(g, b.DT, b.Opts, InputPixels, og.P("batch"), og.D(int64(v.NumChannels)), og.D(int64(v.ImageSize)), og.D(int64(v.ImageSize)))
	patchW := g.Weight("vision_model.embeddings.patch_embedding.weight", []int64{int64(h), int64(v.NumChannels), int64(p), int64(p)},
		b.Read("vision_model.embeddings.patch_embedding.weight"))
	x := g.Op("Conv", []string{px, patchW}, og.AttrInts("kernel_shape", int64(p), int64(p)), og.AttrInts("strides", int64(p), int64(p)))
	x = g.Op("Reshape", []string{x, g.ConstInt64("shape", []int64{3}, 0, int64(h), -1)})
	x = g.Op("Transpose", []string{x}, og.AttrInts("perm", 0, 2, 1))
	// A zero row in front of the patches, then one add of the position
	// embeddings with the class embedding folded into row 0: the class token
	// without shape arithmetic on the batch size.
	x = g.Op("Pad", []string{x, g.ConstInt64("pads", []int64{6}, 0, 1, 0, 0, 0, 0)})
	emb := g.Weight("vision_model.embeddings.class_and_position", []int64{1, int64(n + 1), int64(h)}, func() ([]float32, error) {
		pos, err := b.W.Float32("vision_model.embeddings.position_embedding.weight")
		if err != nil {
			return nil, err
		}
		cls, err := b.W.Float32("vision_model.embeddings.class_embedding")
		if err != nil {
			return nil, err
		}
		out := append([]float32(nil), pos...)
		for i := range cls {
			out[i] += cls[i]
		}
		return out, nil
	})
	x = g.Op("Add", []string{x, emb})
	x = b.layerNorm(x, "vision_model.pre_layrnorm", h, v.LayerNormEps)
	x = b.encoder(x, "vision_model", v, n+1, false)
	pooled := g.Op("Gather", []string{x, g.ConstInt64("cls", []int64{}, 0)}, og.AttrInt("axis", 1))
	pooled = b.layerNorm(pooled, "vision_model.post_layernorm", h, v.LayerNormEps)
	return b.linear(pooled, "visual_projection", h, c.ProjectionDim, false)
}

// BuildVision writes the vision tower and projection: pixel_values
// [batch, C, S, S] → image_embeds [batch, projection_dim].
func BuildVision(c *Config, w Weights, opts BuildOptions) (*og.Graph, error) {
	if err := opts.Prepare(build.Part("vision tower", CheckWeights, w, c.VisionParams)); err != nil {
		return nil, err
	}
	b := newBuilder("clip_vision", w, opts)
	b.output(b.vision(c), OutputImage, og.P("batch"), og.D(int64(c.ProjectionDim)))
	return b.G, nil
}

// BuildText writes the text tower and projection: input_ids [batch,
// contextLength] → text_embeds [batch, projection_dim], pooled at the first
// occurrence of the largest id (the first end-of-text token), as
// transformers 4.27 does.
func BuildText(c *Config, w Weights, contextLength int, opts BuildOptions) (*og.Graph, error) {
	if err := opts.Prepare(build.Part("text tower", CheckWeights, w, c.TextParams)); err != nil {
		return nil, err
	}
	t := &c.Text
	if contextLength <= 0 || contextLength > t.MaxPositions {
		return nil, fmt.Errorf("text tower: context length %d outside 1..%d", contextLength, t.MaxPositions)
	}
	b := newBuilder("clip_text", w, opts)
	g := b.G
	h := t.HiddenSize
	ids := g.Input(InputIDs, og.Int64, og.P("batch"), og.D(int64(contextLength)))
	tok := g.Weight("text_model.embeddings.token_embedding.weight", []int64{int64(t.VocabSize), int64(h)}, b.Read("text_model.embeddings.token_embedding.weight"))
	pos := g.Weight("text_model.embeddings.position_embedding.weight", []int64{int64(contextLength), int64(h)}, func() ([]float32, error) {
		v, err := w.Float32("text_model.embeddings.position_embedding.weight")
		if err != nil {
			return nil, err
		}
		return v[:contextLength*h], nil
	})
	x := g.Op("Add", []string{g.Op("Gather", []string{tok, ids}, og.AttrInt("axis", 0)), pos})
	x = b.encoder(x, "text_model", t, contextLength, true)
	eot := g.Op("ArgMax", []string{ids}, og.AttrInt("axis", 1), og.AttrInt("keepdims", 1))
	pooled := g.Op("GatherND", []string{x, eot}, og.AttrInt("batch_dims", 1))
	pooled = b.layerNorm(pooled, "text_model.final_layer_norm", h, t.LayerNormEps)
	b.output(b.linear(pooled, "text_projection", h, c.ProjectionDim, false), OutputText, og.P("batch"), og.D(int64(c.ProjectionDim)))
	return g, nil
}

// combined serves the backbone's names from one set of weights and names
// under "hp_head." from the head's.
type combined struct{ backbone, head Weights }

const headPrefix = "hp_head."

func (c combined) pick(name string) (Weights, string) {
	if len(name) > len(headPrefix) && name[:len(headPrefix)] == headPrefix {
		return c.head, name[len(headPrefix):]
	}
	return c.backbone, name
}
func (c combined) Shape(name string) ([]int64, bool) { w, n := c.pick(name); return w.Shape(n) }
func (c combined) Float32(name string) ([]float32, error) {
	w, n := c.pick(name)
	return w.Float32(n)
}

// BuildHP writes the HP model: the backbone's image features followed by the
// five Linear layers of the head (no activations; dropouts are identity at
// inference). Outputs hp_logit [batch] and image_embeds [batch, D].
func BuildHP(c *Config, backbone, head Weights, opts BuildOptions) (*og.Graph, error) {
	if err := opts.Prepare(build.Part("hp backbone", CheckWeights, backbone, c.VisionParams),
		build.Part("hp head", CheckWeights, head, c.headParams)); err != nil {
		return nil, err
	}
	b := newBuilder("hp", combined{backbone, head}, opts)
	emb := b.vision(c)
	x, in := emb, c.ProjectionDim
	for i, k := range headKeys {
		out := int(headWidths[i])
		x = b.linear(x, headPrefix+k, in, out, true)
		in = out
	}
	x = b.G.Op("Reshape", []string{x, b.G.ConstInt64("flat", []int64{1}, -1)})
	b.output(x, OutputHPLogi, og.P("batch"))
	b.output(emb, OutputImage, og.P("batch"), og.D(int64(c.ProjectionDim)))
	return b.G, nil
}
