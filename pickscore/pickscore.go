// Package pickscore is the PickScore scorer (Kirstain et al. 2023,
// yuvalkirstain/PickScore_v1): exp(logit_scale) × cos(text, image) of a
// Hugging Face CLIPModel (ViT-H-14), pixels through CLIPProcessor; over one
// prompt's candidates, the softmax of those scores is the preference
// probability. Transcribed from calc_probs in the PickScore README:
//
//	scores = model.logit_scale.exp() * (text_embs @ image_embs.T)[0]
//	probs = torch.softmax(scores, dim=-1)
package pickscore

import (
	"math"

	"github.com/icthp/icthp/internal/zooscorer"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/scorer"
)

// Name is the model's name in requests, responses and flags.
const Name = "pickscore"

// Entry is PickScore's registry entry. Outputs: pickscore (the scaled
// cosine) and pickscore_prob (its softmax over the request's images that
// share the prompt).
var Entry = zooscorer.Kind{Name: Name, Formula: models.FormulaPickScore, Help: "PickScore model directory",
	Outputs: []scorer.Output{{Name: "pickscore"}, {Name: "pickscore_prob", Relative: true}},
	Head:    func(f *models.Formula, pairs []scorer.Pair) ([][]float64, error) { return Head(f.LogitScale, pairs) }}.Entry()

// Head gives each pair its score with that logit scale and its preference
// probability among the pairs of the same prompt.
func Head(logitScale float64, pairs []scorer.Pair) ([][]float64, error) {
	cos, err := zooscorer.Cosines(Name, pairs)
	if err != nil {
		return nil, err
	}
	scores := make([]float64, len(pairs))
	for i, c := range cos {
		scores[i] = Score(logitScale, c)
	}
	probs := GroupSoftmax(pairs, scores)
	out := make([][]float64, len(pairs))
	for i := range pairs {
		out[i] = []float64{scores[i], probs[i]}
	}
	return out, nil
}

// Score is exp(logitScale) × cos.
func Score(logitScale, cos float64) float64 { return math.Exp(logitScale) * cos }

// GroupSoftmax is the softmax of scores over each group of pairs that share
// one prompt (one *scorer.Text), as calc_probs computes it over the images
// of one prompt; a prompt with one image gets 1.
func GroupSoftmax(pairs []scorer.Pair, scores []float64) []float64 {
	groups := map[*scorer.Text][]int{}
	var order []*scorer.Text
	for i, p := range pairs {
		if _, ok := groups[p.Text]; !ok {
			order = append(order, p.Text)
		}
		groups[p.Text] = append(groups[p.Text], i)
	}
	probs := make([]float64, len(scores))
	for _, t := range order {
		idx := groups[t]
		m := math.Inf(-1)
		for _, i := range idx {
			m = math.Max(m, scores[i])
		}
		sum := 0.0
		for _, i := range idx {
			probs[i] = math.Exp(scores[i] - m)
			sum += probs[i]
		}
		for _, i := range idx {
			probs[i] /= sum
		}
	}
	return probs
}
