// Package aesthetic is the LAION aesthetic predictor v2 scorer
// (christophschuhmann/improved-aesthetic-predictor, simple_inference.py):
// the MLP 768→1024→128→64→16→1 on the L2-normalised image embedding of
// OpenAI CLIP ViT-L/14, pixels through OpenAI CLIP's transform; no prompt,
// no sigmoid (scores are roughly 1..10). The graph computes the score
// (models/clip.BuildAesthetic); the image features carry it as Scalars[0].
package aesthetic

import (
	"fmt"

	"github.com/icthp/icthp/internal/zooscorer"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/scorer"
)

// Entry is the aesthetic predictor's registry entry: no prompt; its
// cached image features are the score and the embedding, as HP's are.
var Entry = zooscorer.Kind{Name: "aesthetic", Formula: models.FormulaAesthetic, Help: "LAION aesthetic predictor v2 model directory", ImageOnly: true,
	Head: func(_ *models.Formula, pairs []scorer.Pair) ([][]float64, error) { return Head(pairs) }}.Entry()

// Head is the graph's score, carried in the image features.
func Head(pairs []scorer.Pair) ([][]float64, error) {
	out := make([][]float64, len(pairs))
	for i, p := range pairs {
		if len(p.Image.Scalars) != 1 {
			return nil, fmt.Errorf("aesthetic: image %d has %d scalars, want the score", i, len(p.Image.Scalars))
		}
		out[i] = []float64{p.Image.Scalars[0]}
	}
	return out, nil
}
