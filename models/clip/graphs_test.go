package clip_test

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/icthp/icthp/internal/clipref"
	"github.com/icthp/icthp/internal/cliptest"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
	og "github.com/icthp/icthp/models/onnxgraph"
)

// What the tests that build the tiny model, run it and hold it to the float64
// reference share: the parity, fp16, int8 and fused-kind tests differ only in
// the build options, how the items are run and what they assert.

func inputs(n, ctx int, seed uint64) ([]float32, []int64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	px := cliptest.Pixels(rng, n)
	ids := cliptest.IDs(rng, n, ctx, 49406, func(r int) int {
		if r == n-1 {
			return ctx - 1 // one row full
		}
		return 2 + (r*29)%(ctx-2) // different lengths
	})
	return px, ids
}

func openSession(t *testing.T, path, in, out string) *models.Session {
	t.Helper()
	return cliptest.Session(t, path, in, []string{out}, models.SessionOptions{})
}

// run runs one item and returns its single output.
func run[T any](t *testing.T, f func(context.Context, []T, int) ([][]float32, error), in []T) []float32 {
	t.Helper()
	out, err := f(context.Background(), in, 1)
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

// built is the three graphs of one configuration saved in a folder, with
// the weight bytes of the vision graph and of the float vision graph of the
// same weights (to check how the weights are stored).
type built struct {
	vision, text, hp        string
	weightBytes, floatBytes int64
}

func buildGraphs(t *testing.T, c *clip.Config, w clip.Weights, opts clip.BuildOptions) built {
	t.Helper()
	dir := t.TempDir()
	save := func(name string, build func() (*og.Graph, error)) (string, int64) {
		g, err := build()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		res, err := g.Save(p)
		if err != nil {
			t.Fatal(err)
		}
		return p, res.WeightBytes
	}
	var b built
	b.vision, b.weightBytes = save("vision.onnx", func() (*og.Graph, error) { return clip.BuildVision(c, w, opts) })
	b.text, _ = save("text.onnx", func() (*og.Graph, error) { return clip.BuildText(c, w, 77, opts) })
	b.hp, _ = save("hp.onnx", func() (*og.Graph, error) { return clip.BuildHP(c, w, w, opts) })
	_, b.floatBytes = save("float.onnx", func() (*og.Graph, error) { return clip.BuildVision(c, w, clip.BuildOptions{Fused: opts.Fused}) })
	return b
}

// runMode is how the graphs run their n items.
type runMode struct {
	// alone runs the vision and hp graphs one item a run too (int8: the
	// activation scale is per run); otherwise all n in one run.
	alone bool
	// textBatch > 0 runs the text graph on all n items, in runs of at most
	// textBatch; 0 runs it one item a run.
	textBatch int
}

// tinyRun is the tiny configuration with one activation, its random weights
// (seed 11), n items of input (seed 5), the graphs built from them and those
// graphs' outputs.
type tinyRun struct {
	c            clip.Config
	w            clip.Weights
	n            int
	px           []float32
	ids          []int64
	g            built
	img, txt, hp []float32 // n×ProjectionDim, n×ProjectionDim, n
}

func runTiny(t *testing.T, act clip.Activation, n int, opts clip.BuildOptions, m runMode) *tinyRun {
	t.Helper()
	r := &tinyRun{c: tinyConfig(t, act), n: n}
	r.w = clip.NewRandom(&r.c, 11, true)
	r.px, r.ids = inputs(n, 77, 5)
	r.g = buildGraphs(t, &r.c, r.w, opts)
	if m.alone {
		vs := openSession(t, r.g.vision, clip.InputPixels, clip.OutputImage)
		hs := openSession(t, r.g.hp, clip.InputPixels, clip.OutputHPLogi)
		per := len(r.px) / n
		for i := 0; i < n; i++ {
			r.img = append(r.img, run(t, vs.RunFloat, r.px[i*per:(i+1)*per])...)
			r.hp = append(r.hp, run(t, hs.RunFloat, r.px[i*per:(i+1)*per])...)
		}
	} else {
		r.img = runVision(t, r.g.vision, r.px, n, clip.OutputImage)[0]
		r.hp = runVision(t, r.g.hp, r.px, n, clip.OutputHPLogi)[0]
	}
	if m.textBatch > 0 {
		ts := cliptest.Session(t, r.g.text, clip.InputIDs, []string{clip.OutputText}, models.SessionOptions{MaxBatch: m.textBatch})
		txt, err := ts.RunInt64(context.Background(), r.ids, n)
		if err != nil {
			t.Fatal(err)
		}
		r.txt = txt[0]
	} else {
		ts := openSession(t, r.g.text, clip.InputIDs, clip.OutputText)
		for i := 0; i < n; i++ {
			r.txt = append(r.txt, run(t, ts.RunInt64, r.ids[i*77:(i+1)*77])...)
		}
	}
	return r
}

// features are image and text features of n items.
type features struct{ img, txt [][]float64 }

// references are the float64 reference's image and text features of n
// images and n rows of ids, plain or with the int8 scheme.
func references(t *testing.T, c *clip.Config, w clip.Weights, px []float32, ids []int64, n int, int8 bool) features {
	t.Helper()
	imageF, textF := clipref.ImageFeatures, clipref.TextFeatures
	if int8 {
		imageF, textF = clipref.ImageFeaturesInt8, clipref.TextFeaturesInt8
	}
	var f features
	var err error
	if f.img, err = imageF(c, w, px, n); err != nil {
		t.Fatal(err)
	}
	if f.txt, err = textF(c, w, ids, n); err != nil {
		t.Fatal(err)
	}
	return f
}

// references are the reference's features of the run's items.
func (r *tinyRun) references(t *testing.T, int8 bool) features {
	t.Helper()
	return references(t, &r.c, r.w, r.px, r.ids, r.n, int8)
}

// diffs is how far a run's outputs are from a reference.
type diffs struct {
	abs   float64 // max |Δ| over the image and text embeddings
	cos   float64 // least cosine of an embedding and its reference
	logit float64 // max |Δ| of the hp logit (the head on the reference image features)
}

func (r *tinyRun) against(t *testing.T, ref features) diffs {
	t.Helper()
	refImg, refTxt := ref.img, ref.txt
	d := r.c.ProjectionDim
	out := diffs{cos: 1}
	for i := 0; i < r.n; i++ {
		for j := 0; j < d; j++ {
			out.abs = max(out.abs, math.Abs(float64(r.img[i*d+j])-refImg[i][j]), math.Abs(float64(r.txt[i*d+j])-refTxt[i][j]))
		}
		out.cos = min(out.cos, cosine(r.img[i*d:(i+1)*d], refImg[i]), cosine(r.txt[i*d:(i+1)*d], refTxt[i]))
		logit, err := clipref.HPLogit(r.w, refImg[i])
		if err != nil {
			t.Fatal(err)
		}
		out.logit = max(out.logit, math.Abs(float64(r.hp[i])-logit))
	}
	return out
}

func cosine(a []float32, b []float64) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * b[i]
		aa += float64(a[i]) * float64(a[i])
		bb += b[i] * b[i]
	}
	return ab / math.Sqrt(aa*bb)
}
