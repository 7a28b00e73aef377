package clip_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/icthp/icthp/internal/cliptest"
	"github.com/icthp/icthp/internal/orttest"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
)

func needORT(t testing.TB) { t.Helper(); orttest.Need(t) }

func tinyConfig(t testing.TB, act clip.Activation) clip.Config {
	t.Helper()
	return cliptest.Tiny(t, act)
}

func runVision(t *testing.T, path string, px []float32, n int, out ...string) [][]float32 {
	t.Helper()
	s := cliptest.Session(t, path, clip.InputPixels, out, models.SessionOptions{})
	res, err := s.RunFloat(context.Background(), px, n)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func maxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// The fused graph (contrib kernels) and the plain one compute the same
// function from the same weights.
func TestFusedMatchesPlain(t *testing.T) {
	needORT(t)
	for _, act := range []clip.Activation{clip.GELU, clip.QuickGELU} {
		t.Run(string(act), func(t *testing.T) {
			c := tinyConfig(t, act)
			w := clip.NewRandom(&c, 7, true)
			rng := rand.New(rand.NewPCG(1, 2))
			n := 3
			px := cliptest.Pixels(rng, n)
			ids := cliptest.IDs(rng, n, 77, 49000, func(r int) int { return 3 + r*5 })
			var img, txt, hp [2][][]float32
			for k, fused := range []bool{false, true} {
				g := buildGraphs(t, &c, w, clip.BuildOptions{Fused: fused})
				img[k] = runVision(t, g.vision, px, n, clip.OutputImage)
				s := cliptest.Session(t, g.text, clip.InputIDs, []string{clip.OutputText}, models.SessionOptions{})
				var err error
				if txt[k], err = s.RunInt64(context.Background(), ids, n); err != nil {
					t.Fatal(err)
				}
				hp[k] = runVision(t, g.hp, px, n, clip.OutputHPLogi, clip.OutputImage)
			}
			if d := maxDiff(img[0][0], img[1][0]); d > 1e-4 {
				t.Errorf("image embeds differ by %g", d)
			}
			if d := maxDiff(txt[0][0], txt[1][0]); d > 1e-4 {
				t.Errorf("text embeds differ by %g", d)
			}
			if d := maxDiff(hp[0][0], hp[1][0]); d > 1e-4 {
				t.Errorf("hp logits differ by %g", d)
			}
			if d := maxDiff(hp[0][1], img[0][0]); d != 0 {
				t.Errorf("hp backbone embeds differ from the vision graph's by %g", d)
			}
			t.Logf("img %v txt %v hp %v", img[0][0][:3], txt[0][0][:3], hp[0][0])
		})
	}
}
