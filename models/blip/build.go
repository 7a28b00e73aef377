package blip

import (
	"fmt"
	"math"
	"strconv"

	"github.com/icthp/icthp/models/build"
	og "github.com/icthp/icthp/models/onnxgraph"
)

// BuildOptions choose how a graph is written (build.Options, shared with models/clip).
// For BLIP:
//
//   - Fused uses onnxruntime's com.microsoft kernels (Attention with the padding mask for
//     BERT's self-attention, MultiHeadAttention for the cross-attention,
//     SkipLayerNormalization, BiasGelu) instead of their decomposition into standard
//     operators, computes the last text layer past its self-attention keys and values at
//     position 0 only (the only position the head reads), and folds the five affine head
//     layers and the score normalisation into one dot product (in float64, at
//     conversion). The plain graph follows the original module by module. Both compute
//     the same function.
//   - Int8 stores the weights of the Linears inside the ViT blocks (qkv, proj, fc1, fc2)
//     and the BERT layers (self- and cross-attention query/key/value and output dense,
//     intermediate, output dense) as int8, symmetric per output column
//     (onnxgraph.QuantizeColumns), and runs them as onnxruntime's DynamicQuantizeMatMul:
//     activations quantised to uint8 over the whole input tensor of each call, an
//     integer GEMM, float32 everywhere else (embeddings, norms, attention, head). Because
//     the activation scale spans the batch, an item's score depends on its batch-mates
//     unless each runs alone: int8 models run one item per run (models.Open,
//     imagereward.Open). With Fused, the attention layers whose projection is quantised
//     are written in standard operators (the contrib Attention takes float weights) and
//     the last text layer is computed at every position, so that plain and fused int8
//     graphs still compute the same function.
//   - FP16 stores every weight as float16 and computes in float16. pixel_values is
//     float16 (build.PixelInput; float32 with FP32Pixels, the older form); the other
//     inputs and the outputs keep their types (image_tokens float32, input_ids and
//     attention_mask int64, the score float32), so the vision graph still feeds the text
//     graph and the scorer is unchanged. The padding mask's −10000 is exact in float16.
type BuildOptions = build.Options

// ErrOptions reports build options that cannot go together (build.ErrOptions).
var ErrOptions = build.ErrOptions

// Tensor names of the graphs' inputs and outputs, recorded in model.json.
const (
	InputPixels      = "pixel_values"   // vision.onnx input, float32 [B,3,S,S] (float16 in FP16 graphs)
	OutputTokens     = "image_tokens"   // vision.onnx output, float32 [B,N+1,Dv]
	InputIDs         = "input_ids"      // text.onnx input, int64 [B,L]
	InputMask        = "attention_mask" // text.onnx input, int64 [B,L] (1 = token, 0 = padding)
	InputImageTokens = "image_tokens"   // text.onnx input, vision.onnx's output
	OutputScore      = "imagereward"    // text.onnx output, float32 [B]
)

const opset = 17

// maskFilter is med.py's extended attention mask value: (1 − mask)·−10000
// is added to the attention scores (also onnxruntime Attention's default
// mask_filter_value).
const maskFilter = -10000.0

// builder writes BLIP's towers on the shared build.Builder.
type builder struct{ *build.Builder }

func newBuilder(name string, w Weights, opts BuildOptions) *builder {
	return &builder{build.NewBuilder(name, opset, w, opts)}
}

// concatT reads several [out_i, in] Linear weights and writes them side by
// side transposed: [in, Σ out_i].
func (b *builder) concatT(names []string, outs []int, in int) og.Source {
	return func() ([]float32, error) {
		total := 0
		for _, o := range outs {
			total += o
		}
		res := make([]float32, in*total)
		col := 0
		for k, name := range names {
			v, err := b.W.Float32(name)
			if err != nil {
				return nil, err
			}
			if len(v) != outs[k]*in {
				return nil, fmt.Errorf("%s has %d values, want %d×%d", name, len(v), outs[k], in)
			}
			for o := 0; o < outs[k]; o++ {
				for i := 0; i < in; i++ {
					res[i*total+col+o] = v[o*in+i]
				}
			}
			col += outs[k]
		}
		return res, nil
	}
}

// concat reads several vectors and joins them.
func (b *builder) concat(names ...string) og.Source {
	return func() ([]float32, error) {
		var res []float32
		for _, name := range names {
			v, err := b.W.Float32(name)
			if err != nil {
				return nil, err
			}
			res = append(res, v...)
		}
		return res, nil
	}
}

func (b *builder) vec(name string, n int) string {
	return b.G.Weight(name, []int64{int64(n)}, b.Read(name))
}

// matmulT is x·Wᵀ for the torch Linear weight name+".weight" [out, in].
func (b *builder) matmulT(x, name string, in, out int) string {
	wt := b.G.Weight(name+".weight", []int64{int64(in), int64(out)}, b.ReadT(name+".weight", out, in))
	return b.G.Op("MatMul", []string{x, wt})
}

// linear is torch's Linear(name): x·Wᵀ + b.
func (b *builder) linear(x, name string, in, out int) string {
	return b.G.Op("Add", []string{b.matmulT(x, name, in, out), b.vec(name+".bias", out)})
}

// layerMatMulT is matmulT for a Linear inside a block or layer, its bias
// added elsewhere (SkipLayerNormalization, BiasGelu, MultiHeadAttention).
func (b *builder) layerMatMulT(x, name string, in, out int) string {
	return b.LayerMatMul(x, name+".weight", in, out, b.ReadT(name+".weight", out, in), "", nil)
}

func (b *builder) layerNorm(x, name string, h int, eps float64) string {
	return b.G.Op("LayerNormalization", []string{x, b.vec(name+".weight", h), b.vec(name+".bias", h)},
		og.AttrInt("axis", -1), og.AttrFloat("epsilon", float32(eps)))
}

// skipLayerNorm is LayerNorm(x + skip + bias) as one com.microsoft node; it
// returns the normalised value and the sum.
func (b *builder) skipLayerNorm(x, skip, lnName, biasName string, h int, eps float64) (normed, sum string) {
	outs := b.G.OpMS("SkipLayerNormalization",
		[]string{x, skip, b.vec(lnName+".weight", h), b.vec(lnName+".bias", h), b.vec(biasName, h)}, 4,
		og.AttrFloat("epsilon", float32(eps)))
	return outs[0], outs[3]
}

func (b *builder) scalar(v float64) string { return b.G.ConstFloat("c", []int64{}, float32(v)) }

// gelu is the exact GELU, ½x(1 + erf(x/√2)) (torch's nn.GELU and
// transformers' "gelu"), in standard operators.
func (b *builder) gelu(x string) string {
	g := b.G
	e := g.Op("Erf", []string{g.Op("Mul", []string{x, b.scalar(1 / math.Sqrt2)})})
	return g.Op("Mul", []string{g.Op("Mul", []string{x, b.scalar(0.5)}), g.Op("Add", []string{e, b.scalar(1)})})
}

// heads reshapes [B,S,h·d] to [B,h,S,d] (perm 0,2,1,3) or, for keys,
// [B,h,d,S] (perm 0,2,3,1).
func (b *builder) heads(x string, h, d int, key bool) string {
	shape := b.G.ConstInt64("head_shape", []int64{4}, 0, 0, int64(h), int64(d))
	perm := og.AttrInts("perm", 0, 2, 1, 3)
	if key {
		perm = og.AttrInts("perm", 0, 2, 3, 1)
	}
	return b.G.Op("Transpose", []string{b.G.Op("Reshape", []string{x, shape})}, perm)
}

// sdpa is softmax(q·kᵀ·scale + mask)·v over heads, merged back to [B,S,h·d].
// q is [B,h,S,d], k [B,h,d,T], v [B,h,T,d]; mask is "" or broadcastable to
// [B,h,S,T].
func (b *builder) sdpa(q, k, v, mask string, h, d int) string {
	g := b.G
	s := g.Op("Mul", []string{g.Op("MatMul", []string{q, k}), b.scalar(1 / math.Sqrt(float64(d)))})
	if mask != "" {
		s = g.Op("Add", []string{s, mask})
	}
	a := g.Op("MatMul", []string{g.Op("Softmax", []string{s}, og.AttrInt("axis", -1)), v})
	a = g.Op("Transpose", []string{a}, og.AttrInts("perm", 0, 2, 1, 3))
	return g.Op("Reshape", []string{a, g.ConstInt64("merge_shape", []int64{3}, 0, 0, int64(h*d))})
}

// splitAttend is sdpa over a projected [B,S,3D] q|k|v tensor (heads in
// order inside each third), named after p; mask as in sdpa.
func (b *builder) splitAttend(p, qkv, mask string, D, H int) string {
	hd := D / H
	outs := []string{p + "q", p + "k", p + "v"}
	b.G.Node("", "Split", []string{qkv, b.G.ConstInt64("split", []int64{3}, int64(D), int64(D), int64(D))}, outs, og.AttrInt("axis", 2))
	return b.sdpa(b.heads(outs[0], H, hd, false), b.heads(outs[1], H, hd, true), b.heads(outs[2], H, hd, false), mask, H, hd)
}

// toCompute casts a float32 graph input to the compute type.
func (b *builder) toCompute(x string) string { return build.ToCompute(b.G, b.DT, x) }

// output names a float32 graph output (cast from the compute type).
func (b *builder) output(x, name string, dims ...og.Dim) { build.Output(b.G, b.DT, x, name, dims...) }

// ---------------------------------------------------------------------------
// Vision

// BuildVision writes BLIP's VisionTransformer.forward: pixel_values
// [batch, 3, S, S] → image_tokens [batch, N+1, width], all tokens after the
// final LayerNorm.
func BuildVision(c *Config, w Weights, opts BuildOptions) (*og.Graph, error) {
	if err := opts.Prepare(c.Validate, build.Part("vision encoder", CheckWeights, w, c.VisionParams)); err != nil {
		return nil, err
	}
	b := newBuilder("imagereward_vision", w, opts)
	g, v := b.G, &c.Vision
	D, P, S, T := v.Width, v.PatchSize, v.ImageSize, v.NumTokens()
	p := VisionPrefix
	px := build.PixelInput(g, b.DT, b.Opts, InputPixels, og.P("batch"), og.D(3), og.D(int64(S)), og.D(int64(S)))
	kernel := g.Weight(p+"patch_embed.proj.weight", []int64{int64(D), 3, int64(P), int64(P)}, b.Read(p+"patch_embed.proj.weight"))
	x := g.Op("Conv", []string{px, kernel, b.vec(p+"patch_embed.proj.bias", D)},
		og.AttrInts("kernel_shape", int64(P), int64(P)), og.AttrInts("strides", int64(P), int64(P)))
	x = g.Op("Reshape", []string{x, g.ConstInt64("shape", []int64{3}, 0, int64(D), -1)})
	x = g.Op("Transpose", []string{x}, og.AttrInts("perm", 0, 2, 1))
	// A zero row in front of the patches, then one add of pos_embed with
	// the class token folded into its row 0: torch.cat((cls, x)) + pos_embed
	// without shape arithmetic on the batch size.
	x = g.Op("Pad", []string{x, g.ConstInt64("pads", []int64{6}, 0, 1, 0, 0, 0, 0)})
	emb := g.Weight(p+"cls_and_pos_embed", []int64{1, int64(T), int64(D)}, func() ([]float32, error) {
		pos, err := w.Float32(p + "pos_embed")
		if err != nil {
			return nil, err
		}
		cls, err := w.Float32(p + "cls_token")
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
	if opts.Fused {
		x = b.vitBlocksFused(x, v)
	} else {
		x = b.vitBlocks(x, v)
		x = b.layerNorm(x, p+"norm", D, v.LayerNormEps)
	}
	b.output(x, OutputTokens, og.P("batch"), og.D(int64(T)), og.D(int64(D)))
	return g, nil
}

// vitQKV adds a block's qkv projection as a [D, 3D] weight (q, k, v side by
// side, heads in order inside each: the layout of both Attention and the
// plain graph's Split) and its [3D] bias.
func (b *builder) vitQKV(prefix string, D int) (string, string) {
	w := b.G.Weight(prefix+"attn.qkv.weight", []int64{int64(D), int64(3 * D)}, b.ReadT(prefix+"attn.qkv.weight", 3*D, D))
	return w, b.vec(prefix+"attn.qkv.bias", 3*D)
}

// vitQKVProj is the qkv Linear of ViT block p on y: [B,S,3D], q|k|v.
func (b *builder) vitQKVProj(y, p string, D int) string {
	return b.LayerMatMul(y, p+"attn.qkv.weight", D, 3*D, b.ReadT(p+"attn.qkv.weight", 3*D, D), p+"attn.qkv.bias", b.Read(p+"attn.qkv.bias"))
}

// vitBlocks is the pre-norm blocks of vit.py in standard operators:
// x = x + proj(attn(norm1(x))); x = x + fc2(gelu(fc1(norm2(x)))).
func (b *builder) vitBlocks(x string, v *VisionConfig) string {
	g := b.G
	D, H, M := v.Width, v.NumHeads, v.MLPHidden()
	for l := 0; l < v.Depth; l++ {
		p := VisionPrefix + "blocks." + strconv.Itoa(l) + "."
		y := b.layerNorm(x, p+"norm1", D, v.LayerNormEps)
		a := b.splitAttend(p, b.vitQKVProj(y, p, D), "", D, H)
		x = g.Op("Add", []string{x, b.LayerLinear(a, p+"attn.proj", D, D)})
		y = b.layerNorm(x, p+"norm2", D, v.LayerNormEps)
		m := b.gelu(b.LayerLinear(y, p+"mlp.fc1", D, M))
		x = g.Op("Add", []string{x, b.LayerLinear(m, p+"mlp.fc2", M, D)})
	}
	return x
}

// vitBlocksFused is vitBlocks with contrib kernels: one Attention node per
// block, BiasGelu, and SkipLayerNormalization folding each residual add and
// bias into the next LayerNorm (the last one into the final norm). It
// returns the final norm's output.
func (b *builder) vitBlocksFused(x string, v *VisionConfig) string {
	g := b.G
	D, M := v.Width, v.MLPHidden()
	y := b.layerNorm(x, VisionPrefix+"blocks.0.norm1", D, v.LayerNormEps)
	for l := 0; l < v.Depth; l++ {
		p := VisionPrefix + "blocks." + strconv.Itoa(l) + "."
		var a string
		if b.Opts.Int8 {
			// The contrib Attention takes float weights: the quantised
			// projection, then attention in standard operators.
			a = b.splitAttend(p, b.vitQKVProj(y, p, D), "", D, v.NumHeads)
		} else {
			wqkv, bqkv := b.vitQKV(p, D)
			a = g.OpMS("Attention", []string{y, wqkv, bqkv}, 1, og.AttrInt("num_heads", int64(v.NumHeads)))[0]
		}
		a = b.layerMatMulT(a, p+"attn.proj", D, D)
		y, x = b.skipLayerNorm(a, x, p+"norm2", p+"attn.proj.bias", D, v.LayerNormEps)
		m := b.layerMatMulT(y, p+"mlp.fc1", D, M)
		m = g.OpMS("BiasGelu", []string{m, b.vec(p+"mlp.fc1.bias", M)}, 1)[0]
		m = b.layerMatMulT(m, p+"mlp.fc2", M, D)
		next := VisionPrefix + "norm"
		if l+1 < v.Depth {
			next = VisionPrefix + "blocks." + strconv.Itoa(l+1) + ".norm1"
		}
		y, x = b.skipLayerNorm(m, x, next, p+"mlp.fc2.bias", D, v.LayerNormEps)
	}
	return y
}

// ---------------------------------------------------------------------------
// Text

// BuildText writes the rest of ImageReward.score: med.py's BertModel in
// multimodal mode over input_ids [batch, L] with the padding mask
// attention_mask [batch, L] (int64, 1 = token, 0 = padding; added to the
// self-attention scores as (1 − mask)·−10000) and cross-attention in every
// layer to all image_tokens [batch, N+1, Dv] (their mask is all ones, so no
// mask), the hidden state at position 0, the reward head and
// (x − ScoreMean)/ScoreStd → imagereward [batch]. L is c.ContextLength.
func BuildText(c *Config, w Weights, opts BuildOptions) (*og.Graph, error) {
	if err := opts.Prepare(c.Validate, build.Part("text encoder", CheckWeights, w, c.TextParams),
		build.Part("reward head", CheckWeights, w, c.HeadParams)); err != nil {
		return nil, err
	}
	b := newBuilder("imagereward_text", w, opts)
	g, t := b.G, &c.Text
	H, L := t.HiddenSize, c.ContextLength
	ids := g.Input(InputIDs, og.Int64, og.P("batch"), og.D(int64(L)))
	mask := g.Input(InputMask, og.Int64, og.P("batch"), og.D(int64(L)))
	img := b.toCompute(g.Input(InputImageTokens, og.Float, og.P("batch"), og.D(int64(c.Vision.NumTokens())), og.D(int64(c.Vision.Width))))

	// BertEmbeddings: word + absolute position embeddings (no token types),
	// LayerNorm.
	p := TextPrefix + "embeddings."
	word := g.Weight(p+"word_embeddings.weight", []int64{int64(t.VocabSize), int64(H)}, b.Read(p+"word_embeddings.weight"))
	pos := g.Weight(p+"position_embeddings.weight", []int64{int64(L), int64(H)}, func() ([]float32, error) {
		v, err := w.Float32(p + "position_embeddings.weight")
		if err != nil {
			return nil, err
		}
		return v[:L*H], nil
	})
	x := g.Op("Add", []string{g.Op("Gather", []string{word, ids}, og.AttrInt("axis", 0)), pos})
	x = b.layerNorm(x, p+"LayerNorm", H, t.LayerNormEps)

	var score string
	if opts.Fused {
		x = b.bertLayersFused(x, mask, img, c)
		score = b.headFolded(x, c)
	} else {
		x = b.bertLayers(x, mask, img, c)
		score = b.head(x, c)
	}
	b.output(score, OutputScore, og.P("batch"))
	return g, nil
}

// bertLayers is med.py's BertLayer stack (post-norm) in standard operators:
//
//	a = LN(dense(SelfAttn(x, mask)) + x)
//	c = LN(dense(CrossAttn(a, image)) + a)
//	x = LN(output(gelu(intermediate(c))) + c)
func (b *builder) bertLayers(x, mask, img string, c *Config) string {
	g, t := b.G, &c.Text
	H, I, NH, E := t.HiddenSize, t.IntermediateSize, t.NumHeads, t.EncoderWidth
	hd := t.HeadDim()
	m := b.extendedMask(mask)
	for l := 0; l < t.NumLayers; l++ {
		p := TextPrefix + "encoder.layer." + strconv.Itoa(l) + "."
		sa := p + "attention."
		q := b.heads(b.LayerLinear(x, sa+"self.query", H, H), NH, hd, false)
		k := b.heads(b.LayerLinear(x, sa+"self.key", H, H), NH, hd, true)
		v := b.heads(b.LayerLinear(x, sa+"self.value", H, H), NH, hd, false)
		a := b.LayerLinear(b.sdpa(q, k, v, m, NH, hd), sa+"output.dense", H, H)
		a = b.layerNorm(g.Op("Add", []string{a, x}), sa+"output.LayerNorm", H, t.LayerNormEps)

		ca := p + "crossattention."
		q = b.heads(b.LayerLinear(a, ca+"self.query", H, H), NH, hd, false)
		k = b.heads(b.LayerLinear(img, ca+"self.key", E, H), NH, hd, true)
		v = b.heads(b.LayerLinear(img, ca+"self.value", E, H), NH, hd, false)
		cr := b.LayerLinear(b.sdpa(q, k, v, "", NH, hd), ca+"output.dense", H, H)
		cr = b.layerNorm(g.Op("Add", []string{cr, a}), ca+"output.LayerNorm", H, t.LayerNormEps)

		f := b.gelu(b.LayerLinear(cr, p+"intermediate.dense", H, I))
		f = b.LayerLinear(f, p+"output.dense", I, H)
		x = b.layerNorm(g.Op("Add", []string{f, cr}), p+"output.LayerNorm", H, t.LayerNormEps)
	}
	return x
}

// extendedMask is med.py's extended_attention_mask, (1 − mask)·−10000
// shaped [B,1,1,L] in the compute type (−10000 is exact in float16), for
// sdpa.
func (b *builder) extendedMask(mask string) string {
	g := b.G
	m := g.Op("Cast", []string{mask}, og.AttrInt("to", int64(b.DT)))
	m = g.Op("Mul", []string{g.Op("Sub", []string{b.scalar(1), m}), b.scalar(maskFilter)})
	return g.Op("Unsqueeze", []string{m, g.ConstInt64("axes", []int64{2}, 1, 2)})
}

// bertLayersFused is bertLayers with contrib kernels: Attention with the
// 2-D padding mask (its mask_filter_value default is −10000, med.py's
// constant), MultiHeadAttention for the cross-attention (projections as
// MatMuls, their biases added inside), SkipLayerNormalization and BiasGelu.
// In the last layer everything after the self-attention's keys and values is
// computed at position 0 only (with Int8, every layer at every position:
// the activation scales span the positions). It returns [B,1,H].
func (b *builder) bertLayersFused(x, mask, img string, c *Config) string {
	g, t := b.G, &c.Text
	H, I, NH, E := t.HiddenSize, t.IntermediateSize, t.NumHeads, t.EncoderWidth
	eps := t.LayerNormEps
	var mask32, ext string
	if b.Opts.Int8 {
		ext = b.extendedMask(mask)
	} else {
		mask32 = g.Op("Cast", []string{mask}, og.AttrInt("to", int64(og.Int32)))
	}
	first := func(v string) string {
		return g.Op("Slice", []string{v, g.ConstInt64("start", []int64{1}, 0), g.ConstInt64("end", []int64{1}, 1), g.ConstInt64("axis", []int64{1}, 1)})
	}
	for l := 0; l < t.NumLayers; l++ {
		last := l == t.NumLayers-1
		p := TextPrefix + "encoder.layer." + strconv.Itoa(l) + "."
		sa := p + "attention.self."
		wsrc := b.concatT([]string{sa + "query.weight", sa + "key.weight", sa + "value.weight"}, []int{H, H, H}, H)
		bsrc := b.concat(sa+"query.bias", sa+"key.bias", sa+"value.bias")
		var ctx string
		if b.Opts.Int8 {
			// Per-column int8 codes of q|k|v side by side are those of each
			// projection alone, and the three share their input's scale.
			qkv := b.LayerMatMul(x, sa+"qkv.weight", H, 3*H, wsrc, sa+"qkv.bias", bsrc)
			ctx = b.splitAttend(sa, qkv, ext, H, NH)
		} else {
			wqkv := g.Weight(sa+"qkv.weight", []int64{int64(H), int64(3 * H)}, wsrc)
			bqkv := g.Weight(sa+"qkv.bias", []int64{int64(3 * H)}, bsrc)
			ctx = g.OpMS("Attention", []string{x, wqkv, bqkv, mask32}, 1,
				og.AttrInt("num_heads", int64(NH)), og.AttrFloat("mask_filter_value", maskFilter))[0]
			if last {
				ctx, x = first(ctx), first(x)
			}
		}
		ctx = b.layerMatMulT(ctx, p+"attention.output.dense", H, H)
		a, _ := b.skipLayerNorm(ctx, x, p+"attention.output.LayerNorm", p+"attention.output.dense.bias", H, eps)

		ca := p + "crossattention.self."
		q := b.layerMatMulT(a, ca+"query", H, H)
		k := b.layerMatMulT(img, ca+"key", E, H)
		v := b.layerMatMulT(img, ca+"value", E, H)
		bias := g.Weight(ca+"qkv.bias", []int64{int64(3 * H)}, b.concat(ca+"query.bias", ca+"key.bias", ca+"value.bias"))
		cr := g.OpMS("MultiHeadAttention", []string{q, k, v, bias}, 1, og.AttrInt("num_heads", int64(NH)))[0]
		cr = b.layerMatMulT(cr, p+"crossattention.output.dense", H, H)
		cr, _ = b.skipLayerNorm(cr, a, p+"crossattention.output.LayerNorm", p+"crossattention.output.dense.bias", H, eps)

		f := b.layerMatMulT(cr, p+"intermediate.dense", H, I)
		f = g.OpMS("BiasGelu", []string{f, b.vec(p+"intermediate.dense.bias", I)}, 1)[0]
		f = b.layerMatMulT(f, p+"output.dense", I, H)
		x, _ = b.skipLayerNorm(f, cr, p+"output.LayerNorm", p+"output.dense.bias", H, eps)
	}
	if b.Opts.Int8 {
		x = first(x)
	}
	return x
}

// head is ImageReward's MLP on the hidden state at position 0 (five Linear
// layers, nothing between them: the dropouts are identity at inference),
// then (x − mean)/std; [B,S,H] → [B].
func (b *builder) head(x string, c *Config) string {
	g := b.G
	x = g.Op("Gather", []string{x, g.ConstInt64("pos0", []int64{}, 0)}, og.AttrInt("axis", 1))
	in := c.Text.HiddenSize
	for i, out := range headWidths {
		x = b.linear(x, HeadPrefix+strconv.Itoa(headIndices[i]), in, int(out))
		in = int(out)
	}
	x = g.Op("Reshape", []string{x, g.ConstInt64("flat", []int64{1}, -1)})
	return g.Op("Div", []string{g.Op("Sub", []string{x, b.scalar(ScoreMean)}), b.scalar(ScoreStd)})
}

// headFolded is head with the affine layers and the normalisation
// multiplied out in float64 when the graph is saved: score = x₀·w + β with
// w = (W7·W6·W4·W2·W0)ᵀ/std and β = (head(0) − mean)/std. x is [B,1,H].
func (b *builder) headFolded(x string, c *Config) string {
	g := b.G
	H := c.Text.HiddenSize
	var folded struct {
		done bool
		w    []float64
		beta float64
	}
	fold := func() error {
		if folded.done {
			return nil
		}
		w, beta, err := FoldHead(b.W, H)
		if err != nil {
			return err
		}
		folded.w, folded.beta, folded.done = w, beta, true
		return nil
	}
	wt := g.Weight("head.folded.weight", []int64{int64(H), 1}, func() ([]float32, error) {
		if err := fold(); err != nil {
			return nil, err
		}
		out := make([]float32, H)
		for i, v := range folded.w {
			out[i] = float32(v)
		}
		return out, nil
	})
	bias := g.Weight("head.folded.bias", []int64{1}, func() ([]float32, error) {
		if err := fold(); err != nil {
			return nil, err
		}
		return []float32{float32(folded.beta)}, nil
	})
	y := g.Op("Add", []string{g.Op("MatMul", []string{x, wt}), bias})
	return g.Op("Reshape", []string{y, g.ConstInt64("flat", []int64{1}, -1)})
}

// FoldHead multiplies ImageReward's head and normalisation out in float64:
// for a hidden state h of width H, (MLP(h) − ScoreMean)/ScoreStd = h·w + β,
// with w = W0ᵀ·W2ᵀ·W4ᵀ·W6ᵀ·W7ᵀ/std and β = (MLP(0) − mean)/std.
func FoldHead(w Weights, hidden int) (vec []float64, beta float64, err error) {
	type layer struct {
		W, b    []float32
		in, out int
	}
	var layers []layer
	in := hidden
	for li, out64 := range headWidths {
		out := int(out64)
		k := HeadPrefix + strconv.Itoa(headIndices[li])
		W, err := w.Float32(k + ".weight")
		if err != nil {
			return nil, 0, err
		}
		bias, err := w.Float32(k + ".bias")
		if err != nil {
			return nil, 0, err
		}
		if len(W) != out*in || len(bias) != out {
			return nil, 0, fmt.Errorf("head %s: shape differs from [%d %d]", k, out, in)
		}
		layers = append(layers, layer{W, bias, in, out})
		in = out
	}
	// β: the head applied to 0.
	x := make([]float64, hidden)
	for _, l := range layers {
		y := make([]float64, l.out)
		for o := range y {
			s := float64(l.b[o])
			for j := 0; j < l.in; j++ {
				s += float64(l.W[o*l.in+j]) * x[j]
			}
			y[o] = s
		}
		x = y
	}
	// w: the row vector [1] pulled back through the layers, last first.
	r := []float64{1}
	for li := len(layers) - 1; li >= 0; li-- {
		l := layers[li]
		next := make([]float64, l.in)
		for o := 0; o < l.out; o++ {
			for j := 0; j < l.in; j++ {
				next[j] += r[o] * float64(l.W[o*l.in+j])
			}
		}
		r = next
	}
	for i := range r {
		r[i] /= ScoreStd
	}
	return r, (x[0] - ScoreMean) / ScoreStd, nil
}
