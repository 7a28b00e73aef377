package hp

import (
	"context"
	"fmt"
	"io"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/models"
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
	Open: Open,
}

// Open opens an `hp` model directory; the closer releases its session.
func Open(dir string, o scorer.OpenOptions) (scorer.Scorer, io.Closer, error) {
	return scorer.OpenGraphs(dir, o, Name, func(man *models.Manifest, enc models.BatchEncoder) (scorer.Scorer, error) {
		return New(dir, man, enc)
	})
}

// Image is the scorer's image side: CLIP preprocessing, then backbone and
// head.
func (s *Scorer) Image() scorer.ImageEncoder { return imageSide{s} }

// Text is nil: HP needs no prompt.
func (s *Scorer) Text() scorer.TextEncoder { return nil }

// Head is the head's outputs: hp = sigmoid(logit), hp_logit.
func (s *Scorer) Head(_ context.Context, pairs []scorer.Pair) ([][]float64, error) {
	out := make([][]float64, len(pairs))
	for i, p := range pairs {
		if len(p.Image.Scalars) != 1 {
			return nil, fmt.Errorf("hp: image %d has %d scalars, want the logit", i, len(p.Image.Scalars))
		}
		r := Result{Logit: p.Image.Scalars[0]}
		out[i] = []float64{r.HP(), r.Logit}
	}
	return out, nil
}

type imageSide struct{ s *Scorer }

func (m imageSide) Preprocess() scorer.Preprocessor { return scorer.CLIPPreprocess(m.s.images) }

func (m imageSide) Encode(ctx context.Context, pixels []float32, n int) ([]scorer.Features, error) {
	res, err := m.s.Score(ctx, pixels, n)
	if err != nil {
		return nil, err
	}
	out := make([]scorer.Features, len(res))
	for i, r := range res {
		out[i] = scorer.Features{Vec: r.Embed, Scalars: []float64{r.Logit}}
	}
	return out, nil
}

var _ scorer.Scorer = (*Scorer)(nil)
