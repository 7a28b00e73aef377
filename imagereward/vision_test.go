package imagereward_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/icthp/icthp/imagereward"
	"github.com/icthp/icthp/internal/orttest"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/blip"
	"github.com/icthp/icthp/scoring"
)

// countingEncoder passes runs through to the model and counts their images.
type countingEncoder struct {
	next   imagereward.ImageEncoder
	mu     sync.Mutex
	images int
}

func (c *countingEncoder) EncodeImages(ctx context.Context, px []float32, n int) ([][]float32, error) {
	c.mu.Lock()
	c.images += n
	c.mu.Unlock()
	return c.next.EncodeImages(ctx, px, n)
}

// Options.Vision puts its encoder in front of the image encoder: every
// image the scorer encodes goes through it (the undecodable one does not),
// the scores are the unwrapped scorer's, and a batcher there gives the same
// scores too; a failing Vision fails Open with its error.
func TestVisionHook(t *testing.T) {
	orttest.Need(t)
	dir := t.TempDir()
	if _, err := blip.WriteRandomDir(blip.PresetTiny, 4, dir, blip.BuildOptions{Fused: true}); err != nil {
		t.Fatal(err)
	}
	imgs := readImages(t, "rgba8_300x200.png", "junk", "gray_310x230.gif")
	const prompt = "a lighthouse at dusk"
	want, _ := openAndScore(t, dir, imagereward.Options{}, prompt, imgs)

	var batchers []*models.Batcher
	defer func() {
		for _, b := range batchers {
			b.Close()
		}
	}()
	for _, tc := range []struct {
		name string
		wrap func(*models.Model) (imagereward.ImageEncoder, error)
	}{
		{"model", func(md *models.Model) (imagereward.ImageEncoder, error) { return md, nil }},
		{"batcher", func(md *models.Model) (imagereward.ImageEncoder, error) {
			b, err := models.NewBatcher(md, models.BatcherOptions{Name: "imagereward", MaxBatch: 2})
			if b != nil {
				batchers = append(batchers, b)
			}
			return b, err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *countingEncoder
			got, errs := openAndScore(t, dir, imagereward.Options{
				Vision: func(md *models.Model) (imagereward.ImageEncoder, error) {
					next, err := tc.wrap(md)
					c = &countingEncoder{next: next}
					return c, err
				}}, prompt, imgs)
			if errs[0] != nil || errs[1] == nil || errs[2] != nil {
				t.Fatalf("per-image errors %v, want only the junk image's", errs)
			}
			for i := range got {
				if d := got[i] - want[i]; d > 1e-5 || d < -1e-5 {
					t.Errorf("image %d: %v through Vision, %v without", i, got[i], want[i])
				}
			}
			if c.images != 2 {
				t.Errorf("the wrapped encoder saw %d images, want the 2 decodable ones", c.images)
			}
		})
	}

	errWrap := errors.New("no batcher today")
	_, err := imagereward.Open(dir, models.SessionOptions{}, imagereward.Options{
		Vision: func(*models.Model) (imagereward.ImageEncoder, error) { return nil, errWrap }})
	if !errors.Is(err, errWrap) {
		t.Errorf("Open with a failing Vision: %v, want it wrapping %v", err, errWrap)
	}
}

// openAndScore opens dir with o, scores the images for prompt, closes it
// and returns the scores and per-image errors.
func openAndScore(t *testing.T, dir string, o imagereward.Options, prompt string, imgs []scoring.Image) ([]float64, []error) {
	t.Helper()
	s, err := imagereward.Open(dir, models.SessionOptions{}, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	scores, errs, err := score(context.Background(), s, prompt, imgs)
	if err != nil {
		t.Fatal(err)
	}
	return scores, errs
}
