package scoring

import (
	"bytes"
	"context"
	"image"
	_ "image/gif" // header sizes for the pixel budget
	_ "image/jpeg"
	_ "image/png"
	"sync/atomic"
	"time"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/webp"
	"golang.org/x/sync/semaphore"

	"github.com/icthp/icthp/models"
)

// admission counts the images admitted and not yet answered, over all
// requests, so that overload is refused before anything is read: a
// refusal costs an atomic add, not a decode.
type admission struct {
	max      int64 // 0: no bound
	inflight atomic.Int64
}

// enter admits n images or refuses them with *models.OverloadError
// (429). A request alone on an idle service is always admitted, however
// many images it has. release gives the places back.
func (a *admission) enter(n int) (release func(), err error) {
	k := int64(n)
	now := a.inflight.Add(k)
	if a.max > 0 && now > a.max && now != k {
		a.inflight.Add(-k)
		return nil, &models.OverloadError{Reason: models.ReasonQueueFull, RetryAfter: time.Second}
	}
	return func() { a.inflight.Add(-k) }, nil
}

// Saturated says whether the admission bound is reached: a new request of
// any size would be refused now, so a front door may refuse it before
// reading it.
func (s *Service) Saturated() bool {
	return s.admit.max > 0 && s.admit.inflight.Load() >= s.admit.max
}

// Inflight is the number of images admitted and not yet answered.
func (s *Service) Inflight() int64 { return s.admit.inflight.Load() }

// pixelBudget bounds the decoded pixels held at once by every request.
type pixelBudget struct {
	size int64
	sem  *semaphore.Weighted
}

func newPixelBudget(size int64) *pixelBudget {
	return &pixelBudget{size: size, sem: semaphore.NewWeighted(size)}
}

// acquire takes px pixels of the budget (unknown: 0 takes fallback; more
// than the budget takes all of it), waiting while others hold it; it gives
// up when ctx ends (the deadline passed or the client is gone).
func (b *pixelBudget) acquire(ctx context.Context, px, fallback int64) (release func(), err error) {
	if px <= 0 {
		px = fallback
	}
	px = min(max(px, 1), b.size)
	if err := b.sem.Acquire(ctx, px); err != nil {
		return nil, err
	}
	return func() { b.sem.Release(px) }, nil
}

// headerDims is an image's width and height from its header alone (raw
// pixels: their shape); 0, 0 when the header cannot be read (the decoder
// then refuses the image, or it is charged the pixel limit).
func headerDims(img Image) (int, int) {
	if img.RGB != nil {
		return img.RGB.W, img.RGB.H
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(img.Data))
	if err != nil {
		return 0, 0
	}
	return cfg.Width, cfg.Height
}
