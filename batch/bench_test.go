package batch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/icthp/icthp/batch/batchtest"
	"github.com/icthp/icthp/hp"
	"github.com/icthp/icthp/ict"
	"github.com/icthp/icthp/internal/orttest"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/modelset"
	"github.com/icthp/icthp/scorer"
)

// cpuTime is the CPU time (user + system) this process has used: unlike
// wall time, it does not count the time other work on a shared machine
// takes from us.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkBatchAgainstRaw compares `icthp batch`'s pipeline (enumerate,
// read, decode, preprocess, encode, write parts, merge) with the raw
// encoders at the same batch size: the same encoder calls (ICT text for
// each batch's distinct prompts, ICT vision, HP vision) on tensors made
// beforehand. It needs real model directories:
//
//	ICTHP_BENCH_ICT=DIR ICTHP_BENCH_HP=DIR [ICTHP_BENCH_IMAGES=2000] [ICTHP_BENCH_SIZE=512]
//	[ICTHP_BENCH_BATCH=16] [ICTHP_BENCH_ROUNDS=4] [ICTHP_BENCH_INFLIGHT=1] [ICTHP_BENCH_DATA=DIR]
//	go test ./batch/ -run '^$' -bench BatchAgainstRaw -benchtime 1x
//
// The images are split into ROUNDS folders; raw and pipeline alternate
// round by round so that load from other work on the machine falls on both.
func BenchmarkBatchAgainstRaw(b *testing.B) {
	ictDir, hpDir := os.Getenv("ICTHP_BENCH_ICT"), os.Getenv("ICTHP_BENCH_HP")
	if ictDir == "" || hpDir == "" {
		b.Skip("set ICTHP_BENCH_ICT and ICTHP_BENCH_HP to model directories (icthp convert random --preset vit-b-32)")
	}
	n, size := envInt("ICTHP_BENCH_IMAGES", 2000), envInt("ICTHP_BENCH_SIZE", 512)
	bs, rounds := envInt("ICTHP_BENCH_BATCH", 16), envInt("ICTHP_BENCH_ROUNDS", 4)
	inflight := envInt("ICTHP_BENCH_INFLIGHT", DefaultInFlight)
	orttest.Need(b)
	per := n / rounds
	dirs := benchFolders(b, n, size, rounds)
	set, err := modelset.Open(modelset.Options{Dirs: map[string]string{ict.Name: ictDir, hp.Name: hpDir},
		Open: scorer.OpenOptions{Session: models.SessionOptions{MaxBatch: bs}}})
	if err != nil {
		b.Fatal(err)
	}
	defer set.Close()
	ctx := context.Background()
	raw := rawEncoders(b, set.Models[0].Scorer.(*ict.Scorer), set.Models[1].Scorer.(*hp.Scorer), bs, size)
	// Warm up both paths (first runs allocate onnxruntime's arenas).
	if err := raw(ctx, 0, bs); err != nil {
		b.Fatal(err)
	}
	out := b.TempDir()
	if _, err := Run(ctx, set.Service, Options{Inputs: []string{filepath.Join(dirs[0], "000")}, Out: filepath.Join(out, "warm.jsonl"), BatchSize: bs}); err != nil {
		b.Fatal(err)
	}

	var rawT, batchT, rawCPU, batchCPU time.Duration
	b.ResetTimer()
	for r := 0; r < rounds; r++ {
		c0, t0 := cpuTime(), time.Now()
		if err := raw(ctx, r*per, per); err != nil {
			b.Fatal(err)
		}
		c1, t1 := cpuTime(), time.Now()
		sum, err := Run(ctx, set.Service, Options{Inputs: []string{dirs[r]}, Out: filepath.Join(out, fmt.Sprintf("r%d.jsonl", r)), BatchSize: bs, InFlight: inflight})
		if err != nil {
			b.Fatal(err)
		}
		c2, t2 := cpuTime(), time.Now()
		rawCPU += c1 - c0
		batchCPU += c2 - c1
		if sum.Scored != per || sum.Errors != 0 {
			b.Fatalf("round %d: %+v", r, sum)
		}
		rawT += t1.Sub(t0)
		batchT += t2.Sub(t1)
		b.Logf("round %d: raw %.2f img/s, batch %.2f img/s (%.1f%%); CPU ms/img raw %.0f, batch %.0f", r, float64(per)/t1.Sub(t0).Seconds(),
			float64(per)/t2.Sub(t1).Seconds(), 100*t1.Sub(t0).Seconds()/t2.Sub(t1).Seconds(),
			float64((c1-c0).Milliseconds())/float64(per), float64((c2-c1).Milliseconds())/float64(per))
	}
	b.StopTimer()
	total := float64(per * rounds)
	b.ReportMetric(total/rawT.Seconds(), "raw_img/s")
	b.ReportMetric(total/batchT.Seconds(), "batch_img/s")
	b.ReportMetric(100*rawT.Seconds()/batchT.Seconds(), "batch_%_of_raw")
	b.ReportMetric(float64(rawCPU.Milliseconds())/total, "raw_cpu_ms/img")
	b.ReportMetric(float64(batchCPU.Milliseconds())/total, "batch_cpu_ms/img")
	b.ReportMetric(100*rawCPU.Seconds()/batchCPU.Seconds(), "batch_%_of_raw_cpu")
}

// benchFolders writes (once, under $ICTHP_BENCH_DATA when set) the n
// images of the benchmark, size pixels square, split into one folder per
// round.
func benchFolders(b *testing.B, n, size, rounds int) []string {
	data := os.Getenv("ICTHP_BENCH_DATA")
	if data == "" {
		data = b.TempDir()
	}
	per := n / rounds
	dirs := make([]string, rounds)
	for r := range dirs {
		dirs[r] = filepath.Join(data, fmt.Sprintf("n%d-s%d-r%d", n, size, r))
		if _, err := os.Stat(filepath.Join(dirs[r], ".done")); err == nil {
			continue
		}
		os.RemoveAll(dirs[r])
		if _, err := batchtest.WriteFolder(dirs[r], per, batchtest.Options{Size: size, FirstIndex: r * per}); err != nil {
			b.Fatal(err)
		}
		os.WriteFile(filepath.Join(dirs[r], ".done"), nil, 0o644)
	}
	return dirs
}

// rawEncoders is the raw side of the comparison: for count images from
// first, in batches of bs, the encoder calls the pipeline makes (ICT text
// for each batch's distinct prompts, ICT vision, HP vision), on bs real
// tensors made beforehand and reused for every batch (the encoders' cost
// does not depend on the pixels).
func rawEncoders(b *testing.B, ictS *ict.Scorer, hpS *hp.Scorer, bs, size int) func(ctx context.Context, first, count int) error {
	pipe := ictS.Images()
	l := pipe.TensorLen()
	pixels := make([]float32, bs*l)
	for i := 0; i < bs; i++ {
		img, _, err := batchtest.Encode(i, batchtest.Options{Size: size})
		if err != nil {
			b.Fatal(err)
		}
		if err := pipe.Tensor(img, pixels[i*l:(i+1)*l]); err != nil {
			b.Fatal(err)
		}
	}
	return func(ctx context.Context, first, count int) error {
		for lo := 0; lo < count; lo += bs {
			k := min(bs, count-lo)
			var prompts []string
			seen := map[string]bool{}
			for i := first + lo; i < first+lo+k; i++ {
				if p := batchtest.Prompt(i, 4); !seen[p] {
					seen[p] = true
					prompts = append(prompts, p)
				}
			}
			if _, err := ictS.EmbedTexts(ctx, prompts); err != nil {
				return err
			}
			if _, err := ictS.EmbedImages(ctx, pixels[:k*l], k); err != nil {
				return err
			}
			if _, err := hpS.Score(ctx, pixels[:k*l], k); err != nil {
				return err
			}
		}
		return nil
	}
}
