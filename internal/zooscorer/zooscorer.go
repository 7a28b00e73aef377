// Package zooscorer is what the reward-zoo scorers (pickscore, clipscore,
// hpsv2, aesthetic) share: opening a model directory whose manifest names
// their formula, the image side (the preprocessing the manifest names, the
// L2-normalised image embedding, and for image-only models the graph's
// score), and the CLIP text side (the BPE tokenizer with the formula's
// prefix, the L2-normalised text embedding). Each scorer package adds its
// Entry and its Head (the formula).
package zooscorer

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/icthp/icthp/ict"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/preprocess/text"
	"github.com/icthp/icthp/scorer"
)

// Base is one opened zoo model: the manifest, the encoder in front of its
// graphs, its image preprocessing and (dual encoders) its tokenizer. It
// implements every scorer.Scorer method but Head.
type Base struct {
	man    *models.Manifest
	enc    models.BatchEncoder
	prep   scorer.Preprocessor
	tok    *text.Tokenizer // nil for an image-only model
	prefix string
}

// Open opens dir for the scorer named name, which computes formula on a
// directory of kind: the manifest must record that formula (a plain `clip`
// directory has none, and its scores would not be this model's).
func Open(dir string, o scorer.OpenOptions, name string, kind models.Kind, formula string) (*Base, io.Closer, error) {
	md, err := models.Open(dir, o.Session)
	if err != nil {
		return nil, nil, err
	}
	b, err := newBase(dir, md.Manifest, kind, formula, o)
	if err != nil {
		md.Close()
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	b.enc = md
	if o.Encoder != nil {
		if b.enc, err = o.Encoder(name, md); err != nil {
			md.Close()
			return nil, nil, err
		}
	}
	return b, md, nil
}

func newBase(dir string, man *models.Manifest, kind models.Kind, formula string, o scorer.OpenOptions) (*Base, error) {
	if man.Kind != kind {
		return nil, fmt.Errorf("model %s is of kind %q, want %q", dir, man.Kind, kind)
	}
	if man.Formula == nil || man.Formula.Name != formula {
		got := "none"
		if man.Formula != nil {
			got = man.Formula.Name
		}
		return nil, fmt.Errorf("model %s records formula %s, want %s (convert it with `icthp convert %s`)", dir, got, formula, formula)
	}
	b := &Base{man: man, prefix: man.Formula.Prefix}
	var err error
	if b.prep, err = Preprocessor(man, o.MaxImageBytes, o.MaxImagePixels); err != nil {
		return nil, err
	}
	if kind == models.KindCLIP {
		if b.tok, err = text.LoadTokenizer(filepath.Join(dir, man.Text.Vocab)); err != nil {
			return nil, err
		}
		if b.tok.ContextLength() != man.Text.ContextLength {
			b.tok.SetContextLength(man.Text.ContextLength)
		}
	}
	return b, nil
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
func (b *Base) Version() string { return b.man.Version }

// Manifest is the model directory's manifest.
func (b *Base) Manifest() *models.Manifest { return b.man }

// Image is the image side: the manifest's preprocessing; Features.Vec the
// L2-normalised image embedding, and for an aesthetic model Scalars[0] its
// score (the graph's first output).
func (b *Base) Image() scorer.ImageEncoder { return imageSide{b} }

// Text is the text side of a dual encoder, nil for an image-only model.
func (b *Base) Text() scorer.TextEncoder {
	if b.tok == nil {
		return nil
	}
	return textSide{b}
}

type imageSide struct{ b *Base }

func (m imageSide) Preprocess() scorer.Preprocessor { return m.b.prep }

func (m imageSide) Encode(ctx context.Context, pixels []float32, n int) ([]scorer.Features, error) {
	if n == 0 {
		return nil, nil
	}
	outs, err := m.b.enc.EncodeImages(ctx, pixels, n)
	if err != nil {
		return nil, err
	}
	feats := make([]scorer.Features, n)
	if m.b.man.Kind == models.KindAesthetic {
		// outputs: aesthetic [n], image_embeds [n, D]
		if len(outs) != 2 || len(outs[0]) != n {
			return nil, fmt.Errorf("aesthetic graph gave %d outputs, want the score and the embedding", len(outs))
		}
		for i, e := range ict.Rows(outs[1], n, true) {
			feats[i] = scorer.Features{Vec: e, Scalars: []float64{float64(outs[0][i])}}
		}
		return feats, nil
	}
	for i, e := range ict.Rows(outs[0], n, true) {
		feats[i] = scorer.Features{Vec: e}
	}
	return feats, nil
}

type textSide struct{ b *Base }

// Tokenize reads prefix + prompt (CLIPScore's "A photo depicts ").
func (t textSide) Tokenize(prompt string) (scorer.Tokens, error) {
	ids, err := t.b.tok.Encode(t.b.prefix + prompt)
	if err != nil {
		return scorer.Tokens{}, fmt.Errorf("%s text: %w", t.b.man.Formula.Name, err)
	}
	return scorer.Tokens{IDs: ids}, nil
}

// EncodeTexts runs the text graph over tokenized prompts and L2-normalises
// each embedding.
func (t textSide) EncodeTexts(ctx context.Context, toks []scorer.Tokens) ([][]float32, error) {
	if len(toks) == 0 {
		return nil, nil
	}
	L := t.b.tok.ContextLength()
	ids := make([]int64, 0, len(toks)*L)
	for i, tk := range toks {
		if len(tk.IDs) != L {
			return nil, fmt.Errorf("prompt %d has %d token ids, want %d", i, len(tk.IDs), L)
		}
		ids = append(ids, tk.IDs...)
	}
	out, err := t.b.enc.EncodeTexts(ctx, ids, len(toks))
	if err != nil {
		return nil, err
	}
	return ict.Rows(out[0], len(toks), true), nil
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

var _ scorer.TextEmbedder = textSide{}
