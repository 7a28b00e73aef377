package clipref

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/icthp/icthp/models/clip"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol || math.IsNaN(got) {
		t.Errorf("%s = %.17g, want %.17g (tol %g)", what, got, want, tol)
	}
}

func TestActivations(t *testing.T) {
	// Values from torch float64: F.gelu, x*sigmoid(1.702x), F.gelu(approximate="tanh").
	for _, c := range []struct {
		x, gelu, quick, tanh float64
	}{
		{1, 0.8413447460685429, 0.8457957659328212, 0.8411919906082768},
		{-1, -0.15865525393145702, -0.1542042340671787, -0.15880800939172324},
		{0.5, 0.34573123063700656, 0.35038843660638014, 0.34571400982514394},
		{0, 0, 0, 0},
	} {
		near(t, "GELU", GELU(c.x), c.gelu, 1e-15)
		near(t, "QuickGELU", QuickGELU(c.x), c.quick, 1e-15)
		near(t, "GELUTanh", GELUTanh(c.x), c.tanh, 1e-15)
		for act, want := range map[clip.Activation]float64{clip.GELU: c.gelu, clip.QuickGELU: c.quick, clip.GELUTanh: c.tanh} {
			got, err := Activate(act, c.x)
			if err != nil {
				t.Fatal(err)
			}
			near(t, string(act), got, want, 1e-15)
		}
	}
	if _, err := Activate("relu", 1); err == nil {
		t.Error("Activate(relu) did not fail")
	}
}

func TestLayerNorm(t *testing.T) {
	// mean 2.5, biased variance 1.25.
	x := []float64{1, 2, 3, 4}
	got := LayerNorm(x, []float64{1, 1, 1, 1}, []float64{0, 0, 0, 0}, 0)
	s := math.Sqrt(1.25)
	for i, want := range []float64{-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s} {
		near(t, "LayerNorm", got[i], want, 1e-15)
	}
	// γ = 2, β = 1, eps = 1e-5 (torch F.layer_norm, float64).
	got = LayerNorm(x, []float64{2, 2, 2, 2}, []float64{1, 1, 1, 1}, 1e-5)
	for i, want := range []float64{-1.6832708399378542, 0.10557638668738178, 1.8944236133126178, 3.6832708399378538} {
		near(t, "LayerNorm(γ=2,β=1)", got[i], want, 1e-14)
	}
}

func TestLinear(t *testing.T) {
	// W = [[1 2 3] [4 5 6]], b = [10 20], x = [1 0 -1] → [8 18].
	got := Linear([]float64{1, 0, -1}, []float64{1, 2, 3, 4, 5, 6}, []float64{10, 20}, 2, 3)
	if !slices.Equal(got, []float64{8, 18}) {
		t.Errorf("Linear = %v, want [8 18]", got)
	}
	got = Linear([]float64{1, 0, -1}, []float64{1, 2, 3, 4, 5, 6}, nil, 2, 3)
	if !slices.Equal(got, []float64{-2, -2}) {
		t.Errorf("Linear without bias = %v, want [-2 -2]", got)
	}
}

func TestSoftmaxAndMask(t *testing.T) {
	got := Softmax([]float64{1, 2, 3})
	for i, want := range []float64{0.09003057317038045, 0.2447284710547976, 0.6652409557748218} {
		near(t, "Softmax", got[i], want, 1e-16)
	}
	m := CausalMask(5)
	for i := range m {
		row := make([]float64, 5)
		for j := range row {
			row[j] = float64(i*j%3) + m[i][j]
		}
		p := Softmax(row)
		sum := 0.0
		for j, v := range p {
			sum += v
			if j > i && v != 0 {
				t.Errorf("row %d: softmax gives %g above the diagonal at %d", i, v, j)
			}
			if j <= i && !(v > 0) {
				t.Errorf("row %d: softmax gives %g at visible position %d", i, v, j)
			}
		}
		near(t, "softmax row sum", sum, 1, 1e-15)
	}
	for i := range m {
		for j := range m[i] {
			if (j > i) != math.IsInf(m[i][j], -1) || (j <= i && m[i][j] != 0) {
				t.Errorf("CausalMask[%d][%d] = %g", i, j, m[i][j])
			}
		}
	}
}

func TestPoolIndex(t *testing.T) {
	for _, c := range []struct {
		ids  []int64
		want int
	}{
		{[]int64{49406, 320, 1125, 49407, 0, 0}, 3},
		{[]int64{49406, 49407, 5, 49407, 0}, 1}, // first of two maxima
		{[]int64{3, 500, 7, 500, 2}, 1},
		{[]int64{7}, 0},
		{[]int64{0, 0, 0}, 0},
	} {
		if got := PoolIndex(c.ids); got != c.want {
			t.Errorf("PoolIndex(%v) = %d, want %d", c.ids, got, c.want)
		}
	}
}

func TestNormalizeCosine(t *testing.T) {
	v := Normalize([]float64{3, 4})
	if !slices.Equal(v, []float64{0.6, 0.8}) {
		t.Errorf("Normalize([3 4]) = %v", v)
	}
	near(t, "Cosine", Cosine([]float64{1, 0}, []float64{2, 2}), 1/math.Sqrt2, 1e-15)
	near(t, "Cosine(-v)", Cosine([]float64{1, 2, 3}, []float64{-2, -4, -6}), -1, 1e-15)
	if z := Normalize([]float64{0, 0}); !slices.Equal(z, []float64{0, 0}) {
		t.Errorf("Normalize(0) = %v", z)
	}
	near(t, "Sigmoid(0)", Sigmoid(0), 0.5, 0)
}

func TestHPLogitByHand(t *testing.T) {
	// A head with small widths: x(2) → 2 → 1 → 1 → 1 → 1.
	head := MapWeights{
		"layers.0.weight": {Shape: []int64{2, 2}, Data: []float32{1, 2, 3, 4}},
		"layers.0.bias":   {Shape: []int64{2}, Data: []float32{0.5, -1}},
		"layers.2.weight": {Shape: []int64{1, 2}, Data: []float32{1, -1}},
		"layers.2.bias":   {Shape: []int64{1}, Data: []float32{2}},
		"layers.4.weight": {Shape: []int64{1, 1}, Data: []float32{3}},
		"layers.4.bias":   {Shape: []int64{1}, Data: []float32{0}},
		"layers.6.weight": {Shape: []int64{1, 1}, Data: []float32{-0.5}},
		"layers.6.bias":   {Shape: []int64{1}, Data: []float32{1}},
		"layers.7.weight": {Shape: []int64{1, 1}, Data: []float32{2}},
		"layers.7.bias":   {Shape: []int64{1}, Data: []float32{0.25}},
	}
	// x = [1 1]: L0 → [3.5 6], L2 → 3.5−6+2 = −0.5, L4 → −1.5, L6 → 1.75, L7 → 3.75.
	got, err := HPLogit(head, []float64{1, 1})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "HPLogit", got, 3.75, 0)
	if _, err := HPLogit(head, []float64{1, 1, 1}); err == nil {
		t.Error("HPLogit accepted an embedding of the wrong width")
	}

	r := RandomHead(24, 3)
	if len(r) != 10 {
		t.Fatalf("RandomHead has %d tensors, want 10", len(r))
	}
	for _, p := range HeadParams(24) {
		s, ok := r.Shape(p.Name)
		if !ok || !slices.Equal(s, p.Shape) {
			t.Errorf("RandomHead %s shape %v, want %v", p.Name, s, p.Shape)
		}
	}
	if s, _ := r.Shape("layers.0.weight"); !slices.Equal(s, []int64{1024, 24}) {
		t.Errorf("layers.0.weight shape %v", s)
	}
	if _, err := HPLogit(r, make([]float64, 24)); err != nil {
		t.Error(err)
	}
}

func tinyConfig() clip.Config {
	return clip.Config{
		Vision: clip.TowerConfig{HiddenSize: 32, IntermediateSize: 64, NumLayers: 2, NumHeads: 4,
			HiddenAct: clip.GELU, LayerNormEps: 1e-5, ImageSize: 32, PatchSize: 8, NumChannels: 3},
		Text: clip.TowerConfig{HiddenSize: 32, IntermediateSize: 80, NumLayers: 2, NumHeads: 4,
			HiddenAct: clip.QuickGELU, LayerNormEps: 1e-5, VocabSize: 600, MaxPositions: 16},
		ProjectionDim: 24,
	}
}

func TestParams(t *testing.T) {
	cfg := tinyConfig()
	ps := Params(&cfg)
	// 1 logit_scale; text: 2 embeddings + 16 per layer + 2 final LN; vision:
	// class, patch, position, 2 pre LN, 16 per layer, 2 post LN; 2 projections.
	want := 1 + (2 + 16*2 + 2) + (3 + 2 + 16*2 + 2) + 2
	if len(ps) != want {
		t.Errorf("%d params, want %d", len(ps), want)
	}
	names := ParamNames(&cfg)
	seen := map[string]bool{}
	for i, p := range ps {
		if names[i] != p.Name {
			t.Errorf("ParamNames[%d] = %s, Params has %s", i, names[i], p.Name)
		}
		if seen[p.Name] {
			t.Errorf("duplicate %s", p.Name)
		}
		seen[p.Name] = true
	}
	shapes := map[string][]int64{}
	for _, p := range ps {
		shapes[p.Name] = p.Shape
	}
	for name, shape := range map[string][]int64{
		"logit_scale": {},
		"text_model.embeddings.token_embedding.weight":            {600, 32},
		"text_model.embeddings.position_embedding.weight":         {16, 32},
		"text_model.encoder.layers.0.self_attn.k_proj.weight":     {32, 32},
		"text_model.encoder.layers.0.self_attn.v_proj.bias":       {32},
		"text_model.encoder.layers.1.self_attn.q_proj.weight":     {32, 32},
		"text_model.encoder.layers.1.self_attn.out_proj.bias":     {32},
		"text_model.encoder.layers.1.layer_norm1.weight":          {32},
		"text_model.encoder.layers.0.mlp.fc1.weight":              {80, 32},
		"text_model.encoder.layers.0.mlp.fc1.bias":                {80},
		"text_model.encoder.layers.0.mlp.fc2.weight":              {32, 80},
		"text_model.encoder.layers.1.layer_norm2.bias":            {32},
		"text_model.final_layer_norm.weight":                      {32},
		"text_model.final_layer_norm.bias":                        {32},
		"vision_model.embeddings.class_embedding":                 {32},
		"vision_model.embeddings.patch_embedding.weight":          {32, 3, 8, 8},
		"vision_model.embeddings.position_embedding.weight":       {17, 32},
		"vision_model.pre_layrnorm.weight":                        {32},
		"vision_model.pre_layrnorm.bias":                          {32},
		"vision_model.encoder.layers.0.self_attn.q_proj.bias":     {32},
		"vision_model.encoder.layers.1.self_attn.out_proj.weight": {32, 32},
		"vision_model.encoder.layers.1.mlp.fc1.weight":            {64, 32},
		"vision_model.encoder.layers.1.mlp.fc2.bias":              {32},
		"vision_model.encoder.layers.1.layer_norm2.weight":        {32},
		"vision_model.post_layernorm.weight":                      {32},
		"vision_model.post_layernorm.bias":                        {32},
		"visual_projection.weight":                                {24, 32},
		"text_projection.weight":                                  {24, 32},
	} {
		got, ok := shapes[name]
		if !ok {
			t.Errorf("Params lacks %s", name)
		} else if !slices.Equal(got, shape) {
			t.Errorf("%s shape %v, want %v", name, got, shape)
		}
	}
	if ps[0].Name != "logit_scale" || !strings.HasPrefix(ps[1].Name, "text_model.") || ps[len(ps)-1].Name != "text_projection.weight" {
		t.Errorf("unexpected order: %s, %s, ..., %s", ps[0].Name, ps[1].Name, ps[len(ps)-1].Name)
	}
}

// TestRandomWeights: every parameter of Params in its shape, LayerNorm
// scales near 1, logit_scale at its init, and the values a function of the
// seed.
func TestRandomWeights(t *testing.T) {
	cfg := tinyConfig()
	ps := Params(&cfg)
	w := RandomWeights(&cfg, 7, 0.02)
	if len(w) != len(ps) {
		t.Errorf("RandomWeights has %d tensors, Params %d", len(w), len(ps))
	}
	for _, p := range ps {
		s, ok := w.Shape(p.Name)
		if !ok || !slices.Equal(s, p.Shape) {
			t.Errorf("RandomWeights %s shape %v, want %v", p.Name, s, p.Shape)
		}
	}
	ln, _ := w.Float32("vision_model.pre_layrnorm.weight")
	for _, v := range ln {
		if math.Abs(float64(v)-1) > 0.2 {
			t.Errorf("LayerNorm weight %g not near 1", v)
		}
	}
	ls, _ := w.Float32("logit_scale")
	if len(ls) != 1 || ls[0] != LogitScaleInit {
		t.Errorf("logit_scale = %v", ls)
	}
	w2 := RandomWeights(&cfg, 7, 0.02)
	w3 := RandomWeights(&cfg, 8, 0.02)
	a, _ := w.Float32("text_projection.weight")
	b, _ := w2.Float32("text_projection.weight")
	c, _ := w3.Float32("text_projection.weight")
	if !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Error("RandomWeights is not a function of its seed")
	}
}

func TestWeightErrors(t *testing.T) {
	cfg := tinyConfig()
	w := RandomWeights(&cfg, 1, 0.1)
	pixels := make([]float32, 3*32*32)
	if _, err := ImageFeatures(&cfg, w, pixels[:100], 1); err == nil {
		t.Error("ImageFeatures accepted a short pixel buffer")
	}
	delete(w, "vision_model.encoder.layers.1.mlp.fc2.bias")
	if _, err := ImageFeatures(&cfg, w, pixels, 1); err == nil || !strings.Contains(err.Error(), "layers.1.mlp.fc2.bias") {
		t.Errorf("missing weight: err = %v", err)
	}
	w["text_projection.weight"] = Tensor{Shape: []int64{32, 24}, Data: make([]float32, 32*24)}
	if _, err := TextFeatures(&cfg, w, []int64{1, 2, 3}, 1); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("transposed projection: err = %v", err)
	}
	w = RandomWeights(&cfg, 1, 0.1)
	if _, err := TextFeatures(&cfg, w, []int64{1, 600}, 1); err == nil {
		t.Error("TextFeatures accepted an id outside the vocabulary")
	}
	if _, err := TextFeatures(&cfg, w, make([]int64, 17), 1); err == nil {
		t.Error("TextFeatures accepted a sequence longer than max_position_embeddings")
	}
}

// TestCausality: the text embedding is pooled at the first maximal id, so
// tokens after it must not change it (they are masked), while tokens before
// it must.
func TestCausality(t *testing.T) {
	cfg := tinyConfig()
	w := RandomWeights(&cfg, 5, 0.2)
	rows := []int64{
		598, 5, 17, 599, 0, 0, 0, 0,
		598, 5, 17, 599, 3, 599, 42, 1,
		598, 6, 17, 599, 0, 0, 0, 0,
	}
	f, err := TextFeatures(&cfg, w, rows, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f[0], f[1]) {
		t.Error("tokens after the pooled position changed the embedding")
	}
	if slices.Equal(f[0], f[2]) {
		t.Error("a token before the pooled position did not change the embedding")
	}
	// Rows of one batch are independent: the same row alone gives the same.
	g, err := TextFeatures(&cfg, w, rows[16:], 1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(g[0], f[2]) {
		t.Error("batching changed a row's embedding")
	}
}
