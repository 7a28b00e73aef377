package blip

import (
	"strconv"

	"github.com/icthp/icthp/models/build"
)

// Weights is what the builder reads parameters from: a checkpoint's state
// dict (*checkpoint.StateDict), or seeded random values. Names are the keys
// of ImageReward.pt ("blip.visual_encoder.blocks.0.attn.qkv.weight", ...).
// It is the same interface as clip.Weights.
type Weights interface {
	// Shape returns the tensor's shape, and false when the name is absent.
	Shape(name string) ([]int64, bool)
	// Float32 returns the tensor's values, converted to float32, row-major.
	Float32(name string) ([]float32, error)
}

// Param is one entry of the state dict: its key and shape. Int marks the
// int64 buffer (position_ids); everything else is a float parameter.
type Param struct {
	Name  string
	Shape []int64
	Int   bool
}

// Key prefixes of ImageReward.pt.
const (
	VisionPrefix = "blip.visual_encoder."
	TextPrefix   = "blip.text_encoder."
	HeadPrefix   = "mlp.layers."
)

// headWidths are the output widths of the reward head's Linear layers and
// headIndices their indices in the nn.Sequential (the dropouts between them
// hold no parameters): Linear(D,1024), Dropout, Linear(1024,128), Dropout,
// Linear(128,64), Dropout, Linear(64,16), Linear(16,1).
var (
	headWidths  = []int64{1024, 128, 64, 16, 1}
	headIndices = []int{0, 2, 4, 6, 7}
)

func shape(dims ...int) []int64 {
	s := make([]int64, len(dims))
	for i, d := range dims {
		s[i] = int64(d)
	}
	return s
}

// VisionParams lists the parameters of BLIP's VisionTransformer in
// state-dict order (the module's own parameters, then its children's).
func (c *Config) VisionParams() []Param {
	v := &c.Vision
	D, M, P := v.Width, v.MLPHidden(), v.PatchSize
	p := VisionPrefix
	ps := []Param{
		{p + "cls_token", shape(1, 1, D), false},
		{p + "pos_embed", shape(1, v.NumTokens(), D), false},
		{p + "patch_embed.proj.weight", shape(D, 3, P, P), false},
		{p + "patch_embed.proj.bias", shape(D), false},
	}
	for l := 0; l < v.Depth; l++ {
		b := p + "blocks." + strconv.Itoa(l) + "."
		ps = append(ps,
			Param{b + "norm1.weight", shape(D), false}, Param{b + "norm1.bias", shape(D), false},
			Param{b + "attn.qkv.weight", shape(3*D, D), false}, Param{b + "attn.qkv.bias", shape(3 * D), false},
			Param{b + "attn.proj.weight", shape(D, D), false}, Param{b + "attn.proj.bias", shape(D), false},
			Param{b + "norm2.weight", shape(D), false}, Param{b + "norm2.bias", shape(D), false},
			Param{b + "mlp.fc1.weight", shape(M, D), false}, Param{b + "mlp.fc1.bias", shape(M), false},
			Param{b + "mlp.fc2.weight", shape(D, M), false}, Param{b + "mlp.fc2.bias", shape(D), false},
		)
	}
	return append(ps, Param{p + "norm.weight", shape(D), false}, Param{p + "norm.bias", shape(D), false})
}

// attentionParams are one BertAttention (self or cross): BertSelfAttention's
// query/key/value and BertSelfOutput's dense and LayerNorm. Keys and values
// of the cross-attention project from the image width.
func attentionParams(prefix string, h, kvIn int) []Param {
	return []Param{
		{prefix + "self.query.weight", shape(h, h), false}, {prefix + "self.query.bias", shape(h), false},
		{prefix + "self.key.weight", shape(h, kvIn), false}, {prefix + "self.key.bias", shape(h), false},
		{prefix + "self.value.weight", shape(h, kvIn), false}, {prefix + "self.value.bias", shape(h), false},
		{prefix + "output.dense.weight", shape(h, h), false}, {prefix + "output.dense.bias", shape(h), false},
		{prefix + "output.LayerNorm.weight", shape(h), false}, {prefix + "output.LayerNorm.bias", shape(h), false},
	}
}

// TextParams lists the parameters of med.py's BertModel
// (add_pooling_layer=False) that the forward pass reads, in state-dict
// order. The position_ids buffer is in UnusedParams.
func (c *Config) TextParams() []Param {
	t := &c.Text
	H, I := t.HiddenSize, t.IntermediateSize
	p := TextPrefix
	ps := []Param{
		{p + "embeddings.word_embeddings.weight", shape(t.VocabSize, H), false},
		{p + "embeddings.position_embeddings.weight", shape(t.MaxPositions, H), false},
		{p + "embeddings.LayerNorm.weight", shape(H), false},
		{p + "embeddings.LayerNorm.bias", shape(H), false},
	}
	for l := 0; l < t.NumLayers; l++ {
		b := p + "encoder.layer." + strconv.Itoa(l) + "."
		ps = append(ps, attentionParams(b+"attention.", H, H)...)
		ps = append(ps, attentionParams(b+"crossattention.", H, t.EncoderWidth)...)
		ps = append(ps,
			Param{b + "intermediate.dense.weight", shape(I, H), false}, Param{b + "intermediate.dense.bias", shape(I), false},
			Param{b + "output.dense.weight", shape(H, I), false}, Param{b + "output.dense.bias", shape(H), false},
			Param{b + "output.LayerNorm.weight", shape(H), false}, Param{b + "output.LayerNorm.bias", shape(H), false},
		)
	}
	return ps
}

// HeadParams lists the reward head's parameters (ImageReward's MLP on the
// text encoder's hidden state): mlp.layers.{0,2,4,6,7}.{weight,bias}.
func (c *Config) HeadParams() []Param {
	var ps []Param
	in := int64(c.Text.HiddenSize)
	for i, out := range headWidths {
		k := HeadPrefix + strconv.Itoa(headIndices[i])
		ps = append(ps, Param{k + ".weight", []int64{out, in}, false}, Param{k + ".bias", []int64{out}, false})
		in = out
	}
	return ps
}

// UnusedParams lists the entries ImageReward.pt carries that scoring does
// not read: the text embeddings' position_ids buffer (int64
// [1, max_position_embeddings], an arange) and BLIP_Pretrain's contrastive
// projections vision_proj and text_proj.
func (c *Config) UnusedParams() []Param {
	return []Param{
		{TextPrefix + "embeddings.position_ids", shape(1, c.Text.MaxPositions), true},
		{"blip.vision_proj.weight", shape(c.EmbedDim, c.Vision.Width), false},
		{"blip.vision_proj.bias", shape(c.EmbedDim), false},
		{"blip.text_proj.weight", shape(c.EmbedDim, c.Text.HiddenSize), false},
		{"blip.text_proj.bias", shape(c.EmbedDim), false},
	}
}

// Params lists every entry of ImageReward.state_dict() in its order: blip
// (visual_encoder, text_encoder with position_ids first, vision_proj,
// text_proj), then mlp.
func (c *Config) Params() []Param {
	un := c.UnusedParams()
	ps := c.VisionParams()
	ps = append(ps, un[0])
	ps = append(ps, c.TextParams()...)
	ps = append(ps, un[1:]...)
	return append(ps, c.HeadParams()...)
}

// CheckWeights compares the weights with the parameters a graph needs (see
// build.CheckWeights): a missing one or a shape that differs is an error naming it.
func CheckWeights(w Weights, params []Param) error {
	ps := make([]build.Param, len(params))
	for i, p := range params {
		ps[i] = build.Param{Name: p.Name, Shape: p.Shape}
	}
	return build.CheckWeights(w, ps, "")
}
