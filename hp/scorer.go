package hp

import (
	"context"
	"fmt"

	"github.com/icthp/icthp/scorer"
)

// Image is the scorer's image side: CLIP preprocessing, then backbone and
// head.
func (s *Scorer) Image() scorer.ImageEncoder {
	return scorer.ImageSide{Prep: scorer.CLIPPreprocess(s.images), Graph: s.enc, Features: imageFeatures}
}

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

// imageFeatures are the logit (Scalars[0]) and the embedding of each of n
// images, from the graph's outputs.
func imageFeatures(outs [][]float32, n int) ([]scorer.Features, error) {
	res, err := results(outs, n)
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
