package openclip

import (
	"strconv"
	"strings"

	"github.com/icthp/icthp/models/build"
	"github.com/icthp/icthp/models/clip"
)

// Params lists the parameters of an open_clip CLIP (ViT image tower, built-in
// text tower) of architecture c under open_clip's names and shapes, in the
// order open_clip's CLIP.state_dict() gives them.
func Params(c *clip.Config) []clip.Param {
	v, t := &c.Vision, &c.Text
	vw, tw, e := int64(v.HiddenSize), int64(t.HiddenSize), int64(c.ProjectionDim)
	ps := []clip.Param{
		{Name: "positional_embedding", Shape: []int64{int64(t.MaxPositions), tw}},
		{Name: "text_projection", Shape: []int64{tw, e}},
		{Name: "logit_scale", Shape: []int64{}},
		{Name: "visual.class_embedding", Shape: []int64{vw}},
		{Name: "visual.positional_embedding", Shape: []int64{int64(c.NumPatches() + 1), vw}},
		{Name: "visual.proj", Shape: []int64{vw, e}},
		{Name: "visual.conv1.weight", Shape: []int64{vw, int64(v.NumChannels), int64(v.PatchSize), int64(v.PatchSize)}},
		{Name: "visual.ln_pre.weight", Shape: []int64{vw}}, {Name: "visual.ln_pre.bias", Shape: []int64{vw}},
	}
	ps = append(ps, blockParams("visual.transformer.resblocks.", v)...)
	ps = append(ps, clip.Param{Name: "visual.ln_post.weight", Shape: []int64{vw}}, clip.Param{Name: "visual.ln_post.bias", Shape: []int64{vw}})
	ps = append(ps, blockParams("transformer.resblocks.", t)...)
	return append(ps,
		clip.Param{Name: "token_embedding.weight", Shape: []int64{int64(t.VocabSize), tw}},
		clip.Param{Name: "ln_final.weight", Shape: []int64{tw}}, clip.Param{Name: "ln_final.bias", Shape: []int64{tw}})
}

func blockParams(prefix string, t *clip.TowerConfig) []clip.Param {
	w, m := int64(t.HiddenSize), int64(t.IntermediateSize)
	var ps []clip.Param
	for l := 0; l < t.NumLayers; l++ {
		p := prefix + strconv.Itoa(l) + "."
		for _, q := range []clip.Param{
			{Name: "ln_1.weight", Shape: []int64{w}}, {Name: "ln_1.bias", Shape: []int64{w}},
			{Name: "attn.in_proj_weight", Shape: []int64{3 * w, w}}, {Name: "attn.in_proj_bias", Shape: []int64{3 * w}},
			{Name: "attn.out_proj.weight", Shape: []int64{w, w}}, {Name: "attn.out_proj.bias", Shape: []int64{w}},
			{Name: "ln_2.weight", Shape: []int64{w}}, {Name: "ln_2.bias", Shape: []int64{w}},
			{Name: "mlp.c_fc.weight", Shape: []int64{m, w}}, {Name: "mlp.c_fc.bias", Shape: []int64{m}},
			{Name: "mlp.c_proj.weight", Shape: []int64{w, m}}, {Name: "mlp.c_proj.bias", Shape: []int64{w}},
		} {
			ps = append(ps, clip.Param{Name: p + q.Name, Shape: q.Shape})
		}
	}
	return ps
}

// Random is seeded random weights under open_clip's names for an
// architecture, generated when read (from the seed and the name, so the same
// seed gives the same values whatever the order of reads), like
// clip.Random: LayerNorm scales near 1, biases and embeddings small, matrices
// scaled by 1/√fan_in. fan_in is the input width of how the matrix is used:
// the second dimension of a torch Linear weight, the first of the "x @ proj"
// matrices.
type Random struct {
	seed   uint64
	shapes build.Shapes
	keys   []string
}

// NewRandom covers Params(c).
func NewRandom(c *clip.Config, seed uint64) *Random {
	r := &Random{seed: seed, shapes: build.Shapes{}}
	for _, p := range Params(c) {
		r.shapes[p.Name] = p.Shape
		r.keys = append(r.keys, p.Name)
	}
	return r
}

// Keys lists the names in state-dict order.
func (r *Random) Keys() []string { return append([]string(nil), r.keys...) }

// Shape implements clip.Weights.
func (r *Random) Shape(name string) ([]int64, bool) { return r.shapes.Shape(name) }

// Float32 implements clip.Weights.
func (r *Random) Float32(name string) ([]float32, error) {
	shape, err := r.shapes.Need(name, "openclip random weights")
	if err != nil {
		return nil, err
	}
	k := clip.RandomKind{
		Norm:  strings.Contains(name, "ln_") && strings.HasSuffix(name, ".weight"),
		Small: strings.HasSuffix(name, "bias") || strings.Contains(name, "embedding"),
		FanIn: build.FanIn(shape),
	}
	if name == "visual.proj" || name == "text_projection" {
		k.FanIn = int(shape[0]) // "x @ proj": the input width is the first dimension
	}
	return clip.RandomParam(r.seed, name, shape, k), nil
}
