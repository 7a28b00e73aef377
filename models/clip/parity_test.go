package clip_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/icthp/icthp/internal/clipref"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
)

// The builder's parameter list is the reference's (transformers' names and
// shapes) for every preset.
func TestParamsMatchReference(t *testing.T) {
	for _, p := range clip.Presets {
		c, err := clip.PresetConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][]int64{}
		for _, q := range c.Params() {
			got[q.Name] = q.Shape
		}
		want := clipref.Params(&c)
		if len(want) != len(got) {
			t.Errorf("%s: %d params, reference has %d", p, len(got), len(want))
		}
		for _, q := range want {
			if s, ok := got[q.Name]; !ok || !slices.Equal(s, q.Shape) {
				t.Errorf("%s: %s: builder %v, reference %v", p, q.Name, s, q.Shape)
			}
		}
	}
}

func inputs(n, ctx int, seed uint64) ([]float32, []int64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	px := make([]float32, n*3*224*224)
	for i := range px {
		px[i] = float32(rng.NormFloat64())
	}
	ids := make([]int64, n*ctx)
	for r := 0; r < n; r++ {
		ids[r*ctx] = 49406
		l := 2 + (r*29)%(ctx-2) // different lengths, one row full
		if r == n-1 {
			l = ctx - 1
		}
		for j := 1; j < l; j++ {
			ids[r*ctx+j] = int64(rng.IntN(49406))
		}
		ids[r*ctx+l] = 49407
	}
	return px, ids
}

// onnxruntime running the built graphs agrees with the float64 reference of
// transformers' equations, for both activations and both graph styles.
func TestGraphsMatchFloat64Reference(t *testing.T) {
	needORT(t)
	const n, tol = 4, 1e-4
	for _, act := range []clip.Activation{clip.GELU, clip.QuickGELU} {
		for _, fused := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/fused=%v", act, fused), func(t *testing.T) {
				c := tinyConfig(t, act)
				w := clip.NewRandom(&c, 11, true)
				px, ids := inputs(n, 77, 5)
				dir := t.TempDir()
				opts := clip.BuildOptions{Fused: fused}

				vg, err := clip.BuildVision(&c, w, opts)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := vg.Save(filepath.Join(dir, "vision.onnx")); err != nil {
					t.Fatal(err)
				}
				img := runVision(t, filepath.Join(dir, "vision.onnx"), px, n, clip.OutputImage)[0]

				tg, err := clip.BuildText(&c, w, 77, opts)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tg.Save(filepath.Join(dir, "text.onnx")); err != nil {
					t.Fatal(err)
				}
				ts, err := models.OpenSession(filepath.Join(dir, "text.onnx"), clip.InputIDs, []string{clip.OutputText}, models.SessionOptions{MaxBatch: 3})
				if err != nil {
					t.Fatal(err)
				}
				defer ts.Close()
				txt, err := ts.RunInt64(context.Background(), ids, n)
				if err != nil {
					t.Fatal(err)
				}

				hg, err := clip.BuildHP(&c, w, w, opts)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := hg.Save(filepath.Join(dir, "hp.onnx")); err != nil {
					t.Fatal(err)
				}
				hp := runVision(t, filepath.Join(dir, "hp.onnx"), px, n, clip.OutputHPLogi)[0]

				refImg, refTxt := references(t, &c, w, px, ids, n, false)
				d := c.ProjectionDim
				worst := 0.0
				for i := 0; i < n; i++ {
					for j := 0; j < d; j++ {
						worst = math.Max(worst, math.Abs(float64(img[i*d+j])-refImg[i][j]))
						worst = math.Max(worst, math.Abs(float64(txt[0][i*d+j])-refTxt[i][j]))
					}
					logit, err := clipref.HPLogit(w, refImg[i])
					if err != nil {
						t.Fatal(err)
					}
					worst = math.Max(worst, math.Abs(float64(hp[i])-logit))
				}
				if worst > tol {
					t.Fatalf("max |onnxruntime − float64 reference| = %g > %g", worst, tol)
				}
				t.Logf("max abs difference %.3g", worst)
			})
		}
	}
}

// references are the float64 reference's image and text features of n
// images and n rows of ids, plain or with the int8 scheme.
func references(t *testing.T, c *clip.Config, w clip.Weights, px []float32, ids []int64, n int, int8 bool) (img, txt [][]float64) {
	t.Helper()
	imageF, textF := clipref.ImageFeatures, clipref.TextFeatures
	if int8 {
		imageF, textF = clipref.ImageFeaturesInt8, clipref.TextFeaturesInt8
	}
	img, err := imageF(c, w, px, n)
	if err != nil {
		t.Fatal(err)
	}
	if txt, err = textF(c, w, ids, n); err != nil {
		t.Fatal(err)
	}
	return img, txt
}
