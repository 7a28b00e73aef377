// Package clip describes the CLIP architecture as Hugging Face transformers
// defines it (CLIPModel), reads its config.json, and builds ONNX graphs of its
// encoders from a set of weights.
package clip

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Activation is the MLP non-linearity of the transformer layers.
type Activation string

// The activations CLIP checkpoints use. LAION's ViT-H-14 (the base of ICT and
// HP) uses exact GELU; OpenAI's checkpoints use quick_gelu.
const (
	GELU      Activation = "gelu"       // x·Φ(x), erf form, torch.nn.functional.gelu
	QuickGELU Activation = "quick_gelu" // x·σ(1.702x)
	GELUTanh  Activation = "gelu_new"   // tanh approximation, accepted for completeness
)

// TowerConfig is one transformer tower (vision or text).
type TowerConfig struct {
	HiddenSize        int        `json:"hidden_size"`
	IntermediateSize  int        `json:"intermediate_size"`
	NumLayers         int        `json:"num_hidden_layers"`
	NumHeads          int        `json:"num_attention_heads"`
	HiddenAct         Activation `json:"hidden_act"`
	LayerNormEps      float64    `json:"layer_norm_eps"`
	ImageSize         int        `json:"image_size,omitempty"`              // vision only
	PatchSize         int        `json:"patch_size,omitempty"`              // vision only
	NumChannels       int        `json:"num_channels,omitempty"`            // vision only
	VocabSize         int        `json:"vocab_size,omitempty"`              // text only
	MaxPositions      int        `json:"max_position_embeddings,omitempty"` // text only
	ProjectionDimHint int        `json:"projection_dim,omitempty"`          // stale on the hub; the top level wins
}

// Config is a CLIPModel configuration.
type Config struct {
	Vision        TowerConfig `json:"vision_config"`
	Text          TowerConfig `json:"text_config"`
	ProjectionDim int         `json:"projection_dim"`
}

// NumPatches is the number of image patches; the vision sequence is one longer
// (the class token).
func (c *Config) NumPatches() int {
	g := c.Vision.ImageSize / c.Vision.PatchSize
	return g * g
}

// HeadDim is the width of one attention head of the tower.
func (t *TowerConfig) HeadDim() int { return t.HiddenSize / t.NumHeads }

// defaults are transformers' CLIPVisionConfig/CLIPTextConfig defaults, which
// apply to fields a config.json leaves out.
func defaultConfig() Config {
	return Config{
		Vision: TowerConfig{HiddenSize: 768, IntermediateSize: 3072, NumLayers: 12, NumHeads: 12,
			HiddenAct: QuickGELU, LayerNormEps: 1e-5, ImageSize: 224, PatchSize: 32, NumChannels: 3},
		Text: TowerConfig{HiddenSize: 512, IntermediateSize: 2048, NumLayers: 12, NumHeads: 8,
			HiddenAct: QuickGELU, LayerNormEps: 1e-5, VocabSize: 49408, MaxPositions: 77},
		ProjectionDim: 512,
	}
}

// ParseConfig reads a Hugging Face CLIPConfig (config.json). Legacy files
// carry the towers as text_config_dict / vision_config_dict; where both a
// legacy and a current field exist, the current one wins, as in transformers.
// Fields left out take transformers' defaults.
func ParseConfig(data []byte) (Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Config{}, fmt.Errorf("clip config: %w", err)
	}
	c := defaultConfig()
	// Legacy dicts first, then the current fields over them.
	for _, tower := range []struct {
		dst  *TowerConfig
		keys []string
	}{
		{&c.Vision, []string{"vision_config_dict", "vision_config"}},
		{&c.Text, []string{"text_config_dict", "text_config"}},
	} {
		for _, k := range tower.keys {
			if v, ok := raw[k]; ok && string(v) != "null" {
				if err := json.Unmarshal(v, tower.dst); err != nil {
					return Config{}, fmt.Errorf("clip config: %s: %w", k, err)
				}
			}
		}
	}
	if v, ok := raw["projection_dim"]; ok {
		if err := json.Unmarshal(v, &c.ProjectionDim); err != nil {
			return Config{}, fmt.Errorf("clip config: projection_dim: %w", err)
		}
	}
	for _, t := range []*TowerConfig{&c.Vision, &c.Text} {
		t.HiddenAct = Activation(strings.ToLower(string(t.HiddenAct)))
	}
	return c, c.Validate()
}

// Validate checks that the sizes describe a buildable model.
func (c *Config) Validate() error {
	for _, t := range []struct {
		name string
		tc   *TowerConfig
	}{{"vision", &c.Vision}, {"text", &c.Text}} {
		tc := t.tc
		if tc.HiddenSize <= 0 || tc.NumLayers <= 0 || tc.NumHeads <= 0 || tc.IntermediateSize <= 0 {
			return fmt.Errorf("clip config: %s tower has non-positive sizes", t.name)
		}
		if tc.HiddenSize%tc.NumHeads != 0 {
			return fmt.Errorf("clip config: %s hidden_size %d is not divisible by %d heads", t.name, tc.HiddenSize, tc.NumHeads)
		}
		switch tc.HiddenAct {
		case GELU, QuickGELU, GELUTanh:
		default:
			return fmt.Errorf("clip config: %s hidden_act %q is not supported (gelu, quick_gelu, gelu_new)", t.name, tc.HiddenAct)
		}
		if tc.LayerNormEps <= 0 {
			return fmt.Errorf("clip config: %s layer_norm_eps must be positive", t.name)
		}
	}
	if c.Vision.PatchSize <= 0 || c.Vision.ImageSize <= 0 || c.Vision.ImageSize%c.Vision.PatchSize != 0 {
		return fmt.Errorf("clip config: image_size %d is not a multiple of patch_size %d", c.Vision.ImageSize, c.Vision.PatchSize)
	}
	if c.Vision.NumChannels <= 0 {
		c.Vision.NumChannels = 3
	}
	if c.Text.VocabSize <= 0 || c.Text.MaxPositions <= 0 {
		return fmt.Errorf("clip config: text vocab_size and max_position_embeddings must be positive")
	}
	if c.ProjectionDim <= 0 {
		return fmt.Errorf("clip config: projection_dim must be positive")
	}
	return nil
}

// Weights is what the builder and the references read parameters from: a
// checkpoint's state dict, a base with a checkpoint laid over it, or seeded
// random values. Names are transformers' CLIPModel state-dict keys
// ("vision_model.encoder.layers.0.self_attn.q_proj.weight", ...).
type Weights interface {
	// Shape returns the tensor's shape, and false when the name is absent.
	Shape(name string) ([]int64, bool)
	// Float32 returns the tensor's values, converted to float32, row-major.
	Float32(name string) ([]float32, error)
}
