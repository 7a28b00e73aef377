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
	"math"

	"github.com/icthp/icthp/internal/zooscorer"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/scorer"
)

// Names of the two scorers in requests, responses and flags.
const (
	Name    = "clipscore"
	Name100 = "clipscore100"
)

// Entry is Hessel's CLIPScore, Entry100 torchmetrics'. They differ in
// name and in the weight and prefix their manifests record.
var (
	Entry    = kind(Name, models.FormulaCLIPScore, "CLIPScore model directory, Hessel's 2.5·max(cos,0)")
	Entry100 = kind(Name100, models.FormulaCLIPScore100, "CLIPScore model directory, torchmetrics' 100·max(cos,0)")
)

func kind(name, formula, help string) scorer.Entry {
	return zooscorer.Kind{Name: name, Formula: formula, Help: help,
		Head: func(f *models.Formula, pairs []scorer.Pair) ([][]float64, error) { return Head(name, f.Weight, pairs) }}.Entry()
}

// Head is w × max(cos, 0) per pair; name names the model in errors.
func Head(name string, w float64, pairs []scorer.Pair) ([][]float64, error) {
	cos, err := zooscorer.Cosines(name, pairs)
	if err != nil {
		return nil, err
	}
	out := make([][]float64, len(pairs))
	for i, c := range cos {
		out[i] = []float64{Score(w, c)}
	}
	return out, nil
}

// Score is w × max(cos, 0).
func Score(w, cos float64) float64 { return w * math.Max(cos, 0) }
