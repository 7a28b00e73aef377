package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/icthp/icthp/hp"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/convert"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scoring"
	"github.com/icthp/icthp/server"
)

// benchModel is a vit-b-32 HP model directory with seeded random weights:
// $ICTHP_BENCH_HP when set, else made once under the temporary folder.
func benchModel(b *testing.B) string {
	b.Helper()
	if d := os.Getenv("ICTHP_BENCH_HP"); d != "" {
		return d
	}
	dir := filepath.Join(os.TempDir(), "icthp-server-bench", "vit-b-32-hp")
	if _, err := models.ReadManifest(dir); err == nil {
		return dir
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	o := convert.RandomOptions{Preset: clip.PresetViTB32, Kind: models.KindHP, Seed: 1, Out: tmp, Build: clip.BuildOptions{Fused: true}}
	if _, err := convert.Random(o); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		b.Fatal(err)
	}
	return dir
}

// benchSetup is what every round of BenchmarkScoreVsRaw shares: the model
// opened once, the test images and their tensors, and the server.
var benchSetup struct {
	once   sync.Once
	err    error
	m      *models.Model
	pixels []float32
	rowLen int
	bodies [][]byte
	url    string
}

func setupBench(b *testing.B) {
	b.Helper()
	s := &benchSetup
	s.once.Do(func() {
		s.err = func() error {
			dir := benchModel(b)
			m, err := models.Open(dir, models.SessionOptions{})
			if err != nil {
				return err
			}
			s.m = m
			hpRaw, err := hp.New(dir, m.Manifest, m)
			if err != nil {
				return err
			}
			const distinct = 32
			pipe := hpRaw.Images()
			s.rowLen = pipe.TensorLen()
			s.pixels = make([]float32, distinct*s.rowLen)
			for i := range distinct {
				var buf bytes.Buffer
				if err := png.Encode(&buf, testImage(i, 320, 256)); err != nil {
					return err
				}
				img, err := preprocess.DecodeRGB(buf.Bytes(), pipe.Options())
				if err != nil {
					return err
				}
				if err := pipe.TensorRGB(img, s.pixels[i*s.rowLen:(i+1)*s.rowLen]); err != nil {
					return err
				}
				body, _ := json.Marshal(map[string]any{"images": []string{b64(buf.Bytes())}})
				s.bodies = append(s.bodies, body)
			}
			// The service as icthp serve --batch-size 32 builds it: a batcher (32 items, 2 ms)
			// in front of the same model, HP only.
			batcher, err := models.NewBatcher(m, models.BatcherOptions{Name: "hp", MaxBatch: 32})
			if err != nil {
				return err
			}
			hpS, err := hp.New(dir, m.Manifest, batcher)
			if err != nil {
				return err
			}
			svc, err := newService(nil, hpS, scoring.Options{})
			if err != nil {
				return err
			}
			// A long deadline: at concurrency 64 on a slow machine the
			// honest queue-wait estimate passes the default 30 s, and the
			// 429s would measure the machine, not the service.
			srv, err := server.New(svc, server.Options{Timeout: 10 * time.Minute})
			if err != nil {
				return err
			}
			s.url = httptest.NewServer(srv.Handler()).URL // lives until the process ends
			return nil
		}()
	})
	if s.err != nil {
		b.Fatal(s.err)
	}
}

// benchSeconds is how long each measurement runs at least
// ($ICTHP_BENCH_SECONDS, default 15).
func benchSeconds() time.Duration {
	if v, err := strconv.ParseFloat(os.Getenv("ICTHP_BENCH_SECONDS"), 64); err == nil && v > 0 {
		return time.Duration(v * float64(time.Second))
	}
	return 15 * time.Second
}

// BenchmarkScoreVsRaw measures, side by side, the raw encoder of a
// vit-b-32 HP model at batch sizes 8, 16 and 32 on tensors prepared
// beforehand, and /v1/score (HP only, one image per request, over loopback
// HTTP, decoding and preprocessing included) at concurrency 1, 8 and 64.
// Each measurement runs for at least $ICTHP_BENCH_SECONDS and reports
// images/s (and ns/op per image), whatever b.N is. The whole set runs
// $ICTHP_BENCH_ROUNDS times (default 3), so that raw and service figures
// interleave on a machine whose load changes:
//
//	go test ./server -run '^$' -bench ScoreVsRaw -benchtime 1x
func BenchmarkScoreVsRaw(b *testing.B) {
	setupBench(b)
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("ICTHP_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	for r := range rounds {
		b.Run(fmt.Sprintf("round=%d", r+1), benchRound)
	}
}

func benchRound(b *testing.B) {
	s := &benchSetup
	ctx := context.Background()
	// Besides wall-clock rates, each measurement reports the process's CPU
	// time per image (user + system, every thread: onnxruntime's, the
	// server's and the client's): on a machine shared with other work,
	// wall-clock rates follow the neighbours, CPU time much less so.
	var cpu0 time.Duration
	start := func() time.Time { cpu0 = cpuTime(); return time.Now() }
	report := func(b *testing.B, items int, since time.Time) {
		took := time.Since(since)
		b.ReportMetric(float64(items)/took.Seconds(), "images/s")
		b.ReportMetric(float64(took.Nanoseconds())/float64(items), "ns/op")
		b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(items), "cpu-ms/image")
	}
	for _, bs := range []int{8, 16, 32} {
		b.Run(fmt.Sprintf("raw/batch=%d", bs), func(b *testing.B) {
			if _, err := s.m.EncodeImages(ctx, s.pixels[:bs*s.rowLen], bs); err != nil { // warm
				b.Fatal(err)
			}
			t0, items := start(), 0
			for items < bs*b.N || time.Since(t0) < benchSeconds() {
				if _, err := s.m.EncodeImages(ctx, s.pixels[:bs*s.rowLen], bs); err != nil {
					b.Fatal(err)
				}
				items += bs
			}
			report(b, items, t0)
		})
	}
	for _, c := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("service/concurrency=%d", c), func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c}}
			defer client.CloseIdleConnections()
			var done atomic.Int64
			var wg sync.WaitGroup
			t0 := start()
			end := t0.Add(benchSeconds())
			for w := range c {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; time.Now().Before(end) || done.Load() < int64(b.N); i += c {
						res, err := client.Post(s.url+"/v1/score", "application/json", bytes.NewReader(s.bodies[i%len(s.bodies)]))
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, res.Body)
						res.Body.Close()
						if res.StatusCode != 200 {
							b.Errorf("status %d", res.StatusCode)
							return
						}
						done.Add(1)
					}
				}()
			}
			wg.Wait()
			report(b, int(done.Load()), t0)
		})
	}
}

// cpuTime is the CPU time this process has used, all threads.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
