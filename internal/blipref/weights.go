package blipref

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/icthp/icthp/internal/clipref"
	"github.com/icthp/icthp/models/blip"
	"github.com/icthp/icthp/models/checkpoint"
)

// Tensor is one state-dict entry held in memory (clipref.Tensor): its shape
// and values, row-major; Int marks an int64 buffer.
type Tensor = clipref.Tensor

// MapWeights is an in-memory blip.Weights: key → tensor (clipref.MapWeights).
type MapWeights = clipref.MapWeights

var _ blip.Weights = MapWeights(nil)

// Param is one entry of ImageReward's state dict.
type Param struct {
	Name  string
	Shape []int64
	Int   bool // the int64 position_ids buffer
}

// Params lists every entry of ImageReward(med_config).state_dict() for cfg,
// in its order, transcribed from the module definitions:
//
//   - ImageReward: blip (BLIP_Pretrain), then mlp (MLP); preprocess and the
//     tokenizer are not modules.
//   - BLIP_Pretrain: visual_encoder, text_encoder, vision_proj
//     Linear(vision_width, 256), text_proj Linear(768, 256).
//   - VisionTransformer: own parameters cls_token [1,1,D], pos_embed
//     [1,N+1,D]; then patch_embed.proj (Conv2d with bias; timm's PatchEmbed
//     norm is Identity), blocks.i (norm1, attn.qkv (bias, qkv_bias=True),
//     attn.proj, norm2, mlp.fc1, mlp.fc2), norm. No head, no pre_logits.
//   - BertModel(add_pooling_layer=False): embeddings (buffer position_ids
//     [1, max_position_embeddings] first, then word_embeddings,
//     position_embeddings, LayerNorm — no token_type_embeddings in med.py),
//     encoder.layer.i (attention.self.{query,key,value}, attention.output.
//     {dense,LayerNorm}, crossattention.* likewise with key/value from
//     encoder_width, intermediate.dense, output.dense, output.LayerNorm).
//     No pooler.
//   - MLP: layers.{0,2,4,6,7} Linear (1, 3, 5 are Dropouts).
func Params(cfg *blip.Config) []Param {
	v, t := &cfg.Vision, &cfg.Text
	var ps []Param
	add := func(name string, dims ...int) { ps = append(ps, Param{Name: name, Shape: clipref.ShapeOf(dims...)}) }
	// A Linear (weight [out, in], then bias) and a LayerNorm (weight, bias).
	linear := func(name string, out, in int) { add(name+".weight", out, in); add(name+".bias", out) }
	norm := func(name string, d int) { add(name+".weight", d); add(name+".bias", d) }
	D, M, P := v.Width, int(float64(v.Width)*v.MLPRatio), v.PatchSize
	T := (v.ImageSize/P)*(v.ImageSize/P) + 1
	ve := "blip.visual_encoder."
	add(ve+"cls_token", 1, 1, D)
	add(ve+"pos_embed", 1, T, D)
	add(ve+"patch_embed.proj.weight", D, 3, P, P)
	add(ve+"patch_embed.proj.bias", D)
	for i := 0; i < v.Depth; i++ {
		p := fmt.Sprintf("%sblocks.%d.", ve, i)
		norm(p+"norm1", D)
		linear(p+"attn.qkv", 3*D, D)
		linear(p+"attn.proj", D, D)
		norm(p+"norm2", D)
		linear(p+"mlp.fc1", M, D)
		linear(p+"mlp.fc2", D, M)
	}
	norm(ve+"norm", D)

	H, I, E := t.HiddenSize, t.IntermediateSize, v.Width
	te := "blip.text_encoder."
	ps = append(ps, Param{Name: te + "embeddings.position_ids", Shape: []int64{1, int64(t.MaxPositions)}, Int: true})
	add(te+"embeddings.word_embeddings.weight", t.VocabSize, H)
	add(te+"embeddings.position_embeddings.weight", t.MaxPositions, H)
	norm(te+"embeddings.LayerNorm", H)
	for i := 0; i < t.NumLayers; i++ {
		p := fmt.Sprintf("%sencoder.layer.%d.", te, i)
		for _, att := range []struct {
			name string
			kvIn int
		}{{"attention.", H}, {"crossattention.", E}} {
			a := p + att.name
			linear(a+"self.query", H, H)
			linear(a+"self.key", H, att.kvIn)
			linear(a+"self.value", H, att.kvIn)
			linear(a+"output.dense", H, H)
			norm(a+"output.LayerNorm", H)
		}
		linear(p+"intermediate.dense", I, H)
		linear(p+"output.dense", H, I)
		norm(p+"output.LayerNorm", H)
	}
	linear("blip.vision_proj", 256, D)
	linear("blip.text_proj", 256, H)

	in := H
	for i, idx := range HeadIndices {
		linear(fmt.Sprintf("mlp.layers.%d", idx), HeadWidths[i], in)
		in = HeadWidths[i]
	}
	return ps
}

// RandomWeights returns seeded random values for every entry of
// Params(cfg). Generator: rand.New(rand.NewPCG(uint64(seed), 0)); entries in
// Params order, values row-major, each computed in float64 and rounded to
// float32:
//   - position_ids: 0, 1, 2, … (no draw), as in a real checkpoint
//   - LayerNorm weights (".weight" of a name containing "norm" or
//     "LayerNorm"): 1 + 0.1·z
//   - biases: 0.1·z
//   - embeddings, cls_token, pos_embed: 0.5·z
//   - mlp.layers.*: torch Linear's default, uniform in ±1/√fan_in
//     (1/√fan_in · (2u − 1), weight and bias)
//   - other weights (Linear, Conv): z/√fan_in
func RandomWeights(cfg *blip.Config, seed int64) MapWeights {
	r := rand.New(rand.NewPCG(uint64(seed), 0))
	m := make(MapWeights)
	headFanIn := 0
	for _, p := range Params(cfg) {
		data := make([]float32, clipref.Numel(p.Shape))
		fanIn := 1
		for _, d := range p.Shape[1:] {
			fanIn *= int(d)
		}
		isNorm := strings.Contains(p.Name, "norm") || strings.Contains(p.Name, "LayerNorm")
		switch {
		case p.Int:
			for i := range data {
				data[i] = float32(i)
			}
		case strings.HasPrefix(p.Name, "mlp."):
			if strings.HasSuffix(p.Name, ".weight") {
				headFanIn = fanIn
			}
			bound := 1 / math.Sqrt(float64(headFanIn))
			for i := range data {
				data[i] = float32(bound * (2*r.Float64() - 1))
			}
		case isNorm && strings.HasSuffix(p.Name, ".weight"):
			for i := range data {
				data[i] = float32(1 + 0.1*r.NormFloat64())
			}
		case strings.HasSuffix(p.Name, ".bias"):
			for i := range data {
				data[i] = float32(0.1 * r.NormFloat64())
			}
		case strings.Contains(p.Name, "embeddings.") || strings.HasSuffix(p.Name, "cls_token") || strings.HasSuffix(p.Name, "pos_embed"):
			for i := range data {
				data[i] = float32(0.5 * r.NormFloat64())
			}
		default:
			std := 1 / math.Sqrt(float64(fanIn))
			for i := range data {
				data[i] = float32(std * r.NormFloat64())
			}
		}
		m[p.Name] = Tensor{Shape: slices.Clone(p.Shape), Data: data, Int: p.Int}
	}
	return m
}

// WriteCheckpoint writes w as ImageReward.pt is laid out: a torch zip-pickle
// state dict with keys blip.* and mlp.layers.* in ImageReward.state_dict()
// order (position_ids as int64, the unused vision_proj and text_proj
// included), followed by extra tensors (keys a training checkpoint may add).
func WriteCheckpoint(path string, cfg *blip.Config, w MapWeights, extra ...checkpoint.NamedTensor) error {
	var ts []checkpoint.NamedTensor
	for _, p := range Params(cfg) {
		e, ok := w[p.Name]
		if !ok {
			continue
		}
		dt := checkpoint.F32
		if e.Int {
			dt = checkpoint.I64
		}
		ts = append(ts, checkpoint.NamedTensor{Name: p.Name, DType: dt, Shape: e.Shape, Data: e.Data})
	}
	ts = append(ts, extra...)
	return checkpoint.WriteFile(path, func(f io.Writer) error { return checkpoint.WriteTorchZip(f, "ImageReward", ts) })
}

// MedConfigJSON is a med_config.json for cfg's text encoder in the layout
// of ImageReward's (BertConfig fields, encoder_width 768 as the file has it:
// BLIP overwrites it with the ViT's width).
func MedConfigJSON(cfg *blip.Config) []byte {
	t := cfg.Text
	return fmt.Appendf(nil, `{
  "architectures": ["BertModel"],
  "attention_probs_dropout_prob": 0.1,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": %d,
  "initializer_range": 0.02,
  "intermediate_size": %d,
  "layer_norm_eps": %g,
  "max_position_embeddings": %d,
  "model_type": "bert",
  "num_attention_heads": %d,
  "num_hidden_layers": %d,
  "pad_token_id": 0,
  "type_vocab_size": 2,
  "vocab_size": %d,
  "encoder_width": 768,
  "add_cross_attention": true
}
`, t.HiddenSize, t.IntermediateSize, t.LayerNormEps, t.MaxPositions, t.NumHeads, t.NumLayers, t.VocabSize)
}

// VisionConfigJSON is a --vision-config file for cfg's ViT.
func VisionConfigJSON(cfg *blip.Config) []byte {
	v := cfg.Vision
	return fmt.Appendf(nil, `{"image_size": %d, "patch_size": %d, "width": %d, "depth": %d, "num_heads": %d, "mlp_ratio": %g, "layer_norm_eps": %g}
`, v.ImageSize, v.PatchSize, v.Width, v.Depth, v.NumHeads, v.MLPRatio, v.LayerNormEps)
}
