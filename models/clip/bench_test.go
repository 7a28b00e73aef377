package clip_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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

// buildBench writes the vision graph of the preset in dir, plain, fused or
// fused with int8 layers.
func buildBench(b *testing.B, dir string, opts clip.BuildOptions) string {
	b.Helper()
	c, err := clip.PresetConfig(benchPreset())
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("vision-fused-%v.onnx", opts.Fused))
	if opts.Int8 {
		path = filepath.Join(dir, "vision-int8.onnx")
	}
	if _, err := os.Stat(path); err == nil {
		return path
	}
	g, err := clip.BuildVision(&c, clip.NewRandom(&c, 1, false), opts)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := g.Save(path); err != nil {
		b.Fatal(err)
	}
	return path
}

// benchThreads is the intra-op thread count of the benchmark sessions
// (ICTHP_BENCH_THREADS; default 0, onnxruntime's choice of one per core).
func benchThreads(b *testing.B) int {
	v := os.Getenv("ICTHP_BENCH_THREADS")
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("ICTHP_BENCH_THREADS=%q: want a count", v)
	}
	return n
}

// benchBatches are the batch sizes (ICTHP_BENCH_BATCHES, comma-separated;
// default 1, 8 and 32, only 1 for vit-h-14).
func benchBatches(b *testing.B) []int {
	if v := os.Getenv("ICTHP_BENCH_BATCHES"); v != "" {
		var out []int
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				b.Fatalf("ICTHP_BENCH_BATCHES=%q: want sizes like 1,8,32", v)
			}
			out = append(out, n)
		}
		return out
	}
	if benchPreset() == clip.PresetViTH14 {
		return []int{1}
	}
	return []int{1, 8, 32}
}

// BenchmarkVisionEncoder measures images/s of the vision tower, the plain
// graph of standard operators (`convert --unfused`) against the default one
// with onnxruntime's fused contrib kernels and the int8 one (`convert
// --int8`), on the same weights. The sessions stay open and the graphs run
// one after the other at each
// batch size, so that a change in the machine's load hits both alike. For
// several rounds, run the command several times (-count N would repeat each
// sub-benchmark N times in a row, not interleave them):
//
//	for r in 1 2 3; do ICTHP_BENCH_DIR=/tmp/bench ICTHP_BENCH_THREADS=2 \
//	  go test ./models/clip -run '^$' -bench VisionEncoder -benchtime 4x; done
//
// (ICTHP_BENCH_DIR keeps the graphs between runs; ICTHP_BENCH_OPT sets
// onnxruntime's optimisation level, default all, whose own fusions rewrite
// much of the plain graph; basic shows the plain graph as written.)
func BenchmarkVisionEncoder(b *testing.B) {
	needORT(b)
	dir := os.Getenv("ICTHP_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	// int8 runs one image per onnxruntime run, as models.Open runs an int8
	// model (the activation scale is per run).
	variants := []struct {
		name     string
		opts     clip.BuildOptions
		maxBatch int
	}{{"unfused", clip.BuildOptions{}, 0}, {"fused", clip.BuildOptions{Fused: true}, 0}, {"int8", clip.BuildOptions{Fused: true, Int8: true}, 1}}
	sessions := make([]*models.Session, len(variants))
	for i, v := range variants {
		s, err := models.OpenSession(buildBench(b, dir, v.opts), clip.InputPixels, []string{clip.OutputImage},
			models.SessionOptions{IntraOpThreads: benchThreads(b), OptLevel: os.Getenv("ICTHP_BENCH_OPT"), MaxBatch: v.maxBatch})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		sessions[i] = s
	}
	for _, n := range benchBatches(b) {
		px := make([]float32, n*3*224*224)
		rng := rand.New(rand.NewPCG(1, 1))
		for i := range px {
			px[i] = float32(rng.NormFloat64())
		}
		for i, v := range variants {
			s := sessions[i]
			b.Run(fmt.Sprintf("%s/batch=%d/%s", benchPreset(), n, v.name), func(b *testing.B) {
				if _, err := s.RunFloat(context.Background(), px, n); err != nil { // warm-up
					b.Fatal(err)
				}
				b.ResetTimer()
				cpu0 := cpuTime()
				for i := 0; i < b.N; i++ {
					if _, err := s.RunFloat(context.Background(), px, n); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
				// CPU time per image is the work done, which a machine shared
				// with other jobs inflates much less than wall time.
				b.ReportMetric((cpuTime()-cpu0).Seconds()*1000/float64(n*b.N), "cpu-ms/image")
			})
		}
	}
}

// cpuTime is the CPU time (user + system) this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
