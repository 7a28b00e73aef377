//go:build unix

package scoring_test

import (
	"context"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/icthp/icthp/hp"
	"github.com/icthp/icthp/ict"
	"github.com/icthp/icthp/internal/testmodels"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/ortlib"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scoring"
)

// BenchmarkFP16Service is the service path (serve's: a dynamic batcher in
// front of each graph, no cache) for tiny random --fp16 ICT and HP models,
// whose vision graphs take float16 pixels: four images a request, as 512²
// PNGs and as raw 224² RGB (where the preprocessing is cheapest and the
// handling of the rows weighs most). It reports the process's CPU time per
// image (onnxruntime's threads included; one intra-op thread) and, with
// -benchmem, the bytes allocated per request. Compare builds A/B/A/B:
//
//	go test ./scoring -run '^$' -bench FP16Service -cpu 1 -benchmem -count 3
func BenchmarkFP16Service(b *testing.B) {
	svc := fp16Service(b)
	rgb := make([]scoring.Image, 4)
	for i := range rgb {
		px := make([]uint8, 224*224*3)
		for k := range px {
			px[k] = uint8(k*(i+3) + k>>9)
		}
		rgb[i] = scoring.Image{RGB: &preprocess.RGB{W: 224, H: 224, Pix: px}}
	}
	pngs := []scoring.Image{pngImage(b, 1), pngImage(b, 2), pngImage(b, 3), pngImage(b, 4)}
	prompt := "a photo of a lighthouse on a cliff at sunset"
	for _, c := range []struct {
		name   string
		images []scoring.Image
	}{{"png512", pngs}, {"rgb224", rgb}} {
		b.Run(c.name, func(b *testing.B) {
			req := scoring.ScoreRequest{Prompt: &prompt, Images: c.images}
			ctx := context.Background()
			if _, err := svc.Score(ctx, req); err != nil { // warm
				b.Fatal(err)
			}
			runtime.GC()
			cpu0 := benchCPU()
			b.ResetTimer()
			for range b.N {
				res, err := svc.Score(ctx, req)
				if err != nil {
					b.Fatal(err)
				}
				if res.Scores[0].Err != nil {
					b.Fatal(res.Scores[0].Err)
				}
			}
			b.StopTimer()
			b.ReportMetric((benchCPU()-cpu0)*1e3/float64(b.N*len(c.images)), "cpu-ms/img")
		})
	}
}

// fp16Service is a service over tiny random --fp16 ICT and HP models, each
// behind a batcher.
func fp16Service(b *testing.B) *scoring.Service {
	b.Helper()
	if _, err := ortlib.Init(""); err != nil {
		b.Fatalf("onnxruntime is required (run `make setup`): %v", err)
	}
	root := b.TempDir()
	var ms []scorer.Model
	for _, k := range []models.Kind{models.KindCLIP, models.KindHP} {
		dir := filepath.Join(root, string(k))
		if _, _, _, err := testmodels.RandomDir(dir, k, 5, nil, clip.BuildOptions{Fused: true, FP16: true}); err != nil {
			b.Fatal(err)
		}
		m, err := models.Open(dir, models.SessionOptions{IntraOpThreads: 1, MaxBatch: 16})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { m.Close() })
		if !m.HalfPixels() {
			b.Fatalf("%s: the --fp16 graph does not take float16 pixels", dir)
		}
		bt, err := models.NewBatcher(m, models.BatcherOptions{Name: string(k)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { bt.Close() })
		if k == models.KindCLIP {
			s, err := ict.New(dir, m.Manifest, bt)
			if err != nil {
				b.Fatal(err)
			}
			ms = append(ms, scorer.Model{Spec: ict.Entry.Spec, Scorer: s})
			continue
		}
		s, err := hp.New(dir, m.Manifest, bt)
		if err != nil {
			b.Fatal(err)
		}
		ms = append(ms, scorer.Model{Spec: hp.Entry.Spec, Scorer: s})
	}
	svc, err := scoring.New(ms, scoring.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return svc
}

// benchCPU is the user+system CPU time of the process so far, in seconds.
func benchCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
