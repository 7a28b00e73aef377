package clip_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
)

// benchPreset is the preset the encoder benchmarks use; ICTHP_BENCH_PRESET
// picks another (tiny, vit-b-32, vit-l-14, vit-h-14).
func benchPreset() clip.Preset {
	if p := os.Getenv("ICTHP_BENCH_PRESET"); p != "" {
		return clip.Preset(p)
	}
	return clip.PresetViTB32
}

// buildBench writes the vision graph of the preset in dir, plain or fused.
func buildBench(b *testing.B, dir string, fused bool) string {
	b.Helper()
	c, err := clip.PresetConfig(benchPreset())
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("vision-fused-%v.onnx", fused))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	g, err := clip.BuildVision(&c, clip.NewRandom(&c, 1, false), clip.BuildOptions{Fused: fused})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := g.Save(path); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkVisionEncoder measures images/s of the vision tower, plain
// standard operators against onnxruntime's fused contrib kernels, at batch
// 1, 8 and 32 (ICTHP_BENCH_BATCHES overrides). Run with
//
//	go test ./models/clip -run '^$' -bench VisionEncoder -benchtime 20x
func BenchmarkVisionEncoder(b *testing.B) {
	needORT(b)
	dir := os.Getenv("ICTHP_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	batches := []int{1, 8, 32}
	if benchPreset() == clip.PresetViTH14 {
		batches = []int{1}
	}
	for _, fused := range []bool{false, true} {
		path := buildBench(b, dir, fused)
		s, err := models.OpenSession(path, clip.InputPixels, []string{clip.OutputImage}, models.SessionOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range batches {
			px := make([]float32, n*3*224*224)
			rng := rand.New(rand.NewPCG(1, 1))
			for i := range px {
				px[i] = float32(rng.NormFloat64())
			}
			name := "plain"
			if fused {
				name = "fused"
			}
			b.Run(fmt.Sprintf("%s/%s/batch=%d", benchPreset(), name, n), func(b *testing.B) {
				if _, err := s.RunFloat(context.Background(), px, n); err != nil { // warm-up
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := s.RunFloat(context.Background(), px, n); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
			})
		}
		s.Close()
	}
}
