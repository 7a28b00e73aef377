package clip_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/icthp/icthp/internal/clipref"
	"github.com/icthp/icthp/models/clip"
)

// Half-precision graphs (`convert --fp16`, meant for GPU providers) compute
// the same function as the float64 reference to half precision: checked
// here on onnxruntime's CPU provider, which runs them too. The weights are
// stored as float16 (half the bytes of the float graph).
func TestFP16GraphsNearFloat64Reference(t *testing.T) {
	needORT(t)
	const n = 3
	for _, act := range []clip.Activation{clip.GELU, clip.QuickGELU} {
		for _, fused := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/fused=%v", act, fused), func(t *testing.T) {
				c := tinyConfig(t, act)
				w := clip.NewRandom(&c, 11, true)
				px, ids := inputs(n, 77, 5)
				g := buildGraphs(t, &c, w, clip.BuildOptions{Fused: fused, FP16: true})
				if g.weightBytes*10 > g.floatBytes*6 {
					t.Errorf("fp16 weights %d bytes, float %d: not half precision", g.weightBytes, g.floatBytes)
				}
				img := runVision(t, g.vision, px, n, clip.OutputImage)[0]
				hp := runVision(t, g.hp, px, n, clip.OutputHPLogi)[0]
				ts := openSession(t, g.text, clip.InputIDs, clip.OutputText)
				var txt []float32
				for i := 0; i < n; i++ {
					txt = append(txt, run(t, ts.RunInt64, ids[i*77:(i+1)*77])...)
				}
				refImg, refTxt := references(t, &c, w, px, ids, n, false)
				d := c.ProjectionDim
				worstCos, worstLogit := 1.0, 0.0
				for i := 0; i < n; i++ {
					worstCos = min(worstCos, cosine(img[i*d:(i+1)*d], refImg[i]), cosine(txt[i*d:(i+1)*d], refTxt[i]))
					logit, err := clipref.HPLogit(w, refImg[i])
					if err != nil {
						t.Fatal(err)
					}
					worstLogit = max(worstLogit, math.Abs(float64(hp[i])-logit))
				}
				t.Logf("fp16 against float64: embedding 1 − cosine max %.3g, hp_logit max |Δ| %.3g", 1-worstCos, worstLogit)
				// Half precision keeps about 11 bits: relative errors of a few
				// 1e-4 per value, so 1 − cosine of order 1e-7.
				if 1-worstCos > 1e-5 || worstLogit > 5e-3 {
					t.Errorf("fp16 graphs too far from the reference: 1 − cosine %.3g (want ≤ 1e-5), hp_logit |Δ| %.3g (want ≤ 5e-3)", 1-worstCos, worstLogit)
				}
			})
		}
	}
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
