package imagereward_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/icthp/icthp/hp"
	"github.com/icthp/icthp/ict"
	"github.com/icthp/icthp/imagereward"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/scoring"
)

// BenchmarkAgainstICTHP times one image per request through scoring.Service
// (decode, preprocessing, the graphs, the formulas) for ImageReward, ICT,
// HP and ICT+HP, at whatever size the model directories are (BENCHMARKS.md
// uses `icthp convert random` at the real sizes):
//
//	ICTHP_BENCH_IR=DIR ICTHP_BENCH_ICT=DIR ICTHP_BENCH_HP=DIR \
//	  go test ./imagereward/ -run '^$' -bench AgainstICTHP -benchtime 6x
//
// Each model set is opened, warmed up with one request and closed in its own
// sub-benchmark, so only one set is in memory at a time. The result is
// reported as images/s (and ns/op per image).
func BenchmarkAgainstICTHP(b *testing.B) {
	irDir, ictDir, hpDir := os.Getenv("ICTHP_BENCH_IR"), os.Getenv("ICTHP_BENCH_ICT"), os.Getenv("ICTHP_BENCH_HP")
	if irDir == "" || ictDir == "" || hpDir == "" {
		b.Skip("set ICTHP_BENCH_IR, ICTHP_BENCH_ICT and ICTHP_BENCH_HP to model directories")
	}
	needORT(b)
	var images []scoring.Image
	for _, n := range []string{"apple.jpg", "sunset.png", "checkers.webp"} {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "demo", n))
		if err != nil {
			b.Fatal(err)
		}
		images = append(images, scoring.Image{Data: data})
	}
	prompt := "a red apple on a wooden table, studio lighting"
	so := models.SessionOptions{MaxBatch: 1}
	open := func(b *testing.B, which string) (*scoring.Service, func()) {
		var ictS *ict.Scorer
		var hpS *hp.Scorer
		var irS *imagereward.Scorer
		var closers []func() error
		if which == "imagereward" {
			s, err := imagereward.Open(irDir, so, imagereward.Options{})
			if err != nil {
				b.Fatal(err)
			}
			irS, closers = s, append(closers, s.Close)
		}
		if which == "ict" || which == "ict+hp" {
			md, err := models.Open(ictDir, so)
			if err != nil {
				b.Fatal(err)
			}
			closers = append(closers, md.Close)
			if ictS, err = ict.New(ictDir, md.Manifest, md); err != nil {
				b.Fatal(err)
			}
		}
		if which == "hp" || which == "ict+hp" {
			md, err := models.Open(hpDir, so)
			if err != nil {
				b.Fatal(err)
			}
			closers = append(closers, md.Close)
			if hpS, err = hp.New(hpDir, md.Manifest, md); err != nil {
				b.Fatal(err)
			}
		}
		var svc *scoring.Service
		var err error
		if irS != nil {
			svc, err = scoring.New(nil, nil, irS, scoring.Options{})
		} else {
			svc, err = scoring.New(ictS, hpS, nil, scoring.Options{})
		}
		if err != nil {
			b.Fatal(err)
		}
		return svc, func() {
			for _, c := range closers {
				c()
			}
		}
	}
	for _, which := range []string{"imagereward", "ict", "hp", "ict+hp"} {
		b.Run(which, func(b *testing.B) {
			svc, done := open(b, which)
			defer done()
			score := func(i int) {
				res, err := svc.Score(context.Background(), scoring.ScoreRequest{Prompt: &prompt, Images: images[i%len(images) : i%len(images)+1]})
				if err != nil {
					b.Fatal(err)
				}
				if res.Scores[0].Err != nil {
					b.Fatal(res.Scores[0].Err)
				}
			}
			score(0) // warm-up: onnxruntime's first run allocates
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				score(i)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "images/s")
		})
	}
}
