// Package scorer is what every model kind implements and what the scoring
// service calls: the small interfaces of a model's image side, text side
// and head, the shared input type Image, the typed errors, and the
// registry Entry that makes a model kind known to the service, the CLI
// (--NAME DIR, $ICTHP_NAME), /v1/models, /v1/reward weights and batch
// columns.
//
// It sits below both the scoring service and the model packages (ict, hp,
// imagereward, ...): a model package imports scorer, never scoring, and
// scoring imports scorer, never a model package. The list of entries (the
// registry itself) lives in the package that opens model directories
// (modelset), the one place that imports every model package.
//
// The pipeline (scoring) does, for every model alike: admission, the byte
// and pixel limits, hashing, the cache lookup, one decode per image shared
// by the models that take decoded RGB, preprocessing into a batch, one
// Encode call per model for the images that missed the cache, tokenizing
// each distinct prompt once per model, text embeddings (cached), and then
// the head over (text, image) pairs. A model only says how to preprocess,
// encode and score.
//
// Adding a model kind: one package that implements Scorer and exports an
// Entry, plus that Entry in modelset's registry list.
package scorer

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/x448/float16"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/preprocess"
)

// Image is one input image: encoded file bytes, or raw RGB pixels.
type Image struct {
	Data []byte
	RGB  *preprocess.RGB
}

// ErrBadRequest marks a request that cannot be served as asked (an unknown
// model name, a prompt-taking model without a prompt, a model that is not
// loaded, a prompt the tokenizer refuses). Over HTTP it is a 400.
var ErrBadRequest = errors.New("bad request")

// Scorer is one loaded model. It is safe for concurrent use.
type Scorer interface {
	// Version is the model's version string: part of every cache key and
	// of every response's "models".
	Version() string
	// Manifest is the model directory's manifest (/v1/models, embedding
	// dimensions).
	Manifest() *models.Manifest
	// Image is the model's image side; every model has one.
	Image() ImageEncoder
	// Text is the model's text side; nil for a model that scores without
	// a prompt (HP, aesthetic).
	Text() TextEncoder
	// Head is the model's head (or formula): for each pair, one value per
	// output of the model's Spec.Outputs, in that order. Pair.Text is nil
	// when Text() is nil. The pipeline calls it once per request with
	// every pair that has features (cache hits and fresh ones alike).
	Head(ctx context.Context, pairs []Pair) ([][]float64, error)
}

// Features are what a model's image encoder makes of one image and what
// the cache keeps (with the image's size, which the pipeline adds): an
// embedding (CLIP-style models: L2-normalised), a token sequence
// (ImageReward: 197 × 1024 values), and scalars the model defines (HP: the
// head's logit). Values are the caller's; do not modify them.
type Features struct {
	Vec     []float32
	Scalars []float64
}

// Embeddings are the features of images that are embeddings only (no
// scalars): one Features per vector.
func Embeddings(vecs [][]float32) []Features {
	out := make([]Features, len(vecs))
	for i, v := range vecs {
		out[i] = Features{Vec: v}
	}
	return out
}

// ImageEncoder is a model's image side.
type ImageEncoder interface {
	// Preprocess is how one image becomes one row of Encode's input.
	Preprocess() Preprocessor
	// Encode runs n preprocessed rows (laid out one after another,
	// Preprocess().TensorLen() values each) and returns each row's
	// features. It is called once per request (and per model) with every
	// image that missed the cache; a dynamic batcher behind it may gather
	// rows of several requests into one run.
	Encode(ctx context.Context, pixels []float32, n int) ([]Features, error)
}

// HalfEncoder is an ImageEncoder that also takes rows of binary16 values.
// When HalfPixels says its graph takes float16 pixels (an --fp16 model
// directory of format 2), the pipeline writes its rows with
// Preprocess().TensorHalf and calls EncodeHalf: no float32 row is made for
// it and nothing rounds one.
type HalfEncoder interface {
	ImageEncoder
	HalfPixels() bool
	// EncodeHalf is Encode for binary16 rows.
	EncodeHalf(ctx context.Context, pixels []float16.Float16, n int) ([]Features, error)
}

// ImageGraph runs a model's vision graph over n rows and returns its
// outputs, n rows each: *models.Model, or a *models.Batcher in front of
// one. When it is a models.HalfEncoder too, ImageSide feeds it halves.
type ImageGraph interface {
	EncodeImages(ctx context.Context, pixels []float32, n int) ([][]float32, error)
}

// ImageSide is the image side of a model whose images go through one graph
// (what a model's Image returns): the Preprocessor, the graph, and what the
// graph's outputs for n rows mean (Features). It is a HalfEncoder: its rows
// are halves when Graph is a models.HalfEncoder whose graph takes float16
// pixels.
type ImageSide struct {
	Prep     Preprocessor
	Graph    ImageGraph
	Features func(outs [][]float32, n int) ([]Features, error)
}

// Preprocess is Prep.
func (s ImageSide) Preprocess() Preprocessor { return s.Prep }

// Encode runs Graph on float32 rows.
func (s ImageSide) Encode(ctx context.Context, pixels []float32, n int) ([]Features, error) {
	return encodeRows(ctx, s, pixels, n, s.Graph.EncodeImages)
}

// HalfPixels says whether Graph takes float16 pixels.
func (s ImageSide) HalfPixels() bool {
	h, ok := s.Graph.(models.HalfEncoder)
	return ok && h.HalfPixels()
}

// EncodeHalf runs Graph on binary16 rows (a graph that takes float32 ones
// gets them widened, which is exact).
func (s ImageSide) EncodeHalf(ctx context.Context, pixels []float16.Float16, n int) ([]Features, error) {
	h, ok := s.Graph.(models.HalfEncoder)
	if !ok {
		return nil, fmt.Errorf("the image graph (%T) takes no float16 rows", s.Graph)
	}
	return encodeRows(ctx, s, pixels, n, h.EncodeImagesHalf)
}

// encodeRows runs n rows of either element type through run and reads its
// outputs with s.Features.
func encodeRows[T float32 | float16.Float16](ctx context.Context, s ImageSide, pixels []T, n int,
	run func(context.Context, []T, int) ([][]float32, error)) ([]Features, error) {
	if n == 0 {
		return nil, nil
	}
	outs, err := run(ctx, pixels, n)
	if err != nil {
		return nil, err
	}
	return s.Features(outs, n)
}

// Source is one image as the pipeline hands it to a Preprocessor: RGB is
// set when the preprocessor takes decoded pixels (NeedsRGB) or the input was
// raw pixels; Data is the encoded file otherwise.
type Source struct {
	Data []byte
	RGB  *preprocess.RGB
}

// Preprocessor turns one image into one row of model input. The pipeline
// has already applied the byte and pixel limits and holds the image's share
// of the decoded-pixel budget while Tensor runs.
type Preprocessor interface {
	// TensorLen is the number of values of one row.
	TensorLen() int
	// Key identifies the preprocessing (compared with ==): models whose
	// keys are equal get one tensor, computed once and copied.
	Key() any
	// NeedsRGB says whether Tensor reads Source.RGB, decoded once per
	// image by preprocess.DecodeRGB and shared by every model that needs
	// it (CLIP's pipeline). When false, Tensor decodes Source.Data itself
	// (ImageReward's Pillow-mode decoder); raw-pixel inputs still come as
	// Source.RGB.
	NeedsRGB() bool
	// Tensor writes the row into dst (TensorLen values). It must not keep
	// src.RGB once it returns: the service hands decoded pixels back to a
	// pool as soon as an image's rows are made.
	Tensor(src Source, dst []float32) error
	// TensorHalf writes the row as binary16 values, for a graph that takes
	// float16 pixels (HalfEncoder): each is Tensor's value rounded to
	// nearest-even (float16.Fromfloat32, as onnxruntime's Cast rounds), so
	// the graph sees what it saw when the host rounded float32 rows.
	TensorHalf(src Source, dst []float16.Float16) error
}

// Tokens are one tokenized prompt: IDs padded to the model's context
// length, and the attention mask for tokenizers that have one (nil for
// CLIP's).
type Tokens struct {
	IDs  []int64
	Mask []int64
}

// TextEncoder is a model's text side.
type TextEncoder interface {
	// Tokenize reads one prompt. The pipeline calls it once per distinct
	// prompt of a request (and model); the tokens key the text cache and
	// go to EncodeTexts and to the head unchanged. A prompt the tokenizer
	// refuses is an error wrapping ErrBadRequest or
	// text.ErrPromptTooLong.
	Tokenize(prompt string) (Tokens, error)
}

// TextEmbedder is a TextEncoder whose text side is a separate encoder with
// a cacheable output (CLIP-style models). A model without it (ImageReward:
// text is read with cross-attention to the image inside the head) gets
// Pair.Text.Embed nil.
type TextEmbedder interface {
	TextEncoder
	// EncodeTexts returns one embedding per tokenized prompt.
	EncodeTexts(ctx context.Context, toks []Tokens) ([][]float32, error)
}

// Text is one prompt as the head sees it.
type Text struct {
	Tokens Tokens
	Embed  []float32 // from TextEmbedder; nil for a model without one
}

// Pair is one (prompt, image) the head scores. Pairs with the same prompt
// share one *Text, so a head may group by pointer.
type Pair struct {
	Text  *Text // nil for a model without a text side
	Image Features
}

// Output is one score a model gives per image.
type Output struct {
	// Name is the score's name in responses, /v1/reward weights and batch
	// columns ("ict", "hp", "hp_logit", "imagereward", "pickscore", ...);
	// unique over the registry.
	Name string
	// Product says whether the default reward (the product of the loaded
	// models' scores) multiplies this one in: a model's main score in
	// [0, 1]-like units, not a logit.
	Product bool
	// Relative says the value depends on the request's other images
	// (PickScore's probability: a softmax over the images that share the
	// prompt). Batch leaves such outputs out: its batches are an accident
	// of its settings, so the value would be too.
	Relative bool
}

// Spec is what the service, the server, batch and the CLI know of a model
// kind before and after it is loaded.
type Spec struct {
	// Name selects the model in requests ("models": [...]) and names it in
	// responses; the CLI flag is --Name, its environment variable
	// ICTHP_<NAME upper-cased>.
	Name string
	// Kind is the manifest kind of its model directories.
	Kind models.Kind
	// Help is the flag's usage text.
	Help string
	// Outputs are the scores it gives, in response order; the first is
	// its main score.
	Outputs []Output
	// RankBy is the output /v1/rank orders by when it is the only model
	// loaded (HP: hp_logit, which does not saturate as hp does).
	RankBy string
	// Prompt says whether it needs a prompt (it has a text side).
	Prompt bool
	// ImageKind is the cache kind of its image features:
	// cache.KindImage for an embedding, cache.KindHP for HP's
	// logit+embedding. Text embeddings are cache.KindText.
	ImageKind cache.Kind
	// Embeds says its image features' Vec (and its text embeddings) are
	// what /v1/embed returns; the first loaded model in registry order
	// with Embeds serves it.
	Embeds bool
}

// OpenOptions are what Entry.Open gets besides the directory.
type OpenOptions struct {
	// Session configures the onnxruntime sessions.
	Session models.SessionOptions
	// Encoder, when set, puts something in front of each opened graph the
	// pipeline batches (serve: a dynamic batcher); name is the Spec's
	// name. Nil: the model itself.
	Encoder func(name string, md *models.Model) (models.BatchEncoder, error)
	// MaxImageBytes and MaxImagePixels are the limits for a model whose
	// preprocessor decodes files itself (NeedsRGB false); zero takes
	// preprocess's defaults. The pipeline applies the same limits first.
	MaxImageBytes, MaxImagePixels int64
}

// Entry is one model kind of the registry: its Spec and how to open one of
// its model directories. A model package exports its Entry, e.g.
//
//	var Entry = scorer.Entry{
//		Spec: scorer.Spec{Name: "pickscore", Kind: models.KindCLIP,
//			Help:      "PickScore model directory (clip kind)",
//			Outputs:   []scorer.Output{{Name: "pickscore"}},
//			RankBy:    "pickscore", Prompt: true, ImageKind: cache.KindImage},
//		Open: Open,
//	}
//
// Open returns the scorer and what releases its sessions.
type Entry struct {
	Spec
	Open func(dir string, o OpenOptions) (Scorer, io.Closer, error)
}

// Model is a loaded model: its Spec and its Scorer.
type Model struct {
	Spec
	Scorer
}
