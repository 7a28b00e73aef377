// Package scorertest is a fake model behind the scorer interfaces, for
// tests that drive the scoring pipeline and the HTTP server without
// onnxruntime. Its numbers are simple and recomputable: an image's
// features are its mean R, G, B (0..1) from the shared decode, a prompt's
// embedding is (len, first byte, last byte)/100 of its token ids, and the
// head is their dot product (with a prompt) or the features' sum.
package scorertest

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/x448/float16"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/scorer"
)

// Fake is one fake model; the zero value is not usable, call New.
type Fake struct {
	spec scorer.Spec
	man  *models.Manifest
	// Gate, when set, is received from before each Encode runs: a test
	// holds requests inside the model by not sending.
	Gate chan struct{}
	// Entered, when set, gets one send (non-blocking) as each Encode
	// starts.
	Entered chan int
	// TextGate and TextEntered are Gate and Entered for EncodeTexts.
	TextGate    chan struct{}
	TextEntered chan int
	// Fail, when set, is called as each Encode ("image") and EncodeTexts
	// ("text") starts; an error it returns is the call's (it may panic,
	// as a broken encoder would).
	Fail func(side string) error

	Tokenized, Encoded, TextEncoded atomic.Int64 // calls: prompts, image rows, text rows
}

// New makes a fake model named name with one output (its name); prompt
// says whether it has a text side.
func New(name string, prompt bool) *Fake {
	return &Fake{
		spec: scorer.Spec{Name: name, Kind: models.KindCLIP, Help: "fake " + name,
			Outputs: []scorer.Output{{Name: name, Product: true}}, RankBy: name, Prompt: prompt,
			ImageKind: cache.KindImage, Embeds: true},
		man: &models.Manifest{Kind: models.KindCLIP, Name: name, Version: "fake-" + name + "-1", EmbeddingDim: 3},
	}
}

// Model is the fake with its Spec, for scoring.New.
func (f *Fake) Model() scorer.Model { return scorer.Model{Spec: f.spec, Scorer: f} }

// Version is "fake-NAME-1".
func (f *Fake) Version() string { return f.man.Version }

// Manifest is a minimal clip manifest.
func (f *Fake) Manifest() *models.Manifest { return f.man }

// Image is the mean-colour image side.
func (f *Fake) Image() scorer.ImageEncoder { return imageSide{f} }

// Text is the byte tokenizer, or nil without a prompt.
func (f *Fake) Text() scorer.TextEncoder {
	if !f.spec.Prompt {
		return nil
	}
	return textSide{f}
}

// Head is dot(text, image) with a prompt, else the sum of the features.
func (f *Fake) Head(_ context.Context, pairs []scorer.Pair) ([][]float64, error) {
	out := make([][]float64, len(pairs))
	for i, p := range pairs {
		var s float64
		for j, x := range p.Image.Vec {
			if p.Text != nil {
				s += float64(x) * float64(p.Text.Embed[j])
			} else {
				s += float64(x)
			}
		}
		out[i] = []float64{s}
	}
	return out, nil
}

// Want is what the fake scores for an image of mean colour rgb (0..1)
// and a prompt ("" with no text side).
func (f *Fake) Want(rgb [3]float32, prompt string) float64 {
	feats := []float32{rgb[0], rgb[1], rgb[2]}
	if !f.spec.Prompt {
		return float64(feats[0]) + float64(feats[1]) + float64(feats[2])
	}
	e := embed(tokens(prompt))
	var s float64
	for j := range feats {
		s += float64(feats[j]) * float64(e[j])
	}
	return s
}

type imageSide struct{ f *Fake }

func (m imageSide) Preprocess() scorer.Preprocessor { return meanRGB{} }

// enter announces a call on entered, runs fail, then waits for gate.
func (f *Fake) enter(ctx context.Context, side string, n int, entered chan int, gate chan struct{}) error {
	if entered != nil {
		select {
		case entered <- n:
		default:
		}
	}
	if f.Fail != nil {
		if err := f.Fail(side); err != nil {
			return err
		}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (m imageSide) Encode(ctx context.Context, pixels []float32, n int) ([]scorer.Features, error) {
	if err := m.f.enter(ctx, "image", n, m.f.Entered, m.f.Gate); err != nil {
		return nil, err
	}
	m.f.Encoded.Add(int64(n))
	out := make([]scorer.Features, n)
	for i := range out {
		out[i] = scorer.Features{Vec: append([]float32(nil), pixels[3*i:3*i+3]...)}
	}
	return out, nil
}

// meanRGB is a preprocessor over the shared decode: the mean of each
// channel, scaled to 0..1.
type meanRGB struct{}

func (meanRGB) TensorLen() int { return 3 }
func (meanRGB) Key() any       { return meanRGB{} }
func (meanRGB) NeedsRGB() bool { return true }
func (meanRGB) Tensor(src scorer.Source, dst []float32) error {
	img := src.RGB
	if img == nil || img.W*img.H == 0 {
		return fmt.Errorf("scorertest: no pixels")
	}
	var sum [3]float64
	for i := 0; i < img.W*img.H; i++ {
		for c := range 3 {
			sum[c] += float64(img.Pix[3*i+c])
		}
	}
	for c := range 3 {
		dst[c] = float32(sum[c] / float64(img.W*img.H) / 255)
	}
	return nil
}

// TensorHalf is Tensor rounded (the fake's image side takes float32 rows
// only, so the pipeline never asks for halves).
func (m meanRGB) TensorHalf(src scorer.Source, dst []float16.Float16) error {
	var f [3]float32
	if err := m.Tensor(src, f[:]); err != nil {
		return err
	}
	for c, v := range f {
		dst[c] = float16.Fromfloat32(v)
	}
	return nil
}

type textSide struct{ f *Fake }

func tokens(prompt string) []int64 {
	ids := make([]int64, 8)
	for i := 0; i < len(prompt) && i < len(ids); i++ {
		ids[i] = int64(prompt[i])
	}
	return ids
}

func embed(ids []int64) []float32 {
	n := 0
	for _, id := range ids {
		if id != 0 {
			n++
		}
	}
	last := int64(0)
	if n > 0 {
		last = ids[n-1]
	}
	return []float32{float32(n) / 100, float32(ids[0]) / 100, float32(last) / 100}
}

func (t textSide) Tokenize(prompt string) (scorer.Tokens, error) {
	t.f.Tokenized.Add(1)
	return scorer.Tokens{IDs: tokens(prompt)}, nil
}

func (t textSide) EncodeTexts(ctx context.Context, toks []scorer.Tokens) ([][]float32, error) {
	if err := t.f.enter(ctx, "text", len(toks), t.f.TextEntered, t.f.TextGate); err != nil {
		return nil, err
	}
	t.f.TextEncoded.Add(int64(len(toks)))
	out := make([][]float32, len(toks))
	for i, tk := range toks {
		out[i] = embed(tk.IDs)
	}
	return out, nil
}

var _ scorer.TextEmbedder = textSide{}
