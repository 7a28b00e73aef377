// Package hp computes the HP (high-preference) score of the paper "Enhancing
// Reward Models for High-quality Image Generation: Beyond Text-Image
// Alignment": sigmoid(head(backbone.get_image_features(pixels))). It needs no
// prompt.
package hp

import (
	"context"
	"fmt"
	"math"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/ict"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scorer"
)

// Name is the model's name in requests, responses and flags.
const Name = "hp"

// Entry is HP's registry entry: an `hp` model directory (backbone + head),
// scored without a prompt. Its cached features are the head's logit (as
// Scalars[0]) and the backbone's embedding.
var Entry = scorer.Entry{
	Spec: scorer.Spec{Name: Name, Kind: models.KindHP, Help: "HP model directory (hp kind)",
		Outputs: []scorer.Output{{Name: "hp", Product: true}, {Name: "hp_logit"}}, RankBy: "hp_logit",
		ImageKind: cache.KindHP, Embeds: true},
	Open: scorer.GraphOpener(Name, func(dir string, man *models.Manifest, enc models.BatchEncoder) (*Scorer, error) {
		return New(dir, man, enc) // an HP graph needs only the image side of the encoder
	}),
}

// Encoder runs the HP graph; *models.Model is one, and so is a batcher.
type Encoder interface {
	EncodeImages(ctx context.Context, pixels []float32, n int) ([][]float32, error)
}

// Scorer holds the HP model and its image preprocessing.
type Scorer struct {
	man    *models.Manifest
	enc    Encoder
	images *preprocess.ImagePipeline
}

// New makes a Scorer for an `hp` model directory whose graph enc runs.
func New(dir string, man *models.Manifest, enc Encoder) (*Scorer, error) {
	if man.Kind != models.KindHP {
		return nil, fmt.Errorf("hp: model %s is of kind %q, want %q", dir, man.Kind, models.KindHP)
	}
	img, err := preprocess.NewImagePipeline(ict.ImageOptions(man))
	if err != nil {
		return nil, fmt.Errorf("hp: %w", err)
	}
	return &Scorer{man: man, enc: enc, images: img}, nil
}

// Version is the model's version string.
func (s *Scorer) Version() string { return s.man.Version }

// Manifest is the model directory's manifest.
func (s *Scorer) Manifest() *models.Manifest { return s.man }

// Images is the model's image preprocessing.
func (s *Scorer) Images() *preprocess.ImagePipeline { return s.images }

// Result is HP's output for one image.
type Result struct {
	Logit float64   // hp_logit, before the sigmoid
	Embed []float32 // the backbone's image features, L2-normalised
}

// HP is sigmoid(Logit).
func (r Result) HP() float64 { return Sigmoid(r.Logit) }

// Score runs n preprocessed images through the backbone and head.
func (s *Scorer) Score(ctx context.Context, pixels []float32, n int) ([]Result, error) {
	if n == 0 {
		return nil, nil
	}
	out, err := s.enc.EncodeImages(ctx, pixels, n)
	if err != nil {
		return nil, err
	}
	return results(out, n)
}

// results reads the graph's outputs for n images: the logit, then the
// embedding.
func results(out [][]float32, n int) ([]Result, error) {
	if len(out) < 2 || len(out[0]) != n {
		return nil, fmt.Errorf("hp: graph returned %d outputs", len(out))
	}
	embeds := ict.Rows(out[1], n, true)
	res := make([]Result, n)
	for i := range res {
		res[i] = Result{Logit: float64(out[0][i]), Embed: embeds[i]}
	}
	return res, nil
}

// Sigmoid is 1/(1+e^-x), computed without overflow for large |x|.
func Sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}
