// Package ict computes the ICT (image-contained-text) score of the paper
// "Enhancing Reward Models for High-quality Image Generation: Beyond
// Text-Image Alignment": the cosine similarity of the L2-normalised text and
// image embeddings of the ICT CLIP model, with no logit scale.
package ict

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/preprocess/text"
	"github.com/icthp/icthp/scorer"
)

// Name is the model's name in requests, responses and flags.
const Name = "ict"

// Entry is ICT's registry entry: a `clip` model directory, scored as the
// cosine of the text and image embeddings.
var Entry = scorer.Entry{
	Spec: scorer.Spec{Name: Name, Kind: models.KindCLIP, Help: "ICT model directory (clip kind)",
		Outputs: []scorer.Output{{Name: Name, Product: true}}, RankBy: Name, Prompt: true,
		ImageKind: cache.KindImage, Embeds: true},
	Open: scorer.GraphOpener(Name, New),
}

// Encoder runs the model's graphs; *models.Model is one, and so is a dynamic
// batcher in front of it.
type Encoder = models.BatchEncoder

// Scorer holds the ICT model, its tokenizer and its image preprocessing.
type Scorer struct {
	man    *models.Manifest
	enc    Encoder
	tok    *text.Tokenizer
	images *preprocess.ImagePipeline
}

// New makes a Scorer for a `clip` model directory whose graphs enc runs.
func New(dir string, man *models.Manifest, enc Encoder) (*Scorer, error) {
	if man.Kind != models.KindCLIP {
		return nil, fmt.Errorf("ict: model %s is of kind %q, want %q", dir, man.Kind, models.KindCLIP)
	}
	tok, err := text.LoadTokenizer(filepath.Join(dir, man.Text.Vocab))
	if err != nil {
		return nil, fmt.Errorf("ict: %w", err)
	}
	if tok.ContextLength() != man.Text.ContextLength {
		tok.SetContextLength(man.Text.ContextLength)
	}
	img, err := preprocess.NewImagePipeline(ImageOptions(man))
	if err != nil {
		return nil, fmt.Errorf("ict: %w", err)
	}
	return &Scorer{man: man, enc: enc, tok: tok, images: img}, nil
}

// ImageOptions are the preprocessing options a manifest asks for.
func ImageOptions(man *models.Manifest) preprocess.ImageOptions {
	return preprocess.ImageOptions{ShortestEdge: man.Image.ShortestEdge, CropSize: man.Image.CropSize, Mean: man.Image.Mean, Std: man.Image.Std}
}

// Version is the model's version string.
func (s *Scorer) Version() string { return s.man.Version }

// Manifest is the model directory's manifest.
func (s *Scorer) Manifest() *models.Manifest { return s.man }

// Images is the model's image preprocessing.
func (s *Scorer) Images() *preprocess.ImagePipeline { return s.images }

// Tokenizer is the model's tokenizer.
func (s *Scorer) Tokenizer() *text.Tokenizer { return s.tok }

// EmbedTexts returns the L2-normalised text embedding of each prompt.
func (s *Scorer) EmbedTexts(ctx context.Context, prompts []string) ([][]float32, error) {
	if len(prompts) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(prompts)*s.tok.ContextLength())
	if err := s.tok.EncodeBatch(prompts, ids); err != nil {
		return nil, err
	}
	out, err := s.enc.EncodeTexts(ctx, ids, len(prompts))
	if err != nil {
		return nil, err
	}
	return Rows(out[0], len(prompts), true), nil
}

// EmbedImages returns the L2-normalised embedding of n preprocessed images
// (NCHW float32 laid out one after another).
func (s *Scorer) EmbedImages(ctx context.Context, pixels []float32, n int) ([][]float32, error) {
	if n == 0 {
		return nil, nil
	}
	out, err := s.enc.EncodeImages(ctx, pixels, n)
	if err != nil {
		return nil, err
	}
	return Rows(out[0], n, true), nil
}

// Rows splits a flat [n, d] output into rows, L2-normalising each when norm.
func Rows(flat []float32, n int, norm bool) [][]float32 {
	if n == 0 {
		return nil
	}
	d := len(flat) / n
	rows := make([][]float32, n)
	for i := range rows {
		r := flat[i*d : (i+1)*d : (i+1)*d]
		if norm {
			Normalize(r)
		}
		rows[i] = r
	}
	return rows
}

// Normalize scales v to unit L2 norm in place (accumulating in float64),
// as torch's x / x.norm(dim=-1, keepdim=True) does; a zero vector stays zero.
func Normalize(v []float32) {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 {
		return
	}
	inv := 1 / math.Sqrt(ss)
	for i, x := range v {
		v[i] = float32(float64(x) * inv)
	}
}

// Score is the ICT score of a normalised text and image embedding: their dot
// product (the cosine), accumulated in float64.
func Score(text, image []float32) float64 {
	var s float64
	for i := range text {
		s += float64(text[i]) * float64(image[i])
	}
	return s
}

// ErrNoPrompt means ICT was asked for without a prompt.
var ErrNoPrompt = errors.New("ict needs a prompt")
