package imagereward

import (
	"context"
	"fmt"
	"io"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/scorer"
)

// Name is the model's name in requests, responses and flags.
const Name = "imagereward"

// Entry is ImageReward's registry entry: BLIP image tokens (cached like
// any image features), then text with cross-attention and the head.
var Entry = scorer.Entry{
	Spec: scorer.Spec{Name: Name, Kind: models.KindImageReward, Help: "ImageReward model directory (imagereward kind)",
		Outputs: []scorer.Output{{Name: Name, Product: true}}, RankBy: Name, Prompt: true, ImageKind: cache.KindImage},
	Open: func(dir string, o scorer.OpenOptions) (scorer.Scorer, io.Closer, error) {
		opts := Options{MaxImageBytes: o.MaxImageBytes, MaxImagePixels: o.MaxImagePixels}
		if o.Encoder != nil {
			opts.Vision = func(md *models.Model) (ImageEncoder, error) { return o.Encoder(Name, md) }
		}
		s, err := Open(dir, o.Session, opts)
		if err != nil {
			return nil, nil, err
		}
		return s, s, nil
	},
}

// Image is the scorer's image side: torchvision preprocessing over
// Pillow's decode, then the ViT's image token sequence.
func (s *Scorer) Image() scorer.ImageEncoder {
	return scorer.ImageSide{Prep: scorer.TorchvisionPreprocess(s.images), Graph: s.vision, Features: s.imageTokens}
}

// Text is the scorer's text side: the BERT WordPiece tokenizer. The text
// is read inside the head, with cross-attention to the image tokens, so it
// has no embedding of its own to cache.
func (s *Scorer) Text() scorer.TextEncoder { return textSide{s} }

// Head runs the text+cross part and the head over each pair, one run per
// prompt over all its images.
func (s *Scorer) Head(ctx context.Context, pairs []scorer.Pair) ([][]float64, error) {
	out := make([][]float64, len(pairs))
	groups := map[*scorer.Text][]int{}
	var order []*scorer.Text
	for k, p := range pairs {
		if p.Text == nil {
			return nil, fmt.Errorf("imagereward: pair %d has no prompt", k)
		}
		if _, ok := groups[p.Text]; !ok {
			order = append(order, p.Text)
		}
		groups[p.Text] = append(groups[p.Text], k)
	}
	for _, t := range order {
		idx := groups[t]
		tokens := make([][]float32, len(idx))
		for n, k := range idx {
			tokens[n] = pairs[k].Image.Vec
		}
		scores, err := s.ScoreTokens(ctx, t.Tokens.IDs, t.Tokens.Mask, tokens)
		if err != nil {
			return nil, err
		}
		for n, k := range idx {
			out[k] = []float64{scores[n]}
		}
	}
	return out, nil
}

// imageTokens are the image token sequences of n images, from the image
// encoder's output.
func (s *Scorer) imageTokens(out [][]float32, n int) ([]scorer.Features, error) {
	T := s.TokenLen()
	if len(out[0]) != n*T {
		return nil, fmt.Errorf("imagereward: image encoder gave %d values for %d images of %d", len(out[0]), n, T)
	}
	f := make([]scorer.Features, n)
	for j := range f {
		f[j] = scorer.Features{Vec: out[0][j*T : (j+1)*T : (j+1)*T]}
	}
	return f, nil
}

type textSide struct{ s *Scorer }

func (t textSide) Tokenize(prompt string) (scorer.Tokens, error) {
	ids, mask, err := t.s.tok.Encode(prompt)
	if err != nil {
		return scorer.Tokens{}, fmt.Errorf("%w: %v", scorer.ErrBadRequest, err)
	}
	return scorer.Tokens{IDs: ids, Mask: mask}, nil
}
