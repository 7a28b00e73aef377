package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/blip"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/preprocess/text"
)

// irBuild maps the converter's flags onto the BLIP builder's options.
func irBuild(b clip.BuildOptions) (blip.BuildOptions, error) {
	if b.Int8 && b.FP16 {
		return blip.BuildOptions{}, usagef("--int8 and --fp16 exclude each other")
	}
	return b, nil
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
	tok, err := text.LoadWordPiece(vocab)
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
