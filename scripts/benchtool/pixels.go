package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/x448/float16"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/convert"
)

// pixelType is what the model's vision graph takes: "float16" or "float32".
func pixelType(m *models.Model) string {
	if m.HalfPixels() {
		return models.PrecisionFloat16
	}
	return models.PrecisionFloat32
}

// comparePixels is `benchtool pixels`: the two forms of an --fp16 HP graph
// on the same seeded weights and pixels, each fed as the service feeds it:
// the new graph the pixels rounded to half on the host (float16.Fromfloat32's
// rounding), the older one the float32 pixels, which its Cast rounds inside.
// On a provider whose Conv runs in float16 (CUDA) the Cast rounds to
// nearest-even as the host does, so the outputs must be the same bits. On
// the CPU provider they differ a little, and must: there onnxruntime drops
// the old graph's Cast together with the Cast back to float32 it puts before
// the float32 Conv, so that Conv sees unrounded pixels (README "GPUs";
// models/clip's TestHalfPixelGraphEqualsCastInside).
func comparePixels(args []string) error {
	fs := flag.NewFlagSet("pixels", flag.ContinueOnError)
	preset := fs.String("preset", "vit-b-32", "architecture: tiny, vit-b-32, vit-l-14 or vit-h-14")
	batch := fs.Int("batch", 8, "images per run")
	runs := fs.Int("runs", 5, "timed runs of each form")
	provider := fs.String("provider", "cpu", "cpu, cuda[:N] or tensorrt[:N]")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "benchtool-pixels")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	forms := map[string]clip.BuildOptions{"float16": {Fused: true, FP16: true}, "float32": {Fused: true, FP16: true, FP32Pixels: true}}
	res := map[string]any{"step": "pixels", "preset": *preset, "provider": *provider, "batch": *batch}
	outs := map[string][][]float32{}
	for name, b := range forms {
		out := filepath.Join(dir, name)
		if _, err := convert.Random(convert.RandomOptions{Preset: clip.Preset(*preset), Kind: models.KindHP, Seed: 7, Out: out, Build: b}); err != nil {
			return err
		}
		o, perS, err := timePixels(out, *provider, *batch, *runs, b.HalfPixels())
		if err != nil {
			return fmt.Errorf("%s pixels: %w", name, err)
		}
		outs[name], res[name+"_images_per_s"] = o, perS
	}
	res["identical"], res["max_abs_diff"] = compareOutputs(outs["float16"], outs["float32"])
	return writeJSON(os.Stdout, res)
}

// timePixels opens an HP directory and runs seeded pixels once, then times
// runs more: as halves made on the host when half is set (EncodeImagesHalf),
// else as float32 (EncodeImages). It returns the outputs and the best
// images/s.
func timePixels(dir, provider string, batch, runs int, half bool) ([][]float32, float64, error) {
	m, err := open(dir, 0, provider)
	if err != nil {
		return nil, 0, err
	}
	defer m.Close()
	s := m.Manifest.Image.CropSize
	px := make([]float32, batch*3*s*s)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range px {
		px[i] = float32(rng.NormFloat64())
	}
	h := make([]float16.Float16, len(px))
	models.HalfFromFloat32(h, px)
	ctx := context.Background()
	encode := func() ([][]float32, error) { return m.EncodeImages(ctx, px, batch) }
	if half {
		encode = func() ([][]float32, error) { return m.EncodeImagesHalf(ctx, h, batch) }
	}
	outs, err := encode()
	if err != nil {
		return nil, 0, err
	}
	best := math.Inf(1)
	for range runs {
		start := time.Now()
		if _, err := encode(); err != nil {
			return nil, 0, err
		}
		best = min(best, time.Since(start).Seconds())
	}
	return outs, float64(batch) / best, nil
}

// compareOutputs says whether a and b hold the same bits, and their largest
// difference.
func compareOutputs(a, b [][]float32) (bool, float64) {
	same, d := len(a) == len(b), 0.0
	for i := range min(len(a), len(b)) {
		for j := range min(len(a[i]), len(b[i])) {
			same = same && math.Float32bits(a[i][j]) == math.Float32bits(b[i][j])
			d = max(d, math.Abs(float64(a[i][j]-b[i][j])))
		}
	}
	return same, d
}
