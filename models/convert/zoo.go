package convert

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/checkpoint"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/openclip"
)

// Image pipelines a manifest names (models.ImageSpec.Pipeline).
const (
	// PipelineCLIP is CLIPImageProcessor (ICT, HP, PickScore, CLIPScore-100).
	PipelineCLIP = "clip"
	// PipelineTorchvision is OpenAI CLIP's / open_clip's eval transform:
	// Resize(n, BICUBIC) on the PIL image, CenterCrop(n), convert("RGB"),
	// ToTensor, Normalize (preprocess.TorchvisionPipeline; OpenAI clip.py
	// _transform, open_clip transform.py image_transform(is_train=False),
	// jmhessel/clipscore _transform_test).
	PipelineTorchvision = "torchvision"
	// PipelineHPSv2 is HPSv2's eval transform (its vendored open_clip's
	// transform.py): convert to RGB, ToTensor, then Resize(n, BICUBIC) on the
	// float tensor (antialiased, torchvision >= 0.17), CenterCrop, Normalize
	// (internal/zooscorer.HPSv2Pixels).
	PipelineHPSv2 = "hpsv2"
)

// hpsv2PixelsNote records what the hpsv2 pipeline follows.
const hpsv2PixelsNote = "pixels: HPSv2's vendored open_clip (hpsv2/src/open_clip/transform.py, is_train=False): convert to RGB, ToTensor, " +
	"Resize(224, BICUBIC) on the float tensor as torchvision >= 0.17 does it (antialiased), CenterCrop, Normalize; RGBA images, which HPSv2 " +
	"keeps as 4 channels and its conv1 rejects, have their alpha dropped"

// CLIPWithFormula converts a Hugging Face CLIPModel (PickScore_v1, an OpenAI
// or LAION CLIP for CLIPScore) like CLIP does and records the formula in
// model.json: pickscore carries the checkpoint's logit_scale; clipscore
// (Hessel) names the torchvision pipeline, as its code preprocesses with
// OpenAI CLIP's transform; clipscore-100 (torchmetrics) keeps CLIPProcessor.
// The version string covers the formula and pipeline, so that two
// directories of the same weights never share cache entries.
func CLIPWithFormula(o CLIPOptions, formula string) (*models.Manifest, error) {
	f, err := models.NewFormula(formula, 0)
	if err != nil || formula == models.FormulaHPSv2 || formula == models.FormulaAesthetic {
		return nil, fmt.Errorf("convert clip: formula %q: want pickscore, clipscore or clipscore-100", formula)
	}
	if o.Name == "" {
		o.Name = formula
	}
	m, err := CLIP(o)
	if err != nil {
		return nil, err
	}
	if formula == models.FormulaPickScore {
		ls, err := readLogitScale(o.Checkpoint, o.Base)
		if err != nil {
			return nil, err
		}
		f.LogitScale = ls
	}
	if formula == models.FormulaCLIPScore {
		m.Image.Pipeline = PipelineTorchvision
	}
	m.Formula = f
	m.Version = version(models.Kind(formula), m.Version, m.Image.Pipeline)
	return m, models.WriteManifest(o.Out, m)
}

// readLogitScale reads the scalar logit_scale of a checkpoint (or its base).
func readLogitScale(ckpt, base string) (float64, error) {
	src, err := open(ckpt, base)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	v, err := src.weights.Float32("logit_scale")
	if err != nil || len(v) != 1 {
		return 0, fmt.Errorf("pickscore needs the checkpoint's logit_scale: %v", err)
	}
	return float64(v[0]), nil
}

// OpenCLIPOptions are the inputs of `icthp convert openclip|hpsv2`.
type OpenCLIPOptions struct {
	Checkpoint  string // torch zip: {"state_dict": open_clip keys} or a plain state dict
	ModelConfig string // optional open_clip model_configs/NAME.json (heads, quick_gelu)
	QuickGELU   bool
	Tokenizer   string // bpe_simple_vocab_16e6.txt.gz; default: beside the checkpoint
	Formula     string // "" (plain dual encoder) or "hpsv2"
	Out, Name   string
	Build       clip.BuildOptions
	Log         io.Writer
}

// OpenCLIP converts an open_clip checkpoint into a `clip` model directory:
// the same graphs as CLIP, read through openclip's key mapping.
func OpenCLIP(o OpenCLIPOptions) (*models.Manifest, error) {
	sd, err := checkpoint.Open(o.Checkpoint)
	if err != nil {
		return nil, err
	}
	defer sd.Close()
	w, err := openclip.NewWeights(sd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Checkpoint, err)
	}
	opts := openclip.Options{QuickGELU: o.QuickGELU}
	if o.ModelConfig != "" {
		data, err := os.ReadFile(o.ModelConfig)
		if err != nil {
			return nil, err
		}
		if opts.Model, err = openclip.ParseModelConfig(data); err != nil {
			return nil, err
		}
	}
	c, err := openclip.Config(w, opts)
	if err != nil {
		return nil, err
	}
	if err := openclip.Check(w, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", o.Checkpoint, err)
	}
	vocab := o.Tokenizer
	if vocab == "" {
		vocab = findVocab(filepath.Dir(o.Checkpoint))
	}
	if vocab == "" {
		return nil, errors.New("no tokenizer vocabulary beside the checkpoint: give --tokenizer FILE (open_clip's bpe_simple_vocab_16e6.txt.gz)")
	}
	desc := map[string]any{"checkpoint": o.Checkpoint, "format": "open_clip"}
	return writeDual(&c, w, dualOut{vocab: vocab, out: o.Out, name: o.Name, formula: o.Formula, build: o.Build, desc: desc, log: o.Log})
}

// dualOut is where and how writeDual writes a dual-encoder directory.
type dualOut struct {
	vocab, vocabName string // a file to copy, or (vocabData) bytes to write as vocabName
	vocabData        []byte
	synthetic        bool
	out, name        string
	formula          string
	logitScale       float64
	pipeline         string
	build            clip.BuildOptions
	desc             map[string]any
	notes            []string
	log              io.Writer
}

// writeDual builds both towers of c from w and writes the directory with
// its manifest (kind clip, the formula if any).
func writeDual(c *clip.Config, w clip.Weights, d dualOut) (*models.Manifest, error) {
	if err := os.MkdirAll(d.out, 0o755); err != nil {
		return nil, err
	}
	ctxLen := min(77, c.Text.MaxPositions)
	vg, err := clip.BuildVision(c, w, d.build)
	if err != nil {
		return nil, err
	}
	vis, vd, err := saveGraph(vg, d.out, "vision", []string{clip.InputPixels}, []string{clip.OutputImage})
	if err != nil {
		return nil, err
	}
	tg, err := clip.BuildText(c, w, ctxLen, d.build)
	if err != nil {
		return nil, err
	}
	txt, td, err := saveGraph(tg, d.out, "text", []string{clip.InputIDs}, []string{clip.OutputText})
	if err != nil {
		return nil, err
	}
	vname := d.vocabName
	if d.vocabData != nil {
		err = os.WriteFile(filepath.Join(d.out, vname), d.vocabData, 0o644)
	} else {
		vname, err = copyVocab(d.vocab, d.out)
	}
	if err != nil {
		return nil, err
	}
	pipeline := d.pipeline
	if pipeline == "" {
		pipeline = PipelineTorchvision // open_clip's eval transform
	}
	m := &models.Manifest{
		Kind: models.KindCLIP, Name: d.name, EmbeddingDim: c.ProjectionDim, Precision: precision(d.build), PixelType: pixelType(d.build), Fused: d.build.Fused,
		Image: &models.ImageSpec{Pipeline: pipeline, ShortestEdge: c.Vision.ImageSize, CropSize: c.Vision.ImageSize,
			Mean: models.CLIPMean, Std: models.CLIPStd},
		Text:   &models.TextSpec{Tokenizer: "clip-bpe", Vocab: vname, ContextLength: ctxLen, Synthetic: d.synthetic},
		Graphs: map[string]models.Graph{"vision": vis, "text": txt},
		Source: d.desc, Notes: d.notes,
	}
	kind := models.KindCLIP
	if d.formula != "" {
		if m.Formula, err = models.NewFormula(d.formula, d.logitScale); err != nil {
			return nil, err
		}
		kind = models.Kind(d.formula)
		if d.formula == models.FormulaHPSv2 {
			m.Image.Pipeline = PipelineHPSv2
			m.Notes = append(m.Notes, hpsv2PixelsNote)
		}
	}
	if m.Name == "" {
		m.Name = string(kind)
	}
	m.Version = version(kind, vd, td, m.Image.Pipeline)
	logNotes(d.log, m.Notes)
	return m, models.WriteManifest(d.out, m)
}

// AestheticOptions are the inputs of `icthp convert aesthetic`.
type AestheticOptions struct {
	CLIP  string // Hugging Face openai/clip-vit-large-patch14 folder
	Head  string // sac+logos+ava1-l14-linearMSE.pth (keys layers.0/2/4/6/7)
	Out   string
	Name  string // default "aesthetic"
	Build clip.BuildOptions
	Log   io.Writer
}

// Aesthetic converts OpenAI CLIP ViT-L/14 and the LAION aesthetic MLP into
// an `aesthetic` model directory (image only). Pixels go through OpenAI
// CLIP's transform (clip.load's preprocess in simple_inference.py): the
// torchvision pipeline.
func Aesthetic(o AestheticOptions) (*models.Manifest, error) {
	src, c, img, err := openCLIP(o.CLIP, "")
	if err != nil {
		return nil, err
	}
	defer src.Close()
	img.Pipeline = PipelineTorchvision
	head, err := openHead(o.Head, c.ProjectionDim, "aesthetic head", "the CLIP")
	if err != nil {
		return nil, err
	}
	defer head.Close()
	src.desc["head"] = o.Head
	return writeAesthetic(&c, src.weights, head, img, o.Out, o.Name, o.Build, src.desc, src.notes, o.Log)
}

func writeAesthetic(c *clip.Config, backbone, head clip.Weights, img *models.ImageSpec, out, name string, build clip.BuildOptions,
	desc map[string]any, notes []string, log io.Writer) (*models.Manifest, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	g, err := clip.BuildAesthetic(c, backbone, head, build)
	if err != nil {
		return nil, err
	}
	vis, vd, err := saveGraph(g, out, "vision", []string{clip.InputPixels}, []string{clip.OutputAesthetic, clip.OutputImage})
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = "aesthetic"
	}
	f, _ := models.NewFormula(models.FormulaAesthetic, 0)
	m := &models.Manifest{
		Kind: models.KindAesthetic, Name: name, Version: version(models.KindAesthetic, vd, img.Pipeline),
		EmbeddingDim: c.ProjectionDim, Precision: precision(build), PixelType: pixelType(build), Fused: build.Fused,
		Image: img, Graphs: map[string]models.Graph{"vision": vis}, Formula: f,
		Source: desc, Notes: notes,
	}
	logNotes(log, notes)
	return m, models.WriteManifest(out, m)
}
