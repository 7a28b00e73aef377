package clip_test

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/icthp/icthp/internal/orttest"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
)

func needORT(t testing.TB) { t.Helper(); orttest.Need(t) }

func tinyConfig(t testing.TB, act clip.Activation) clip.Config {
	c, err := clip.PresetConfig(clip.PresetTiny)
	if err != nil {
		t.Fatal(err)
	}
	c.Vision.HiddenAct, c.Text.HiddenAct = act, act
	return c
}

func runVision(t *testing.T, path string, px []float32, n int, out ...string) [][]float32 {
	t.Helper()
	s, err := models.OpenSession(path, clip.InputPixels, out, models.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
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
			dir := t.TempDir()
			rng := rand.New(rand.NewPCG(1, 2))
			n := 3
			px := make([]float32, n*3*224*224)
			for i := range px {
				px[i] = float32(rng.NormFloat64())
			}
			ids := make([]int64, n*77)
			for r := 0; r < n; r++ {
				ids[r*77] = 49406
				l := 3 + r*5
				for j := 1; j < l; j++ {
					ids[r*77+j] = int64(rng.IntN(49000))
				}
				ids[r*77+l] = 49407
			}
			var img, txt, hp [2][][]float32
			for k, fused := range []bool{false, true} {
				opts := clip.BuildOptions{Fused: fused}
				g, err := clip.BuildVision(&c, w, opts)
				if err != nil {
					t.Fatal(err)
				}
				vp := filepath.Join(dir, "v"+string(rune('0'+k))+".onnx")
				if _, err := g.Save(vp); err != nil {
					t.Fatal(err)
				}
				img[k] = runVision(t, vp, px, n, clip.OutputImage)
				g, err = clip.BuildText(&c, w, 77, opts)
				if err != nil {
					t.Fatal(err)
				}
				tp := filepath.Join(dir, "t"+string(rune('0'+k))+".onnx")
				if _, err := g.Save(tp); err != nil {
					t.Fatal(err)
				}
				s, err := models.OpenSession(tp, clip.InputIDs, []string{clip.OutputText}, models.SessionOptions{})
				if err != nil {
					t.Fatal(err)
				}
				txt[k], err = s.RunInt64(context.Background(), ids, n)
				s.Close()
				if err != nil {
					t.Fatal(err)
				}
				g, err = clip.BuildHP(&c, w, w, opts)
				if err != nil {
					t.Fatal(err)
				}
				hpp := filepath.Join(dir, "h"+string(rune('0'+k))+".onnx")
				if _, err := g.Save(hpp); err != nil {
					t.Fatal(err)
				}
				hp[k] = runVision(t, hpp, px, n, clip.OutputHPLogi, clip.OutputImage)
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
