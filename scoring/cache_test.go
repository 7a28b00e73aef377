package scoring_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/cache/redistest"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scoring"
)

func init() { redis.SetLogger(cache.RedisLogger{L: quietLog()}) }

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newCache(t *testing.T, o cache.Options) *cache.Cache {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quietLog()
	}
	c, err := cache.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func withCache(t *testing.T, f *fixture, c *cache.Cache, o scoring.Options) *scoring.Service {
	t.Helper()
	o.Cache = c
	svc, err := scoring.New(f.models, o)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// outcome flattens what the four entry points return, for exact comparison.
type outcome []string

func bits(p *float64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatUint(math.Float64bits(*p), 16)
}

func run(t *testing.T, svc *scoring.Service, prompt string, images []scoring.Image) outcome {
	t.Helper()
	ctx := context.Background()
	var out outcome
	sr, err := svc.Score(ctx, scoring.ScoreRequest{Prompt: &prompt, Images: images})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sr.Scores {
		out = append(out, "score "+bits(s.Get("ict"))+" "+bits(s.Get("hp"))+" "+bits(s.Get("hp_logit"))+" "+fmt.Sprint(s.Err != nil))
	}
	rr, err := svc.Rank(ctx, prompt, images)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rr.Ranking {
		out = append(out, fmt.Sprintf("rank %d %s %s", r.Index, bits(r.Get("ict")), bits(r.ICTHP)))
	}
	items := make([]scoring.RewardItem, len(images))
	for i, img := range images {
		items[i] = scoring.RewardItem{Prompt: prompt + " " + strconv.Itoa(i%2), Image: img}
	}
	wr, err := svc.Reward(ctx, items, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range wr.Rewards {
		out = append(out, "reward "+bits(r))
	}
	te, err := svc.EmbedTexts(ctx, []string{prompt, "another text", prompt})
	if err != nil {
		t.Fatal(err)
	}
	ie, _, err := svc.EmbedImages(ctx, images)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range append(te, ie...) {
		s := "embed"
		for _, x := range e {
			s += " " + strconv.FormatUint(uint64(math.Float32bits(x)), 16)
		}
		out = append(out, s)
	}
	return out
}

func same(t *testing.T, what string, got, want outcome) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d results, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: result %d is %q, without the cache %q", what, i, got[i], want[i])
		}
	}
}

func encoderRows(f *fixture) int64 {
	return f.ict.textRows.Load() + f.ict.imageRows.Load() + f.hp.imageRows.Load()
}

// Score, Rank, Reward and Embed give bit-identical results with and without
// the cache, and once everything is cached the encoders are not run at all.
func TestCacheParity(t *testing.T) {
	f := newFixture(t, true, true, scoring.Options{Workers: 2})
	images := []scoring.Image{demo(t, "sunset.png"), garbage, formula(120, 90, 3), demo(t, "checkers.webp"), formula(90, 120, 4)}
	prompt := "a lighthouse at dusk"
	want := run(t, f.svc, prompt, images)

	c := newCache(t, cache.Options{LocalBytes: 16 << 20})
	svc := withCache(t, f, c, scoring.Options{Workers: 2})
	same(t, "first pass through the cache", run(t, svc, prompt, images), want)
	before := encoderRows(f)
	same(t, "all cached", run(t, svc, prompt, images), want)
	if d := encoderRows(f) - before; d != 0 {
		t.Errorf("with everything cached the encoders still encoded %d rows", d)
	}
	if st := c.Stats(); st.LocalHits == 0 || st.Computed == 0 {
		t.Errorf("stats %+v", st)
	}
}

// A cached score is the same whichever tier it comes from: float32 entries
// read back from Redis are bit-identical; float16 entries move ict by less
// than 1e-3 (and hp_logit not at all: scalars are stored as float64).
func TestCacheRedisParity(t *testing.T) {
	srv := redistest.Start(t)
	f := newFixture(t, true, true, scoring.Options{})
	images := []scoring.Image{demo(t, "sunset.png"), formula(80, 64, 1), demo(t, "checkers.webp"), formula(64, 80, 2)}
	prompt := "a red bicycle"
	want, err := f.svc.Score(context.Background(), scoring.ScoreRequest{Prompt: &prompt, Images: images})
	if err != nil {
		t.Fatal(err)
	}
	for _, f16 := range []bool{false, true} {
		t.Run(fmt.Sprintf("float16=%v", f16), func(t *testing.T) {
			rdb, err := cache.NewRedis(srv.URL(), 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := rdb.FlushAll(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			// No in-process tier, so the second request reads Redis. The
			// round-trip bound is generous: this test is about parity, and a
			// loaded machine must not turn a slow write into a second encode.
			c := newCache(t, cache.Options{Redis: rdb, Float16: f16, RedisTimeout: 10 * time.Second})
			svc := withCache(t, f, c, scoring.Options{})
			var got *scoring.ScoreResponse
			for pass := 0; pass < 2; pass++ {
				before := encoderRows(f)
				if got, err = svc.Score(context.Background(), scoring.ScoreRequest{Prompt: &prompt, Images: images}); err != nil {
					t.Fatal(err)
				}
				if d := encoderRows(f) - before; pass == 1 && d != 0 {
					t.Fatalf("second pass encoded %d rows", d)
				}
			}
			if st := c.Stats(); st.RedisHits != int64(1+2*len(images)) || st.RedisRoundTrips != 3 {
				t.Errorf("stats %+v, want %d Redis hits in 3 round trips", st, 1+2*len(images))
			}
			var worst float64
			for i := range images {
				d := math.Abs(*got.Scores[i].Get("ict") - *want.Scores[i].Get("ict"))
				worst = max(worst, d)
				if !f16 && d != 0 {
					t.Errorf("image %d: ict %v from Redis, %v computed", i, *got.Scores[i].Get("ict"), *want.Scores[i].Get("ict"))
				}
				if *got.Scores[i].Get("hp_logit") != *want.Scores[i].Get("hp_logit") {
					t.Errorf("image %d: hp_logit %v from Redis, %v computed", i, *got.Scores[i].Get("hp_logit"), *want.Scores[i].Get("hp_logit"))
				}
			}
			if worst >= 1e-3 {
				t.Errorf("float16 entries moved ict by %g", worst)
			}
			t.Logf("largest ict difference: %g", worst)
		})
	}
}

// Killing Redis in the middle of a stream of requests: every request is
// answered, with the uncached service's scores; after a restart the
// circuit closes and entries are shared through Redis again.
func TestCacheRedisKilled(t *testing.T) {
	srv := redistest.Start(t)
	f := newFixture(t, true, true, scoring.Options{})
	rdb, err := cache.NewRedis(srv.URL(), 0)
	if err != nil {
		t.Fatal(err)
	}
	c := newCache(t, cache.Options{LocalBytes: 16 << 20, Redis: rdb, BreakerThreshold: 2, BreakerCooldown: 20 * time.Millisecond})
	svc := withCache(t, f, c, scoring.Options{})
	prompt := "a stream of requests"
	request := func(i int) {
		t.Helper()
		images := []scoring.Image{formula(40+i%7, 50, i), formula(60, 40, 1)}
		want, err := f.svc.Score(context.Background(), scoring.ScoreRequest{Prompt: &prompt, Images: images})
		if err != nil {
			t.Fatal(err)
		}
		got, err := svc.Score(context.Background(), scoring.ScoreRequest{Prompt: &prompt, Images: images})
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		for k := range images {
			if *got.Scores[k].Get("ict") != *want.Scores[k].Get("ict") || *got.Scores[k].Get("hp_logit") != *want.Scores[k].Get("hp_logit") {
				t.Fatalf("request %d image %d: %+v, want %+v", i, k, got.Scores[k], want.Scores[k])
			}
		}
	}
	for i := 0; i < 5; i++ {
		request(i)
	}
	srv.Stop()
	for i := 5; i < 15; i++ {
		request(i)
	}
	if c.Circuit() == cache.Closed {
		t.Fatal("circuit closed with Redis dead")
	}
	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for i := 15; c.Circuit() != cache.Closed; i++ {
		if time.Now().After(deadline) {
			t.Fatal("circuit still open 10 s after Redis came back")
		}
		request(i)
		time.Sleep(5 * time.Millisecond)
	}
	// Hits again: a second service (a second process) reads what the first
	// stores now.
	images := []scoring.Image{formula(77, 55, 9)}
	prompt = "a prompt new after the restart"
	if _, err := svc.Score(context.Background(), scoring.ScoreRequest{Prompt: &prompt, Images: images}); err != nil {
		t.Fatal(err)
	}
	rdb2, _ := cache.NewRedis(srv.URL(), 0)
	c2 := newCache(t, cache.Options{LocalBytes: 1 << 20, Redis: rdb2})
	before := encoderRows(f)
	if _, err := withCache(t, f, c2, scoring.Options{}).Score(context.Background(),
		scoring.ScoreRequest{Prompt: &prompt, Images: images}); err != nil {
		t.Fatal(err)
	}
	if d := encoderRows(f) - before; d != 0 || c2.Stats().RedisHits != 3 {
		t.Errorf("after the restart: %d rows encoded, stats %+v; want 3 Redis hits", d, c2.Stats())
	}
}

// Concurrent requests for the same images encode each image once.
func TestCacheConcurrentMisses(t *testing.T) {
	f := newFixture(t, true, true, scoring.Options{})
	c := newCache(t, cache.Options{LocalBytes: 16 << 20})
	svc := withCache(t, f, c, scoring.Options{})
	images := []scoring.Image{formula(50, 50, 1), formula(51, 50, 2), formula(52, 50, 3)}
	prompt := "many at once"
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := svc.Score(context.Background(), scoring.ScoreRequest{Prompt: &prompt, Images: images}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if r := f.ict.imageRows.Load(); r != 3 {
		t.Errorf("ict encoded %d images for 6 concurrent requests of the same 3, want 3", r)
	}
	if r := f.hp.imageRows.Load(); r != 3 {
		t.Errorf("hp encoded %d images, want 3", r)
	}
	if r := f.ict.textRows.Load(); r != 1 {
		t.Errorf("text encoded %d times, want 1", r)
	}
}

// Keys: prompts that tokenize alike share an entry; the same image as file
// bytes and as pixels are different entries; a duplicate in a request is
// encoded once; a prompt whose only image is unreadable is not encoded.
func TestCacheKeys(t *testing.T) {
	f := newFixture(t, true, true, scoring.Options{})
	svc := withCache(t, f, newCache(t, cache.Options{LocalBytes: 16 << 20}), scoring.Options{})
	ctx := context.Background()
	img := demo(t, "sunset.png")
	rgb, err := preprocess.DecodeRGB(img.Data, preprocess.ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := "A  Cat", "a cat"
	if _, err := svc.Score(ctx, scoring.ScoreRequest{Prompt: &a, Images: []scoring.Image{img, img}}); err != nil {
		t.Fatal(err)
	}
	if r := f.ict.imageRows.Load(); r != 1 {
		t.Errorf("a duplicate image: %d encoded, want 1", r)
	}
	if _, err := svc.Score(ctx, scoring.ScoreRequest{Prompt: &b, Images: []scoring.Image{{RGB: rgb}}}); err != nil {
		t.Fatal(err)
	}
	if r := f.ict.textRows.Load(); r != 1 {
		t.Errorf("%q and %q tokenize alike but were encoded %d times", a, b, r)
	}
	if r := f.ict.imageRows.Load(); r != 2 {
		t.Errorf("pixels of a cached file: %d images encoded, want 2", r)
	}
	res, err := svc.Reward(ctx, []scoring.RewardItem{{Prompt: "never needed", Image: garbage}}, nil)
	if err != nil || res.Scores[0].Err == nil {
		t.Fatalf("reward of a garbage image: %v, %+v", err, res.Scores[0])
	}
	if r := f.ict.textRows.Load(); r != 1 {
		t.Errorf("the prompt of an unreadable image was encoded")
	}
}

// A cached entry of a large image does not get past a smaller pixel limit.
func TestCacheKeepsLimits(t *testing.T) {
	f := newFixture(t, true, true, scoring.Options{})
	c := newCache(t, cache.Options{LocalBytes: 16 << 20})
	big := formula(300, 200, 5)
	png := demo(t, "sunset.png")
	prompt := "limits"
	if _, err := withCache(t, f, c, scoring.Options{}).Score(context.Background(),
		scoring.ScoreRequest{Prompt: &prompt, Images: []scoring.Image{big, png}}); err != nil {
		t.Fatal(err)
	}
	strict := withCache(t, f, c, scoring.Options{MaxImagePixels: 300*200 - 1, MaxImageBytes: int64(len(png.Data)) - 1})
	res, err := strict.Score(context.Background(), scoring.ScoreRequest{Prompt: &prompt, Images: []scoring.Image{big, png}})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range res.Scores {
		if !errors.Is(s.Err, preprocess.ErrTooLarge) || s.Get("ict") != nil {
			t.Errorf("image %d under the stricter limits: %+v, want ErrTooLarge", i, s)
		}
	}
}
