package clip

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/icthp/icthp/models/build"
)

// Preset names a real CLIP size for tests, demos and benchmarks.
type Preset string

// The presets `icthp convert random` knows.
const (
	PresetTiny   Preset = "tiny"
	PresetViTB32 Preset = "vit-b-32"
	PresetViTL14 Preset = "vit-l-14"
	PresetViTH14 Preset = "vit-h-14"
)

// Presets lists them in size order.
var Presets = []Preset{PresetTiny, PresetViTB32, PresetViTL14, PresetViTH14}

// towerSize is a tower's width, depth, heads and MLP width.
type towerSize struct{ hidden, layers, heads, inter int }

// presetSizes are the presets' towers, projection width and patch size.
var presetSizes = map[Preset]struct {
	vision, text      towerSize
	projection, patch int
}{
	PresetTiny:   {towerSize{64, 2, 4, 256}, towerSize{64, 2, 4, 256}, 32, 32},
	PresetViTB32: {towerSize{768, 12, 12, 3072}, towerSize{512, 12, 8, 2048}, 512, 32},
	PresetViTL14: {towerSize{1024, 24, 16, 4096}, towerSize{768, 12, 12, 3072}, 768, 14},
	PresetViTH14: {towerSize{1280, 32, 16, 5120}, towerSize{1024, 24, 16, 4096}, 1024, 14},
}

// PresetConfig returns the architecture of a preset. vit-h-14 is the base of
// ICT and HP (laion/CLIP-ViT-H-14-laion2B-s32B-b79K); all use exact GELU as
// the LAION models do. tiny keeps the real image size, patch grid kind,
// vocabulary size and context length so that it exercises the real
// preprocessing and tokenizer, with small widths and two layers.
func PresetConfig(p Preset) (Config, error) {
	s, ok := presetSizes[p]
	if !ok {
		return Config{}, fmt.Errorf("unknown preset %q (want one of %v)", p, Presets)
	}
	tower := func(t towerSize) TowerConfig {
		return TowerConfig{HiddenSize: t.hidden, NumLayers: t.layers, NumHeads: t.heads, IntermediateSize: t.inter,
			HiddenAct: GELU, LayerNormEps: 1e-5}
	}
	c := Config{Vision: tower(s.vision), Text: tower(s.text), ProjectionDim: s.projection}
	c.Vision.PatchSize = s.patch
	c.Vision.ImageSize, c.Vision.NumChannels = 224, 3
	c.Text.VocabSize, c.Text.MaxPositions = 49408, 77
	return c, c.Validate()
}

// Random is a set of seeded random weights for every parameter of a CLIP
// model and of the HP head. Values are generated when read, from the seed and
// the parameter's name, so the same seed gives the same bytes whatever the
// order of reads, and a ViT-H-14 needs no memory until a tensor is asked for.
type Random struct {
	seed   uint64
	shapes build.Shapes
}

// NewRandom covers the CLIP parameters of c and, with head, the HP head's.
func NewRandom(c *Config, seed uint64, head bool) *Random {
	r := &Random{seed: seed, shapes: build.Shapes{}}
	for _, p := range c.Params() {
		r.shapes[p.Name] = p.Shape
	}
	if head {
		for _, p := range HeadParams(int64(c.ProjectionDim)) {
			r.shapes[p.Name] = p.Shape
		}
	}
	return r
}

// Keys lists the parameter names in sorted order.
func (r *Random) Keys() []string {
	keys := make([]string, 0, len(r.shapes))
	for k := range r.shapes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Shape implements Weights.
func (r *Random) Shape(name string) ([]int64, bool) { return r.shapes.Shape(name) }

// Float32 implements Weights. LayerNorm scales are near 1, biases and
// embeddings small, matrices scaled by 1/√fan_in so that activations keep
// their size through deep towers.
func (r *Random) Float32(name string) ([]float32, error) {
	shape, err := r.shapes.Need(name, "random weights")
	if err != nil {
		return nil, err
	}
	isNorm := strings.Contains(name, "norm") || strings.Contains(name, "layrnorm")
	return RandomParam(r.seed, name, shape, RandomKind{
		Norm:  isNorm && strings.HasSuffix(name, ".weight"),
		Small: strings.HasSuffix(name, ".bias") || strings.Contains(name, "embedding"),
		FanIn: build.FanIn(shape),
	}), nil
}

// RandomKind is what a random CLIP parameter is, under whichever names
// (transformers', open_clip's) the weights use.
type RandomKind struct {
	Norm  bool // a LayerNorm scale
	Small bool // a bias or an embedding
	FanIn int  // a matrix's input width
}

// RandomParam is the value of a random CLIP parameter (Random, and
// openclip.Random under open_clip's names): logit_scale log(1/0.07), a
// LayerNorm scale 1 + 0.1·N(0,1), a bias or embedding 0.02·N(0,1), a matrix
// N(0,1)/√fan_in (build.RandomNormal).
func RandomParam(seed uint64, name string, shape []int64, k RandomKind) []float32 {
	switch {
	case name == "logit_scale":
		out := make([]float32, build.Numel(shape))
		out[0] = float32(math.Log(1 / 0.07))
		return out
	case k.Norm:
		return build.RandomNormal(seed, name, shape, 1, 0.1)
	case k.Small:
		return build.RandomNormal(seed, name, shape, 0, 0.02)
	default:
		return build.RandomNormal(seed, name, shape, 0, 1/math.Sqrt(float64(k.FanIn)))
	}
}

// Bytes is the float32 size of all parameters, for planning.
func (r *Random) Bytes() int64 {
	var total int64
	for _, s := range r.shapes {
		n := int64(4)
		for _, d := range s {
			n *= d
		}
		total += n
	}
	return total
}
