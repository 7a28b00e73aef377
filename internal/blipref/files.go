package blipref

import (
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/blip"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/preprocess/text"
)

// FileScores is the reference of ImageReward.score(prompt, files) as the
// tests need it: each encoded image through the torchvision pipeline
// (ImageReward's Resize(224, bicubic) → CenterCrop → Normalize) and the
// prompt through the WordPiece vocabulary vocab, then Scores. Files the
// pipeline refuses are skipped; good are the indices of those scored.
func FileScores(cfg *blip.Config, w blip.Weights, vocab, prompt string, files [][]byte) (good []int, scores []float64, err error) {
	pipe, err := preprocess.NewTorchvisionPipeline(preprocess.ImageOptions{ShortestEdge: 224, CropSize: 224, Mean: models.CLIPMean, Std: models.CLIPStd})
	if err != nil {
		return nil, nil, err
	}
	tok, err := text.LoadWordPiece(vocab)
	if err != nil {
		return nil, nil, err
	}
	ids, mask, err := tok.Encode(prompt)
	if err != nil {
		return nil, nil, err
	}
	var px []float32
	var allIDs, allMask []int64
	for i, data := range files {
		buf := make([]float32, pipe.TensorLen())
		if pipe.Tensor(data, buf) != nil {
			continue
		}
		good = append(good, i)
		px = append(px, buf...)
		allIDs, allMask = append(allIDs, ids...), append(allMask, mask...)
	}
	scores, _, err = Scores(cfg, w, px, allIDs, allMask, len(good))
	return good, scores, err
}
