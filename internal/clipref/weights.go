package clipref

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/icthp/icthp/models/clip"
)

// Tensor is one named parameter held in memory: its shape and its values,
// row-major. A scalar has an empty shape and one value. Int marks an int64
// buffer (BLIP's position_ids; its values are integral).
type Tensor struct {
	Shape []int64
	Data  []float32
	Int   bool
}

// MapWeights is an in-memory clip.Weights (and blip.Weights, the same
// interface): parameter name → tensor.
type MapWeights map[string]Tensor

var _ clip.Weights = MapWeights(nil)

// Shape implements clip.Weights.
func (m MapWeights) Shape(name string) ([]int64, bool) {
	t, ok := m[name]
	if !ok {
		return nil, false
	}
	return slices.Clone(t.Shape), true
}

// Float32 implements clip.Weights. It returns a copy of the values.
func (m MapWeights) Float32(name string) ([]float32, error) {
	t, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("clipref: no tensor %q", name)
	}
	if int64(len(t.Data)) != Numel(t.Shape) {
		return nil, fmt.Errorf("clipref: tensor %q has %d values for shape %v", name, len(t.Data), t.Shape)
	}
	return slices.Clone(t.Data), nil
}

// Keys lists the keys, sorted.
func (m MapWeights) Keys() []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ShapeOf is a tensor shape of the given dimensions.
func ShapeOf(dims ...int) []int64 {
	s := make([]int64, len(dims))
	for i, d := range dims {
		s[i] = int64(d)
	}
	return s
}

// Numel is the number of values of a tensor of the given shape (1 for a scalar).
func Numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// Param is one parameter a CLIPModel state dict holds: its transformers name
// and its shape.
type Param struct {
	Name  string
	Shape []int64
}

// Params lists every parameter of transformers' CLIPModel for cfg, with its
// shape, in the order of CLIPModel.state_dict() (logit_scale, text_model.*,
// vision_model.*, visual_projection, text_projection; inside a layer k, v, q,
// out projections, layer_norm1, mlp, layer_norm2). Linear weights are
// [out, in], as torch stores them.
//
// Buffers are not parameters and are not listed: checkpoints written by
// transformers before 4.31 also carry "text_model.embeddings.position_ids" and
// "vision_model.embeddings.position_ids" (int64 aranges, see BufferNames).
func Params(cfg *clip.Config) []Param {
	v, t := &cfg.Vision, &cfg.Text
	var ps []Param
	add := func(name string, dims ...int) { ps = append(ps, Param{Name: name, Shape: ShapeOf(dims...)}) }
	// A Linear (weight [out, in], then bias) and a LayerNorm (weight, bias).
	linear := func(name string, out, in int) { add(name+".weight", out, in); add(name+".bias", out) }
	norm := func(name string, d int) { add(name+".weight", d); add(name+".bias", d) }
	layers := func(prefix string, tc *clip.TowerConfig) {
		D, I := tc.HiddenSize, tc.IntermediateSize
		for i := 0; i < tc.NumLayers; i++ {
			p := fmt.Sprintf("%s.encoder.layers.%d.", prefix, i)
			for _, proj := range []string{"k_proj", "v_proj", "q_proj", "out_proj"} {
				linear(p+"self_attn."+proj, D, D)
			}
			norm(p+"layer_norm1", D)
			linear(p+"mlp.fc1", I, D)
			linear(p+"mlp.fc2", D, I)
			norm(p+"layer_norm2", D)
		}
	}

	add("logit_scale")

	add("text_model.embeddings.token_embedding.weight", t.VocabSize, t.HiddenSize)
	add("text_model.embeddings.position_embedding.weight", t.MaxPositions, t.HiddenSize)
	layers("text_model", t)
	norm("text_model.final_layer_norm", t.HiddenSize)

	add("vision_model.embeddings.class_embedding", v.HiddenSize)
	add("vision_model.embeddings.patch_embedding.weight", v.HiddenSize, channels(v), v.PatchSize, v.PatchSize)
	add("vision_model.embeddings.position_embedding.weight", cfg.NumPatches()+1, v.HiddenSize)
	norm("vision_model.pre_layrnorm", v.HiddenSize)
	layers("vision_model", v)
	norm("vision_model.post_layernorm", v.HiddenSize)

	add("visual_projection.weight", cfg.ProjectionDim, v.HiddenSize)
	add("text_projection.weight", cfg.ProjectionDim, t.HiddenSize)
	return ps
}

// ParamNames is the names of Params(cfg), in the same order.
func ParamNames(cfg *clip.Config) []string {
	ps := Params(cfg)
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return names
}

// BufferNames is the non-parameter keys that checkpoints saved by older
// transformers (4.27 included) carry besides Params: int64 position ids,
// [1, max_position_embeddings] for text and [1, num_patches+1] for vision.
// They hold no learned values; a loader may ignore them.
func BufferNames() []string {
	return []string{"text_model.embeddings.position_ids", "vision_model.embeddings.position_ids"}
}

func channels(v *clip.TowerConfig) int {
	if v.NumChannels <= 0 {
		return 3
	}
	return v.NumChannels
}

// LogitScaleInit is transformers' CLIPConfig.logit_scale_init_value, ln(1/0.07)
// rounded as transformers has it. RandomWeights sets logit_scale to it.
const LogitScaleInit = 2.6592

// RandomWeights returns seeded random values for every parameter of Params(cfg).
//
// The generator is math/rand/v2's PCG, rand.NewPCG(uint64(seed), 0), whose
// sequence Go keeps stable. Parameters are visited in Params order and each
// draws its values in row-major order with NormFloat64:
//   - LayerNorm weights (names containing "layer_norm" or "layrnorm", ending
//     in ".weight"): 1 + std·z
//   - logit_scale: LogitScaleInit, no draw
//   - everything else (linear weights and biases, LayerNorm biases,
//     embeddings, class embedding, patch kernel): std·z
//
// Each value is computed in float64 and then rounded to float32.
func RandomWeights(cfg *clip.Config, seed int64, std float32) MapWeights {
	r := rand.New(rand.NewPCG(uint64(seed), 0))
	m := make(MapWeights)
	for _, p := range Params(cfg) {
		data := make([]float32, Numel(p.Shape))
		switch {
		case p.Name == "logit_scale":
			data[0] = LogitScaleInit
		case isLayerNormWeight(p.Name):
			for i := range data {
				data[i] = float32(1 + float64(std)*r.NormFloat64())
			}
		default:
			for i := range data {
				data[i] = float32(float64(std) * r.NormFloat64())
			}
		}
		m[p.Name] = Tensor{Shape: p.Shape, Data: data}
	}
	return m
}

func isLayerNormWeight(name string) bool {
	if !strings.HasSuffix(name, ".weight") {
		return false
	}
	return strings.Contains(name, "layer_norm") || strings.Contains(name, "layrnorm") || strings.Contains(name, "layernorm")
}

// HeadLayers is the HP head's Linear layers: state-dict index, in and out
// widths (the input width of the first is the embedding width D).
var HeadLayers = []struct {
	Index   int
	In, Out int
}{
	{0, 0, 1024}, {2, 1024, 128}, {4, 128, 64}, {6, 64, 16}, {7, 16, 1},
}

// HeadParams lists the HP head's parameters for an embedding width dim, in
// state-dict order: layers.0.weight [1024, dim], layers.0.bias [1024], ...,
// layers.7.weight [1, 16], layers.7.bias [1].
func HeadParams(dim int) []Param {
	var ps []Param
	for _, l := range HeadLayers {
		in := l.In
		if in == 0 {
			in = dim
		}
		ps = append(ps,
			Param{Name: fmt.Sprintf("layers.%d.weight", l.Index), Shape: []int64{int64(l.Out), int64(in)}},
			Param{Name: fmt.Sprintf("layers.%d.bias", l.Index), Shape: []int64{int64(l.Out)}})
	}
	return ps
}

// RandomHead returns seeded random values for the HP head on embeddings of
// width dim, drawn like torch.nn.Linear's default initialisation: every
// weight and bias of a layer with fan-in k is uniform in [-1/√k, 1/√k).
// Generator: rand.New(rand.NewPCG(uint64(seed), 0)), parameters in HeadParams
// order, values row-major, each 1/√k · (2·Float64() − 1) rounded to float32.
func RandomHead(dim int, seed int64) MapWeights {
	r := rand.New(rand.NewPCG(uint64(seed), 0))
	m := make(MapWeights)
	for _, p := range HeadParams(dim) {
		var fanIn int64
		if len(p.Shape) == 2 {
			fanIn = p.Shape[1]
		} else {
			// The bias shares its layer's fan-in: the weight before it.
			fanIn = m[p.Name[:len(p.Name)-len("bias")]+"weight"].Shape[1]
		}
		bound := 1 / math.Sqrt(float64(fanIn))
		data := make([]float32, Numel(p.Shape))
		for i := range data {
			data[i] = float32(bound * (2*r.Float64() - 1))
		}
		m[p.Name] = Tensor{Shape: p.Shape, Data: data}
	}
	return m
}
