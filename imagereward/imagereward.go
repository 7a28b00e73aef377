// Package imagereward scores images with ImageReward (THUDM/ImageReward),
// the BLIP-based reward model users compare ICT and HP against: BLIP's
// ViT-L/16 encodes the image into 197 tokens, a BERT text encoder with
// cross-attention to all of them reads the prompt, and a five-layer affine
// head on the [CLS] position gives the reward, normalised as
// (x − 0.16717362830052426) / 1.0333394966054072.
//
// A model directory (`icthp convert imagereward`) holds two graphs: the
// image encoder, run once per image, and the text+cross part, run for each
// (prompt, image) pair over the image's tokens. The image token sequence is
// what can be reused across prompts: it is the model's scorer.Features,
// which the scoring pipeline caches like any model's.
package imagereward

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/preprocess/text"
	"github.com/icthp/icthp/scorer"
)

// ErrNotImageReward means a model directory is of another kind.
var ErrNotImageReward = errors.New("not an imagereward model directory")

// Options configure a Scorer.
type Options struct {
	// Limits its own (Pillow-mode) decoder applies; zero fields take
	// preprocess's defaults. The scoring pipeline applies the service's
	// limits before: give the same ones.
	MaxImageBytes, MaxImagePixels int64
	// Vision, when set, is called once by Open with the opened image
	// encoder and returns what the scorer calls instead: serve puts its
	// dynamic batcher (*models.Batcher) there, so that images from many
	// requests share one run of the expensive ViT. The text+cross graph
	// takes three inputs, which the batcher does not, and runs per call.
	Vision func(*models.Model) (ImageEncoder, error)
}

// ImageEncoder runs the image encoder on n preprocessed images (NCHW
// float32, one after another) and returns image_tokens as n rows;
// *models.Model and *models.Batcher are ones.
type ImageEncoder interface {
	EncodeImages(ctx context.Context, pixels []float32, n int) ([][]float32, error)
}

// Scorer is an opened ImageReward model directory. It is safe for
// concurrent use.
type Scorer struct {
	dir    string
	man    *models.Manifest
	model  *models.Model        // vision graph
	vision ImageEncoder         // model, or what Options.Vision put in front of it
	text   *models.MultiSession // text + cross-attention + head
	tok    *text.WordPiece
	images *preprocess.TorchvisionPipeline
	ntok   int // image tokens per image
	width  int // their width
}

var _ scorer.Scorer = (*Scorer)(nil)

// Open opens an `imagereward` model directory's graphs with so.
func Open(dir string, so models.SessionOptions, o Options) (*Scorer, error) {
	man, err := models.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	if man.Kind != models.KindImageReward {
		return nil, fmt.Errorf("imagereward: model %s is of kind %q: %w", dir, man.Kind, ErrNotImageReward)
	}
	if man.Image.Pipeline != "torchvision" {
		return nil, fmt.Errorf("imagereward: model %s asks for the %q image pipeline, ImageReward uses \"torchvision\"", dir, man.Image.Pipeline)
	}
	if man.Text.Tokenizer != "bert-wordpiece" {
		return nil, fmt.Errorf("imagereward: model %s asks for the %q tokenizer, ImageReward uses \"bert-wordpiece\"", dir, man.Text.Tokenizer)
	}
	tg, ok := man.Graphs["text"]
	if !ok || len(tg.Inputs) != 3 || len(tg.Outputs) != 1 {
		return nil, fmt.Errorf("imagereward: model %s: the text graph must take input_ids, attention_mask and image_tokens and give one score", dir)
	}
	if vg := man.Graphs["vision"]; len(vg.Inputs) != 1 || len(vg.Outputs) != 1 {
		return nil, fmt.Errorf("imagereward: model %s: the vision graph must take pixel_values and give image_tokens", dir)
	}
	tok, err := text.LoadWordPiece(filepath.Join(dir, man.Text.Vocab), text.WithWordPieceContextLength(man.Text.ContextLength))
	if err != nil {
		return nil, fmt.Errorf("imagereward: %w", err)
	}
	img, err := preprocess.NewTorchvisionPipeline(preprocess.ImageOptions{ShortestEdge: man.Image.ShortestEdge, CropSize: man.Image.CropSize,
		Mean: man.Image.Mean, Std: man.Image.Std, MaxBytes: o.MaxImageBytes, MaxPixels: o.MaxImagePixels})
	if err != nil {
		return nil, fmt.Errorf("imagereward: %w", err)
	}
	if man.Precision == models.PrecisionInt8 {
		// As models.Open does for the vision graph: DynamicQuantizeMatMul
		// takes one activation scale over its whole input, in the text graph
		// the cross-attention keys and values of every image in the run, so
		// batched a score would depend on the images beside it.
		so.MaxBatch = 1
	}
	md, err := models.Open(dir, so)
	if err != nil {
		return nil, err
	}
	text, err := models.OpenMultiSession(filepath.Join(dir, tg.File), tg.Inputs, tg.Outputs, so)
	if err != nil {
		md.Close()
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	s := &Scorer{dir: dir, man: man, model: md, vision: md, text: text, tok: tok, images: img}
	if o.Vision != nil {
		if s.vision, err = o.Vision(md); err != nil {
			s.Close()
			return nil, fmt.Errorf("imagereward: model %s: %w", dir, err)
		}
	}
	shape := text.InputShape(tg.Inputs[2])
	if len(shape) != 3 || shape[1] <= 0 || shape[2] <= 0 {
		s.Close()
		return nil, fmt.Errorf("imagereward: model %s: image_tokens input has shape %v, want [batch, tokens, width]", dir, shape)
	}
	s.ntok, s.width = int(shape[1]), int(shape[2])
	if ids := text.InputShape(tg.Inputs[0]); len(ids) != 2 || ids[1] != int64(tok.ContextLength()) {
		s.Close()
		return nil, fmt.Errorf("imagereward: model %s: input_ids shape %v does not fit the context length %d", dir, ids, tok.ContextLength())
	}
	return s, nil
}

// Close releases the sessions.
func (s *Scorer) Close() error {
	err := s.model.Close()
	if err2 := s.text.Close(); err == nil {
		err = err2
	}
	return err
}

// Version is the model's version string.
func (s *Scorer) Version() string { return s.man.Version }

// Manifest is the model directory's manifest.
func (s *Scorer) Manifest() *models.Manifest { return s.man }

// Tokenizer is the model's WordPiece tokenizer.
func (s *Scorer) Tokenizer() *text.WordPiece { return s.tok }

// Images is the model's image preprocessing.
func (s *Scorer) Images() *preprocess.TorchvisionPipeline { return s.images }

// TokenLen is the number of float32 values of one image's token sequence.
func (s *Scorer) TokenLen() int { return s.ntok * s.width }

// ScoreTokens runs the text+cross part for one tokenized prompt (ids and
// mask of ContextLength) over each image's token sequence.
func (s *Scorer) ScoreTokens(ctx context.Context, ids, mask []int64, tokens [][]float32) ([]float64, error) {
	n := len(tokens)
	if n == 0 {
		return nil, nil
	}
	L, T := s.tok.ContextLength(), s.TokenLen()
	if len(ids) != L || len(mask) != L {
		return nil, fmt.Errorf("imagereward: %d ids and %d mask values, want %d", len(ids), len(mask), L)
	}
	allIDs, allMask := make([]int64, n*L), make([]int64, n*L)
	flat := make([]float32, 0, n*T)
	for i, t := range tokens {
		if len(t) != T {
			return nil, fmt.Errorf("imagereward: image %d has %d token values, want %d", i, len(t), T)
		}
		copy(allIDs[i*L:], ids)
		copy(allMask[i*L:], mask)
		flat = append(flat, t...)
	}
	tg := s.man.Graphs["text"]
	out, err := s.text.RunInputs(ctx, n,
		models.Input{Name: tg.Inputs[0], Int64: allIDs},
		models.Input{Name: tg.Inputs[1], Int64: allMask},
		models.Input{Name: tg.Inputs[2], Float: flat})
	if err != nil {
		return nil, err
	}
	if len(out[0]) != n {
		return nil, fmt.Errorf("imagereward: text graph gave %d scores for %d items", len(out[0]), n)
	}
	res := make([]float64, n)
	for i, v := range out[0] {
		res[i] = float64(v)
	}
	return res, nil
}
