package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/convert"
	"github.com/icthp/icthp/preprocess/text"
)

func init() {
	register(command{
		name: "convert",
		args: "clip|hp|random|imagereward|pickscore|clipscore|clipscore-100|openclip|hpsv2|aesthetic [flags] --out DIR",
		summary: "build a model directory: from a Hugging Face CLIP checkpoint (clip), the HP backbone and head (hp), " +
			"ImageReward.pt (imagereward), or seeded random weights of a real size (random)",
		run: runConvert,
	})
}

func runConvert(ctx context.Context, a *app, args []string) error {
	if len(args) == 0 {
		return usagef("convert needs a kind: clip, hp, random or imagereward")
	}
	kind, args := args[0], args[1:]
	if slices.Contains(zooConvertKinds, kind) {
		return runConvertZoo(ctx, a, kind, args)
	}
	return runConvertBuiltin(a, kind, args)
}

// runConvertBuiltin is convert for the kinds with their own converters:
// clip, hp, random and imagereward.
func runConvertBuiltin(a *app, kind string, args []string) error {
	fs := newFlags(a, "convert "+kind)
	cf := newConvertFlags(fs, false)
	var (
		ckpt, base, tok, backbone, head *string
		preset, rkind                   *string
		seed                            *uint64
		medCfg, visCfg, vocab           *string
	)
	switch kind {
	case "clip":
		ckpt = fs.String("checkpoint", "", "Hugging Face CLIPModel folder (config.json + model.safetensors or pytorch_model.bin)")
		base = fs.String("base", "", "base folder the checkpoint is laid over (load_state_dict(strict=False))")
		tok = fs.String("tokenizer", "", "vocabulary to copy (bpe_simple_vocab_16e6.txt.gz, tokenizer.json or vocab.json); default: found in the folders")
	case "hp":
		backbone = fs.String("backbone", "", "HP backbone folder (hp_backbone/)")
		head = fs.String("head", "", "HP head state dict (hp_scorer/mlp_pytorch_model.bin)")
		base = fs.String("base", "", "base folder the backbone is laid over")
	case "random":
		preset = fs.String("preset", "tiny", "architecture: tiny, vit-b-32, vit-l-14, vit-h-14 (imagereward, imagereward-tiny with --kind imagereward)")
		rkind = fs.String("kind", "clip", "clip, hp, imagereward, or a zoo kind: pickscore, clipscore, clipscore-100, hpsv2, aesthetic (--preset real: the kind's own architecture and activation)")
		seed = fs.Uint64("seed", 1, "random seed (same seed, same bytes, same version)")
		tok = fs.String("tokenizer", "", "vocabulary file to include (CLIP BPE for clip and hp, WordPiece vocab.txt for imagereward); default: a synthetic one")
	case "imagereward":
		ckpt = fs.String("checkpoint", "", "ImageReward.pt")
		medCfg = fs.String("med-config", "", "med_config.json (BERT sizes)")
		visCfg = fs.String("vision-config", "", "optional vision config JSON (default ViT-L/16)")
		vocab = fs.String("vocab", "", "bert-base-uncased vocab.txt")
	default:
		return usagef("unknown kind %q: want clip, hp, random or imagereward", kind)
	}
	return cf.run(a, fs, kind, args, func(build clip.BuildOptions) (*models.Manifest, error) {
		switch kind {
		case "clip":
			if *ckpt == "" {
				return nil, usagef("--checkpoint is required")
			}
			return convert.CLIP(convert.CLIPOptions{Checkpoint: *ckpt, Base: *base, Tokenizer: *tok, Out: *cf.out, Name: *cf.name, Build: build, Log: a.stderr})
		case "hp":
			if *backbone == "" || *head == "" {
				return nil, usagef("--backbone and --head are required")
			}
			return convert.HP(convert.HPOptions{Backbone: *backbone, Head: *head, Base: *base, Out: *cf.out, Name: *cf.name, Build: build, Log: a.stderr})
		case "random":
			return convertRandom(*preset, *rkind, *seed, *tok, *cf.out, build)
		default: // imagereward
			if *ckpt == "" || *medCfg == "" || *vocab == "" {
				return nil, usagef("--checkpoint, --med-config and --vocab are required")
			}
			return convertImageReward(*ckpt, *medCfg, *visCfg, *vocab, *cf.out, *cf.name, build)
		}
	})
}

// convertFlags are the flags of every convert kind: where to write, the
// graph's precision and operators, and the name recorded in model.json.
type convertFlags struct {
	out, fuse, name     *string // fuse is nil for the zoo kinds, which have no --fuse
	fp16, int8, unfused *bool
	formula             bool // a zoo kind: its output line names the score formula
}

// newConvertFlags registers the common flags; zoo is for the zoo kinds.
func newConvertFlags(fs *flag.FlagSet, zoo bool) convertFlags {
	cf := convertFlags{
		out:     fs.String("out", "", "model directory to write (required)"),
		fp16:    fs.Bool("fp16", false, "store weights and compute in float16 (for the cuda and tensorrt providers)"),
		int8:    fs.Bool("int8", false, "store the transformer layers' weights as int8 and run them as integer GEMMs (CPU throughput; outside the float32 parity target, see BENCHMARKS.md)"),
		unfused: fs.Bool("unfused", false, "write standard ONNX operators only, without onnxruntime's fused contrib kernels"),
		name:    fs.String("name", "", "name recorded in model.json"),
	}
	cf.formula = zoo
	if !zoo {
		cf.fuse = fs.String("fuse", "", "fuse only these contrib kernel kinds, the rest as standard operators: some of attention, mha, skiplayernorm, gelu (graph forms per provider; README: GPUs)")
	}
	return cf
}

// run parses args, converts with do (given the build options the flags
// ask for) and prints what it wrote and how long it took; the zoo kinds
// (formula set) print their score formula too.
func (cf convertFlags) run(a *app, fs *flag.FlagSet, kind string, args []string, do func(clip.BuildOptions) (*models.Manifest, error)) error {
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cf.out == "" {
		return usagef("--out is required")
	}
	fuse := ""
	if cf.fuse != nil {
		fuse = *cf.fuse
	}
	build, err := convertBuildOptions(kind, *cf.fp16, *cf.int8, *cf.unfused, fuse)
	if err != nil {
		return err
	}
	start := time.Now()
	man, err := do(build)
	if err != nil {
		return err
	}
	formula := ""
	if cf.formula {
		formula = "formula none, "
		if man.Formula != nil {
			formula = "formula " + man.Formula.Name + ", "
		}
	}
	fmt.Fprintf(a.stdout, "wrote %s: kind %s, %sversion %s, embedding %d, %s, in %s\n",
		*cf.out, man.Kind, formula, man.Version, man.EmbeddingDim, man.Precision, time.Since(start).Round(time.Millisecond))
	return nil
}

// convertBuildOptions turns --fp16, --int8, --unfused and --fuse into the
// builders' options, refusing the combinations that exclude each other.
func convertBuildOptions(kind string, fp16, int8, unfused bool, fuse string) (clip.BuildOptions, error) {
	if int8 && fp16 {
		return clip.BuildOptions{}, usagef("--int8 and --fp16 exclude each other")
	}
	build := clip.BuildOptions{Fused: !unfused, FP16: fp16, Int8: int8}
	if fuse != "" {
		kinds, err := clip.ParseFuse(fuse)
		if err != nil {
			return build, usageError{err.Error()}
		}
		if unfused || int8 || kind == "imagereward" {
			return build, usagef("--fuse goes without --unfused and --int8, for clip, hp and random")
		}
		build.Fused, build.Fuse = false, kinds
	}
	return build, nil
}

func convertRandom(preset, kind string, seed uint64, tok, out string, build clip.BuildOptions) (*models.Manifest, error) {
	k := models.Kind(kind)
	if isZooRandomKind(kind) {
		return convertRandomZoo(preset, kind, seed, tok, out, build)
	}
	if k == models.KindImageReward || strings.HasPrefix(preset, "imagereward") {
		return convertRandomImageReward(preset, seed, tok, out, build)
	}
	if k != models.KindCLIP && k != models.KindHP {
		return nil, usagef("--kind %q: want clip, hp or imagereward", kind)
	}
	if _, err := clip.PresetConfig(clip.Preset(preset)); err != nil {
		return nil, usageError{err.Error()}
	}
	o := convert.RandomOptions{Preset: clip.Preset(preset), Kind: k, Seed: seed, Out: out, Build: build}
	if k == models.KindCLIP {
		var err error
		if o.Vocab, o.VocabName, o.Synthetic, err = randomVocab(tok); err != nil {
			return nil, err
		}
	}
	return convert.Random(o)
}

// randomVocab is the vocabulary of a random model: the file tok (with its
// base name) if given, else the synthetic one.
func randomVocab(tok string) (data []byte, name string, synthetic bool, err error) {
	if tok == "" {
		return text.SyntheticVocab(syntheticMerges), "", true, nil
	}
	if data, err = os.ReadFile(tok); err != nil {
		return nil, "", false, err
	}
	return data, baseName(tok), false, nil
}

// syntheticMerges sizes the demo vocabulary: enough merges that common
// prompts tokenize into word-sized pieces.
const syntheticMerges = 2000

func baseName(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}
