// Package aesthetic is the LAION aesthetic predictor v2 scorer
// (christophschuhmann/improved-aesthetic-predictor, simple_inference.py):
// the MLP 768→1024→128→64→16→1 on the L2-normalised image embedding of
// OpenAI CLIP ViT-L/14, pixels through OpenAI CLIP's transform; no prompt,
// no sigmoid (scores are roughly 1..10). The graph computes the score
// (models/clip.BuildAesthetic); the image features carry it as Scalars[0].
package aesthetic

import (
	"context"
	"fmt"
	"io"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/internal/zooscorer"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/scorer"
)

// Name is the model's name in requests, responses and flags.
const Name = "aesthetic"

// Entry is the aesthetic predictor's registry entry. Its cached image
// features are the score and the embedding, as HP's are.
var Entry = scorer.Entry{
	Spec: scorer.Spec{Name: Name, Kind: models.KindAesthetic, Help: "LAION aesthetic predictor v2 model directory (`icthp convert aesthetic`)",
		Outputs: []scorer.Output{{Name: Name}}, RankBy: Name, ImageKind: cache.KindHP},
	Open: Open,
}

// Scorer is an opened aesthetic model.
type Scorer struct{ *zooscorer.Base }

// Open opens a directory written by `icthp convert aesthetic`.
func Open(dir string, o scorer.OpenOptions) (scorer.Scorer, io.Closer, error) {
	b, c, err := zooscorer.Open(dir, o, Name, models.KindAesthetic, models.FormulaAesthetic)
	if err != nil {
		return nil, nil, err
	}
	return &Scorer{b}, c, nil
}

// Head is the graph's score, carried in the image features.
func (s *Scorer) Head(_ context.Context, pairs []scorer.Pair) ([][]float64, error) {
	out := make([][]float64, len(pairs))
	for i, p := range pairs {
		if len(p.Image.Scalars) != 1 {
			return nil, fmt.Errorf("aesthetic: image %d has %d scalars, want the score", i, len(p.Image.Scalars))
		}
		out[i] = []float64{p.Image.Scalars[0]}
	}
	return out, nil
}

var _ scorer.Scorer = (*Scorer)(nil)
