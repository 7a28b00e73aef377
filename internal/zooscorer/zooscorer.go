// Package zooscorer is what the reward-zoo scorers (pickscore, clipscore,
// hpsv2, aesthetic) share: opening a model directory whose manifest names
// their formula, the image side (the preprocessing the manifest names, the
// L2-normalised image embedding, and for image-only models the graph's
// score), the CLIP text side (ict.TextSide with the formula's prefix), and
// the registry Entry. Each scorer package declares its Kind (Spec, formula,
// Head) and computes its formula.
package zooscorer

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/ict"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/preprocess/text"
	"github.com/icthp/icthp/scorer"
)

// Kind is what a zoo package declares; its Entry does the rest.
type Kind struct {
	// Name selects the model in requests, names it in responses and
	// flags, and (without Outputs) names its one output.
	Name string
	// Formula is what a directory's manifest must record (models.Formula*),
	// and the `icthp convert` command that writes such directories: a
	// plain `clip` directory records none, and its scores would not be
	// this model's.
	Formula string
	// Help is the flag's usage text; "(icthp convert Formula)" follows,
	// without backquotes: package flag would take a quoted name as the
	// flag's placeholder ("-pickscore icthp convert pickscore").
	Help string
	// ImageOnly is a model without a prompt whose graph computes the
	// score (models.KindAesthetic directories): its features are cached
	// with the score, as HP's are. Otherwise it is a dual encoder of a
	// models.KindCLIP directory.
	ImageOnly bool
	// Outputs are the scores it gives, the first its main score and rank
	// key; nil: one, named Name.
	Outputs []scorer.Output
	// Head is the kind's formula over one request's pairs, given the
	// manifest's formula record (its constants: logit scale, weight).
	Head func(f *models.Formula, pairs []scorer.Pair) ([][]float64, error)
}

// Spec is the kind's registry Spec.
func (k Kind) Spec() scorer.Spec {
	s := scorer.Spec{Name: k.Name, Kind: models.KindCLIP, Help: fmt.Sprintf("%s (icthp convert %s)", k.Help, k.Formula),
		Outputs: k.Outputs, Prompt: true, ImageKind: cache.KindImage}
	if s.Outputs == nil {
		s.Outputs = []scorer.Output{{Name: k.Name}}
	}
	s.RankBy = s.Outputs[0].Name
	if k.ImageOnly {
		s.Kind, s.Prompt, s.ImageKind = models.KindAesthetic, false, cache.KindHP
	}
	return s
}

// Entry is the kind's registry entry: Open checks the manifest, builds
// the image side the manifest names and (dual encoders) the CLIP text side
// with the formula's prefix, and scores with Head.
func (k Kind) Entry() scorer.Entry {
	spec := k.Spec()
	return scorer.Entry{Spec: spec, Open: func(dir string, o scorer.OpenOptions) (scorer.Scorer, io.Closer, error) {
		return scorer.GraphOpener(k.Name, func(dir string, man *models.Manifest, enc models.BatchEncoder) (*model, error) {
			m, err := open(dir, man, enc, spec.Kind, k, o)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k.Name, err)
			}
			return m, nil
		})(dir, o)
	}}
}

// model is one opened zoo model: the manifest, the encoder in front of its
// graphs, its image preprocessing, its text side (nil for an image-only
// model) and its kind's head.
type model struct {
	man  *models.Manifest
	enc  models.BatchEncoder
	prep scorer.Preprocessor
	text scorer.TextEncoder
	head func(f *models.Formula, pairs []scorer.Pair) ([][]float64, error)
}

func open(dir string, man *models.Manifest, enc models.BatchEncoder, kind models.Kind, k Kind, o scorer.OpenOptions) (*model, error) {
	if man.Kind != kind {
		return nil, fmt.Errorf("model %s is of kind %q, want %q", dir, man.Kind, kind)
	}
	if man.Formula == nil || man.Formula.Name != k.Formula {
		got := "none"
		if man.Formula != nil {
			got = man.Formula.Name
		}
		return nil, fmt.Errorf("model %s records formula %s, want %s (convert it with `icthp convert %s`)", dir, got, k.Formula, k.Formula)
	}
	m := &model{man: man, enc: enc, head: k.Head}
	var err error
	if m.prep, err = Preprocessor(man, o.MaxImageBytes, o.MaxImagePixels); err != nil {
		return nil, err
	}
	if !k.ImageOnly {
		tok, err := text.LoadTokenizer(filepath.Join(dir, man.Text.Vocab))
		if err != nil {
			return nil, err
		}
		if tok.ContextLength() != man.Text.ContextLength {
			tok.SetContextLength(man.Text.ContextLength)
		}
		m.text = ict.TextSide{Label: man.Formula.Name, Prefix: man.Formula.Prefix, Tok: tok, Enc: enc}
	}
	return m, nil
}

// Preprocessor is the image preprocessing a manifest names: "clip"
// (CLIPImageProcessor), "torchvision" (OpenAI CLIP's / open_clip's eval
// transform on the PIL image) or "hpsv2" (HPSv2's, HPSv2Pixels). maxBytes
// and maxPixels limit a preprocessor that decodes files itself (zero: the
// defaults); the pipeline checks the same limits first.
func Preprocessor(man *models.Manifest, maxBytes, maxPixels int64) (scorer.Preprocessor, error) {
	o := ict.ImageOptions(man)
	o.MaxBytes, o.MaxPixels = maxBytes, maxPixels
	switch man.Image.Pipeline {
	case "clip", "":
		p, err := preprocess.NewImagePipeline(o)
		if err != nil {
			return nil, err
		}
		return scorer.CLIPPreprocess(p), nil
	case "torchvision":
		p, err := preprocess.NewTorchvisionPipeline(o)
		if err != nil {
			return nil, err
		}
		return scorer.TorchvisionPreprocess(p), nil
	case PipelineHPSv2:
		return NewHPSv2Pixels(o)
	}
	return nil, fmt.Errorf("unknown image pipeline %q (want clip, torchvision or hpsv2)", man.Image.Pipeline)
}

// Version is the model's version string.
func (m *model) Version() string { return m.man.Version }

// Manifest is the model directory's manifest.
func (m *model) Manifest() *models.Manifest { return m.man }

// Image is the image side: the manifest's preprocessing; Features.Vec the
// L2-normalised image embedding, and for an aesthetic model Scalars[0] its
// score (the graph's first output).
func (m *model) Image() scorer.ImageEncoder {
	return scorer.ImageSide{Prep: m.prep, Graph: m.enc, Features: m.imageFeatures}
}

// Text is the text side of a dual encoder (ict.TextSide), nil for an
// image-only model.
func (m *model) Text() scorer.TextEncoder { return m.text }

// Head is the kind's formula.
func (m *model) Head(_ context.Context, pairs []scorer.Pair) ([][]float64, error) {
	return m.head(m.man.Formula, pairs)
}

// imageFeatures reads the image graph's outputs for n images.
func (m *model) imageFeatures(outs [][]float32, n int) ([]scorer.Features, error) {
	if m.man.Kind == models.KindAesthetic {
		// outputs: aesthetic [n], image_embeds [n, D]
		if len(outs) != 2 || len(outs[0]) != n {
			return nil, fmt.Errorf("aesthetic graph gave %d outputs, want the score and the embedding", len(outs))
		}
		feats := make([]scorer.Features, n)
		for i, e := range ict.Rows(outs[1], n, true) {
			feats[i] = scorer.Features{Vec: e, Scalars: []float64{float64(outs[0][i])}}
		}
		return feats, nil
	}
	return scorer.Embeddings(ict.Rows(outs[0], n, true)), nil
}

// Cosines returns each pair's cosine: the dot product of its normalised
// text and image embeddings, accumulated in float64 (ict.Score).
func Cosines(name string, pairs []scorer.Pair) ([]float64, error) {
	out := make([]float64, len(pairs))
	for i, p := range pairs {
		if p.Text == nil || p.Text.Embed == nil {
			return nil, fmt.Errorf("%s: pair %d has no text embedding", name, i)
		}
		if len(p.Text.Embed) != len(p.Image.Vec) {
			return nil, fmt.Errorf("%s: pair %d: text embedding of %d, image of %d", name, i, len(p.Text.Embed), len(p.Image.Vec))
		}
		out[i] = ict.Score(p.Text.Embed, p.Image.Vec)
	}
	return out, nil
}

var _ scorer.Scorer = (*model)(nil)
