package openclip

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/icthp/icthp/models/clip"
)

// ModelConfig is open_clip's model configuration (model_configs/NAME.json:
// embed_dim, vision_cfg, text_cfg, quick_gelu). Only the fields that shapes
// cannot tell are needed: the number of heads (vision: width / head_width;
// text: heads) and the activation; the sizes, when given, are checked
// against the weights.
type ModelConfig struct {
	EmbedDim  int  `json:"embed_dim"`
	QuickGELU bool `json:"quick_gelu"`
	Vision    struct {
		ImageSize json.RawMessage `json:"image_size"` // int or [h, w]
		Layers    int             `json:"layers"`
		Width     int             `json:"width"`
		HeadWidth int             `json:"head_width"`
		PatchSize int             `json:"patch_size"`
	} `json:"vision_cfg"`
	Text struct {
		ContextLength int `json:"context_length"`
		VocabSize     int `json:"vocab_size"`
		Width         int `json:"width"`
		Heads         int `json:"heads"`
		Layers        int `json:"layers"`
	} `json:"text_cfg"`
}

// ParseModelConfig reads an open_clip model config JSON.
func ParseModelConfig(data []byte) (*ModelConfig, error) {
	var m ModelConfig
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("open_clip model config: %w", err)
	}
	return &m, nil
}

// Known open_clip ViT configurations (model_configs/ViT-*.json), keyed by
// tower width: heads cannot be read from the weights. open_clip's vision
// default head_width is 64 and its text default heads 8; the configs below
// set them explicitly. ViT-H-14 (HPSv2): vision width 1280, head_width 80
// (16 heads); text width 1024, 16 heads.
var (
	visionHeads = map[int]int{768: 12, 1024: 16, 1280: 16, 1408: 16, 1664: 16}
	textHeads   = map[int]int{512: 8, 768: 12, 1024: 16, 1280: 20}
)

// Options are what Config needs beyond the shapes.
type Options struct {
	Model     *ModelConfig // optional open_clip model config; its heads and activation win
	QuickGELU bool         // the model was trained with QuickGELU (OpenAI-pretrained open_clip models)
}

// Config infers the CLIP configuration of an open_clip checkpoint from its
// tensors' shapes: widths, depths, patch and image size, MLP width,
// vocabulary, context length, embedding width. Heads come from o.Model or,
// for the known widths, from open_clip's configs; otherwise an error asks
// for the model config. LayerNorm eps is torch's default 1e-5 (open_clip's
// LayerNorm subclasses nn.LayerNorm without changing it). The activation is
// exact GELU unless o says QuickGELU (open_clip's act_layer).
func Config(w *Weights, o Options) (clip.Config, error) {
	var c clip.Config
	dims := func(hf string, n int) ([]int64, error) {
		s, ok := w.Shape(hf)
		if !ok || len(s) != n {
			name, _ := OpenCLIPName(hf)
			return nil, fmt.Errorf("openclip: %s missing or not %d-D", name, n)
		}
		return s, nil
	}
	var conv, vpos, tok, tpos, vproj []int64
	for _, d := range []struct {
		dst  *[]int64
		name string
		n    int
	}{
		{&conv, "vision_model.embeddings.patch_embedding.weight", 4},
		{&vpos, "vision_model.embeddings.position_embedding.weight", 2},
		{&tok, "text_model.embeddings.token_embedding.weight", 2},
		{&tpos, "text_model.embeddings.position_embedding.weight", 2},
		{&vproj, "visual_projection.weight", 2},
	} {
		var err error
		if *d.dst, err = dims(d.name, d.n); err != nil {
			return c, err
		}
	}
	g := int64(math.Round(math.Sqrt(float64(vpos[0] - 1))))
	if g*g != vpos[0]-1 {
		return c, fmt.Errorf("openclip: visual.positional_embedding has %d rows, not 1 + a square grid", vpos[0])
	}
	act := clip.GELU
	if o.QuickGELU || (o.Model != nil && o.Model.QuickGELU) {
		act = clip.QuickGELU
	}
	c.Vision = clip.TowerConfig{HiddenSize: int(conv[0]), NumChannels: int(conv[1]), PatchSize: int(conv[2]),
		ImageSize: int(g * conv[2]), HiddenAct: act, LayerNormEps: 1e-5}
	c.Text = clip.TowerConfig{HiddenSize: int(tok[1]), VocabSize: int(tok[0]), MaxPositions: int(tpos[0]),
		HiddenAct: act, LayerNormEps: 1e-5}
	c.ProjectionDim = int(vproj[0])
	for _, t := range []struct {
		prefix string
		tc     *clip.TowerConfig
	}{{"vision_model", &c.Vision}, {"text_model", &c.Text}} {
		t.tc.NumLayers = countLayers(w, t.prefix)
		fc1, err := dims(t.prefix+".encoder.layers.0.mlp.fc1.weight", 2)
		if err != nil {
			return c, err
		}
		t.tc.IntermediateSize = int(fc1[0])
	}
	if err := setHeads(&c, o.Model); err != nil {
		return c, err
	}
	if o.Model != nil {
		if err := checkModelConfig(&c, o.Model); err != nil {
			return c, err
		}
	}
	return c, c.Validate()
}

func countLayers(w *Weights, prefix string) int {
	n := 0
	for {
		if _, ok := w.Shape(prefix + ".encoder.layers." + strconv.Itoa(n) + ".layer_norm1.weight"); !ok {
			return n
		}
		n++
	}
}

func setHeads(c *clip.Config, m *ModelConfig) error {
	vh, th := visionHeads[c.Vision.HiddenSize], textHeads[c.Text.HiddenSize]
	if m != nil {
		hw := m.Vision.HeadWidth
		if hw == 0 {
			hw = 64 // open_clip CLIPVisionCfg default
		}
		vh = c.Vision.HiddenSize / hw
		th = m.Text.Heads
		if th == 0 {
			th = 8 // open_clip CLIPTextCfg default
		}
	}
	if vh == 0 || th == 0 {
		return fmt.Errorf("openclip: the number of heads of a vision width %d / text width %d model is not known: give the open_clip model config (model_configs/NAME.json)",
			c.Vision.HiddenSize, c.Text.HiddenSize)
	}
	c.Vision.NumHeads, c.Text.NumHeads = vh, th
	return nil
}

// checkModelConfig compares the sizes a model config gives with those the
// shapes gave.
func checkModelConfig(c *clip.Config, m *ModelConfig) error {
	img := 0
	if len(m.Vision.ImageSize) > 0 {
		var n int
		var hw []int
		if json.Unmarshal(m.Vision.ImageSize, &n) == nil {
			img = n
		} else if json.Unmarshal(m.Vision.ImageSize, &hw) == nil && len(hw) == 2 && hw[0] == hw[1] {
			img = hw[0]
		} else {
			return fmt.Errorf("openclip: model config image_size %s is not a square size", m.Vision.ImageSize)
		}
	}
	for _, f := range []struct {
		field     string
		cfg, have int
	}{
		{"embed_dim", m.EmbedDim, c.ProjectionDim},
		{"vision_cfg.width", m.Vision.Width, c.Vision.HiddenSize},
		{"vision_cfg.layers", m.Vision.Layers, c.Vision.NumLayers},
		{"vision_cfg.patch_size", m.Vision.PatchSize, c.Vision.PatchSize},
		{"vision_cfg.image_size", img, c.Vision.ImageSize},
		{"text_cfg.width", m.Text.Width, c.Text.HiddenSize},
		{"text_cfg.layers", m.Text.Layers, c.Text.NumLayers},
		{"text_cfg.vocab_size", m.Text.VocabSize, c.Text.VocabSize},
		{"text_cfg.context_length", m.Text.ContextLength, c.Text.MaxPositions},
	} {
		if f.cfg != 0 && f.cfg != f.have {
			return fmt.Errorf("openclip: model config %s=%d, the checkpoint's shapes say %d", f.field, f.cfg, f.have)
		}
	}
	return nil
}

// Check compares the checkpoint with every parameter the CLIP graphs of c
// read, naming open_clip's keys: a missing key, or a shape the architecture
// does not expect (the builder's own check would name transformers' keys).
func Check(w *Weights, c *clip.Config) error {
	var missing []string
	for _, p := range c.Params() {
		if p.Name == "logit_scale" {
			continue // not read by the graphs
		}
		oc, part := OpenCLIPName(p.Name)
		s, ok := w.Shape(p.Name)
		if !ok {
			if raw, has := w.src.Shape(w.prefix + oc); has {
				return fmt.Errorf("openclip: %s has shape %v, which does not fit the architecture", oc, raw)
			}
			if !slices.Contains(missing, oc) {
				missing = append(missing, oc)
			}
			continue
		}
		if !slices.Equal(s, p.Shape) {
			raw, _ := w.src.Shape(w.prefix + oc)
			want := slices.Clone(p.Shape)
			if part >= 0 {
				want[0] *= 3
			} else if len(want) == 2 && (oc == "visual.proj" || oc == "text_projection") {
				want[0], want[1] = want[1], want[0]
			}
			return fmt.Errorf("openclip: %s has shape %v, the architecture needs %v", oc, raw, want)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("openclip: checkpoint lacks %s", summarise(missing))
	}
	return nil
}
