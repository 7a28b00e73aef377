// Package imagereward scores images with ImageReward (THUDM/ImageReward),
// the BLIP-based reward model users compare ICT and HP against: BLIP's
// ViT-L/16 encodes the image into 197 tokens, a BERT text encoder with
// cross-attention to all of them reads the prompt, and a five-layer affine
// head on the [CLS] position gives the reward, normalised as
// (x − 0.16717362830052426) / 1.0333394966054072.
//
// A model directory (`icthp convert imagereward`) holds two graphs: the
// image encoder, run once per image, and the text+cross part, run for each
// (prompt, image) pair over the image's tokens. The image token sequence is
// what can be reused across prompts; a TokenCache keeps it.
package imagereward

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/preprocess/text"
	"github.com/icthp/icthp/scoring"
)

// ErrNotImageReward means a model directory is of another kind.
var ErrNotImageReward = errors.New("not an imagereward model directory")

// TokenCache keeps image token sequences; *cache.Cache (the service's
// two-tier embedding cache) is one. Entries are keyed by the ImageReward
// model's version, cache.KindImage and the image's content hash, so they
// never meet the ICT model's image embeddings (another version).
type TokenCache interface {
	Resolve(ctx context.Context, keys []cache.Key, compute cache.ComputeFunc) ([]cache.Value, []error, error)
}

// Options configure a Scorer.
type Options struct {
	// Workers bounds how many images are decoded and preprocessed at once;
	// 0 means GOMAXPROCS.
	Workers int
	// Limits on input images; zero fields take preprocess's defaults.
	MaxImageBytes, MaxImagePixels int64
	// Cache, when set, keeps the image token sequences of encoded images
	// (the service's embedding cache, *cache.Cache).
	Cache TokenCache
	// Vision, when set, is called once by Open with the opened image
	// encoder and returns what the scorer calls instead: serve puts its
	// dynamic batcher (*models.Batcher) there, so that images from many
	// requests share one run of the expensive ViT. The text+cross graph
	// takes three inputs, which the batcher does not, and runs per call.
	Vision func(*models.Model) (ImageEncoder, error)
}

// ImageEncoder runs the image encoder on n preprocessed images (NCHW
// float32, one after another) and returns image_tokens as n rows;
// *models.Model and *models.Batcher are ones.
type ImageEncoder interface {
	EncodeImages(ctx context.Context, pixels []float32, n int) ([][]float32, error)
}

// Scorer is an opened ImageReward model directory. It is safe for
// concurrent use.
type Scorer struct {
	dir     string
	man     *models.Manifest
	model   *models.Model        // vision graph
	vision  ImageEncoder         // model, or what Options.Vision put in front of it
	text    *models.MultiSession // text + cross-attention + head
	tok     *text.WordPiece
	images  *preprocess.TorchvisionPipeline
	ntok    int // image tokens per image
	width   int // their width
	workers int
	cache   TokenCache
}

var _ scoring.ImageRewardScorer = (*Scorer)(nil)

// Open opens an `imagereward` model directory's graphs with so.
func Open(dir string, so models.SessionOptions, o Options) (*Scorer, error) {
	man, err := models.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	if man.Kind != models.KindImageReward {
		return nil, fmt.Errorf("imagereward: model %s is of kind %q: %w", dir, man.Kind, ErrNotImageReward)
	}
	if man.Image.Pipeline != "torchvision" {
		return nil, fmt.Errorf("imagereward: model %s asks for the %q image pipeline, ImageReward uses \"torchvision\"", dir, man.Image.Pipeline)
	}
	if man.Text.Tokenizer != "bert-wordpiece" {
		return nil, fmt.Errorf("imagereward: model %s asks for the %q tokenizer, ImageReward uses \"bert-wordpiece\"", dir, man.Text.Tokenizer)
	}
	tg, ok := man.Graphs["text"]
	if !ok || len(tg.Inputs) != 3 || len(tg.Outputs) != 1 {
		return nil, fmt.Errorf("imagereward: model %s: the text graph must take input_ids, attention_mask and image_tokens and give one score", dir)
	}
	if vg := man.Graphs["vision"]; len(vg.Inputs) != 1 || len(vg.Outputs) != 1 {
		return nil, fmt.Errorf("imagereward: model %s: the vision graph must take pixel_values and give image_tokens", dir)
	}
	tok, err := text.LoadWordPiece(filepath.Join(dir, man.Text.Vocab), text.WithWordPieceContextLength(man.Text.ContextLength))
	if err != nil {
		return nil, fmt.Errorf("imagereward: %w", err)
	}
	img, err := preprocess.NewTorchvisionPipeline(preprocess.ImageOptions{ShortestEdge: man.Image.ShortestEdge, CropSize: man.Image.CropSize,
		Mean: man.Image.Mean, Std: man.Image.Std, MaxBytes: o.MaxImageBytes, MaxPixels: o.MaxImagePixels})
	if err != nil {
		return nil, fmt.Errorf("imagereward: %w", err)
	}
	if man.Precision == models.PrecisionInt8 {
		// As models.Open does for the vision graph: DynamicQuantizeMatMul
		// takes one activation scale over its whole input, in the text graph
		// the cross-attention keys and values of every image in the run, so
		// batched a score would depend on the images beside it.
		so.MaxBatch = 1
	}
	md, err := models.Open(dir, so)
	if err != nil {
		return nil, err
	}
	text, err := models.OpenMultiSession(filepath.Join(dir, tg.File), tg.Inputs, tg.Outputs, so)
	if err != nil {
		md.Close()
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	s := &Scorer{dir: dir, man: man, model: md, vision: md, text: text, tok: tok, images: img, workers: o.Workers, cache: o.Cache}
	if o.Vision != nil {
		if s.vision, err = o.Vision(md); err != nil {
			s.Close()
			return nil, fmt.Errorf("imagereward: model %s: %w", dir, err)
		}
	}
	shape := text.InputShape(tg.Inputs[2])
	if len(shape) != 3 || shape[1] <= 0 || shape[2] <= 0 {
		s.Close()
		return nil, fmt.Errorf("imagereward: model %s: image_tokens input has shape %v, want [batch, tokens, width]", dir, shape)
	}
	s.ntok, s.width = int(shape[1]), int(shape[2])
	if ids := text.InputShape(tg.Inputs[0]); len(ids) != 2 || ids[1] != int64(tok.ContextLength()) {
		s.Close()
		return nil, fmt.Errorf("imagereward: model %s: input_ids shape %v does not fit the context length %d", dir, ids, tok.ContextLength())
	}
	if s.workers <= 0 {
		s.workers = runtime.GOMAXPROCS(0)
	}
	return s, nil
}

// SetCache sets (or, with nil, removes) the cache of image token sequences;
// call it before the scorer is in use. The service's embedding cache is made
// after the models are loaded, hence this setter beside Options.Cache.
func (s *Scorer) SetCache(c TokenCache) { s.cache = c }

// Close releases the sessions.
func (s *Scorer) Close() error {
	err := s.model.Close()
	if err2 := s.text.Close(); err == nil {
		err = err2
	}
	return err
}

// Version is the model's version string.
func (s *Scorer) Version() string { return s.man.Version }

// Manifest is the model directory's manifest.
func (s *Scorer) Manifest() *models.Manifest { return s.man }

// Tokenizer is the model's WordPiece tokenizer.
func (s *Scorer) Tokenizer() *text.WordPiece { return s.tok }

// Images is the model's image preprocessing.
func (s *Scorer) Images() *preprocess.TorchvisionPipeline { return s.images }

// TokenLen is the number of float32 values of one image's token sequence.
func (s *Scorer) TokenLen() int { return s.ntok * s.width }

// Score returns ImageReward's score of each image for the prompt; errs[i]
// is image i's own failure (undecodable, too large), the others are scored
// regardless. The error return is for failures of the whole call.
func (s *Scorer) Score(ctx context.Context, prompt string, images []scoring.Image) ([]float64, []error, error) {
	ids, mask, err := s.tok.Encode(prompt)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", scoring.ErrBadRequest, err)
	}
	tokens, errs, err := s.ImageTokens(ctx, images)
	if err != nil {
		return nil, nil, err
	}
	var ok []int
	for i, e := range errs {
		if e == nil {
			ok = append(ok, i)
		}
	}
	scores := make([]float64, len(images))
	if len(ok) == 0 {
		return scores, errs, nil
	}
	out, err := s.ScoreTokens(ctx, ids, mask, tokensOf(tokens, ok))
	if err != nil {
		return nil, nil, err
	}
	for k, i := range ok {
		scores[i] = out[k]
	}
	return scores, errs, nil
}

func tokensOf(all [][]float32, idx []int) [][]float32 {
	out := make([][]float32, len(idx))
	for k, i := range idx {
		out[k] = all[i]
	}
	return out
}

// ScoreTokens runs the text+cross part for one tokenized prompt (ids and
// mask of ContextLength) over each image's token sequence.
func (s *Scorer) ScoreTokens(ctx context.Context, ids, mask []int64, tokens [][]float32) ([]float64, error) {
	n := len(tokens)
	if n == 0 {
		return nil, nil
	}
	L, T := s.tok.ContextLength(), s.TokenLen()
	if len(ids) != L || len(mask) != L {
		return nil, fmt.Errorf("imagereward: %d ids and %d mask values, want %d", len(ids), len(mask), L)
	}
	allIDs, allMask := make([]int64, n*L), make([]int64, n*L)
	flat := make([]float32, 0, n*T)
	for i, t := range tokens {
		if len(t) != T {
			return nil, fmt.Errorf("imagereward: image %d has %d token values, want %d", i, len(t), T)
		}
		copy(allIDs[i*L:], ids)
		copy(allMask[i*L:], mask)
		flat = append(flat, t...)
	}
	tg := s.man.Graphs["text"]
	out, err := s.text.RunInputs(ctx, n,
		models.Input{Name: tg.Inputs[0], Int64: allIDs},
		models.Input{Name: tg.Inputs[1], Int64: allMask},
		models.Input{Name: tg.Inputs[2], Float: flat})
	if err != nil {
		return nil, err
	}
	if len(out[0]) != n {
		return nil, fmt.Errorf("imagereward: text graph gave %d scores for %d items", len(out[0]), n)
	}
	res := make([]float64, n)
	for i, v := range out[0] {
		res[i] = float64(v)
	}
	return res, nil
}

// ImageTokens returns each image's token sequence (TokenLen values), from
// the cache when it has them, else preprocessed (in parallel) and encoded in
// one batched run; errs[i] is image i's own failure.
func (s *Scorer) ImageTokens(ctx context.Context, images []scoring.Image) ([][]float32, []error, error) {
	n := len(images)
	tokens := make([][]float32, n)
	if s.cache == nil {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		vals, errs, err := s.encode(ctx, images, all)
		if err != nil {
			return nil, nil, err
		}
		for i, v := range vals {
			tokens[i] = v.Vec
		}
		return tokens, errs, nil
	}
	keys := make([]cache.Key, n)
	for i, img := range images {
		keys[i] = cache.Key{Version: s.man.Version, Kind: cache.KindImage}
		if img.RGB != nil {
			keys[i].Sum = cache.PixelsSum(img.RGB.W, img.RGB.H, img.RGB.Pix)
		} else {
			keys[i].Sum = cache.BytesSum(img.Data)
		}
	}
	vals, errs, err := s.cache.Resolve(ctx, keys, func(ctx context.Context, missing []int) ([]cache.Value, []error, error) {
		return s.encode(ctx, images, missing)
	})
	if err != nil {
		return nil, nil, err
	}
	T := s.TokenLen()
	for i, v := range vals {
		if errs[i] == nil && len(v.Vec) != T {
			return nil, nil, fmt.Errorf("imagereward: cached image tokens have %d values, want %d", len(v.Vec), T)
		}
		tokens[i] = v.Vec
	}
	return tokens, errs, nil
}

// encode preprocesses images[idx[k]] in parallel and runs the image encoder
// once over those that made it; vals[k] and errs[k] belong to idx[k].
func (s *Scorer) encode(ctx context.Context, images []scoring.Image, idx []int) ([]cache.Value, []error, error) {
	vals, errs := make([]cache.Value, len(idx)), make([]error, len(idx))
	per := s.images.TensorLen()
	pixels := make([]float32, len(idx)*per)
	sem := make(chan struct{}, s.workers)
	var wg sync.WaitGroup
	for k, i := range idx {
		if err := ctx.Err(); err != nil {
			wg.Wait()
			return nil, nil, err
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(k, i int) {
			defer func() { <-sem; wg.Done() }()
			dst := pixels[k*per : (k+1)*per]
			if images[i].RGB != nil {
				errs[k] = s.images.TensorRGB(images[i].RGB, dst)
			} else {
				errs[k] = s.images.Tensor(images[i].Data, dst)
			}
		}(k, i)
	}
	wg.Wait()
	// Compact the images that made it (in place: the copy never overtakes).
	var run []int
	buf := pixels[:0]
	for k := range idx {
		if errs[k] == nil {
			run = append(run, k)
			buf = append(buf, pixels[k*per:(k+1)*per]...)
		}
	}
	if len(run) == 0 {
		return vals, errs, nil
	}
	out, err := s.vision.EncodeImages(ctx, buf, len(run))
	if err != nil {
		return nil, nil, fmt.Errorf("imagereward image encoder: %w", err)
	}
	T := s.TokenLen()
	if len(out[0]) != len(run)*T {
		return nil, nil, fmt.Errorf("imagereward: image encoder gave %d values for %d images of %d", len(out[0]), len(run), T)
	}
	for j, k := range run {
		vals[k] = cache.Value{Vec: out[0][j*T : (j+1)*T : (j+1)*T]}
	}
	return vals, errs, nil
}
