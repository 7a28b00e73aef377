package scoring_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/cache/redistest"
	"github.com/icthp/icthp/hp"
	"github.com/icthp/icthp/ict"
	"github.com/icthp/icthp/internal/testmodels"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/ortlib"
	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scoring"
)

// benchModels opens ICT and HP models: $ICTHP_BENCH_MODELS/{ict,hp} when
// set (e.g. made with `icthp convert random --preset vit-b-32`), else tiny
// random ones.
func benchModels(b *testing.B) (*ict.Scorer, *hp.Scorer) {
	b.Helper()
	if _, err := ortlib.Init(""); err != nil {
		b.Fatalf("onnxruntime is required (run `make setup`): %v", err)
	}
	root := os.Getenv("ICTHP_BENCH_MODELS")
	if root == "" {
		root = b.TempDir()
		for _, k := range []models.Kind{models.KindCLIP, models.KindHP} {
			name := map[models.Kind]string{models.KindCLIP: "ict", models.KindHP: "hp"}[k]
			if _, _, _, err := testmodels.RandomDir(filepath.Join(root, name), k, 5, nil, clip.BuildOptions{Fused: true}); err != nil {
				b.Fatal(err)
			}
		}
	}
	open := func(name string) *models.Model {
		m, err := models.Open(filepath.Join(root, name), models.SessionOptions{MaxBatch: 16})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { m.Close() })
		return m
	}
	mi, mh := open("ict"), open("hp")
	is, err := ict.New(filepath.Join(root, "ict"), mi.Manifest, mi)
	if err != nil {
		b.Fatal(err)
	}
	hs, err := hp.New(filepath.Join(root, "hp"), mh.Manifest, mh)
	if err != nil {
		b.Fatal(err)
	}
	return is, hs
}

// pngImage is a 512×512 PNG, the size of a typical generated image.
func pngImage(b *testing.B, salt int) scoring.Image {
	img := image.NewRGBA(image.Rect(0, 0, 512, 512))
	for y := 0; y < 512; y++ {
		for x := 0; x < 512; x++ {
			img.Set(x, y, color.RGBA{uint8(x ^ y + salt), uint8(x*y>>8 + salt), uint8(x + 3*y), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		b.Fatal(err)
	}
	return scoring.Image{Data: buf.Bytes()}
}

// BenchmarkCachedAgainstUncached times a one-prompt, four-image Score with
// nothing cached (no cache), everything in the in-process tier, and
// everything in Redis only (in-process tier off), taking the requests in
// turn so that all three see the same machine load. It reports each p50 and
// the Redis round trips per request.
//
//	go test ./scoring -run '^$' -bench CachedAgainstUncached -benchtime 40x
func BenchmarkCachedAgainstUncached(b *testing.B) {
	is, hs := benchModels(b)
	srv := redistest.Start(b)
	rdb, err := cache.NewRedis(srv.URL(), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	local, _ := cache.New(cache.Options{LocalBytes: 64 << 20})
	remote, _ := cache.New(cache.Options{Redis: rdb})
	defer local.Close()
	defer remote.Close()
	svcs := map[string]*scoring.Service{}
	for name, c := range map[string]*cache.Cache{"uncached": nil, "local": local, "redis": remote} {
		s, err := scoring.New([]scorer.Model{{Spec: ict.Entry.Spec, Scorer: is}, {Spec: hp.Entry.Spec, Scorer: hs}}, scoring.Options{Cache: c})
		if err != nil {
			b.Fatal(err)
		}
		svcs[name] = s
	}
	images := []scoring.Image{pngImage(b, 1), pngImage(b, 2), pngImage(b, 3), pngImage(b, 4)}
	prompt := "a photo of a lighthouse on a cliff at sunset"
	req := scoring.ScoreRequest{Prompt: &prompt, Images: images}
	ctx := context.Background()
	order := []string{"uncached", "local", "redis"}
	for _, name := range order[1:] { // fill the caches
		if _, err := svcs[name].Score(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	trips0 := remote.Stats().RedisRoundTrips
	lat := map[string][]float64{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, name := range order {
			t0 := time.Now()
			if _, err := svcs[name].Score(ctx, req); err != nil {
				b.Fatal(err)
			}
			lat[name] = append(lat[name], float64(time.Since(t0).Microseconds())/1000)
		}
	}
	b.StopTimer()
	for _, name := range order {
		slices.Sort(lat[name])
		b.ReportMetric(lat[name][len(lat[name])/2], name+"-p50-ms")
	}
	b.ReportMetric(float64(remote.Stats().RedisRoundTrips-trips0)/float64(b.N), "redis-trips/req")
	if st := remote.Stats(); st.RedisErrors != 0 {
		b.Errorf("Redis errors during the run: %+v", st)
	}
}
