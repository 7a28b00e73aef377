// Package models reads and writes model directories (SPEC §2) and runs their
// ONNX graphs with onnxruntime.
package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Kind is what a model directory computes.
type Kind string

// The kinds of model directory.
const (
	KindCLIP        Kind = "clip"        // dual encoder: image_embeds and text_embeds (ICT)
	KindHP          Kind = "hp"          // image encoder + head: hp_logit (HP)
	KindImageReward Kind = "imagereward" // BLIP image encoder + text/cross encoder + head
	KindAesthetic   Kind = "aesthetic"   // CLIP image encoder + MLP on the normalised embedding (LAION aesthetic v2)
)

// ManifestFile is the manifest's name inside a model directory.
const ManifestFile = "model.json"

// Precisions a manifest records: how the weights are stored and computed.
const (
	PrecisionFloat32 = "float32"
	PrecisionFloat16 = "float16"
	// PrecisionInt8: the transformer layers' Linear weights are int8 and run
	// as integer GEMMs on activations quantised at run time (see
	// clip.BuildOptions.Int8); outside the float32 parity target.
	PrecisionInt8 = "int8"
)

// FormatVersion is the newest manifest format this code reads (any version
// up to it) and writes. Format 2 adds pixel_type: a directory whose image
// graph takes float16 pixel_values is written as format 2, so that builds
// that know only format 1 (and would feed it float32) refuse it by name at
// start-up; every other directory is still written as format 1, byte for
// byte as before.
const FormatVersion = 2

// formatPixelType is the first format with Manifest.PixelType.
const formatPixelType = 2

// ErrNoManifest means a directory has no model.json.
var ErrNoManifest = errors.New("no " + ManifestFile)

// Graph names one ONNX file of a model directory and its tensor names.
type Graph struct {
	File    string   `json:"file"`
	Data    string   `json:"data,omitempty"` // external weights file, if any
	Inputs  []string `json:"inputs"`
	Outputs []string `json:"outputs"`
}

// ImageSpec is how images are prepared for the model.
type ImageSpec struct {
	Pipeline     string     `json:"pipeline"`      // "clip" (CLIPImageProcessor) or "torchvision" (ImageReward)
	ShortestEdge int        `json:"shortest_edge"` // resize target
	CropSize     int        `json:"crop_size"`
	Mean         [3]float32 `json:"mean"`
	Std          [3]float32 `json:"std"`
}

// TextSpec is how prompts are tokenized for the model.
type TextSpec struct {
	Tokenizer     string `json:"tokenizer"`      // "clip-bpe" or "bert-wordpiece"
	Vocab         string `json:"vocab"`          // file name inside the directory
	ContextLength int    `json:"context_length"` // 77 for CLIP
	Synthetic     bool   `json:"synthetic,omitempty"`
}

// Manifest is model.json.
//
// PixelType is float16 for --fp16 directories written since format 2: their
// image graph takes half-precision pixel_values, which the host writes
// directly (models.Session checks the graph agrees). Empty means float32, as
// in every format-1 directory, the fp16 ones included (they cast inside).
type Manifest struct {
	Format       int              `json:"format"`
	Kind         Kind             `json:"kind"`
	Name         string           `json:"name,omitempty"`
	Version      string           `json:"version"`
	EmbeddingDim int              `json:"embedding_dim"`
	Precision    string           `json:"precision"` // PrecisionFloat32, PrecisionFloat16 or PrecisionInt8
	Fused        bool             `json:"fused"`
	PixelType    string           `json:"pixel_type,omitempty"` // pixel_values' element type: PrecisionFloat16, or "" for float32 (see below)
	Image        *ImageSpec       `json:"image,omitempty"`
	Text         *TextSpec        `json:"text,omitempty"`
	Graphs       map[string]Graph `json:"graphs"`            // "vision", "text", ...
	Formula      *Formula         `json:"formula,omitempty"` // how a scorer turns the outputs into the score (formula.go)
	Source       map[string]any   `json:"source,omitempty"`
	Notes        []string         `json:"notes,omitempty"`
}

// CLIP's preprocessing constants (OpenAI's, used by every LAION CLIP).
var (
	CLIPMean = [3]float32{0.48145466, 0.4578275, 0.40821073}
	CLIPStd  = [3]float32{0.26862954, 0.26130258, 0.27577711}
)

// ReadManifest reads dir/model.json and checks that it is complete and that
// the files it names exist.
func ReadManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("model directory %s: %w", dir, ErrNoManifest)
	}
	if err != nil {
		return nil, fmt.Errorf("model directory %s: %w", dir, err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("model directory %s: %s: %w", dir, ManifestFile, err)
	}
	if err := m.validate(dir); err != nil {
		return nil, fmt.Errorf("model directory %s: %w", dir, err)
	}
	return &m, nil
}

func (m *Manifest) validate(dir string) error {
	if m.Format < 1 || m.Format > FormatVersion {
		return fmt.Errorf("manifest format %d is not supported (this build reads 1..%d)", m.Format, FormatVersion)
	}
	if m.Version == "" {
		return errors.New("manifest has no version")
	}
	switch {
	case m.PixelType != "" && m.PixelType != PrecisionFloat16:
		return fmt.Errorf("manifest pixel_type %q: want %q or none (float32)", m.PixelType, PrecisionFloat16)
	case m.PixelType != "" && m.Format < formatPixelType:
		return fmt.Errorf("manifest pixel_type needs format %d or later, it says %d", formatPixelType, m.Format)
	}
	need := map[Kind][]string{KindCLIP: {"vision", "text"}, KindHP: {"vision"}, KindImageReward: {"vision", "text"}, KindAesthetic: {"vision"}}[m.Kind]
	if need == nil {
		return fmt.Errorf("unknown model kind %q", m.Kind)
	}
	for _, g := range need {
		gr, ok := m.Graphs[g]
		if !ok {
			return fmt.Errorf("manifest has no %q graph", g)
		}
		for _, f := range []string{gr.File, gr.Data} {
			if f == "" {
				continue
			}
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				return fmt.Errorf("graph %q: %w", g, err)
			}
		}
	}
	if m.Image == nil || m.Image.CropSize <= 0 || m.Image.ShortestEdge <= 0 {
		return errors.New("manifest has no image size")
	}
	for _, s := range m.Image.Std {
		if s == 0 {
			return errors.New("manifest image std has a zero")
		}
	}
	if m.Kind != KindHP && m.Kind != KindAesthetic {
		if m.Text == nil || m.Text.Vocab == "" || m.Text.ContextLength <= 0 {
			return errors.New("manifest has no text tokenizer")
		}
		if _, err := os.Stat(filepath.Join(dir, m.Text.Vocab)); err != nil {
			return fmt.Errorf("vocabulary: %w", err)
		}
	}
	return nil
}

// WriteManifest writes dir/model.json atomically. A manifest without a
// format gets the oldest one that holds it: 1, or 2 with a pixel_type.
func WriteManifest(dir string, m *Manifest) error {
	if m.Format == 0 {
		m.Format = 1
		if m.PixelType != "" {
			m.Format = formatPixelType
		}
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ManifestFile+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, ManifestFile))
}
