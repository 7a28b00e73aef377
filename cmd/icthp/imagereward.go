package main

import (
	"errors"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/scoring"
)

// errNoImageReward is returned until the BLIP builder lands (issue 9).
var errNoImageReward = errors.New("ImageReward is not available in this build yet")

func openImageReward(dir string, so models.SessionOptions) (scoring.ImageRewardScorer, error) {
	return nil, errNoImageReward
}

func convertImageReward(ckpt, med, vis, vocab, out, name string, b clip.BuildOptions) (*models.Manifest, error) {
	return nil, errNoImageReward
}

func convertRandomImageReward(preset string, seed uint64, out string, b clip.BuildOptions) (*models.Manifest, error) {
	return nil, errNoImageReward
}

func wordPieceEncoder(vocab string) (func(string) ([]int64, error), error) {
	return nil, errNoImageReward
}
