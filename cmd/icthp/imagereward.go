package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/imagereward"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/blip"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scoring"
)

// openImageReward opens an ImageReward model directory for the service,
// with the command's image limits; enc puts what the command wants (serve's
// batcher, or nothing) in front of the image encoder, as for ICT and HP.
func openImageReward(dir string, so models.SessionOptions, maxBytes, maxPixels int64,
	enc func(name string, md *models.Model) (models.BatchEncoder, error)) (scoring.ImageRewardScorer, error) {
	return imagereward.Open(dir, so, imagereward.Options{MaxImageBytes: maxBytes, MaxImagePixels: maxPixels,
		Vision: func(md *models.Model) (imagereward.ImageEncoder, error) { return enc(scoring.ModelImageReward, md) }})
}

// setImageRewardCache gives the ImageReward scorer the service's embedding
// cache (made after the models are open) for its image token sequences.
func setImageRewardCache(ir scoring.ImageRewardScorer, c *cache.Cache) {
	if s, ok := ir.(*imagereward.Scorer); ok && c != nil {
		s.SetCache(c)
	}
}

// irBuild maps the converter's flags onto the BLIP builder's options.
func irBuild(b clip.BuildOptions) (blip.BuildOptions, error) {
	if b.Int8 && b.FP16 {
		return blip.BuildOptions{}, usagef("--int8 and --fp16 exclude each other")
	}
	return blip.BuildOptions{Fused: b.Fused, FP16: b.FP16, Int8: b.Int8}, nil
}

func convertImageReward(ckpt, med, vis, vocab, out, name string, b clip.BuildOptions) (*models.Manifest, error) {
	bo, err := irBuild(b)
	if err != nil {
		return nil, err
	}
	return blip.ConvertFiles(ckpt, med, vis, vocab, out, name, bo)
}

// convertRandomImageReward writes a random ImageReward directory with the
// vocab.txt in vocabPath, or the synthetic one when it is "".
func convertRandomImageReward(preset string, seed uint64, vocabPath, out string, b clip.BuildOptions) (*models.Manifest, error) {
	bo, err := irBuild(b)
	if err != nil {
		return nil, err
	}
	p := blip.Preset(preset)
	if !strings.HasPrefix(preset, "imagereward") {
		// `--kind imagereward --preset tiny` means the tiny ImageReward.
		p = blip.Preset("imagereward-" + preset)
	}
	if _, err := blip.PresetConfig(p); err != nil {
		return nil, usageError{err.Error()}
	}
	if vocabPath == "" {
		return blip.WriteRandomDir(p, seed, out, bo)
	}
	vocab, err := os.ReadFile(vocabPath)
	if err != nil {
		return nil, err
	}
	return blip.WriteRandomDirVocab(p, seed, out, bo, vocab, baseName(vocabPath))
}

// wordPieceEncoder is `icthp tokenize` for an ImageReward model: the 35
// input ids (the attention mask is 1 exactly where they are not 0).
func wordPieceEncoder(vocab string) (func(string) ([]int64, error), error) {
	tok, err := preprocess.LoadWordPiece(vocab)
	if err != nil {
		return nil, err
	}
	return func(s string) ([]int64, error) {
		ids, _, err := tok.Encode(s)
		if err != nil {
			return nil, fmt.Errorf("tokenize: %w", err)
		}
		return ids, nil
	}, nil
}
