package zooscorer_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/x448/float16"

	"github.com/icthp/icthp/internal/zooscorer"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scorer"
)

// Every image pipeline a manifest can name writes, with TensorHalf, its
// Tensor values rounded to nearest-even (models.HalfFromFloat32, what the
// session did to float32 rows for a float16 graph): the rows the service
// makes for --fp16 models are the old path's bits. The demo's JPEG, WebP
// and PNG, as decoded RGB and (for the pipeline that decodes files itself)
// as the file.
func TestTensorHalfRoundsTensor(t *testing.T) {
	var srcs []scorer.Source
	for _, f := range []string{"apple.jpg", "checkers.webp", "sunset.png"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "demo", f))
		if err != nil {
			t.Fatal(err)
		}
		rgb, err := preprocess.DecodeRGB(data, preprocess.ImageOptions{})
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, scorer.Source{RGB: rgb}, scorer.Source{Data: data})
	}
	for _, pipeline := range []string{"clip", "torchvision", zooscorer.PipelineHPSv2} {
		man := &models.Manifest{Image: &models.ImageSpec{Pipeline: pipeline, ShortestEdge: 224, CropSize: 224,
			Mean: models.CLIPMean, Std: models.CLIPStd}}
		p, err := zooscorer.Preprocessor(man, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for k, src := range srcs {
			if src.RGB == nil && p.NeedsRGB() {
				continue
			}
			f := make([]float32, p.TensorLen())
			h := make([]float16.Float16, p.TensorLen())
			if err := p.Tensor(src, f); err != nil {
				t.Fatal(err)
			}
			if err := p.TensorHalf(src, h); err != nil {
				t.Fatal(err)
			}
			want := make([]float16.Float16, len(f))
			models.HalfFromFloat32(want, f)
			for i := range h {
				if h[i] != want[i] {
					t.Fatalf("%s, source %d: value %d is %#04x, float32 %v rounds to %#04x", pipeline, k, i, uint16(h[i]), f[i], uint16(want[i]))
				}
			}
		}
	}
}
