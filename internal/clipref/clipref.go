// Package clipref is a plain float64 reference of Hugging Face transformers'
// CLIPModel.get_image_features and get_text_features (as in transformers 4.27,
// modeling_clip.py) and of the HP reward head, for checking the ONNX graphs the
// builder writes. It favours readability over speed: slices of float64,
// explicit loops, one function per equation. It is meant for small models and
// single inputs at real sizes, not for serving.
//
// Equations (x a row vector, W a torch Linear weight [out, in]):
//
//	Linear(x)       = W·x + b
//	LayerNorm(x)    = (x − mean(x)) / sqrt(var(x) + eps) · γ + β    (biased variance)
//	Attention(x)    = out_proj(concat_h softmax(q_h·k_hᵀ·d^-½ + mask) · v_h)
//	Layer(x)        = y + fc2(act(fc1(LN2(y)))),  y = x + Attention(LN1(x))
//	image_embeds    = visual_projection(post_layernorm(Layers(pre_layrnorm(E_img))[0]))
//	text_embeds     = text_projection(final_layer_norm(Layers_causal(E_txt))[argmax ids])
//	hp_logit        = L7(L6(L4(L2(L0(image_embeds)))))
package clipref

import (
	"fmt"
	"math"
	"slices"

	"github.com/icthp/icthp/models/clip"
)

// ---------------------------------------------------------------------------
// Elementary pieces

// GELU is the exact GELU, x·Φ(x) = ½x(1 + erf(x/√2)) (torch's default gelu).
func GELU(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }

// QuickGELU is x·σ(1.702x), transformers' quick_gelu.
func QuickGELU(x float64) float64 { return x / (1 + math.Exp(-1.702*x)) }

// GELUTanh is the tanh approximation, transformers' gelu_new:
// ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
func GELUTanh(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
}

// Activate applies the named activation to x.
func Activate(act clip.Activation, x float64) (float64, error) {
	switch act {
	case clip.GELU:
		return GELU(x), nil
	case clip.QuickGELU:
		return QuickGELU(x), nil
	case clip.GELUTanh:
		return GELUTanh(x), nil
	}
	return 0, fmt.Errorf("clipref: unsupported activation %q", act)
}

// Linear returns W·x + b for a torch Linear weight W of shape [out, in]
// (row-major) and bias b of length out; b may be nil (no bias).
func Linear(x, W, b []float64, out, in int) []float64 {
	y := make([]float64, out)
	for o := 0; o < out; o++ {
		s := 0.0
		if b != nil {
			s = b[o]
		}
		row := W[o*in : (o+1)*in]
		for i := 0; i < in; i++ {
			s += row[i] * x[i]
		}
		y[o] = s
	}
	return y
}

// seqLinear applies a torch Linear (W [out, in], bias b or nil) to every row
// of one sequence x [S][in]: Linear row by row in float64, or the int8
// scheme of int8.go, whose activation scale is taken over the sequence.
type seqLinear func(x [][]float64, W, b []float64, out, in int) [][]float64

func floatLinear(x [][]float64, W, b []float64, out, in int) [][]float64 {
	y := make([][]float64, len(x))
	for s := range x {
		y[s] = Linear(x[s], W, b, out, in)
	}
	return y
}

// LayerNorm normalises x over its length with the biased variance, then
// scales by gamma and shifts by beta, as torch.nn.LayerNorm.
func LayerNorm(x, gamma, beta []float64, eps float64) []float64 {
	n := float64(len(x))
	mean := 0.0
	for _, v := range x {
		mean += v
	}
	mean /= n
	variance := 0.0
	for _, v := range x {
		variance += (v - mean) * (v - mean)
	}
	variance /= n
	inv := 1 / math.Sqrt(variance+eps)
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = (v-mean)*inv*gamma[i] + beta[i]
	}
	return y
}

// Softmax returns exp(x_i − max) / Σ exp(x_j − max). Entries of −Inf get
// exactly 0. At least one entry must be finite.
func Softmax(x []float64) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, v)
	}
	y := make([]float64, len(x))
	sum := 0.0
	for i, v := range x {
		y[i] = math.Exp(v - m)
		sum += y[i]
	}
	for i := range y {
		y[i] /= sum
	}
	return y
}

// CausalMask is the L×L additive mask of CLIP's text tower: 0 on and below
// the diagonal (a token sees itself and the tokens before it), −Inf above.
// transformers fills the upper triangle with the dtype's most negative value;
// after softmax both give 0.
func CausalMask(L int) [][]float64 {
	m := make([][]float64, L)
	for i := range m {
		m[i] = make([]float64, L)
		for j := i + 1; j < L; j++ {
			m[i][j] = math.Inf(-1)
		}
	}
	return m
}

// PoolIndex is the position the text tower pools at: the first position of
// the largest id in the row (torch's argmax; the first <end_of_text> for CLIP
// token ids). It is not config.eos_token_id (SPEC §1).
func PoolIndex(ids []int64) int {
	best := 0
	for i, id := range ids {
		if id > ids[best] {
			best = i
		}
	}
	return best
}

// Normalize returns v / ‖v‖₂ (v itself, copied, when its norm is 0).
func Normalize(v []float64) []float64 {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	y := slices.Clone(v)
	if s == 0 {
		return y
	}
	n := math.Sqrt(s)
	for i := range y {
		y[i] /= n
	}
	return y
}

// Cosine is the cosine similarity of a and b: the dot product of their
// L2-normalised forms (ICT's score).
func Cosine(a, b []float64) float64 {
	na, nb := Normalize(a), Normalize(b)
	s := 0.0
	for i := range na {
		s += na[i] * nb[i]
	}
	return s
}

// Sigmoid is 1/(1+e^−x) (HP = Sigmoid(HPLogit)).
func Sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// ---------------------------------------------------------------------------
// Reading weights

// tensor reads one parameter as float64, checking that it exists and has the
// expected shape.
func tensor(w clip.Weights, name string, shape ...int) ([]float64, error) {
	got, ok := w.Shape(name)
	if !ok {
		return nil, fmt.Errorf("clipref: missing weight %s", name)
	}
	want := make([]int64, len(shape))
	for i, d := range shape {
		want[i] = int64(d)
	}
	if !slices.Equal(got, want) {
		return nil, fmt.Errorf("clipref: weight %s has shape %v, want %v", name, got, want)
	}
	data, err := w.Float32(name)
	if err != nil {
		return nil, fmt.Errorf("clipref: weight %s: %w", name, err)
	}
	if int64(len(data)) != Numel(want) {
		return nil, fmt.Errorf("clipref: weight %s has %d values, want %d", name, len(data), Numel(want))
	}
	out := make([]float64, len(data))
	for i, v := range data {
		out[i] = float64(v)
	}
	return out, nil
}

// tensorSpec names one tensor to read into dst.
type tensorSpec struct {
	dst   *[]float64
	name  string
	shape []int
}

func readAll(w clip.Weights, specs []tensorSpec) error {
	for _, s := range specs {
		v, err := tensor(w, s.name, s.shape...)
		if err != nil {
			return err
		}
		*s.dst = v
	}
	return nil
}

// layer holds the weights of one encoder layer.
type layer struct {
	ln1W, ln1B             []float64
	qW, qB, kW, kB, vW, vB []float64
	oW, oB                 []float64
	ln2W, ln2B             []float64
	fc1W, fc1B, fc2W, fc2B []float64
}

func readLayer(w clip.Weights, prefix string, t *clip.TowerConfig) (*layer, error) {
	D, I := t.HiddenSize, t.IntermediateSize
	var l layer
	var specs []tensorSpec
	// weightBias reads a Linear's weight [out, in] (a LayerNorm's [out]) and
	// its bias [out].
	weightBias := func(wt, b *[]float64, name string, out int, in ...int) {
		specs = append(specs, tensorSpec{wt, prefix + name + ".weight", append([]int{out}, in...)},
			tensorSpec{b, prefix + name + ".bias", []int{out}})
	}
	weightBias(&l.ln1W, &l.ln1B, "layer_norm1", D)
	weightBias(&l.qW, &l.qB, "self_attn.q_proj", D, D)
	weightBias(&l.kW, &l.kB, "self_attn.k_proj", D, D)
	weightBias(&l.vW, &l.vB, "self_attn.v_proj", D, D)
	weightBias(&l.oW, &l.oB, "self_attn.out_proj", D, D)
	weightBias(&l.ln2W, &l.ln2B, "layer_norm2", D)
	weightBias(&l.fc1W, &l.fc1B, "mlp.fc1", I, D)
	weightBias(&l.fc2W, &l.fc2B, "mlp.fc2", D, I)
	err := readAll(w, specs)
	if err != nil {
		return nil, err
	}
	return &l, nil
}

// ---------------------------------------------------------------------------
// Transformer

// attention is CLIPAttention on one sequence x ([S][D]). mask is nil or an
// additive [S][S] mask.
func attention(x [][]float64, l *layer, heads int, mask [][]float64, lin seqLinear) [][]float64 {
	S, D := len(x), len(x[0])
	hd := D / heads
	scale := math.Pow(float64(hd), -0.5)
	q := lin(x, l.qW, l.qB, D, D)
	k := lin(x, l.kW, l.kB, D, D)
	v := lin(x, l.vW, l.vB, D, D)
	for s := 0; s < S; s++ {
		for i := range q[s] {
			q[s][i] *= scale // transformers 4.27 scales q before q·kᵀ
		}
	}
	ctx := make([][]float64, S)
	for s := range ctx {
		ctx[s] = make([]float64, D)
	}
	for h := 0; h < heads; h++ {
		off := h * hd
		for i := 0; i < S; i++ {
			scores := make([]float64, S)
			for j := 0; j < S; j++ {
				dot := 0.0
				for d := 0; d < hd; d++ {
					dot += q[i][off+d] * k[j][off+d]
				}
				if mask != nil {
					dot += mask[i][j]
				}
				scores[j] = dot
			}
			p := Softmax(scores)
			for j := 0; j < S; j++ {
				for d := 0; d < hd; d++ {
					ctx[i][off+d] += p[j] * v[j][off+d]
				}
			}
		}
	}
	return lin(ctx, l.oW, l.oB, D, D)
}

// encoderLayer is CLIPEncoderLayer (pre-LN) on one sequence.
func encoderLayer(x [][]float64, l *layer, t *clip.TowerConfig, mask [][]float64, lin seqLinear) ([][]float64, error) {
	D, I := t.HiddenSize, t.IntermediateSize
	S := len(x)
	normed := make([][]float64, S)
	for s := 0; s < S; s++ {
		normed[s] = LayerNorm(x[s], l.ln1W, l.ln1B, t.LayerNormEps)
	}
	att := attention(normed, l, t.NumHeads, mask, lin)
	y := make([][]float64, S)
	for s := 0; s < S; s++ {
		y[s] = make([]float64, D)
		for d := 0; d < D; d++ {
			y[s][d] = x[s][d] + att[s][d]
		}
	}
	for s := 0; s < S; s++ {
		normed[s] = LayerNorm(y[s], l.ln2W, l.ln2B, t.LayerNormEps)
	}
	h := lin(normed, l.fc1W, l.fc1B, I, D)
	for s := range h {
		for i := range h[s] {
			a, err := Activate(t.HiddenAct, h[s][i])
			if err != nil {
				return nil, err
			}
			h[s][i] = a
		}
	}
	m := lin(h, l.fc2W, l.fc2B, D, I)
	out := make([][]float64, S)
	for s := 0; s < S; s++ {
		out[s] = make([]float64, D)
		for d := 0; d < D; d++ {
			out[s][d] = y[s][d] + m[s][d]
		}
	}
	return out, nil
}

// encoder runs every layer of a tower ("vision_model" or "text_model") over
// one sequence.
func encoder(w clip.Weights, tower string, t *clip.TowerConfig, x [][]float64, mask [][]float64, lin seqLinear) ([][]float64, error) {
	for i := 0; i < t.NumLayers; i++ {
		l, err := readLayer(w, fmt.Sprintf("%s.encoder.layers.%d.", tower, i), t)
		if err != nil {
			return nil, err
		}
		x, err = encoderLayer(x, l, t, mask, lin)
		if err != nil {
			return nil, err
		}
	}
	return x, nil
}

// ---------------------------------------------------------------------------
// Towers

// ImageFeatures is CLIPModel.get_image_features: pixels is n images, NCHW,
// num_channels × image_size × image_size each, already preprocessed. It
// returns n embeddings of length projection_dim (not normalised).
func ImageFeatures(cfg *clip.Config, w clip.Weights, pixels []float32, n int) ([][]float64, error) {
	return imageFeatures(cfg, w, pixels, n, floatLinear)
}

func imageFeatures(cfg *clip.Config, w clip.Weights, pixels []float32, n int, lin seqLinear) ([][]float64, error) {
	v := &cfg.Vision
	D, P, C, H := v.HiddenSize, v.PatchSize, channels(v), v.ImageSize
	G := H / P // patches per side
	S := G*G + 1
	if n < 0 || len(pixels) != n*C*H*H {
		return nil, fmt.Errorf("clipref: %d pixel values for %d images of %d×%d×%d", len(pixels), n, C, H, H)
	}
	var classEmb, patchW, posEmb, preW, preB, postW, postB, proj []float64
	err := readAll(w, []tensorSpec{
		{&classEmb, "vision_model.embeddings.class_embedding", []int{D}},
		{&patchW, "vision_model.embeddings.patch_embedding.weight", []int{D, C, P, P}},
		{&posEmb, "vision_model.embeddings.position_embedding.weight", []int{S, D}},
		{&preW, "vision_model.pre_layrnorm.weight", []int{D}},
		{&preB, "vision_model.pre_layrnorm.bias", []int{D}},
		{&postW, "vision_model.post_layernorm.weight", []int{D}},
		{&postB, "vision_model.post_layernorm.bias", []int{D}},
		{&proj, "visual_projection.weight", []int{cfg.ProjectionDim, D}},
	})
	if err != nil {
		return nil, err
	}

	feats := make([][]float64, n)
	for b := 0; b < n; b++ {
		img := pixels[b*C*H*H : (b+1)*C*H*H]
		pixel := func(c, y, x int) float64 { return float64(img[(c*H+y)*H+x]) }

		// Embeddings: class token, then the patches row by row (Conv2d with
		// stride = kernel = patch, no bias), plus position embeddings.
		x := make([][]float64, S)
		x[0] = slices.Clone(classEmb)
		for gy := 0; gy < G; gy++ {
			for gx := 0; gx < G; gx++ {
				e := make([]float64, D)
				for d := 0; d < D; d++ {
					s := 0.0
					for c := 0; c < C; c++ {
						for ky := 0; ky < P; ky++ {
							for kx := 0; kx < P; kx++ {
								s += patchW[((d*C+c)*P+ky)*P+kx] * pixel(c, gy*P+ky, gx*P+kx)
							}
						}
					}
					e[d] = s
				}
				x[1+gy*G+gx] = e
			}
		}
		for s := 0; s < S; s++ {
			for d := 0; d < D; d++ {
				x[s][d] += posEmb[s*D+d]
			}
			x[s] = LayerNorm(x[s], preW, preB, v.LayerNormEps)
		}

		x, err = encoder(w, "vision_model", v, x, nil, lin)
		if err != nil {
			return nil, err
		}

		pooled := LayerNorm(x[0], postW, postB, v.LayerNormEps)
		feats[b] = Linear(pooled, proj, nil, cfg.ProjectionDim, D)
	}
	return feats, nil
}

// TextFeatures is CLIPModel.get_text_features: ids is n rows of L token ids
// (row-major, L = len(ids)/n ≤ max_position_embeddings), with no attention
// mask beyond the causal one. It returns n embeddings of length
// projection_dim (not normalised), pooled at PoolIndex of each row.
func TextFeatures(cfg *clip.Config, w clip.Weights, ids []int64, n int) ([][]float64, error) {
	return textFeatures(cfg, w, ids, n, floatLinear)
}

func textFeatures(cfg *clip.Config, w clip.Weights, ids []int64, n int, lin seqLinear) ([][]float64, error) {
	t := &cfg.Text
	D := t.HiddenSize
	if n <= 0 || len(ids)%n != 0 {
		return nil, fmt.Errorf("clipref: %d token ids do not make %d rows", len(ids), n)
	}
	L := len(ids) / n
	if L == 0 || L > t.MaxPositions {
		return nil, fmt.Errorf("clipref: sequence length %d not in [1, %d]", L, t.MaxPositions)
	}
	var tokEmb, posEmb, finW, finB, proj []float64
	err := readAll(w, []tensorSpec{
		{&tokEmb, "text_model.embeddings.token_embedding.weight", []int{t.VocabSize, D}},
		{&posEmb, "text_model.embeddings.position_embedding.weight", []int{t.MaxPositions, D}},
		{&finW, "text_model.final_layer_norm.weight", []int{D}},
		{&finB, "text_model.final_layer_norm.bias", []int{D}},
		{&proj, "text_projection.weight", []int{cfg.ProjectionDim, D}},
	})
	if err != nil {
		return nil, err
	}
	mask := CausalMask(L)

	feats := make([][]float64, n)
	for b := 0; b < n; b++ {
		row := ids[b*L : (b+1)*L]
		x := make([][]float64, L)
		for s, id := range row {
			if id < 0 || id >= int64(t.VocabSize) {
				return nil, fmt.Errorf("clipref: token id %d outside vocabulary of %d", id, t.VocabSize)
			}
			x[s] = make([]float64, D)
			for d := 0; d < D; d++ {
				x[s][d] = tokEmb[int(id)*D+d] + posEmb[s*D+d]
			}
		}

		x, err = encoder(w, "text_model", t, x, mask, lin)
		if err != nil {
			return nil, err
		}

		// transformers applies final_layer_norm to every position and then
		// picks one; LayerNorm is per position, so normalising only the
		// pooled one is the same.
		pooled := LayerNorm(x[PoolIndex(row)], finW, finB, t.LayerNormEps)
		feats[b] = Linear(pooled, proj, nil, cfg.ProjectionDim, D)
	}
	return feats, nil
}

// HPLogit is the HP head on one image embedding (get_image_features of the HP
// backbone, not normalised): layers.0 → layers.2 → layers.4 → layers.6 →
// layers.7, Linear layers with biases and nothing between them. Each layer's
// width is read from its weight. HP = Sigmoid(HPLogit).
func HPLogit(head clip.Weights, emb []float64) (float64, error) {
	x := emb
	for _, hl := range HeadLayers {
		wName := fmt.Sprintf("layers.%d.weight", hl.Index)
		shape, ok := head.Shape(wName)
		if !ok || len(shape) != 2 {
			return 0, fmt.Errorf("clipref: head weight %s missing or not 2-D", wName)
		}
		out, in := int(shape[0]), int(shape[1])
		if in != len(x) {
			return 0, fmt.Errorf("clipref: head %s takes %d inputs, got %d", wName, in, len(x))
		}
		W, err := tensor(head, wName, out, in)
		if err != nil {
			return 0, err
		}
		b, err := tensor(head, fmt.Sprintf("layers.%d.bias", hl.Index), out)
		if err != nil {
			return 0, err
		}
		x = Linear(x, W, b, out, in)
	}
	if len(x) != 1 {
		return 0, fmt.Errorf("clipref: head ends with %d outputs, want 1", len(x))
	}
	return x[0], nil
}
