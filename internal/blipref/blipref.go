// Package blipref is a plain float64 reference of ImageReward.score
// (THUDM/ImageReward: ImageReward.py, models/BLIP/vit.py and med.py), for
// checking the ONNX graphs models/blip writes. It favours readability over
// speed: slices of float64, explicit loops, one function per equation, meant
// for small models and single inputs.
//
// Equations (x a row vector, W a torch Linear weight [out, in]; Linear,
// LayerNorm, Softmax and GELU are clipref's, the same torch definitions):
//
//	Linear(x)     = W·x + b
//	LN(x)         = (x − mean(x)) / sqrt(var(x) + eps) · γ + β   (biased variance)
//	Attn(q,k,v)   = concat_h softmax(q_h·k_hᵀ/√d + mask) · v_h
//
// ViT (vit.py, pre-norm, eps 1e-6, exact GELU):
//
//	x₀      = [cls_token; Conv_P(pixels) patches row by row] + pos_embed
//	y       = x + proj(Attn(qkv(LN1(x))))          qkv: one Linear, q|k|v
//	x'      = y + fc2(GELU(fc1(LN2(y))))
//	tokens  = LN_norm(x_depth)                       all N+1 tokens
//
// BERT with cross-attention (med.py, post-norm, eps layer_norm_eps):
//
//	e       = LN(word[ids] + pos[0..L))              no token-type embeddings
//	a       = LN(x + dense(Attn(q(x), k(x), v(x), (1 − mask)·−10000)))
//	c       = LN(a + dense(Attn(q(a), k(tokens), v(tokens))))   image mask all ones
//	x'      = LN(c + dense₂(GELU(dense₁(c))))
//	h       = x_layers[0]                            position 0 ([CLS])
//	score   = (L7(L6(L4(L2(L0(h))))) − 0.16717362830052426) / 1.0333394966054072
package blipref

import (
	"fmt"
	"math"
	"slices"

	"github.com/icthp/icthp/internal/clipref"
	"github.com/icthp/icthp/models/blip"
)

// Score normalisation constants of ImageReward.__init__ (self.mean,
// self.std), written out here independently of models/blip.
const (
	Mean = 0.16717362830052426
	Std  = 1.0333394966054072
)

// MaskValue is med.py's extended attention mask constant:
// (1.0 − mask) · −10000.0.
const MaskValue = -10000.0

// ---------------------------------------------------------------------------
// Elementary pieces

// Attention is multi-head scaled dot-product attention of queries q ([S][D])
// over keys k and values v ([T][D]), D split into heads of D/heads.
// bias is nil or an additive score per key (length T), the same for every
// query and head (a padding mask).
func Attention(q, k, v [][]float64, heads int, bias []float64) [][]float64 {
	S, T, D := len(q), len(k), len(q[0])
	hd := D / heads
	scale := 1 / math.Sqrt(float64(hd))
	out := make([][]float64, S)
	for i := range out {
		out[i] = make([]float64, D)
	}
	for h := 0; h < heads; h++ {
		off := h * hd
		for i := 0; i < S; i++ {
			scores := make([]float64, T)
			for j := 0; j < T; j++ {
				dot := 0.0
				for d := 0; d < hd; d++ {
					dot += q[i][off+d] * k[j][off+d]
				}
				scores[j] = dot * scale
				if bias != nil {
					scores[j] += bias[j]
				}
			}
			p := clipref.Softmax(scores)
			for j := 0; j < T; j++ {
				for d := 0; d < hd; d++ {
					out[i][off+d] += p[j] * v[j][off+d]
				}
			}
		}
	}
	return out
}

func add(a, b []float64) []float64 {
	y := make([]float64, len(a))
	for i := range a {
		y[i] = a[i] + b[i]
	}
	return y
}

// rows applies f to every row.
func rows(x [][]float64, f func([]float64) []float64) [][]float64 {
	y := make([][]float64, len(x))
	for i, r := range x {
		y[i] = f(r)
	}
	return y
}

// ---------------------------------------------------------------------------
// Reading weights

// tensor reads one parameter as float64, checking its shape.
func tensor(w blip.Weights, name string, shape ...int) ([]float64, error) {
	got, ok := w.Shape(name)
	if !ok {
		return nil, fmt.Errorf("blipref: missing weight %s", name)
	}
	want := make([]int64, len(shape))
	n := int64(1)
	for i, d := range shape {
		want[i] = int64(d)
		n *= int64(d)
	}
	if !slices.Equal(got, want) {
		return nil, fmt.Errorf("blipref: weight %s has shape %v, want %v", name, got, want)
	}
	data, err := w.Float32(name)
	if err != nil {
		return nil, fmt.Errorf("blipref: weight %s: %w", name, err)
	}
	if int64(len(data)) != n {
		return nil, fmt.Errorf("blipref: weight %s has %d values, want %d", name, len(data), n)
	}
	out := make([]float64, len(data))
	for i, v := range data {
		out[i] = float64(v)
	}
	return out, nil
}

// reader reads tensors and keeps the first error.
type reader struct {
	w   blip.Weights
	err error
}

func (r *reader) get(name string, shape ...int) []float64 {
	if r.err != nil {
		return nil
	}
	v, err := tensor(r.w, name, shape...)
	if err != nil {
		r.err = err
	}
	return v
}

// linearW is a torch Linear's weight and bias.
type linearW struct {
	W, b    []float64
	in, out int
}

func (r *reader) linear(name string, in, out int) linearW {
	return linearW{r.get(name+".weight", out, in), r.get(name+".bias", out), in, out}
}

// seqLinear applies a torch Linear (W [out, in], bias b) to every row of
// one sequence x [S][in]: floatLinear row by row, or clipref.Int8Linear (int8.go),
// whose activation scale is taken over the whole sequence.
type seqLinear func(x [][]float64, W, b []float64, out, in int) [][]float64

func floatLinear(x [][]float64, W, b []float64, out, in int) [][]float64 {
	y := make([][]float64, len(x))
	for s := range x {
		y[s] = clipref.Linear(x[s], W, b, out, in)
	}
	return y
}

// seq applies the Linear to a sequence with lin.
func (l linearW) seq(x [][]float64, lin seqLinear) [][]float64 { return lin(x, l.W, l.b, l.out, l.in) }

type normW struct {
	g, b []float64
	eps  float64
}

func (r *reader) norm(name string, n int, eps float64) normW {
	return normW{r.get(name+".weight", n), r.get(name+".bias", n), eps}
}

func (n normW) apply(x []float64) []float64 { return clipref.LayerNorm(x, n.g, n.b, n.eps) }

// ---------------------------------------------------------------------------
// ViT

// ImageTokens is BLIP's VisionTransformer.forward (the output of
// blip.visual_encoder): pixels is n preprocessed images, NCHW, 3×S×S each;
// it returns, per image, the N+1 tokens of width Dv after the final norm.
func ImageTokens(cfg *blip.Config, w blip.Weights, pixels []float32, n int) ([][][]float64, error) {
	return imageTokens(cfg, w, pixels, n, floatLinear)
}

func imageTokens(cfg *blip.Config, w blip.Weights, pixels []float32, n int, lin seqLinear) ([][][]float64, error) {
	v := &cfg.Vision
	D, P, S, M := v.Width, v.PatchSize, v.ImageSize, int(float64(v.Width)*v.MLPRatio)
	G := S / P
	T := G*G + 1
	if n < 0 || len(pixels) != n*3*S*S {
		return nil, fmt.Errorf("blipref: %d pixel values for %d images of 3×%d×%d", len(pixels), n, S, S)
	}
	pre := "blip.visual_encoder."
	r := &reader{w: w}
	cls := r.get(pre+"cls_token", 1, 1, D)
	pos := r.get(pre+"pos_embed", 1, T, D)
	kernel := r.get(pre+"patch_embed.proj.weight", D, 3, P, P)
	kbias := r.get(pre+"patch_embed.proj.bias", D)
	type block struct {
		norm1, norm2 normW
		qkv, proj    linearW
		fc1, fc2     linearW
	}
	blocks := make([]block, v.Depth)
	for l := range blocks {
		p := fmt.Sprintf("%sblocks.%d.", pre, l)
		blocks[l] = block{
			norm1: r.norm(p+"norm1", D, v.LayerNormEps),
			qkv:   r.linear(p+"attn.qkv", D, 3*D),
			proj:  r.linear(p+"attn.proj", D, D),
			norm2: r.norm(p+"norm2", D, v.LayerNormEps),
			fc1:   r.linear(p+"mlp.fc1", D, M),
			fc2:   r.linear(p+"mlp.fc2", M, D),
		}
	}
	final := r.norm(pre+"norm", D, v.LayerNormEps)
	if r.err != nil {
		return nil, r.err
	}

	out := make([][][]float64, n)
	for b := 0; b < n; b++ {
		img := pixels[b*3*S*S : (b+1)*3*S*S]
		// The class token in front of the patches; pos_embed added.
		x := append([][]float64{slices.Clone(cls)}, patchEmbed(img, kernel, kbias, D, P, S)...)
		for t := 0; t < T; t++ {
			x[t] = add(x[t], pos[t*D:(t+1)*D])
		}
		for _, bl := range blocks {
			y := rows(x, bl.norm1.apply)
			qkv := bl.qkv.seq(y, lin)
			q := rows(qkv, func(r []float64) []float64 { return r[:D] })
			k := rows(qkv, func(r []float64) []float64 { return r[D : 2*D] })
			vv := rows(qkv, func(r []float64) []float64 { return r[2*D:] })
			a := bl.proj.seq(Attention(q, k, vv, v.NumHeads, nil), lin)
			for t := range x {
				x[t] = add(x[t], a[t])
			}
			h := bl.fc1.seq(rows(x, bl.norm2.apply), lin)
			for _, r := range h {
				for i := range r {
					r[i] = clipref.GELU(r[i])
				}
			}
			m := bl.fc2.seq(h, lin)
			for t := range x {
				x[t] = add(x[t], m[t])
			}
		}
		out[b] = rows(x, final.apply)
	}
	return out, nil
}

// patchEmbed is PatchEmbed: Conv2d(3, D, kernel P, stride P, bias) over one
// 3×S×S image, its (S/P)² outputs flattened row by row.
func patchEmbed(img []float32, kernel, kbias []float64, D, P, S int) [][]float64 {
	G := S / P
	x := make([][]float64, G*G)
	for gy := 0; gy < G; gy++ {
		for gx := 0; gx < G; gx++ {
			e := make([]float64, D)
			for d := 0; d < D; d++ {
				s := kbias[d]
				for c := 0; c < 3; c++ {
					for ky := 0; ky < P; ky++ {
						for kx := 0; kx < P; kx++ {
							s += kernel[((d*3+c)*P+ky)*P+kx] * float64(img[(c*S+gy*P+ky)*S+gx*P+kx])
						}
					}
				}
				e[d] = s
			}
			x[gy*G+gx] = e
		}
	}
	return x
}

// ---------------------------------------------------------------------------
// BERT

type bertAttention struct {
	q, k, v, dense linearW
	norm           normW
}

func (r *reader) bertAttention(prefix string, h, kvIn int, eps float64) bertAttention {
	return bertAttention{
		q:     r.linear(prefix+"self.query", h, h),
		k:     r.linear(prefix+"self.key", kvIn, h),
		v:     r.linear(prefix+"self.value", kvIn, h),
		dense: r.linear(prefix+"output.dense", h, h),
		norm:  r.norm(prefix+"output.LayerNorm", h, eps),
	}
}

// apply is BertAttention: BertSelfAttention of x over kv (x itself for
// self-attention, the image tokens for cross-attention), then BertSelfOutput
// LN(dense(ctx) + x).
func (a bertAttention) apply(x, kv [][]float64, heads int, bias []float64, lin seqLinear) [][]float64 {
	ctx := Attention(a.q.seq(x, lin), a.k.seq(kv, lin), a.v.seq(kv, lin), heads, bias)
	d := a.dense.seq(ctx, lin)
	out := make([][]float64, len(x))
	for i := range x {
		out[i] = a.norm.apply(add(d[i], x[i]))
	}
	return out
}

// TextHidden is med.py's BertModel.forward in mode 'multimodal' for one row
// (ids and mask of the same length L) with cross-attention to tokens (the
// image tokens, all attended: ImageReward's image_atts is all ones), and
// returns last_hidden_state — all L positions.
func TextHidden(cfg *blip.Config, w blip.Weights, ids, mask []int64, tokens [][]float64) ([][]float64, error) {
	return textHidden(cfg, w, ids, mask, tokens, floatLinear)
}

func textHidden(cfg *blip.Config, w blip.Weights, ids, mask []int64, tokens [][]float64, lin seqLinear) ([][]float64, error) {
	t := &cfg.Text
	H, I, E := t.HiddenSize, t.IntermediateSize, cfg.Vision.Width
	L := len(ids)
	if L == 0 || L != len(mask) || L > t.MaxPositions {
		return nil, fmt.Errorf("blipref: %d ids and %d mask values (max positions %d)", L, len(mask), t.MaxPositions)
	}
	for _, tok := range tokens {
		if len(tok) != E {
			return nil, fmt.Errorf("blipref: image token of width %d, want %d", len(tok), E)
		}
	}
	pre := "blip.text_encoder."
	r := &reader{w: w}
	word := r.get(pre+"embeddings.word_embeddings.weight", t.VocabSize, H)
	pos := r.get(pre+"embeddings.position_embeddings.weight", t.MaxPositions, H)
	embNorm := r.norm(pre+"embeddings.LayerNorm", H, t.LayerNormEps)
	type layer struct {
		self, cross bertAttention
		inter, outp linearW
		outNorm     normW
	}
	layers := make([]layer, t.NumLayers)
	for l := range layers {
		p := fmt.Sprintf("%sencoder.layer.%d.", pre, l)
		layers[l] = layer{
			self:    r.bertAttention(p+"attention.", H, H, t.LayerNormEps),
			cross:   r.bertAttention(p+"crossattention.", H, E, t.LayerNormEps),
			inter:   r.linear(p+"intermediate.dense", H, I),
			outp:    r.linear(p+"output.dense", I, H),
			outNorm: r.norm(p+"output.LayerNorm", H, t.LayerNormEps),
		}
	}
	if r.err != nil {
		return nil, r.err
	}

	// get_extended_attention_mask (encoder, 2-D mask): (1 − mask)·−10000
	// on the keys.
	bias := make([]float64, L)
	for j, m := range mask {
		bias[j] = (1 - float64(m)) * MaskValue
	}
	x := make([][]float64, L)
	for s, id := range ids {
		if id < 0 || id >= int64(t.VocabSize) {
			return nil, fmt.Errorf("blipref: token id %d outside the vocabulary of %d", id, t.VocabSize)
		}
		x[s] = embNorm.apply(add(word[int(id)*H:int(id+1)*H], pos[s*H:(s+1)*H]))
	}
	for _, l := range layers {
		a := l.self.apply(x, x, t.NumHeads, bias, lin)
		c := l.cross.apply(a, tokens, t.NumHeads, nil, lin)
		h := l.inter.seq(c, lin)
		for _, r := range h {
			for i := range r {
				r[i] = clipref.GELU(r[i])
			}
		}
		o := l.outp.seq(h, lin)
		for s := range x {
			x[s] = l.outNorm.apply(add(o[s], c[s]))
		}
	}
	return x, nil
}

// HeadIndices are the nn.Sequential indices of the reward head's Linear
// layers (Dropouts at 1, 3, 5 hold no parameters).
var HeadIndices = []int{0, 2, 4, 6, 7}

// HeadWidths are their output widths.
var HeadWidths = []int{1024, 128, 64, 16, 1}

// Head is ImageReward's MLP on a hidden state: five Linear layers with
// nothing between them (dropouts are identity at inference). It returns the
// raw reward, before normalisation.
func Head(w blip.Weights, h []float64) (float64, error) {
	x := h
	for i, idx := range HeadIndices {
		in, out := len(x), HeadWidths[i]
		W, err := tensor(w, fmt.Sprintf("mlp.layers.%d.weight", idx), out, in)
		if err != nil {
			return 0, err
		}
		b, err := tensor(w, fmt.Sprintf("mlp.layers.%d.bias", idx), out)
		if err != nil {
			return 0, err
		}
		x = clipref.Linear(x, W, b, out, in)
	}
	return x[0], nil
}

// Normalize is (x − Mean) / Std.
func Normalize(x float64) float64 { return (x - Mean) / Std }

// Scores is ImageReward.score for n (prompt, image) pairs: pixels as in
// ImageTokens, ids and mask n rows of L (row-major). It returns the
// normalised rewards and the image tokens it computed.
func Scores(cfg *blip.Config, w blip.Weights, pixels []float32, ids, mask []int64, n int) ([]float64, [][][]float64, error) {
	return scores(cfg, w, pixels, ids, mask, n, floatLinear)
}

func scores(cfg *blip.Config, w blip.Weights, pixels []float32, ids, mask []int64, n int, lin seqLinear) ([]float64, [][][]float64, error) {
	if n <= 0 || len(ids)%n != 0 || len(mask) != len(ids) {
		return nil, nil, fmt.Errorf("blipref: %d ids and %d mask values do not make %d rows", len(ids), len(mask), n)
	}
	L := len(ids) / n
	tokens, err := imageTokens(cfg, w, pixels, n, lin)
	if err != nil {
		return nil, nil, err
	}
	res := make([]float64, n)
	for b := 0; b < n; b++ {
		hid, err := textHidden(cfg, w, ids[b*L:(b+1)*L], mask[b*L:(b+1)*L], tokens[b], lin)
		if err != nil {
			return nil, nil, err
		}
		raw, err := Head(w, hid[0])
		if err != nil {
			return nil, nil, err
		}
		res[b] = Normalize(raw)
	}
	return res, tokens, nil
}
