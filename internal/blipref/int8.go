package blipref

import (
	"github.com/icthp/icthp/internal/clipref"
	"github.com/icthp/icthp/models/blip"
)

// The int8 reference: what graphs built with blip.BuildOptions.Int8 compute,
// every Linear inside the ViT blocks (qkv, proj, fc1, fc2) and the BERT
// layers (self- and cross-attention query, key, value and output dense,
// intermediate, output dense) quantised as the CLIP int8 graphs do it, with
// clipref's definitions: weights symmetric per output channel
// (clipref.WeightScales), activations ONNX DynamicQuantizeLinear over the
// whole input sequence of one item (clipref.QuantizeActivations: the image's
// 197 tokens, the prompt's L positions, the image tokens for the
// cross-attention keys and values), the integer sums exact, float64 apart
// from the two scales, which the graphs hold as float32. Embeddings, norms,
// attention and the head stay as in Scores.

// ImageTokensInt8 is ImageTokens with the ViT blocks' Linears quantised;
// each image is its own activation tensor.
func ImageTokensInt8(cfg *blip.Config, w blip.Weights, pixels []float32, n int) ([][][]float64, error) {
	return imageTokens(cfg, w, pixels, n, clipref.Int8Linear)
}

// TextHiddenInt8 is TextHidden with the BERT layers' Linears quantised.
func TextHiddenInt8(cfg *blip.Config, w blip.Weights, ids, mask []int64, tokens [][]float64) ([][]float64, error) {
	return textHidden(cfg, w, ids, mask, tokens, clipref.Int8Linear)
}

// ScoresInt8 is Scores through ImageTokensInt8 and TextHiddenInt8, each
// (prompt, image) pair alone, as int8 models run them.
func ScoresInt8(cfg *blip.Config, w blip.Weights, pixels []float32, ids, mask []int64, n int) ([]float64, [][][]float64, error) {
	return scores(cfg, w, pixels, ids, mask, n, clipref.Int8Linear)
}
