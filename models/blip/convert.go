package blip

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	og "github.com/icthp/icthp/models/onnxgraph"
)

// File names Convert writes into the output directory (each with its
// external weights file, name + ".data").
const (
	VisionFile = "vision.onnx"
	TextFile   = "text.onnx"
)

// GraphFile describes one written graph.
type GraphFile struct {
	File    string   // base name of the .onnx file
	Data    string   // base name of its external weights file ("" if none)
	Inputs  []string // graph input names, in order
	Outputs []string // graph output names
	Digest  string   // SHA-256 of the graph's weights (onnxgraph.SaveResult)
	Bytes   int64    // weight bytes
}

// Result is what Convert wrote.
type Result struct {
	Config Config
	Vision GraphFile
	Text   GraphFile
	// Digest is the SHA-256 of both graphs' weight digests and the build
	// options: the same weights and options give the same digest.
	Digest string
	// Notes are conversion remarks worth showing (checkpoint keys that the
	// architecture does not have).
	Notes []string
}

// keyLister is implemented by checkpoints that can list their keys
// (*checkpoint.StateDict, *Random).
type keyLister interface{ Keys() []string }

// Convert builds ImageReward's two graphs from a state dict in the original
// layout (ImageReward.pt: blip.visual_encoder.*, blip.text_encoder.*,
// mlp.layers.*), a med config and a vision config (ViTL16 for the released
// model), and writes outDir/vision.onnx and outDir/text.onnx with their
// .data files. The state dict is read tensor by tensor; nothing is held
// beyond the tensor being written. Keys the forward pass does not read
// (position_ids, vision_proj, text_proj) are skipped, as
// load_state_dict(strict=False) followed by score() ignores them; other
// unknown keys are reported in Notes.
func Convert(w Weights, med MedConfig, vis VisionConfig, outDir string, opts BuildOptions) (Result, error) {
	if err := opts.Check(); err != nil {
		return Result{}, err
	}
	c, err := NewConfig(med, vis)
	if err != nil {
		return Result{}, err
	}
	if err := checkVision(w, &c.Vision); err != nil {
		return Result{}, err
	}
	res := Result{Config: c}
	if kl, ok := w.(keyLister); ok {
		known := map[string]bool{}
		for _, p := range c.Params() {
			known[p.Name] = true
		}
		var extra []string
		for _, k := range kl.Keys() {
			if !known[k] {
				extra = append(extra, k)
			}
		}
		if len(extra) > 0 {
			show := extra
			more := ""
			if len(show) > 8 {
				show, more = show[:8], fmt.Sprintf(" and %d more", len(extra)-8)
			}
			res.Notes = append(res.Notes, fmt.Sprintf("checkpoint keys not used by ImageReward.score (ignored): %s%s", strings.Join(show, ", "), more))
		}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return Result{}, err
	}
	vg, err := BuildVision(&c, w, opts)
	if err != nil {
		return Result{}, err
	}
	if res.Vision, err = save(vg, filepath.Join(outDir, VisionFile), []string{InputPixels}, []string{OutputTokens}); err != nil {
		return Result{}, err
	}
	tg, err := BuildText(&c, w, opts)
	if err != nil {
		return Result{}, err
	}
	if res.Text, err = save(tg, filepath.Join(outDir, TextFile), []string{InputIDs, InputMask, InputImageTokens}, []string{OutputScore}); err != nil {
		return Result{}, err
	}
	h := sha256.New()
	// Precision is named only when it is not float32, so that float
	// digests (and versions) stay as they were.
	prec := ""
	switch {
	case opts.Int8:
		prec = "|int8"
	case opts.FP16:
		prec = "|fp16"
	}
	fmt.Fprintf(h, "imagereward|fused=%v%s|ctx=%d|%s|%s", opts.Fused, prec, c.ContextLength, res.Vision.Digest, res.Text.Digest)
	res.Digest = hex.EncodeToString(h.Sum(nil))
	return res, nil
}

func save(g *og.Graph, path string, inputs, outputs []string) (GraphFile, error) {
	sr, err := g.Save(path)
	if err != nil {
		return GraphFile{}, err
	}
	return GraphFile{File: sr.ModelFile, Data: sr.DataFile, Inputs: inputs, Outputs: outputs, Digest: sr.Digest, Bytes: sr.WeightBytes}, nil
}

// checkVision compares the ViT the weights hold with the vision config and,
// when they differ, says what the weights hold (the fix is a vision config
// file).
func checkVision(w Weights, v *VisionConfig) error {
	got, ok := InferVision(w)
	if !ok {
		return nil // CheckWeights names what is missing
	}
	mlp := 0
	if fc, ok := w.Shape(VisionPrefix + "blocks.0.mlp.fc1.weight"); ok && len(fc) == 2 {
		mlp = int(fc[0])
	}
	if got.Width == v.Width && got.PatchSize == v.PatchSize && got.ImageSize == v.ImageSize &&
		got.Depth == v.Depth && (mlp == 0 || mlp == v.MLPHidden()) {
		return nil
	}
	return fmt.Errorf("the checkpoint's image encoder is width %d, depth %d, patch %d, image %d, MLP %d; the vision config says width %d, depth %d, patch %d, image %d, MLP %d (give a vision config that matches)",
		got.Width, got.Depth, got.PatchSize, got.ImageSize, mlp, v.Width, v.Depth, v.PatchSize, v.ImageSize, v.MLPHidden())
}

// InferVision reads the ViT's sizes from the weights' shapes: width, patch
// size, image size, depth and MLP width (as mlp_ratio). The number of heads
// and the LayerNorm epsilon cannot be read from shapes and are ImageReward's
// (16, 1e-6). ok is false when the shapes needed are absent.
func InferVision(w Weights) (VisionConfig, bool) {
	v := ViTL16()
	ps, ok := w.Shape(VisionPrefix + "patch_embed.proj.weight")
	if !ok || len(ps) != 4 || ps[2] != ps[3] || ps[0] <= 0 || ps[2] <= 0 {
		return v, false
	}
	v.Width, v.PatchSize = int(ps[0]), int(ps[2])
	pe, ok := w.Shape(VisionPrefix + "pos_embed")
	if !ok || len(pe) != 3 {
		return v, false
	}
	g := int(math.Round(math.Sqrt(float64(pe[1] - 1))))
	if g*g != int(pe[1]-1) {
		return v, false
	}
	v.ImageSize = g * v.PatchSize
	n := 0
	for {
		if _, ok := w.Shape(VisionPrefix + "blocks." + strconv.Itoa(n) + ".norm1.weight"); !ok {
			break
		}
		n++
	}
	v.Depth = n
	if fc, ok := w.Shape(VisionPrefix + "blocks.0.mlp.fc1.weight"); ok && len(fc) == 2 {
		v.MLPRatio = float64(fc[0]) / float64(v.Width)
	}
	return v, n > 0
}
