package convert_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/icthp/icthp/models/checkpoint"
	"github.com/icthp/icthp/models/clip"
)

// hfConfig is a config.json as hub files of the ICT/HP era have it: towers
// under the legacy *_config_dict keys as well, a stale nested projection_dim
// and eos_token_id, and wrong sizes that the weights' shapes must override.
func hfConfig(c clip.Config, staleLayers bool) []byte {
	tower := func(t clip.TowerConfig, vision bool) map[string]any {
		m := map[string]any{
			"hidden_size": t.HiddenSize, "intermediate_size": t.IntermediateSize,
			"num_hidden_layers": t.NumLayers, "num_attention_heads": t.NumHeads,
			"hidden_act": string(t.HiddenAct), "layer_norm_eps": t.LayerNormEps,
			"projection_dim": 999, // stale: the top level wins
		}
		if staleLayers {
			m["num_hidden_layers"] = t.NumLayers + 3
		}
		if vision {
			m["image_size"], m["patch_size"] = t.ImageSize, t.PatchSize
		} else {
			m["vocab_size"], m["max_position_embeddings"] = t.VocabSize, t.MaxPositions
			m["eos_token_id"] = 2 // stale: pooling must use the largest id
		}
		return m
	}
	cfg := map[string]any{
		"architectures":      []string{"CLIPModel"},
		"model_type":         "clip",
		"projection_dim":     c.ProjectionDim,
		"text_config":        tower(c.Text, false),
		"vision_config":      tower(c.Vision, true),
		"text_config_dict":   tower(c.Text, false),
		"vision_config_dict": tower(c.Vision, true),
	}
	b, _ := json.MarshalIndent(cfg, "", " ")
	return b
}

// writeFolder writes a Hugging Face folder holding the named parameters of
// w in the given format, stored as dtype.
func writeFolder(t *testing.T, dir string, c clip.Config, w clip.Weights, names []string, format string, dtype checkpoint.DType, extra ...checkpoint.NamedTensor) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var ts []checkpoint.NamedTensor
	for _, n := range names {
		shape, ok := w.Shape(n)
		if !ok {
			t.Fatalf("no %s", n)
		}
		data, err := w.Float32(n)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, checkpoint.NamedTensor{Name: n, DType: dtype, Shape: shape, Data: data})
	}
	ts = append(ts, extra...)
	var file string
	switch format {
	case "safetensors":
		file = "model.safetensors"
	default:
		file = "pytorch_model.bin"
	}
	f, err := os.Create(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if format == "safetensors" {
		err = checkpoint.WriteSafetensors(f, ts)
	} else {
		err = checkpoint.WriteTorchZip(f, "pytorch_model", ts)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), hfConfig(c, true), 0o644); err != nil {
		t.Fatal(err)
	}
}

func paramNames(ps []clip.Param) []string {
	var n []string
	for _, p := range ps {
		n = append(n, p.Name)
	}
	return n
}
