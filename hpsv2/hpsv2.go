// Package hpsv2 is the Human Preference Score v2 / v2.1 scorer (Wu et al.
// 2023, tgxs002/HPSv2): an open_clip ViT-H-14 fine-tuned on HPDv2, scored
// as hpsv2/img_score.py does: the diagonal of image_features @
// text_features.T, both from the model's forward with normalize=True, i.e.
// the cosine of the text and image features. Directories come from `icthp
// convert hpsv2` (HPS_v2_compressed.pt or HPS_v2.1_compressed.pt).
package hpsv2

import (
	"github.com/icthp/icthp/internal/zooscorer"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/scorer"
)

// Name is the model's name in requests, responses and flags.
const Name = "hpsv2"

// Entry is HPSv2's registry entry.
var Entry = zooscorer.Kind{Name: Name, Formula: models.FormulaHPSv2, Help: "HPSv2 / HPSv2.1 model directory",
	Head: func(_ *models.Formula, pairs []scorer.Pair) ([][]float64, error) { return Head(pairs) }}.Entry()

// Head is the cosine of each pair's normalised text and image features.
func Head(pairs []scorer.Pair) ([][]float64, error) {
	cos, err := zooscorer.Cosines(Name, pairs)
	if err != nil {
		return nil, err
	}
	out := make([][]float64, len(pairs))
	for i, c := range cos {
		out[i] = []float64{c}
	}
	return out, nil
}
