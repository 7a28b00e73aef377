package clipref_test

import (
	"math"
	"slices"
	"testing"

	"github.com/icthp/icthp/internal/clipref"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/openclip"
)

// FromOpenCLIP on known values: in_proj_weight's rows 0–1, 2–3, 4–5 are q,
// k and v (torch's MultiheadAttention chunks the packed projection in that
// order), in_proj_bias likewise, and the "x @ proj" matrices become their
// transposes; a DDP prefix is read through.
func TestFromOpenCLIPKnownValues(t *testing.T) {
	tower := clip.TowerConfig{HiddenSize: 2, IntermediateSize: 4, NumLayers: 1, NumHeads: 1, HiddenAct: clip.GELU, LayerNormEps: 1e-5}
	c := clip.Config{Vision: tower, Text: tower, ProjectionDim: 3}
	c.Vision.ImageSize, c.Vision.PatchSize, c.Vision.NumChannels = 64, 32, 3
	c.Text.VocabSize, c.Text.MaxPositions = 10, 5
	r := openclip.NewRandom(&c, 1)
	m := clipref.MapWeights{}
	for _, k := range r.Keys() {
		s, _ := r.Shape(k)
		v, _ := r.Float32(k)
		m["module."+k] = clipref.Tensor{Shape: s, Data: v}
	}
	m["module.transformer.resblocks.0.attn.in_proj_weight"] = clipref.Tensor{Shape: []int64{6, 2}, Data: []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}}
	m["module.transformer.resblocks.0.attn.in_proj_bias"] = clipref.Tensor{Shape: []int64{6}, Data: []float32{-1, -2, -3, -4, -5, -6}}
	m["module.visual.proj"] = clipref.Tensor{Shape: []int64{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}}
	hf, err := clipref.FromOpenCLIP(m, &c, "module.")
	if err != nil {
		t.Fatal(err)
	}
	p := "text_model.encoder.layers.0.self_attn."
	for name, want := range map[string][]float32{
		p + "q_proj.weight": {1, 2, 3, 4}, p + "k_proj.weight": {5, 6, 7, 8}, p + "v_proj.weight": {9, 10, 11, 12},
		p + "q_proj.bias": {-1, -2}, p + "k_proj.bias": {-3, -4}, p + "v_proj.bias": {-5, -6},
		"visual_projection.weight": {1, 4, 2, 5, 3, 6}, // [3, 2] = projᵀ
	} {
		if got := hf[name].Data; !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if s := hf["visual_projection.weight"].Shape; !slices.Equal(s, []int64{3, 2}) {
		t.Errorf("visual_projection.weight shape %v, want [3 2]", s)
	}
	if len(hf) != len(c.Params())-1 { // every parameter but logit_scale
		t.Errorf("%d tensors, want %d", len(hf), len(c.Params())-1)
	}
}

// AestheticScore is the head on the normalised embedding: with all-ones
// weights and zero biases each layer sums its input into every output, so
// (3, 4), normalised to (0.6, 0.8), scores 1.4 × 1024 × 128 × 64 × 16.
func TestAestheticScoreKnownValue(t *testing.T) {
	head := clipref.MapWeights{}
	in := 2
	for _, l := range clipref.HeadLayers {
		w := make([]float32, l.Out*in)
		for i := range w {
			w[i] = 1
		}
		head[layerName(l.Index, "weight")] = clipref.Tensor{Shape: []int64{int64(l.Out), int64(in)}, Data: w}
		head[layerName(l.Index, "bias")] = clipref.Tensor{Shape: []int64{int64(l.Out)}, Data: make([]float32, l.Out)}
		in = l.Out
	}
	got, err := clipref.AestheticScore(head, []float64{3, 4})
	if err != nil {
		t.Fatal(err)
	}
	want := 7.0 / 5 * 1024 * 128 * 64 * 16
	if math.Abs(got-want) > 1e-12*want {
		t.Errorf("AestheticScore = %v, want %v", got, want)
	}
}

func layerName(i int, what string) string { return "layers." + string(rune('0'+i)) + "." + what }
