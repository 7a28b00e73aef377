package blip_test

import (
	"fmt"
	"testing"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/blip"
)

// onnxruntime running int8 ImageReward graphs (DynamicQuantizeMatMul in
// every ViT block and BERT layer) computes the int8 reference (integer sums
// over DynamicQuantizeLinear activations and per-channel int8 weights,
// written from their definitions) to float rounding, plain and fused, and is
// measurably away from the float64 reference, so the graphs really are
// quantised. Each item runs alone: the activation scale is per run.
func TestInt8GraphsMatchInt8Reference(t *testing.T) {
	needORT(t)
	const n, tol = 3, 1e-4
	k := newTinyCase(t, n, 13, 5)
	ref, fref := k.reference(t, true), k.reference(t, false)
	c := &k.c
	D, L, S := c.Vision.Width, c.ContextLength, c.Vision.ImageSize
	for _, fused := range []bool{false, true} {
		t.Run(fmt.Sprintf("fused=%v", fused), func(t *testing.T) {
			cv := convertAndOpen(t, c, k.w, blip.BuildOptions{Fused: fused, Int8: true}, models.SessionOptions{MaxBatch: 1})
			float := convertAndOpen(t, c, k.w, blip.BuildOptions{Fused: fused}, models.SessionOptions{})
			// The layers' weights are stored as int8: most of 3 of every 4
			// of their bytes are gone.
			v, tx := c.Vision, c.Text
			layers := int64(v.Depth*(4*D*D+2*D*v.MLPHidden())) +
				int64(tx.NumLayers*(6*tx.HiddenSize*tx.HiddenSize+2*tx.EncoderWidth*tx.HiddenSize+2*tx.HiddenSize*tx.IntermediateSize))
			saved := (float.res.Vision.Bytes + float.res.Text.Bytes) - (cv.res.Vision.Bytes + cv.res.Text.Bytes)
			if saved < layers*4*3/4*9/10 {
				t.Errorf("int8 graphs save %d weight bytes, want most of 3/4 of the layers' %d", saved, 4*layers)
			}
			if cv.res.Digest == float.res.Digest {
				t.Error("int8 and float conversions have the same digest")
			}
			// Each item alone: the activation scale is per run.
			var tokens, scores []float32
			for b := 0; b < n; b++ {
				tok, sc := cv.score(t, k.px[b*3*S*S:(b+1)*3*S*S], k.ids[b*L:(b+1)*L], k.mask[b*L:(b+1)*L], 1)
				tokens, scores = append(tokens, tok...), append(scores, sc...)
			}
			got, f := against(c, tokens, scores, ref), against(c, tokens, scores, fref)
			worstTok, worst, fromFloat := got.tok, got.score, max(f.tok, f.score)
			t.Logf("max |onnxruntime int8 − int8 reference|: image tokens %.3g, score %.3g; − float64 reference %.3g", worstTok, worst, fromFloat)
			if worstTok > tol || worst > tol {
				t.Errorf("int8 graphs differ from the int8 reference by %g (tokens), %g (scores); want ≤ %g", worstTok, worst, tol)
			}
			if fromFloat < 10*max(worst, worstTok) || fromFloat < 1e-3 {
				t.Errorf("int8 graphs are %g from the float reference, %g from the int8 one: not quantised?", fromFloat, max(worst, worstTok))
			}
		})
	}
}
