package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/convert"
)

// zooConvertKinds are the `convert` kinds of the reward zoo (SPEC §1).
var zooConvertKinds = []string{"pickscore", "clipscore", "clipscore-100", "openclip", "hpsv2", "aesthetic"}

// runConvertZoo is `icthp convert pickscore|clipscore|clipscore-100` (a
// Hugging Face CLIPModel folder, as `convert clip`, with the formula
// recorded), `convert openclip|hpsv2` (an open_clip checkpoint file) and
// `convert aesthetic` (OpenAI CLIP ViT-L/14 folder + the MLP head).
func runConvertZoo(_ context.Context, a *app, kind string, args []string) error {
	fs := newFlags(a, "convert "+kind)
	out := fs.String("out", "", "model directory to write (required)")
	fp16 := fs.Bool("fp16", false, "store weights and compute in float16 (for the cuda and tensorrt providers)")
	int8 := fs.Bool("int8", false, "int8 transformer weights (CPU throughput; outside the float32 parity target)")
	unfused := fs.Bool("unfused", false, "write standard ONNX operators only")
	name := fs.String("name", "", "name recorded in model.json")
	var ckpt, base, tok, modelCfg, clipDir, head *string
	var quick *bool
	switch kind {
	case "pickscore", "clipscore", "clipscore-100":
		ckpt = fs.String("checkpoint", "", "Hugging Face CLIPModel folder (PickScore_v1, openai/clip-vit-base-patch32, ...)")
		base = fs.String("base", "", "base folder the checkpoint is laid over")
		tok = fs.String("tokenizer", "", "vocabulary to copy; default: found in the folders")
	case "openclip", "hpsv2":
		ckpt = fs.String("checkpoint", "", "open_clip checkpoint (HPS_v2_compressed.pt, HPS_v2.1_compressed.pt): {\"state_dict\": ...} or a plain state dict")
		tok = fs.String("tokenizer", "", "open_clip's bpe_simple_vocab_16e6.txt.gz; default: beside the checkpoint")
		modelCfg = fs.String("model-config", "", "open_clip model config JSON (model_configs/NAME.json); needed for widths outside ViT-B/L/H/g/bigG")
		quick = fs.Bool("quick-gelu", false, "the model uses QuickGELU (OpenAI-pretrained open_clip models)")
	case "aesthetic":
		clipDir = fs.String("clip", "", "Hugging Face openai/clip-vit-large-patch14 folder")
		head = fs.String("head", "", "sac+logos+ava1-l14-linearMSE.pth (keys layers.0/2/4/6/7)")
	}
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out is required")
	}
	build, err := convertBuildOptions(kind, *fp16, *int8, *unfused, "")
	if err != nil {
		return err
	}
	start := time.Now()
	var man *models.Manifest
	switch kind {
	case "pickscore", "clipscore", "clipscore-100":
		if *ckpt == "" {
			return usagef("--checkpoint is required")
		}
		man, err = convert.CLIPWithFormula(convert.CLIPOptions{Checkpoint: *ckpt, Base: *base, Tokenizer: *tok, Out: *out, Name: *name,
			Build: build, Log: a.stderr}, kind)
	case "openclip", "hpsv2":
		if *ckpt == "" {
			return usagef("--checkpoint is required")
		}
		formula := ""
		if kind == "hpsv2" {
			formula = models.FormulaHPSv2
		}
		man, err = convert.OpenCLIP(convert.OpenCLIPOptions{Checkpoint: *ckpt, ModelConfig: *modelCfg, QuickGELU: *quick, Tokenizer: *tok,
			Formula: formula, Out: *out, Name: *name, Build: build, Log: a.stderr})
	case "aesthetic":
		if *clipDir == "" || *head == "" {
			return usagef("--clip and --head are required")
		}
		man, err = convert.Aesthetic(convert.AestheticOptions{CLIP: *clipDir, Head: *head, Out: *out, Name: *name, Build: build, Log: a.stderr})
	}
	if err != nil {
		return err
	}
	formula := "none"
	if man.Formula != nil {
		formula = man.Formula.Name
	}
	fmt.Fprintf(a.stdout, "wrote %s: kind %s, formula %s, version %s, embedding %d, %s, in %s\n",
		*out, man.Kind, formula, man.Version, man.EmbeddingDim, man.Precision, time.Since(start).Round(time.Millisecond))
	return nil
}

// convertRandomZoo is `convert random --kind pickscore|clipscore|
// clipscore-100|hpsv2|aesthetic`: preset "" or "real" is the kind's real
// architecture.
func convertRandomZoo(preset, kind string, seed uint64, tok, out string, build clip.BuildOptions) (*models.Manifest, error) {
	o := convert.ZooRandomOptions{Kind: kind, Seed: seed, Out: out, Build: build}
	if preset != "" && preset != "real" {
		if _, err := clip.PresetConfig(clip.Preset(preset)); err != nil {
			return nil, usageError{err.Error()}
		}
		o.Preset = clip.Preset(preset)
	}
	if kind != models.FormulaAesthetic {
		var err error
		if o.Vocab, o.VocabName, o.Synthetic, err = randomVocab(tok); err != nil {
			return nil, err
		}
	}
	return convert.RandomZoo(o)
}

func isZooRandomKind(kind string) bool { return slices.Contains(convert.ZooKinds, kind) }
