// Package blip describes ImageReward (THUDM/ImageReward): BLIP's ViT image
// encoder, its BERT text encoder with cross-attention to the image tokens
// ("med.py", mode "multimodal"), and the reward head, as the original
// ImageReward.score computes them. It reads the configuration files
// (med_config.json and an optional vision config), lists the state-dict keys
// of ImageReward.pt, and builds two ONNX graphs from a set of weights:
//
//	vision.onnx  pixel_values [B,3,S,S] → image_tokens [B,N+1,Dv]
//	text.onnx    input_ids [B,L], attention_mask [B,L], image_tokens → imagereward [B]
//
// The image tokens depend on the image alone, so a caller may compute them
// once per image and score many prompts against them.
package blip

import (
	"encoding/json"
	"fmt"
	"strings"
)

// VisionConfig is the ViT of BLIP (models/BLIP/vit.py VisionTransformer).
// ImageReward fixes it in code (create_vit('large', 224)); a vision config
// file (SPEC §3 --vision-config) may override it. JSON field names are those
// of the --vision-config file; unknown fields are ignored.
type VisionConfig struct {
	ImageSize    int     `json:"image_size"`
	PatchSize    int     `json:"patch_size"`
	Width        int     `json:"width"`
	Depth        int     `json:"depth"`
	NumHeads     int     `json:"num_heads"`
	MLPRatio     float64 `json:"mlp_ratio"`
	LayerNormEps float64 `json:"layer_norm_eps"`
}

// ViTL16 is ImageReward's image encoder: create_vit('large', image_size=224)
// → VisionTransformer(patch_size=16, embed_dim=1024, depth=24, num_heads=16,
// mlp_ratio=4, qkv_bias=True, norm_layer=LayerNorm(eps=1e-6)).
func ViTL16() VisionConfig {
	return VisionConfig{ImageSize: 224, PatchSize: 16, Width: 1024, Depth: 24, NumHeads: 16, MLPRatio: 4, LayerNormEps: 1e-6}
}

// NumPatches is the number of image patches; the token sequence is one longer
// (the class token).
func (v *VisionConfig) NumPatches() int {
	g := v.ImageSize / v.PatchSize
	return g * g
}

// NumTokens is the length of the image token sequence: the class token and
// the patches.
func (v *VisionConfig) NumTokens() int { return v.NumPatches() + 1 }

// MLPHidden is the width of the MLP inside a block: int(width·mlp_ratio), as
// vit.py's Block computes it (Python's int truncates).
func (v *VisionConfig) MLPHidden() int { return int(float64(v.Width) * v.MLPRatio) }

// Validate checks that the sizes describe a buildable ViT.
func (v *VisionConfig) Validate() error {
	if v.Width <= 0 || v.Depth <= 0 || v.NumHeads <= 0 || v.PatchSize <= 0 || v.ImageSize <= 0 {
		return fmt.Errorf("vision config: sizes must be positive (image_size %d, patch_size %d, width %d, depth %d, num_heads %d)",
			v.ImageSize, v.PatchSize, v.Width, v.Depth, v.NumHeads)
	}
	if v.ImageSize%v.PatchSize != 0 {
		return fmt.Errorf("vision config: image_size %d is not a multiple of patch_size %d", v.ImageSize, v.PatchSize)
	}
	if v.Width%v.NumHeads != 0 {
		return fmt.Errorf("vision config: width %d is not divisible by %d heads", v.Width, v.NumHeads)
	}
	if !(v.MLPRatio > 0) || v.MLPHidden() <= 0 {
		return fmt.Errorf("vision config: mlp_ratio %g gives no MLP", v.MLPRatio)
	}
	if !(v.LayerNormEps > 0) {
		return fmt.Errorf("vision config: layer_norm_eps must be positive")
	}
	return nil
}

// ParseVisionConfig reads a vision config file. Fields left out keep
// ImageReward's values (ViTL16); unknown fields are ignored.
func ParseVisionConfig(data []byte) (VisionConfig, error) {
	v := ViTL16()
	if err := json.Unmarshal(data, &v); err != nil {
		return VisionConfig{}, fmt.Errorf("vision config: %w", err)
	}
	return v, v.Validate()
}

// MedConfig is the BERT configuration of BLIP's text encoder
// (med_config.json, read by transformers' BertConfig.from_json_file). Only
// the fields the forward pass depends on are kept; others are ignored.
type MedConfig struct {
	VocabSize             int     `json:"vocab_size"`
	HiddenSize            int     `json:"hidden_size"`
	NumLayers             int     `json:"num_hidden_layers"`
	NumHeads              int     `json:"num_attention_heads"`
	IntermediateSize      int     `json:"intermediate_size"`
	HiddenAct             string  `json:"hidden_act"`
	MaxPositions          int     `json:"max_position_embeddings"`
	LayerNormEps          float64 `json:"layer_norm_eps"`
	PadTokenID            int     `json:"pad_token_id"`
	AddCrossAttention     bool    `json:"add_cross_attention"`
	PositionEmbeddingType string  `json:"position_embedding_type"`
	// EncoderWidth is the width of the image tokens the cross-attention
	// keys and values are projected from. BLIP_Pretrain overwrites the
	// file's value with the ViT's width (encoder_config.encoder_width =
	// vision_width); Config.Resolve does the same.
	EncoderWidth int `json:"encoder_width"`
}

// defaultMed is transformers' BertConfig defaults, which apply to fields a
// med_config.json leaves out (add_cross_attention defaults to false there).
func defaultMed() MedConfig {
	return MedConfig{VocabSize: 30522, HiddenSize: 768, NumLayers: 12, NumHeads: 12, IntermediateSize: 3072,
		HiddenAct: "gelu", MaxPositions: 512, LayerNormEps: 1e-12, PositionEmbeddingType: "absolute"}
}

// ImageRewardMed is ImageReward's med_config.json (BERT-base with
// cross-attention, the [DEC] and [ENC] tokens added to the vocabulary).
func ImageRewardMed() MedConfig {
	m := defaultMed()
	m.VocabSize = 30524
	m.AddCrossAttention = true
	m.EncoderWidth = 1024
	return m
}

// ParseMedConfig reads med_config.json.
func ParseMedConfig(data []byte) (MedConfig, error) {
	m := defaultMed()
	if err := json.Unmarshal(data, &m); err != nil {
		return MedConfig{}, fmt.Errorf("med config: %w", err)
	}
	m.HiddenAct = strings.ToLower(m.HiddenAct)
	return m, m.Validate()
}

// HeadDim is the width of one attention head.
func (m *MedConfig) HeadDim() int { return m.HiddenSize / m.NumHeads }

// Validate checks that the configuration describes the text encoder
// ImageReward runs: absolute position embeddings, exact GELU, and
// cross-attention layers (without them med.py's multimodal mode fails).
func (m *MedConfig) Validate() error {
	if m.HiddenSize <= 0 || m.NumLayers <= 0 || m.NumHeads <= 0 || m.IntermediateSize <= 0 || m.VocabSize <= 0 || m.MaxPositions <= 0 {
		return fmt.Errorf("med config: sizes must be positive")
	}
	if m.HiddenSize%m.NumHeads != 0 {
		return fmt.Errorf("med config: hidden_size %d is not divisible by %d heads", m.HiddenSize, m.NumHeads)
	}
	if m.HiddenAct != "gelu" {
		return fmt.Errorf("med config: hidden_act %q is not supported (ImageReward uses \"gelu\")", m.HiddenAct)
	}
	if m.PositionEmbeddingType != "" && m.PositionEmbeddingType != "absolute" {
		return fmt.Errorf("med config: position_embedding_type %q is not supported (want \"absolute\")", m.PositionEmbeddingType)
	}
	if !m.AddCrossAttention {
		return fmt.Errorf("med config: add_cross_attention is false; ImageReward's text encoder needs cross-attention layers")
	}
	if !(m.LayerNormEps > 0) {
		return fmt.Errorf("med config: layer_norm_eps must be positive")
	}
	return nil
}

// Config is a whole ImageReward model.
type Config struct {
	Vision VisionConfig
	Text   MedConfig
	// ContextLength is the token sequence length the text graph takes:
	// ImageReward tokenizes with padding='max_length', max_length=35.
	ContextLength int
	// EmbedDim is the width of BLIP_Pretrain's vision_proj and text_proj
	// (256). They are in the checkpoint but ImageReward.score does not use
	// them.
	EmbedDim int
}

// ImageReward's constants.
const (
	// ContextLength is ImageReward's tokenizer max_length.
	ContextLength = 35
	// ScoreMean and ScoreStd normalise the head's output:
	// (x − mean) / std (ImageReward.__init__).
	ScoreMean = 0.16717362830052426
	ScoreStd  = 1.0333394966054072
	// embedDim is BLIP_Pretrain's default embed_dim.
	embedDim = 256
)

// NewConfig combines a med config and a vision config as BLIP_Pretrain does
// (the cross-attention's encoder width is the ViT's width), with ImageReward's
// context length.
func NewConfig(med MedConfig, vis VisionConfig) (Config, error) {
	med.EncoderWidth = vis.Width
	c := Config{Vision: vis, Text: med, ContextLength: ContextLength, EmbedDim: embedDim}
	return c, c.Validate()
}

// Validate checks both towers and the context length.
func (c *Config) Validate() error {
	if err := c.Vision.Validate(); err != nil {
		return err
	}
	if err := c.Text.Validate(); err != nil {
		return err
	}
	if c.Text.EncoderWidth != c.Vision.Width {
		return fmt.Errorf("config: text encoder_width %d differs from the vision width %d", c.Text.EncoderWidth, c.Vision.Width)
	}
	if c.ContextLength <= 0 || c.ContextLength > c.Text.MaxPositions {
		return fmt.Errorf("config: context length %d outside 1..%d (max_position_embeddings)", c.ContextLength, c.Text.MaxPositions)
	}
	if c.EmbedDim <= 0 {
		return fmt.Errorf("config: embed_dim must be positive")
	}
	return nil
}

// Preset names an ImageReward size for `icthp convert random`.
type Preset string

// The presets.
const (
	// PresetImageReward is the real model: ViT-L/16 and BERT-base.
	PresetImageReward Preset = "imagereward"
	// PresetTiny keeps the real image size, vocabulary (so real token ids
	// stay valid) and context length, with small widths and two layers.
	PresetTiny Preset = "imagereward-tiny"
)

// Presets lists them.
var Presets = []Preset{PresetTiny, PresetImageReward}

// PresetConfig returns the architecture of a preset.
func PresetConfig(p Preset) (Config, error) {
	switch p {
	case PresetImageReward:
		return NewConfig(ImageRewardMed(), ViTL16())
	case PresetTiny:
		vis := VisionConfig{ImageSize: 224, PatchSize: 32, Width: 64, Depth: 2, NumHeads: 4, MLPRatio: 4, LayerNormEps: 1e-6}
		med := ImageRewardMed()
		med.HiddenSize, med.NumLayers, med.NumHeads, med.IntermediateSize, med.MaxPositions = 64, 2, 4, 256, 64
		return NewConfig(med, vis)
	}
	return Config{}, fmt.Errorf("unknown preset %q (want one of %v)", p, Presets)
}
