package blip_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/icthp/icthp/internal/blipref"
	"github.com/icthp/icthp/models/blip"
)

// ImageReward's med_config.json as published with the checkpoint
// (train/src/config/med_config.json in THUDM/ImageReward): encoder_width says
// 768, BLIP_Pretrain overwrites it with the ViT's width.
const imageRewardMed = `{
  "architectures": ["BertModel"],
  "attention_probs_dropout_prob": 0.1,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 768,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "layer_norm_eps": 1e-12,
  "max_position_embeddings": 512,
  "model_type": "bert",
  "num_attention_heads": 12,
  "num_hidden_layers": 12,
  "pad_token_id": 0,
  "type_vocab_size": 2,
  "vocab_size": 30524,
  "encoder_width": 768,
  "add_cross_attention": true
}`

func TestParseMedConfig(t *testing.T) {
	m, err := blip.ParseMedConfig([]byte(imageRewardMed))
	if err != nil {
		t.Fatal(err)
	}
	want := blip.ImageRewardMed()
	want.EncoderWidth = 768 // as the file says, before NewConfig
	if m != want {
		t.Errorf("parsed %+v\nwant   %+v", m, want)
	}
	c, err := blip.NewConfig(m, blip.ViTL16())
	if err != nil {
		t.Fatal(err)
	}
	if c.Text.EncoderWidth != 1024 || c.ContextLength != 35 || c.EmbedDim != 256 {
		t.Errorf("config %+v: want encoder_width 1024 (the ViT's), context 35, embed_dim 256", c)
	}
	p, err := blip.PresetConfig(blip.PresetImageReward)
	if err != nil {
		t.Fatal(err)
	}
	if p != c {
		t.Errorf("preset %+v differs from the parsed config %+v", p, c)
	}

	// Fields left out take BertConfig's defaults.
	m, err = blip.ParseMedConfig([]byte(`{"add_cross_attention": true, "vocab_size": 30524}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.HiddenSize != 768 || m.NumLayers != 12 || m.LayerNormEps != 1e-12 || m.MaxPositions != 512 {
		t.Errorf("defaults: %+v", m)
	}

	for _, bad := range []struct{ json, want string }{
		{`{"vocab_size": 30524}`, "add_cross_attention"},
		{`{"add_cross_attention": true, "hidden_act": "relu"}`, "hidden_act"},
		{`{"add_cross_attention": true, "position_embedding_type": "relative_key"}`, "position_embedding_type"},
		{`{"add_cross_attention": true, "hidden_size": 100}`, "divisible"},
		{`{"add_cross_attention": true, "layer_norm_eps": 0}`, "layer_norm_eps"},
		{`{"add_cross_attention": true,`, "med config"},
	} {
		if _, err := blip.ParseMedConfig([]byte(bad.json)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: error %v, want one mentioning %q", bad.json, err, bad.want)
		}
	}
	// The context must fit the position embeddings.
	small := blip.ImageRewardMed()
	small.MaxPositions = 20
	if _, err := blip.NewConfig(small, blip.ViTL16()); err == nil {
		t.Error("context 35 with 20 positions accepted")
	}
}

func TestParseVisionConfig(t *testing.T) {
	v, err := blip.ParseVisionConfig([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if v != blip.ViTL16() || v.NumTokens() != 197 || v.MLPHidden() != 4096 {
		t.Errorf("empty config: %+v, want ViT-L/16 (197 tokens, MLP 4096)", v)
	}
	v, err = blip.ParseVisionConfig([]byte(`{"image_size": 384, "patch_size": 16, "width": 768, "depth": 12,
		"num_heads": 12, "mlp_ratio": 4.0, "layer_norm_eps": 1e-6, "vit": "base", "comment": [1, 2]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := blip.VisionConfig{ImageSize: 384, PatchSize: 16, Width: 768, Depth: 12, NumHeads: 12, MLPRatio: 4, LayerNormEps: 1e-6}
	if v != want || v.NumTokens() != 577 {
		t.Errorf("got %+v, want %+v", v, want)
	}
	for _, bad := range []string{
		`{"image_size": 200}`, `{"num_heads": 7}`, `{"mlp_ratio": 0}`, `{"layer_norm_eps": -1}`, `{"depth": 0}`, `[`,
	} {
		if _, err := blip.ParseVisionConfig([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	// int(width · mlp_ratio) truncates as Python's int does.
	odd := blip.VisionConfig{Width: 10, MLPRatio: 2.55}
	if odd.MLPHidden() != 25 {
		t.Errorf("MLPHidden(10·2.55) = %d, want 25", odd.MLPHidden())
	}
}

// The builder's key list is the reference's (transcribed separately from
// the module definitions): same names, shapes, order and buffer flag.
func TestParamsMatchReference(t *testing.T) {
	for _, p := range blip.Presets {
		c, err := blip.PresetConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		got, want := c.Params(), blipref.Params(&c)
		if len(got) != len(want) {
			t.Fatalf("%s: %d entries, reference %d", p, len(got), len(want))
		}
		for i := range got {
			if got[i].Name != want[i].Name || !slices.Equal(got[i].Shape, want[i].Shape) || got[i].Int != want[i].Int {
				t.Errorf("%s: entry %d: builder %+v, reference %+v", p, i, got[i], want[i])
			}
		}
		// Used + unused partition the list.
		n := len(c.VisionParams()) + len(c.TextParams()) + len(c.HeadParams()) + len(c.UnusedParams())
		if n != len(got) {
			t.Errorf("%s: vision+text+head+unused = %d, all = %d", p, n, len(got))
		}
	}
	c, _ := blip.PresetConfig(blip.PresetImageReward)
	// ImageReward's published size: 24 ViT blocks × 12 + 4 + 2, BERT 4 +
	// 12 × 26 + position_ids, 2 projections × 2, head 10.
	if got, want := len(c.Params()), (24*12+6)+(1+4+12*26)+4+10; got != want {
		t.Errorf("imagereward has %d state-dict entries, want %d", got, want)
	}
}

func TestRandomWeights(t *testing.T) {
	c := tinyConfig(t)
	r := blip.NewRandom(&c, 5)
	keys := r.Keys()
	for i, p := range c.Params() {
		if keys[i] != p.Name {
			t.Fatalf("key %d: %s, want %s", i, keys[i], p.Name)
		}
		s, ok := r.Shape(p.Name)
		if !ok || !slices.Equal(s, p.Shape) {
			t.Fatalf("%s: shape %v, want %v", p.Name, s, p.Shape)
		}
	}
	a, _ := r.Float32("blip.text_encoder.encoder.layer.1.crossattention.self.key.weight")
	b, _ := blip.NewRandom(&c, 5).Float32("blip.text_encoder.encoder.layer.1.crossattention.self.key.weight")
	d, _ := blip.NewRandom(&c, 6).Float32("blip.text_encoder.encoder.layer.1.crossattention.self.key.weight")
	if !slices.Equal(a, b) || slices.Equal(a, d) {
		t.Error("random weights are not a function of the seed")
	}
	pos, _ := r.Float32("blip.text_encoder.embeddings.position_ids")
	if len(pos) != 64 || pos[0] != 0 || pos[63] != 63 {
		t.Errorf("position_ids %v, want an arange", pos)
	}
	if _, err := r.Float32("nope"); err == nil {
		t.Error("unknown key read")
	}
}
