package ict

import (
	"context"
	"fmt"
	"io"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/scorer"
)

// Name is the model's name in requests, responses and flags.
const Name = "ict"

// Entry is ICT's registry entry: a `clip` model directory, scored as the
// cosine of the text and image embeddings.
var Entry = scorer.Entry{
	Spec: scorer.Spec{Name: Name, Kind: models.KindCLIP, Help: "ICT model directory (clip kind)",
		Outputs: []scorer.Output{{Name: Name, Product: true}}, RankBy: Name, Prompt: true,
		ImageKind: cache.KindImage, Embeds: true},
	Open: Open,
}

// Open opens a `clip` model directory as an ICT scorer; the closer
// releases its sessions.
func Open(dir string, o scorer.OpenOptions) (scorer.Scorer, io.Closer, error) {
	md, err := models.Open(dir, o.Session)
	if err != nil {
		return nil, nil, err
	}
	var enc models.BatchEncoder = md
	if o.Encoder != nil {
		if enc, err = o.Encoder(Name, md); err != nil {
			md.Close()
			return nil, nil, err
		}
	}
	s, err := New(dir, md.Manifest, enc)
	if err != nil {
		md.Close()
		return nil, nil, err
	}
	return s, md, nil
}

// Image is the scorer's image side: CLIP preprocessing, then the
// L2-normalised image embedding.
func (s *Scorer) Image() scorer.ImageEncoder { return imageSide{s} }

// Text is the scorer's text side: the CLIP tokenizer, then the
// L2-normalised text embedding.
func (s *Scorer) Text() scorer.TextEncoder { return textSide{s} }

// Head is the head: the cosine of each pair's text and image embedding.
func (s *Scorer) Head(_ context.Context, pairs []scorer.Pair) ([][]float64, error) {
	out := make([][]float64, len(pairs))
	for i, p := range pairs {
		if p.Text == nil || p.Text.Embed == nil {
			return nil, fmt.Errorf("ict: pair %d has no text embedding", i)
		}
		out[i] = []float64{Score(p.Text.Embed, p.Image.Vec)}
	}
	return out, nil
}

type imageSide struct{ s *Scorer }

func (m imageSide) Preprocess() scorer.Preprocessor { return scorer.CLIPPreprocess(m.s.images) }

func (m imageSide) Encode(ctx context.Context, pixels []float32, n int) ([]scorer.Features, error) {
	emb, err := m.s.EmbedImages(ctx, pixels, n)
	if err != nil {
		return nil, err
	}
	out := make([]scorer.Features, len(emb))
	for i, e := range emb {
		out[i] = scorer.Features{Vec: e}
	}
	return out, nil
}

type textSide struct{ s *Scorer }

func (t textSide) Tokenize(prompt string) (scorer.Tokens, error) {
	ids, err := t.s.tok.Encode(prompt)
	if err != nil {
		return scorer.Tokens{}, fmt.Errorf("ict text: %w", err)
	}
	return scorer.Tokens{IDs: ids}, nil
}

// EncodeTexts runs the text encoder over tokenized prompts (no second
// tokenization) and L2-normalises each embedding.
func (t textSide) EncodeTexts(ctx context.Context, toks []scorer.Tokens) ([][]float32, error) {
	if len(toks) == 0 {
		return nil, nil
	}
	L := t.s.tok.ContextLength()
	ids := make([]int64, 0, len(toks)*L)
	for i, tk := range toks {
		if len(tk.IDs) != L {
			return nil, fmt.Errorf("ict: prompt %d has %d token ids, want %d", i, len(tk.IDs), L)
		}
		ids = append(ids, tk.IDs...)
	}
	out, err := t.s.enc.EncodeTexts(ctx, ids, len(toks))
	if err != nil {
		return nil, err
	}
	return Rows(out[0], len(toks), true), nil
}

var (
	_ scorer.Scorer       = (*Scorer)(nil)
	_ scorer.TextEmbedder = textSide{}
)
