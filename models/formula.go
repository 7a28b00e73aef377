package models

import (
	"fmt"
	"math"
)

// Formula names, recorded in model.json's "formula" so that a scorer knows
// which published score a model directory computes. The graphs give
// embeddings (and for aesthetic the MLP output); the formula is applied by
// the scorer.
const (
	// FormulaPickScore: exp(logit_scale) × cos(text, image); over one
	// prompt's candidates, softmax of those is the preference probability
	// (yuvalkirstain/PickScore README, calc_probs).
	FormulaPickScore = "pickscore"
	// FormulaCLIPScore: 2.5 × max(cos(prefix + caption, image), 0), prefix
	// "A photo depicts " (jmhessel/clipscore, clipscore.py: get_clip_score
	// with w=2.5, CLIPCapDataset prefix).
	FormulaCLIPScore = "clipscore"
	// FormulaCLIPScore100: 100 × max(cos(caption, image), 0) (torchmetrics'
	// clip_score, per image-caption pair).
	FormulaCLIPScore100 = "clipscore-100"
	// FormulaHPSv2: cos(text, image) of the normalised features (HPSv2
	// img_score.py: diagonal of image_features @ text_features.T).
	FormulaHPSv2 = "hpsv2"
	// FormulaAesthetic: the aesthetic graph's output as it is (no sigmoid).
	FormulaAesthetic = "aesthetic"
)

// Formula is how a model's score is computed from its graphs' outputs.
type Formula struct {
	Name string `json:"name"`
	// LogitScale is the checkpoint's logit_scale parameter (the log of the
	// multiplier), for pickscore: score = exp(LogitScale) × cos.
	LogitScale float64 `json:"logit_scale,omitempty"`
	// Weight multiplies the clamped cosine (2.5 for clipscore, 100 for
	// clipscore-100).
	Weight float64 `json:"weight,omitempty"`
	// Prefix is prepended to the prompt before tokenizing (clipscore's
	// "A photo depicts ").
	Prefix string `json:"prefix,omitempty"`
	// Source names the original code the formula transcribes.
	Source string `json:"source,omitempty"`
}

// Formulas are the formula names a manifest may carry.
var Formulas = []string{FormulaPickScore, FormulaCLIPScore, FormulaCLIPScore100, FormulaHPSv2, FormulaAesthetic}

// NewFormula returns the published definition of a named formula: its
// weight, prefix and source. logitScale is used by pickscore only.
func NewFormula(name string, logitScale float64) (*Formula, error) {
	switch name {
	case FormulaPickScore:
		return &Formula{Name: name, LogitScale: logitScale, Source: "yuvalkirstain/PickScore README.md (calc_probs)"}, nil
	case FormulaCLIPScore:
		return &Formula{Name: name, Weight: 2.5, Prefix: "A photo depicts ", Source: "jmhessel/clipscore clipscore.py (get_clip_score, w=2.5)"}, nil
	case FormulaCLIPScore100:
		return &Formula{Name: name, Weight: 100, Source: "torchmetrics functional/multimodal/clip_score.py"}, nil
	case FormulaHPSv2:
		return &Formula{Name: name, Source: "tgxs002/HPSv2 hpsv2/img_score.py"}, nil
	case FormulaAesthetic:
		return &Formula{Name: name, Source: "christophschuhmann/improved-aesthetic-predictor simple_inference.py"}, nil
	}
	return nil, fmt.Errorf("unknown formula %q (want one of %v)", name, Formulas)
}

// Describe is the formula in words, for `icthp models inspect` and
// /v1/models.
func (f *Formula) Describe() string {
	switch f.Name {
	case FormulaPickScore:
		return fmt.Sprintf("pickscore = exp(%g)·cos(text, image) = %.4g·cos; softmax over one prompt's images", f.LogitScale, math.Exp(f.LogitScale))
	case FormulaCLIPScore, FormulaCLIPScore100:
		p := ""
		if f.Prefix != "" {
			p = fmt.Sprintf(" (caption prefixed with %q)", f.Prefix)
		}
		return fmt.Sprintf("%s = %g·max(cos(text, image), 0)%s", f.Name, f.Weight, p)
	case FormulaHPSv2:
		return "hpsv2 = cos(text, image)"
	case FormulaAesthetic:
		return "aesthetic = MLP(image_embeds / ‖image_embeds‖), no sigmoid"
	}
	return f.Name
}
