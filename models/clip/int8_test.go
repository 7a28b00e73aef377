package clip_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/icthp/icthp/internal/clipref"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
	og "github.com/icthp/icthp/models/onnxgraph"
)

// onnxgraph.QuantizeColumns, the rule of the int8 graphs, against codes and
// scales worked out by hand.
func TestQuantizeColumns(t *testing.T) {
	// [in=3, out=2]: column 0 = 1, -0.5, 0.25 (max 1); column 1 = 0, 0, 0.
	w := []float32{1, 0, -0.5, 0, 0.25, 0}
	codes, scales := og.QuantizeColumns(w, 3, 2)
	if want := []float32{float32(1) / 127, 0}; !slices.Equal(scales, want) {
		t.Fatalf("scales %v, want %v", scales, want)
	}
	// -0.5·127 = -63.5 and 0.25·127 = 31.75: half to even gives -64, 32.
	if want := []int8{127, 0, -64, 0, 32, 0}; !slices.Equal(codes, want) {
		t.Fatalf("codes %v, want %v", codes, want)
	}
	// The builder's rule is the reference's (a torch weight is [out, in]).
	tw := []float64{1, -0.5, 0.25, 0, 0, 0}
	rs, rc := clipref.WeightScales(tw, 2, 3)
	if !slices.Equal(rs, scales) || !slices.Equal(rc, []int8{127, -64, 32, 0, 0, 0}) {
		t.Fatalf("reference: scales %v codes %v", rs, rc)
	}
}

func TestInt8RefusesFP16(t *testing.T) {
	c := tinyConfig(t, clip.GELU)
	_, err := clip.BuildVision(&c, clip.NewRandom(&c, 1, true), clip.BuildOptions{Int8: true, FP16: true})
	if !errors.Is(err, clip.ErrOptions) {
		t.Fatalf("err = %v, want ErrOptions", err)
	}
}

// onnxruntime running an int8 graph computes the int8 reference (integer
// GEMMs over DynamicQuantizeLinear activations and per-channel int8
// weights, written from their definitions) to float rounding, and is
// measurably away from the float64 reference, so the graph really is
// quantised. Each item runs alone: the activation scale is per run.
func TestInt8GraphsMatchInt8Reference(t *testing.T) {
	needORT(t)
	const n = 3
	for _, act := range []clip.Activation{clip.GELU, clip.QuickGELU} {
		for _, fused := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/fused=%v", act, fused), func(t *testing.T) {
				c := tinyConfig(t, act)
				w := clip.NewRandom(&c, 11, true)
				px, ids := inputs(n, 77, 5)
				g := buildGraphs(t, &c, w, clip.BuildOptions{Fused: fused, Int8: true})
				// The quantised layers' weights are stored as int8: the data
				// file is smaller by most of 3 of every 4 bytes of them.
				v := c.Vision
				layerBytes := int64(v.NumLayers * (4*v.HiddenSize*v.HiddenSize + 2*v.HiddenSize*v.IntermediateSize) * 4)
				if q, f := g.weightBytes, g.floatBytes; f-q < layerBytes*3/4*9/10 {
					t.Errorf("int8 weights %d bytes, float %d: saves less than 3/4 of the layers' %d", q, f, layerBytes)
				}

				vs := openSession(t, g.vision, clip.InputPixels, clip.OutputImage)
				ts := openSession(t, g.text, clip.InputIDs, clip.OutputText)
				hs := openSession(t, g.hp, clip.InputPixels, clip.OutputHPLogi)
				per := len(px) / n
				var img, txt, hp []float32
				for i := 0; i < n; i++ {
					img = append(img, run(t, vs.RunFloat, px[i*per:(i+1)*per])...)
					hp = append(hp, run(t, hs.RunFloat, px[i*per:(i+1)*per])...)
					txt = append(txt, run(t, ts.RunInt64, ids[i*77:(i+1)*77])...)
				}

				refImg, refTxt := references(t, &c, w, px, ids, n, true)
				fImg, fTxt := references(t, &c, w, px, ids, n, false)
				d := c.ProjectionDim
				toInt8Ref, toFloatRef := 0.0, 0.0
				for i := 0; i < n; i++ {
					for j := 0; j < d; j++ {
						toInt8Ref = max(toInt8Ref, math.Abs(float64(img[i*d+j])-refImg[i][j]), math.Abs(float64(txt[i*d+j])-refTxt[i][j]))
						toFloatRef = max(toFloatRef, math.Abs(float64(img[i*d+j])-fImg[i][j]), math.Abs(float64(txt[i*d+j])-fTxt[i][j]))
					}
					logit, err := clipref.HPLogit(w, refImg[i])
					if err != nil {
						t.Fatal(err)
					}
					toInt8Ref = max(toInt8Ref, math.Abs(float64(hp[i])-logit))
				}
				t.Logf("max |int8 graph − int8 reference| %.3g, − float64 reference %.3g", toInt8Ref, toFloatRef)
				if toInt8Ref > 1e-3 {
					t.Errorf("int8 graph differs from the int8 reference by %g (> 1e-3)", toInt8Ref)
				}
				if toFloatRef < 10*toInt8Ref || toFloatRef < 1e-4 {
					t.Errorf("int8 graph is as close to the float reference (%g) as to the int8 one (%g): not quantised?", toFloatRef, toInt8Ref)
				}
			})
		}
	}
}

func openSession(t *testing.T, path, in, out string) *models.Session {
	t.Helper()
	s, err := models.OpenSession(path, in, []string{out}, models.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
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
