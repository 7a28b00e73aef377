package clip

import (
	"fmt"
	"math"
	"strconv"

	"github.com/icthp/icthp/models/build"
)

// Param is one parameter of the architecture: its state-dict name and shape.
type Param struct {
	Name  string
	Shape []int64
}

func layerParams(prefix string, t *TowerConfig, n int) []Param {
	h, i := int64(t.HiddenSize), int64(t.IntermediateSize)
	var ps []Param
	for l := 0; l < n; l++ {
		p := prefix + ".encoder.layers." + strconv.Itoa(l) + "."
		for _, proj := range []string{"q_proj", "k_proj", "v_proj", "out_proj"} {
			ps = append(ps, Param{p + "self_attn." + proj + ".weight", []int64{h, h}}, Param{p + "self_attn." + proj + ".bias", []int64{h}})
		}
		ps = append(ps,
			Param{p + "layer_norm1.weight", []int64{h}}, Param{p + "layer_norm1.bias", []int64{h}},
			Param{p + "mlp.fc1.weight", []int64{i, h}}, Param{p + "mlp.fc1.bias", []int64{i}},
			Param{p + "mlp.fc2.weight", []int64{h, i}}, Param{p + "mlp.fc2.bias", []int64{h}},
			Param{p + "layer_norm2.weight", []int64{h}}, Param{p + "layer_norm2.bias", []int64{h}},
		)
	}
	return ps
}

// VisionParams lists the parameters get_image_features reads.
func (c *Config) VisionParams() []Param {
	v := &c.Vision
	h := int64(v.HiddenSize)
	ps := []Param{
		{"vision_model.embeddings.class_embedding", []int64{h}},
		{"vision_model.embeddings.patch_embedding.weight", []int64{h, int64(v.NumChannels), int64(v.PatchSize), int64(v.PatchSize)}},
		{"vision_model.embeddings.position_embedding.weight", []int64{int64(c.NumPatches() + 1), h}},
		{"vision_model.pre_layrnorm.weight", []int64{h}}, {"vision_model.pre_layrnorm.bias", []int64{h}},
	}
	ps = append(ps, layerParams("vision_model", v, v.NumLayers)...)
	return append(ps,
		Param{"vision_model.post_layernorm.weight", []int64{h}}, Param{"vision_model.post_layernorm.bias", []int64{h}},
		Param{"visual_projection.weight", []int64{int64(c.ProjectionDim), h}},
	)
}

// TextParams lists the parameters get_text_features reads.
func (c *Config) TextParams() []Param {
	t := &c.Text
	h := int64(t.HiddenSize)
	ps := []Param{
		{"text_model.embeddings.token_embedding.weight", []int64{int64(t.VocabSize), h}},
		{"text_model.embeddings.position_embedding.weight", []int64{int64(t.MaxPositions), h}},
	}
	ps = append(ps, layerParams("text_model", t, t.NumLayers)...)
	return append(ps,
		Param{"text_model.final_layer_norm.weight", []int64{h}}, Param{"text_model.final_layer_norm.bias", []int64{h}},
		Param{"text_projection.weight", []int64{int64(c.ProjectionDim), h}},
	)
}

// Params lists every parameter of a CLIPModel, logit_scale included, in the
// order transformers' state_dict() gives them (text, vision, projections).
func (c *Config) Params() []Param {
	ps := c.TextParams()
	proj := ps[len(ps)-1]
	ps = append(ps[:len(ps)-1], c.VisionParams()...)
	vproj := ps[len(ps)-1]
	ps = append(ps[:len(ps)-1], vproj, proj, Param{"logit_scale", []int64{}})
	return ps
}

// HeadDims are the widths of the HP head: D → 1024 → 128 → 64 → 16 → 1.
var headWidths = []int64{1024, 128, 64, 16, 1}

// headKeys are the state-dict indices of the head's Linear layers (the
// dropouts between them hold no parameters).
var headKeys = []string{"layers.0", "layers.2", "layers.4", "layers.6", "layers.7"}

// headParams is HeadParams of the projection width.
func (c *Config) headParams() []Param { return HeadParams(int64(c.ProjectionDim)) }

// HeadParams lists the HP head's parameters for input width d.
func HeadParams(d int64) []Param {
	var ps []Param
	in := d
	for i, k := range headKeys {
		out := headWidths[i]
		ps = append(ps, Param{k + ".weight", []int64{out, in}}, Param{k + ".bias", []int64{out}})
		in = out
	}
	return ps
}

// ReconcileShapes makes the configuration agree with the weights: sizes that
// the tensors' shapes determine (widths, depths, patch and image size,
// vocabulary, positions, projection) are taken from the shapes, and each
// change is reported. Hub configs carry stale values; the shapes are what the
// official code ends up computing with. The number of heads cannot be read
// from shapes and stays as configured.
func (c *Config) ReconcileShapes(w Weights) (notes []string) {
	set := func(field string, dst *int, v int64) {
		if v > 0 && int(v) != *dst {
			notes = append(notes, fmt.Sprintf("config %s=%d disagrees with the weights' shapes; using %d", field, *dst, v))
			*dst = int(v)
		}
	}
	if s, ok := w.Shape("vision_model.embeddings.patch_embedding.weight"); ok && len(s) == 4 {
		set("vision_config.hidden_size", &c.Vision.HiddenSize, s[0])
		set("vision_config.num_channels", &c.Vision.NumChannels, s[1])
		set("vision_config.patch_size", &c.Vision.PatchSize, s[2])
	}
	if s, ok := w.Shape("vision_model.embeddings.position_embedding.weight"); ok && len(s) == 2 && c.Vision.PatchSize > 0 {
		g := int64(math.Round(math.Sqrt(float64(s[0] - 1))))
		if g*g == s[0]-1 {
			set("vision_config.image_size", &c.Vision.ImageSize, g*int64(c.Vision.PatchSize))
		}
	}
	if s, ok := w.Shape("text_model.embeddings.token_embedding.weight"); ok && len(s) == 2 {
		set("text_config.vocab_size", &c.Text.VocabSize, s[0])
		set("text_config.hidden_size", &c.Text.HiddenSize, s[1])
	}
	if s, ok := w.Shape("text_model.embeddings.position_embedding.weight"); ok && len(s) == 2 {
		set("text_config.max_position_embeddings", &c.Text.MaxPositions, s[0])
	}
	for _, tw := range []struct {
		prefix, name string
		t            *TowerConfig
	}{{"vision_model", "vision_config", &c.Vision}, {"text_model", "text_config", &c.Text}} {
		if s, ok := w.Shape(tw.prefix + ".encoder.layers.0.mlp.fc1.weight"); ok && len(s) == 2 {
			set(tw.name+".intermediate_size", &tw.t.IntermediateSize, s[0])
		}
		n := 0
		for {
			if _, ok := w.Shape(tw.prefix + ".encoder.layers." + strconv.Itoa(n) + ".layer_norm1.weight"); !ok {
				break
			}
			n++
		}
		if n > 0 {
			set(tw.name+".num_hidden_layers", &tw.t.NumLayers, int64(n))
		}
	}
	if s, ok := w.Shape("visual_projection.weight"); ok && len(s) == 2 {
		set("projection_dim", &c.ProjectionDim, s[0])
	} else if s, ok := w.Shape("text_projection.weight"); ok && len(s) == 2 {
		set("projection_dim", &c.ProjectionDim, s[0])
	}
	return notes
}

// CheckWeights compares the weights against the parameters the graph needs (see
// build.CheckWeights): a missing one or a shape that differs is an error naming it.
func CheckWeights(w Weights, params []Param) error {
	ps := make([]build.Param, len(params))
	for i, p := range params {
		ps[i] = build.Param{Name: p.Name, Shape: p.Shape}
	}
	return build.CheckWeights(w, ps, "give the base checkpoint with --base")
}
