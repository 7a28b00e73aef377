package ict

import (
	"context"
	"fmt"

	"github.com/icthp/icthp/preprocess/text"
	"github.com/icthp/icthp/scorer"
)

// Image is the scorer's image side: CLIP preprocessing, then the
// L2-normalised image embedding.
func (s *Scorer) Image() scorer.ImageEncoder {
	return scorer.ImageSide{Prep: scorer.CLIPPreprocess(s.images), Graph: s.enc, Features: imageFeatures}
}

// Text is the scorer's text side: the CLIP tokenizer, then the
// L2-normalised text embedding.
func (s *Scorer) Text() scorer.TextEncoder { return TextSide{Label: Name, Tok: s.tok, Enc: s.enc} }

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

// imageFeatures are the L2-normalised embeddings of n images, from the
// image graph's outputs.
func imageFeatures(outs [][]float32, n int) ([]scorer.Features, error) {
	return scorer.Embeddings(Rows(outs[0], n, true)), nil
}

// TextSide is the text side of a CLIP dual encoder, ICT's and the reward
// zoo's alike: the BPE tokenizer over Prefix + prompt (CLIPScore's "A photo
// depicts "), then the text graph, each embedding L2-normalised. Label
// names the model in its errors.
type TextSide struct {
	Label  string
	Prefix string
	Tok    *text.Tokenizer
	Enc    interface {
		EncodeTexts(ctx context.Context, ids []int64, n int) ([][]float32, error)
	}
}

// Tokenize reads Prefix + prompt.
func (t TextSide) Tokenize(prompt string) (scorer.Tokens, error) {
	ids, err := t.Tok.Encode(t.Prefix + prompt)
	if err != nil {
		return scorer.Tokens{}, fmt.Errorf("%s text: %w", t.Label, err)
	}
	return scorer.Tokens{IDs: ids}, nil
}

// EncodeTexts runs the text encoder over tokenized prompts (no second
// tokenization) and L2-normalises each embedding.
func (t TextSide) EncodeTexts(ctx context.Context, toks []scorer.Tokens) ([][]float32, error) {
	if len(toks) == 0 {
		return nil, nil
	}
	L := t.Tok.ContextLength()
	ids := make([]int64, 0, len(toks)*L)
	for i, tk := range toks {
		if len(tk.IDs) != L {
			return nil, fmt.Errorf("%s: prompt %d has %d token ids, want %d", t.Label, i, len(tk.IDs), L)
		}
		ids = append(ids, tk.IDs...)
	}
	out, err := t.Enc.EncodeTexts(ctx, ids, len(toks))
	if err != nil {
		return nil, err
	}
	return Rows(out[0], len(toks), true), nil
}

var (
	_ scorer.Scorer       = (*Scorer)(nil)
	_ scorer.TextEmbedder = TextSide{}
)
