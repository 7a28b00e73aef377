// Package clipscore is CLIPScore in its two published forms:
//
//   - clipscore (Hessel et al. 2021, jmhessel/clipscore clipscore.py):
//     2.5 × max(cos, 0), the caption prefixed with "A photo depicts "
//     (CLIPCapDataset), pixels through OpenAI CLIP's transform
//     (_transform_test: Resize(224, BICUBIC), CenterCrop, convert RGB,
//     ToTensor, Normalize), features L2-normalised (get_clip_score:
//     w*np.clip(np.sum(images * candidates, axis=1), 0, None), w = 2.5);
//   - clipscore100 (torchmetrics' clip_score): 100 × max(cos, 0) of the
//     caption as given, pixels through CLIPProcessor. torchmetrics clamps
//     the mean over a batch; per image-caption pair, as here, that is
//     max(100·cos, 0).
//
// The weight, prefix and pipeline are read from model.json, where `icthp
// convert clipscore|clipscore-100` records them.
package clipscore

import (
	"context"
	"io"
	"math"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/internal/zooscorer"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/scorer"
)

// Names of the two scorers in requests, responses and flags.
const (
	Name    = "clipscore"
	Name100 = "clipscore100"
)

// Entry is Hessel's CLIPScore.
var Entry = scorer.Entry{
	Spec: scorer.Spec{Name: Name, Kind: models.KindCLIP, Help: "CLIPScore model directory, Hessel's 2.5·max(cos,0) (`icthp convert clipscore`)",
		Outputs: []scorer.Output{{Name: Name}}, RankBy: Name, Prompt: true, ImageKind: cache.KindImage},
	Open: func(dir string, o scorer.OpenOptions) (scorer.Scorer, io.Closer, error) {
		return open(dir, o, Name, models.FormulaCLIPScore)
	},
}

// Entry100 is torchmetrics' CLIPScore.
var Entry100 = scorer.Entry{
	Spec: scorer.Spec{Name: Name100, Kind: models.KindCLIP, Help: "CLIPScore model directory, torchmetrics' 100·max(cos,0) (`icthp convert clipscore-100`)",
		Outputs: []scorer.Output{{Name: Name100}}, RankBy: Name100, Prompt: true, ImageKind: cache.KindImage},
	Open: func(dir string, o scorer.OpenOptions) (scorer.Scorer, io.Closer, error) {
		return open(dir, o, Name100, models.FormulaCLIPScore100)
	},
}

// Scorer is an opened CLIPScore model.
type Scorer struct {
	*zooscorer.Base
	name   string
	weight float64
}

func open(dir string, o scorer.OpenOptions, name, formula string) (scorer.Scorer, io.Closer, error) {
	b, c, err := zooscorer.Open(dir, o, name, models.KindCLIP, formula)
	if err != nil {
		return nil, nil, err
	}
	return &Scorer{Base: b, name: name, weight: b.Manifest().Formula.Weight}, c, nil
}

// Head is weight × max(cos, 0) per pair.
func (s *Scorer) Head(_ context.Context, pairs []scorer.Pair) ([][]float64, error) {
	cos, err := zooscorer.Cosines(s.name, pairs)
	if err != nil {
		return nil, err
	}
	out := make([][]float64, len(pairs))
	for i, c := range cos {
		out[i] = []float64{Score(s.weight, c)}
	}
	return out, nil
}

// Score is w × max(cos, 0).
func Score(w, cos float64) float64 { return w * math.Max(cos, 0) }

var _ scorer.Scorer = (*Scorer)(nil)
