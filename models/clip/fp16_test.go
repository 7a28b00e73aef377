package clip_test

import (
	"testing"

	"github.com/icthp/icthp/internal/cliptest"
	"github.com/icthp/icthp/models/clip"
)

// Half-precision graphs (`convert --fp16`, meant for GPU providers) compute
// the same function as the float64 reference to half precision: checked
// here on onnxruntime's CPU provider, which runs them too. The weights are
// stored as float16 (half the bytes of the float graph).
func TestFP16GraphsNearFloat64Reference(t *testing.T) {
	needORT(t)
	const n = 3
	cliptest.EachVariant(t, func(t *testing.T, act clip.Activation, fused bool) {
		r := runTiny(t, act, n, clip.BuildOptions{Fused: fused, FP16: true}, runMode{})
		if r.g.weightBytes*10 > r.g.floatBytes*6 {
			t.Errorf("fp16 weights %d bytes, float %d: not half precision", r.g.weightBytes, r.g.floatBytes)
		}
		got := r.against(t, r.references(t, false))
		t.Logf("fp16 against float64: embedding 1 − cosine max %.3g, hp_logit max |Δ| %.3g", 1-got.cos, got.logit)
		// Half precision keeps about 11 bits: relative errors of a few
		// 1e-4 per value, so 1 − cosine of order 1e-7.
		if 1-got.cos > 1e-5 || got.logit > 5e-3 {
			t.Errorf("fp16 graphs too far from the reference: 1 − cosine %.3g (want ≤ 1e-5), hp_logit |Δ| %.3g (want ≤ 5e-3)", 1-got.cos, got.logit)
		}
	})
}
