package blip

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/checkpoint"
	"github.com/icthp/icthp/preprocess/text"
)

// VocabFile is the vocabulary's name inside an ImageReward model directory.
const VocabFile = "vocab.txt"

// DirOptions are the inputs of WriteDir besides the weights.
type DirOptions struct {
	Med    MedConfig
	Vision VisionConfig
	// Vocab is the content of bert-base-uncased's vocab.txt (copied into
	// the directory); Synthetic marks a made-up one (random models).
	Vocab     []byte
	Synthetic bool
	Out       string
	Name      string
	Build     BuildOptions
	// Source is recorded in the manifest (file names, random seed).
	Source map[string]any
	// Notes are added to the converter's own.
	Notes []string
}

// WriteDir converts the weights (in ImageReward.pt's layout) and writes an
// `imagereward` model directory: vision.onnx (pixel_values → image_tokens,
// run once per image), text.onnx (input_ids, attention_mask, image_tokens →
// imagereward, run per prompt and image), vocab.txt and model.json, whose
// version is derived from the weights' bytes and the build options.
func WriteDir(w Weights, o DirOptions) (*models.Manifest, error) {
	tok, err := text.NewWordPiece(o.Vocab)
	if err != nil {
		return nil, fmt.Errorf("vocabulary: %w", err)
	}
	if n := tok.VocabSize(); n > o.Med.VocabSize {
		return nil, fmt.Errorf("vocabulary has %d ids with [DEC] and [ENC], the text encoder's embedding only %d (vocab_size in the med config)", n, o.Med.VocabSize)
	}
	res, err := Convert(w, o.Med, o.Vision, o.Out, o.Build)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(o.Out, VocabFile), o.Vocab, 0o644); err != nil {
		return nil, err
	}
	c := res.Config
	name := o.Name
	if name == "" {
		name = "imagereward"
	}
	src := map[string]any{"image_tokens": []int{c.Vision.NumTokens(), c.Vision.Width}, "vision": c.Vision,
		"text": map[string]any{"hidden_size": c.Text.HiddenSize, "layers": c.Text.NumLayers, "heads": c.Text.NumHeads, "vocab_size": c.Text.VocabSize}}
	for k, v := range o.Source {
		src[k] = v
	}
	precision, pixelType := models.PrecisionFloat32, ""
	if o.Build.HalfPixels() {
		pixelType = models.PrecisionFloat16
	}
	switch {
	case o.Build.Int8:
		precision = models.PrecisionInt8
	case o.Build.FP16:
		precision = models.PrecisionFloat16
	}
	m := &models.Manifest{
		Kind: models.KindImageReward, Name: name, Version: "imagereward-" + res.Digest[:16],
		EmbeddingDim: c.Vision.Width, Precision: precision, PixelType: pixelType, Fused: o.Build.Fused,
		Image: &models.ImageSpec{Pipeline: "torchvision", ShortestEdge: c.Vision.ImageSize, CropSize: c.Vision.ImageSize,
			Mean: models.CLIPMean, Std: models.CLIPStd},
		Text: &models.TextSpec{Tokenizer: "bert-wordpiece", Vocab: VocabFile, ContextLength: c.ContextLength, Synthetic: o.Synthetic},
		Graphs: map[string]models.Graph{
			"vision": {File: res.Vision.File, Data: res.Vision.Data, Inputs: res.Vision.Inputs, Outputs: res.Vision.Outputs},
			"text":   {File: res.Text.File, Data: res.Text.Data, Inputs: res.Text.Inputs, Outputs: res.Text.Outputs},
		},
		Source: src, Notes: append(append([]string(nil), res.Notes...), o.Notes...),
	}
	return m, models.WriteManifest(o.Out, m)
}

// ConvertFiles is `icthp convert imagereward`: ImageReward.pt (torch
// zip-pickle or safetensors), med_config.json, an optional vision config
// file ("" for ViT-L/16) and bert-base-uncased's vocab.txt.
func ConvertFiles(checkpointPath, medPath, visionPath, vocabPath, out, name string, b BuildOptions) (*models.Manifest, error) {
	medData, err := os.ReadFile(medPath)
	if err != nil {
		return nil, err
	}
	med, err := ParseMedConfig(medData)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", medPath, err)
	}
	vis := ViTL16()
	if visionPath != "" {
		data, err := os.ReadFile(visionPath)
		if err != nil {
			return nil, err
		}
		if vis, err = ParseVisionConfig(data); err != nil {
			return nil, fmt.Errorf("%s: %w", visionPath, err)
		}
	}
	vocab, err := os.ReadFile(vocabPath)
	if err != nil {
		return nil, err
	}
	sd, err := checkpoint.Open(checkpointPath)
	if err != nil {
		return nil, err
	}
	defer sd.Close()
	src := map[string]any{"checkpoint": checkpointPath, "med_config": medPath, "vocab": vocabPath}
	if visionPath != "" {
		src["vision_config"] = visionPath
	}
	return WriteDir(sd, DirOptions{Med: med, Vision: vis, Vocab: vocab, Out: out, Name: name, Build: b, Source: src})
}

// WriteRandomDir writes a model directory of a preset with seeded random
// weights and a synthetic vocabulary (for tests, demos and benchmarks at the
// real size): the same seed gives the same bytes and version.
func WriteRandomDir(p Preset, seed uint64, out string, b BuildOptions) (*models.Manifest, error) {
	return WriteRandomDirVocab(p, seed, out, b, nil, "")
}

// WriteRandomDirVocab is WriteRandomDir with the vocab.txt given (named
// vocabName in model.json's source), or the synthetic one when vocab is nil.
func WriteRandomDirVocab(p Preset, seed uint64, out string, b BuildOptions, vocab []byte, vocabName string) (*models.Manifest, error) {
	c, err := PresetConfig(p)
	if err != nil {
		return nil, err
	}
	random := map[string]any{"preset": p, "seed": seed}
	synthetic := vocab == nil
	if synthetic {
		vocab = SyntheticVocab()
	} else {
		random["vocab"] = vocabName
	}
	return WriteDir(NewRandom(&c, seed), DirOptions{
		Med: c.Text, Vision: c.Vision, Vocab: vocab, Synthetic: synthetic, Out: out,
		Name: fmt.Sprintf("random-%s", p), Build: b,
		Source: map[string]any{"random": random},
		Notes:  []string{"random weights: scores are meaningless; for tests, demos and benchmarks"},
	})
}

// SyntheticVocab is a 30522-line WordPiece vocabulary laid out like
// bert-base-uncased's where it matters to the tokenizer ([PAD] 0, [UNK] 100,
// [CLS] 101, [SEP] 102, [MASK] 103, then single characters and their "##"
// continuations, so every ASCII word tokenizes), filled up with made-up
// pieces. It is for random models only.
func SyntheticVocab() []byte {
	const size = 30522
	toks := make([]string, 0, size)
	toks = append(toks, "[PAD]")
	for i := 1; i < 100; i++ {
		toks = append(toks, fmt.Sprintf("[unused%d]", i-1))
	}
	toks = append(toks, "[UNK]", "[CLS]", "[SEP]", "[MASK]")
	var chars []string
	for r := rune(33); r < 127; r++ {
		if r >= 'A' && r <= 'Z' {
			continue
		}
		chars = append(chars, string(r))
	}
	toks = append(toks, chars...)
	for _, ch := range chars {
		toks = append(toks, "##"+ch)
	}
	letters := "abcdefghijklmnopqrstuvwxyz"
	for i := 0; len(toks) < size; i++ {
		a, b, c := letters[i%26], letters[(i/26)%26], letters[(i/676)%26]
		t := string([]byte{a, b})
		if i >= 676 {
			t = string([]byte{a, b, c})
		}
		if i%2 == 1 {
			t = "##" + t
		}
		toks = append(toks, t)
	}
	return []byte(strings.Join(toks[:size], "\n") + "\n")
}
