// Package convert turns checkpoints into model directories (SPEC §2): it
// reads Hugging Face CLIP folders (optionally laid over a base, as the
// official code's load_state_dict(strict=False) does), reconciles the config
// with the weights' shapes, builds the ONNX graphs, copies the tokenizer's
// vocabulary and writes model.json with a version derived from the weights.
package convert

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/checkpoint"
	"github.com/icthp/icthp/models/clip"
	og "github.com/icthp/icthp/models/onnxgraph"
)

// CLIPOptions are the inputs of `icthp convert clip`.
type CLIPOptions struct {
	Checkpoint string // Hugging Face model folder, or a single weights file
	Base       string // optional base folder the checkpoint is laid over
	Tokenizer  string // vocabulary file; default: found in Checkpoint or Base
	Out        string
	Name       string // manifest name; default "ict"
	Build      clip.BuildOptions
	Log        io.Writer // conversion notes; nil discards
}

// HPOptions are the inputs of `icthp convert hp`.
type HPOptions struct {
	Backbone string // Hugging Face CLIPModel folder or weights file (hp_backbone)
	Head     string // the head's state dict (hp_scorer/mlp_pytorch_model.bin)
	Base     string
	Out      string
	Name     string // default "hp"
	Build    clip.BuildOptions
	Log      io.Writer
}

// knownBuffers are state-dict entries that are not parameters and are
// skipped without a report.
var knownBuffers = []string{
	"text_model.embeddings.position_ids",
	"vision_model.embeddings.position_ids",
}

// source is a checkpoint, possibly laid over a base, with its config.
type source struct {
	weights clip.Weights
	keys    func(string) bool // whether the checkpoint itself has a key
	config  []byte
	ppc     []byte // preprocessor_config.json, if any
	closers []io.Closer
	notes   []string
	desc    map[string]any
}

func (s *source) Close() {
	for _, c := range s.closers {
		c.Close()
	}
}

// openWeights opens a folder (OpenFolder) or a single file (Open).
func openWeights(path string) (*checkpoint.StateDict, []byte, []byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if !st.IsDir() {
		sd, err := checkpoint.Open(path)
		return sd, nil, nil, err
	}
	sd, cfg, err := checkpoint.OpenFolder(path)
	if err != nil {
		return nil, nil, nil, err
	}
	ppc, _ := os.ReadFile(filepath.Join(path, "preprocessor_config.json"))
	return sd, cfg, ppc, nil
}

// open reads a checkpoint and, if given, the base it is laid over.
func open(ckptPath, basePath string) (*source, error) {
	ck, cfg, ppc, err := openWeights(ckptPath)
	if err != nil {
		return nil, err
	}
	s := &source{weights: ck, keys: ck.Has, config: cfg, ppc: ppc, closers: []io.Closer{ck},
		desc: map[string]any{"checkpoint": ckptPath}}
	if basePath == "" {
		return s, nil
	}
	base, bcfg, bppc, err := openWeights(basePath)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("base: %w", err)
	}
	s.closers = append(s.closers, base)
	layered, rep, err := checkpoint.Layer(base, ck)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.weights = layered
	s.desc["base"] = basePath
	if s.config == nil {
		s.config = bcfg
	}
	if s.ppc == nil {
		s.ppc = bppc
	}
	unexpected := slices.DeleteFunc(rep.Unexpected, func(k string) bool { return slices.Contains(knownBuffers, k) })
	s.notes = append(s.notes, fmt.Sprintf("laid %s over %s: %d tensors replaced, %d kept from the base, %d unexpected (ignored)",
		ckptPath, basePath, len(rep.Replaced), len(rep.Missing), len(unexpected)))
	if len(unexpected) > 0 {
		s.notes = append(s.notes, "unexpected keys (ignored): "+summarise(unexpected))
	}
	s.desc["replaced"] = len(rep.Replaced)
	s.desc["kept_from_base"] = len(rep.Missing)
	s.desc["unexpected"] = unexpected
	return s, nil
}

func summarise(keys []string) string {
	if len(keys) <= 8 {
		return strings.Join(keys, ", ")
	}
	return strings.Join(keys[:8], ", ") + fmt.Sprintf(" and %d more", len(keys)-8)
}

// clipConfig parses the config and makes it agree with the weights.
func (s *source) clipConfig() (clip.Config, error) {
	var c clip.Config
	var err error
	if s.config == nil {
		return c, errors.New("no config.json in the checkpoint or base folder")
	}
	if c, err = clip.ParseConfig(s.config); err != nil {
		return c, err
	}
	s.notes = append(s.notes, c.ReconcileShapes(s.weights)...)
	return c, c.Validate()
}

// imageSpec reads preprocessor_config.json when present; else CLIP's
// constants at the vision tower's image size.
func (s *source) imageSpec(c *clip.Config) (*models.ImageSpec, error) {
	spec := &models.ImageSpec{Pipeline: "clip", ShortestEdge: c.Vision.ImageSize, CropSize: c.Vision.ImageSize,
		Mean: models.CLIPMean, Std: models.CLIPStd}
	if s.ppc == nil {
		return spec, nil
	}
	var p struct {
		Size     json.RawMessage `json:"size"`
		CropSize json.RawMessage `json:"crop_size"`
		Mean     []float32       `json:"image_mean"`
		Std      []float32       `json:"image_std"`
	}
	if err := json.Unmarshal(s.ppc, &p); err != nil {
		return nil, fmt.Errorf("preprocessor_config.json: %w", err)
	}
	size := func(raw json.RawMessage, keys ...string) int {
		var n int
		if json.Unmarshal(raw, &n) == nil && n > 0 {
			return n
		}
		var m map[string]int
		if json.Unmarshal(raw, &m) == nil {
			for _, k := range keys {
				if m[k] > 0 {
					return m[k]
				}
			}
		}
		return 0
	}
	if n := size(p.Size, "shortest_edge", "height"); n > 0 {
		spec.ShortestEdge = n
	}
	if n := size(p.CropSize, "height", "width"); n > 0 {
		spec.CropSize = n
	}
	if len(p.Mean) == 3 {
		copy(spec.Mean[:], p.Mean)
	}
	if len(p.Std) == 3 {
		copy(spec.Std[:], p.Std)
	}
	if spec.CropSize != c.Vision.ImageSize {
		return nil, fmt.Errorf("preprocessor crop size %d differs from the vision tower's image size %d", spec.CropSize, c.Vision.ImageSize)
	}
	return spec, nil
}

// vocabFiles are the tokenizer files looked for in a folder, in order.
var vocabFiles = []string{"bpe_simple_vocab_16e6.txt.gz", "tokenizer.json", "vocab.json"}

func findVocab(dirs ...string) string {
	for _, d := range dirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			continue
		}
		for _, f := range vocabFiles {
			if _, err := os.Stat(filepath.Join(d, f)); err == nil {
				return filepath.Join(d, f)
			}
		}
	}
	return ""
}

// copyVocab copies a vocabulary (and merges.txt beside a vocab.json) into
// out and returns the name the manifest records.
func copyVocab(src, out string) (string, error) {
	files := []string{src}
	if filepath.Base(src) == "vocab.json" {
		files = append(files, filepath.Join(filepath.Dir(src), "merges.txt"))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("tokenizer: %w", err)
		}
		if err := os.WriteFile(filepath.Join(out, filepath.Base(f)), data, 0o644); err != nil {
			return "", err
		}
	}
	return filepath.Base(src), nil
}

// saveGraph writes g as out/name.onnx and returns its manifest entry and
// weight digest.
func saveGraph(g *og.Graph, out, name string, inputs, outputs []string) (models.Graph, string, error) {
	res, err := g.Save(filepath.Join(out, name+".onnx"))
	if err != nil {
		return models.Graph{}, "", err
	}
	return models.Graph{File: res.ModelFile, Data: res.DataFile, Inputs: inputs, Outputs: outputs}, res.Digest, nil
}

// version derives the model's version from its graphs' weight digests: the
// same weights (and precision) give the same string.
func version(kind models.Kind, digests ...string) string {
	h := sha256.New()
	for _, d := range digests {
		h.Write([]byte(d))
	}
	return string(kind) + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

func precision(b clip.BuildOptions) string {
	if b.FP16 {
		return models.PrecisionFloat16
	}
	if b.Int8 {
		return models.PrecisionInt8
	}
	return models.PrecisionFloat32
}

// pixelType is the manifest's pixel_type: float16 when the image graph takes
// half-precision pixels (build.Options.HalfPixels), else none (float32).
func pixelType(b clip.BuildOptions) string {
	if b.HalfPixels() {
		return models.PrecisionFloat16
	}
	return ""
}

func logNotes(w io.Writer, notes []string) {
	if w == nil {
		return
	}
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
}

// openCLIP opens a CLIP checkpoint (laid over base, if any) with its
// config and image spec; the caller closes the source.
func openCLIP(ckptPath, basePath string) (*source, clip.Config, *models.ImageSpec, error) {
	src, err := open(ckptPath, basePath)
	if err != nil {
		return nil, clip.Config{}, nil, err
	}
	c, err := src.clipConfig()
	if err == nil {
		var img *models.ImageSpec
		if img, err = src.imageSpec(&c); err == nil {
			return src, c, img, nil
		}
	}
	src.Close()
	return nil, clip.Config{}, nil, err
}

// CLIP converts a CLIPModel checkpoint into a `clip` model directory.
func CLIP(o CLIPOptions) (*models.Manifest, error) {
	src, c, img, err := openCLIP(o.Checkpoint, o.Base)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	vocab := o.Tokenizer
	if vocab == "" {
		vocab = findVocab(o.Checkpoint, o.Base)
	}
	if vocab == "" {
		return nil, errors.New("no tokenizer vocabulary in the checkpoint or base folder: give --tokenizer FILE (bpe_simple_vocab_16e6.txt.gz, tokenizer.json or vocab.json)")
	}
	if err := src.needAll(c.Params(), o.Base != "", "checkpoint"); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	vg, err := clip.BuildVision(&c, src.weights, o.Build)
	if err != nil {
		return nil, err
	}
	vis, vd, err := saveGraph(vg, o.Out, "vision", []string{clip.InputPixels}, []string{clip.OutputImage})
	if err != nil {
		return nil, err
	}
	ctxLen := min(77, c.Text.MaxPositions)
	tg, err := clip.BuildText(&c, src.weights, ctxLen, o.Build)
	if err != nil {
		return nil, err
	}
	txt, td, err := saveGraph(tg, o.Out, "text", []string{clip.InputIDs}, []string{clip.OutputText})
	if err != nil {
		return nil, err
	}
	vname, err := copyVocab(vocab, o.Out)
	if err != nil {
		return nil, err
	}
	name := o.Name
	if name == "" {
		name = "ict"
	}
	m := &models.Manifest{
		Kind: models.KindCLIP, Name: name, Version: version(models.KindCLIP, vd, td),
		EmbeddingDim: c.ProjectionDim, Precision: precision(o.Build), PixelType: pixelType(o.Build), Fused: o.Build.Fused,
		Image:  img,
		Text:   &models.TextSpec{Tokenizer: "clip-bpe", Vocab: vname, ContextLength: ctxLen},
		Graphs: map[string]models.Graph{"vision": vis, "text": txt},
		Source: src.desc, Notes: src.notes,
	}
	logNotes(o.Log, src.notes)
	return m, models.WriteManifest(o.Out, m)
}

// needAll checks that the checkpoint (what: "checkpoint", "backbone") holds
// params; with a base, what it lacks is taken from there and noted.
func (s *source) needAll(params []clip.Param, withBase bool, what string) error {
	if withBase {
		s.notes = append(s.notes, reportMissing(s.keys, params)...)
		return nil
	}
	if miss := missing(s.keys, params); len(miss) > 0 {
		return fmt.Errorf("%s lacks %s: give the base checkpoint with --base", what, summarise(miss))
	}
	return nil
}

// openHead opens an HP or aesthetic head checkpoint whose input width must
// be the backbone's projection width (what and of name both in the error).
func openHead(path string, projectionDim int, what, of string) (*checkpoint.StateDict, error) {
	head, err := checkpoint.Open(path)
	if err != nil {
		return nil, fmt.Errorf("head: %w", err)
	}
	if s, ok := head.Shape("layers.0.weight"); ok && len(s) == 2 && int(s[1]) != projectionDim {
		head.Close()
		return nil, fmt.Errorf("%s input width %d differs from %s projection_dim %d", what, s[1], of, projectionDim)
	}
	return head, nil
}

// missing lists the parameters the checkpoint itself lacks.
func missing(has func(string) bool, params []clip.Param) []string {
	var miss []string
	for _, p := range params {
		if !has(p.Name) && p.Name != "logit_scale" {
			miss = append(miss, p.Name)
		}
	}
	return miss
}

func reportMissing(has func(string) bool, params []clip.Param) []string {
	miss := missing(has, params)
	if len(miss) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%d parameters missing from the checkpoint were taken from the base: %s", len(miss), summarise(miss))}
}

// HP converts the HP backbone and head into an `hp` model directory.
func HP(o HPOptions) (*models.Manifest, error) {
	src, c, img, err := openCLIP(o.Backbone, o.Base)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	head, err := openHead(o.Head, c.ProjectionDim, "head", "the backbone's")
	if err != nil {
		return nil, err
	}
	defer head.Close()
	if err := src.needAll(c.VisionParams(), o.Base != "", "backbone"); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	g, err := clip.BuildHP(&c, src.weights, head, o.Build)
	if err != nil {
		return nil, err
	}
	vis, vd, err := saveGraph(g, o.Out, "vision", []string{clip.InputPixels}, []string{clip.OutputHPLogi, clip.OutputImage})
	if err != nil {
		return nil, err
	}
	name := o.Name
	if name == "" {
		name = "hp"
	}
	src.desc["head"] = o.Head
	m := &models.Manifest{
		Kind: models.KindHP, Name: name, Version: version(models.KindHP, vd),
		EmbeddingDim: c.ProjectionDim, Precision: precision(o.Build), PixelType: pixelType(o.Build), Fused: o.Build.Fused,
		Image: img, Graphs: map[string]models.Graph{"vision": vis},
		Source: src.desc, Notes: src.notes,
	}
	logNotes(o.Log, src.notes)
	return m, models.WriteManifest(o.Out, m)
}

// RandomOptions are the inputs of `icthp convert random`.
type RandomOptions struct {
	Preset    clip.Preset
	Kind      models.Kind // clip or hp
	Seed      uint64
	Vocab     []byte // vocabulary file content; nil means Synthetic must be set
	VocabName string
	Synthetic bool // the vocabulary is synthetic (recorded in the manifest)
	Out       string
	Build     clip.BuildOptions
}

// Random writes a model directory of a preset's architecture with seeded
// random weights: same seed, same bytes, same version string.
func Random(o RandomOptions) (*models.Manifest, error) {
	c, err := clip.PresetConfig(o.Preset)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	w := clip.NewRandom(&c, o.Seed, o.Kind == models.KindHP)
	img := &models.ImageSpec{Pipeline: "clip", ShortestEdge: c.Vision.ImageSize, CropSize: c.Vision.ImageSize,
		Mean: models.CLIPMean, Std: models.CLIPStd}
	m := &models.Manifest{
		Kind: o.Kind, Name: fmt.Sprintf("random-%s-%s", o.Kind, o.Preset), EmbeddingDim: c.ProjectionDim,
		Precision: precision(o.Build), PixelType: pixelType(o.Build), Fused: o.Build.Fused, Image: img,
		Source: map[string]any{"random": map[string]any{"preset": o.Preset, "seed": o.Seed}},
		Notes:  []string{"random weights: scores are meaningless; for tests, demos and benchmarks"},
	}
	switch o.Kind {
	case models.KindCLIP:
		vg, err := clip.BuildVision(&c, w, o.Build)
		if err != nil {
			return nil, err
		}
		vis, vd, err := saveGraph(vg, o.Out, "vision", []string{clip.InputPixels}, []string{clip.OutputImage})
		if err != nil {
			return nil, err
		}
		tg, err := clip.BuildText(&c, w, 77, o.Build)
		if err != nil {
			return nil, err
		}
		txt, td, err := saveGraph(tg, o.Out, "text", []string{clip.InputIDs}, []string{clip.OutputText})
		if err != nil {
			return nil, err
		}
		if o.VocabName == "" {
			o.VocabName = "bpe_synthetic.txt.gz"
		}
		if err := os.WriteFile(filepath.Join(o.Out, o.VocabName), o.Vocab, 0o644); err != nil {
			return nil, err
		}
		m.Graphs = map[string]models.Graph{"vision": vis, "text": txt}
		m.Text = &models.TextSpec{Tokenizer: "clip-bpe", Vocab: o.VocabName, ContextLength: 77, Synthetic: o.Synthetic}
		m.Version = version(models.KindCLIP, vd, td)
	case models.KindHP:
		g, err := clip.BuildHP(&c, w, w, o.Build)
		if err != nil {
			return nil, err
		}
		vis, vd, err := saveGraph(g, o.Out, "vision", []string{clip.InputPixels}, []string{clip.OutputHPLogi, clip.OutputImage})
		if err != nil {
			return nil, err
		}
		m.Graphs = map[string]models.Graph{"vision": vis}
		m.Version = version(models.KindHP, vd)
	default:
		return nil, fmt.Errorf("random models are of kind clip or hp, not %q", o.Kind)
	}
	return m, models.WriteManifest(o.Out, m)
}
