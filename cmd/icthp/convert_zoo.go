package main

import (
	"context"
	"slices"

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
	cf := newConvertFlags(fs, true)
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
	return cf.run(a, fs, kind, args, func(build clip.BuildOptions) (*models.Manifest, error) {
		switch kind {
		case "pickscore", "clipscore", "clipscore-100":
			if *ckpt == "" {
				return nil, usagef("--checkpoint is required")
			}
			return convert.CLIPWithFormula(convert.CLIPOptions{Checkpoint: *ckpt, Base: *base, Tokenizer: *tok, Out: *cf.out, Name: *cf.name,
				Build: build, Log: a.stderr}, kind)
		case "openclip", "hpsv2":
			if *ckpt == "" {
				return nil, usagef("--checkpoint is required")
			}
			formula := ""
			if kind == "hpsv2" {
				formula = models.FormulaHPSv2
			}
			return convert.OpenCLIP(convert.OpenCLIPOptions{Checkpoint: *ckpt, ModelConfig: *modelCfg, QuickGELU: *quick, Tokenizer: *tok,
				Formula: formula, Out: *cf.out, Name: *cf.name, Build: build, Log: a.stderr})
		default: // aesthetic
			if *clipDir == "" || *head == "" {
				return nil, usagef("--clip and --head are required")
			}
			return convert.Aesthetic(convert.AestheticOptions{CLIP: *clipDir, Head: *head, Out: *cf.out, Name: *cf.name, Build: build, Log: a.stderr})
		}
	})
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
