// Package testmodels writes small checkpoints in Hugging Face layout for
// tests: a CLIPModel folder (config.json as hub files of the ICT/HP era
// have it, plus model.safetensors or pytorch_model.bin) and the HP head's
// bare state dict.
package testmodels

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/checkpoint"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/convert"
	"github.com/icthp/icthp/preprocess/text"
)

// Format is a checkpoint file format.
type Format string

// The two formats Hugging Face folders use.
const (
	Safetensors Format = "safetensors"
	Torch       Format = "torch"
)

// Config is a config.json as hub files of the ICT/HP era have it: towers
// under the legacy *_config_dict keys as well, a stale nested projection_dim
// and eos_token_id, and, with staleLayers, layer counts that the weights'
// shapes must override.
func Config(c clip.Config, staleLayers bool) []byte {
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

// Tensors reads the named parameters of w as checkpoint tensors of dtype.
func Tensors(w clip.Weights, names []string, dtype checkpoint.DType) ([]checkpoint.NamedTensor, error) {
	var ts []checkpoint.NamedTensor
	for _, n := range names {
		shape, ok := w.Shape(n)
		if !ok {
			return nil, fmt.Errorf("testmodels: no parameter %s", n)
		}
		data, err := w.Float32(n)
		if err != nil {
			return nil, err
		}
		ts = append(ts, checkpoint.NamedTensor{Name: n, DType: dtype, Shape: shape, Data: data})
	}
	return ts, nil
}

// WriteFolder writes a Hugging Face folder holding the named parameters of
// w (plus extra tensors) in the given format, stored as dtype, with a stale
// config.json.
func WriteFolder(dir string, c clip.Config, w clip.Weights, names []string, format Format, dtype checkpoint.DType, extra ...checkpoint.NamedTensor) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ts, err := Tensors(w, names, dtype)
	if err != nil {
		return err
	}
	ts = append(ts, extra...)
	file := "pytorch_model.bin"
	if format == Safetensors {
		file = "model.safetensors"
	}
	err = checkpoint.WriteFile(filepath.Join(dir, file), func(f io.Writer) error {
		if format == Safetensors {
			return checkpoint.WriteSafetensors(f, ts)
		}
		return checkpoint.WriteTorchZip(f, "pytorch_model", ts)
	})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), Config(c, true), 0o644)
}

// WriteHead writes the HP head's parameters from w as a bare state dict in
// a torch zip file, as hp_scorer/mlp_pytorch_model.bin is.
func WriteHead(path string, c clip.Config, w clip.Weights) error {
	var names []string
	for _, p := range clip.HeadParams(int64(c.ProjectionDim)) {
		names = append(names, p.Name)
	}
	ts, err := Tensors(w, names, "F32")
	if err != nil {
		return err
	}
	return checkpoint.WriteFile(path, func(f io.Writer) error { return checkpoint.WriteTorchZip(f, "mlp_pytorch_model", ts) })
}

// Keyed is a state dict that lists its keys in order (openclip.Random).
type Keyed interface {
	Keys() []string
	Shape(name string) ([]int64, bool)
	Float32(name string) ([]float32, error)
}

// WriteOpenCLIP writes every key of w, under prefix ("" or "module."), as
// float32 to a torch zip file at path: wrapped, as a training checkpoint
// torch.save({"epoch": epoch, "state_dict": sd}) is (HPSv2's
// HPS_v2_compressed.pt), or as the bare state dict.
func WriteOpenCLIP(path string, w Keyed, prefix string, wrapped bool, epoch int64) error {
	var ts []checkpoint.NamedTensor
	for _, k := range w.Keys() {
		s, _ := w.Shape(k)
		v, err := w.Float32(k)
		if err != nil {
			return err
		}
		ts = append(ts, checkpoint.NamedTensor{Name: prefix + k, DType: checkpoint.F32, Shape: s, Data: v})
	}
	return checkpoint.WriteFile(path, func(f io.Writer) error {
		if wrapped {
			return checkpoint.WriteTorchZipWrapped(f, "HPS_v2_compressed", "state_dict", epoch, ts)
		}
		return checkpoint.WriteTorchZip(f, "", ts)
	})
}

// Names lists the parameters' names.
func Names(ps []clip.Param) []string {
	var n []string
	for _, p := range ps {
		n = append(n, p.Name)
	}
	return n
}

// RandomDir writes a `tiny` random model directory of kind (clip or hp) with
// seed into dir, the way `icthp convert random` does, and returns its
// manifest, architecture and weights (Cached), so that a test can compute the
// float64 reference (internal/clipref) on exactly the weights the graphs
// hold. A clip model gets vocab (a bpe_simple_vocab_16e6.txt.gz's content)
// or, when vocab is nil, a synthetic vocabulary.
func RandomDir(dir string, kind models.Kind, seed uint64, vocab []byte, build clip.BuildOptions) (*models.Manifest, clip.Config, clip.Weights, error) {
	c, err := clip.PresetConfig(clip.PresetTiny)
	if err != nil {
		return nil, c, nil, err
	}
	o := convert.RandomOptions{Preset: clip.PresetTiny, Kind: kind, Seed: seed, Out: dir, Build: build}
	if kind == models.KindCLIP {
		if vocab != nil {
			o.Vocab, o.VocabName = vocab, "bpe_simple_vocab_16e6.txt.gz"
		} else {
			o.Vocab, o.Synthetic = text.SyntheticVocab(2000), true
		}
	}
	man, err := convert.Random(o)
	if err != nil {
		return nil, c, nil, err
	}
	return man, c, Cached(clip.NewRandom(&c, seed, kind == models.KindHP)), nil
}

// Cached remembers every tensor w returns, so that a reference computed
// image by image does not regenerate (or re-read) the same random weights
// each time. It is safe for concurrent use.
func Cached(w clip.Weights) clip.Weights { return &cached{w: w, m: map[string][]float32{}} }

type cached struct {
	w  clip.Weights
	mu sync.Mutex
	m  map[string][]float32
}

func (c *cached) Shape(name string) ([]int64, bool) { return c.w.Shape(name) }

func (c *cached) Float32(name string) ([]float32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[name]; ok {
		return v, nil
	}
	v, err := c.w.Float32(name)
	if err == nil {
		c.m[name] = v
	}
	return v, err
}
