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
	"github.com/icthp/icthp/internal/orttest"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/modelset"
	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scoring"
)

// BenchmarkAgainstICTHP times one image per request through scoring.Service
// (decode, preprocessing, the graphs, the formulas) for ImageReward, ICT,
// HP and ICT+HP, at whatever size the model directories are (BENCHMARKS.md
// uses `icthp convert random` at the real sizes):
//
//	ICTHP_BENCH_IR=DIR ICTHP_BENCH_ICT=DIR ICTHP_BENCH_HP=DIR \
//	  go test ./imagereward/ -run '^$' -bench AgainstICTHP -benchtime 3x
//
// All three models are loaded at once and each iteration scores the next
// image with every configuration in turn, so that a machine whose load
// changes (a shared one) slows them alike; each configuration's images/s is
// reported as its own metric (ns/op is one image through all four).
func BenchmarkAgainstICTHP(b *testing.B) {
	irDir, ictDir, hpDir := os.Getenv("ICTHP_BENCH_IR"), os.Getenv("ICTHP_BENCH_ICT"), os.Getenv("ICTHP_BENCH_HP")
	if irDir == "" || ictDir == "" || hpDir == "" {
		b.Skip("set ICTHP_BENCH_IR, ICTHP_BENCH_ICT and ICTHP_BENCH_HP to model directories")
	}
	orttest.Need(b)
	images := demoImages(b)
	prompt := "a red apple on a wooden table, studio lighting"
	set, err := modelset.Open(modelset.Options{Dirs: map[string]string{ict.Name: ictDir, hp.Name: hpDir, imagereward.Name: irDir},
		Open: scorer.OpenOptions{Session: models.SessionOptions{MaxBatch: 1}}})
	if err != nil {
		b.Fatal(err)
	}
	defer set.Close()
	svc := set.Service
	configs := []struct {
		name   string
		models []string
	}{
		{"imagereward", []string{"imagereward"}},
		{"ict", []string{"ict"}},
		{"hp", []string{"hp"}},
		{"ict+hp", []string{"ict", "hp"}},
	}
	score := func(i int, models []string) time.Duration {
		start := time.Now()
		res, err := svc.Score(context.Background(), scoring.ScoreRequest{Prompt: &prompt, Images: images[i%len(images) : i%len(images)+1], Models: models})
		if err != nil {
			b.Fatal(err)
		}
		if res.Scores[0].Err != nil {
			b.Fatal(res.Scores[0].Err)
		}
		return time.Since(start)
	}
	for _, c := range configs {
		score(0, c.models) // warm-up: onnxruntime's first run allocates
	}
	spent := make([]time.Duration, len(configs))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k, c := range configs {
			spent[k] += score(i, c.models)
		}
	}
	b.StopTimer()
	for k, c := range configs {
		b.ReportMetric(float64(b.N)/spent[k].Seconds(), c.name+"-images/s")
	}
}

// BenchmarkInt8 times one image per call through Scorer.Score (decode,
// preprocessing, the image encoder, the text+cross graph and the head) for a
// float32 and an int8 conversion of the same weights, two threads each, at
// whatever size the directories are (BENCHMARKS.md: the `imagereward`
// random preset):
//
//	ICTHP_BENCH_IR=DIR ICTHP_BENCH_IR8=DIR \
//	  go test ./imagereward/ -run '^$' -bench Int8 -benchtime 4x
//
// Each iteration scores the next demo image with both, in turn, so that a
// machine whose load changes slows them alike; each reports its ms/image
// and images/s (ns/op is one image through both).
func BenchmarkInt8(b *testing.B) {
	dirs := []string{os.Getenv("ICTHP_BENCH_IR"), os.Getenv("ICTHP_BENCH_IR8")}
	if dirs[0] == "" || dirs[1] == "" {
		b.Skip("set ICTHP_BENCH_IR and ICTHP_BENCH_IR8 to float32 and int8 ImageReward model directories")
	}
	orttest.Need(b)
	images := demoImages(b)
	const prompt = "a red apple on a wooden table, studio lighting"
	names := []string{"float32", "int8"}
	scorers := make([]*imagereward.Scorer, len(dirs))
	for k, d := range dirs {
		s, err := imagereward.Open(d, models.SessionOptions{IntraOpThreads: 2, MaxBatch: 1}, imagereward.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		if p := s.Manifest().Precision; p != names[k] {
			b.Fatalf("%s is %s, want %s", d, p, names[k])
		}
		scorers[k] = s
	}
	score := func(s *imagereward.Scorer, i int) time.Duration {
		start := time.Now()
		_, errs, err := score(context.Background(), s, prompt, images[i%len(images):i%len(images)+1])
		if err != nil {
			b.Fatal(err)
		}
		if errs[0] != nil {
			b.Fatal(errs[0])
		}
		return time.Since(start)
	}
	for _, s := range scorers {
		score(s, 0) // warm-up: onnxruntime's first run allocates
	}
	spent := make([]time.Duration, len(scorers))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k, s := range scorers {
			spent[k] += score(s, i)
		}
	}
	b.StopTimer()
	for k, n := range names {
		b.ReportMetric(spent[k].Seconds()*1000/float64(b.N), n+"-ms/image")
		b.ReportMetric(float64(b.N)/spent[k].Seconds(), n+"-images/s")
	}
}

// demoImages are the demo images, as files.
func demoImages(b *testing.B) []scoring.Image {
	var images []scoring.Image
	for _, n := range []string{"apple.jpg", "sunset.png", "checkers.webp"} {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "demo", n))
		if err != nil {
			b.Fatal(err)
		}
		images = append(images, scoring.Image{Data: data})
	}
	return images
}
