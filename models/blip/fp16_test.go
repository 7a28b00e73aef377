package blip_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/blip"
)

// Half-precision ImageReward graphs (`convert imagereward --fp16`, meant for
// GPU providers) compute ImageReward.score to half precision: checked on
// onnxruntime's CPU provider, which runs them too, against the float64
// reference, plain and fused, batched (nothing in them is per run). Their
// weights are stored as float16: half the float graphs' bytes.
//
// Tolerances: float16 keeps 11 significant bits, a relative rounding error
// of at most 2⁻¹¹ ≈ 4.9e-4 per value. Every weight and every activation is
// rounded once or more per layer, so the image tokens (after the final
// LayerNorm) carry a relative error of a few 1e-4 per layer, ≤ 1e-2 in
// ‖Δ‖/‖ref‖ over the tiny preset's layers with a wide margin; the score (of
// order 1, after the head and the normalisation) within 5e-3, five times
// float16's spacing at 1 (2⁻¹⁰), where the float32 graphs agree to 1e-5.
func TestFP16GraphsNearFloat64Reference(t *testing.T) {
	needORT(t)
	const n, scoreTol, tokenTol = 4, 5e-3, 1e-2
	k := newTinyCase(t, n, 17, 6)
	ref := k.reference(t, false)
	for _, fused := range []bool{false, true} {
		t.Run(fmt.Sprintf("fused=%v", fused), func(t *testing.T) {
			half := convertAndOpen(t, &k.c, k.w, blip.BuildOptions{Fused: fused, FP16: true}, models.SessionOptions{MaxBatch: n})
			float := convertAndOpen(t, &k.c, k.w, blip.BuildOptions{Fused: fused}, models.SessionOptions{MaxBatch: n})
			for _, g := range []struct {
				name        string
				half, float int64
			}{
				{"vision", half.res.Vision.Bytes, float.res.Vision.Bytes},
				{"text", half.res.Text.Bytes, float.res.Text.Bytes},
			} {
				// 2 bytes a value instead of 4; only the small inline
				// int64 constants (shapes, axes) keep their size.
				if g.half*10 > g.float*6 {
					t.Errorf("%s graph: fp16 weights %d bytes, float %d: not half precision", g.name, g.half, g.float)
				}
			}
			if half.res.Digest == float.res.Digest {
				t.Error("fp16 and float conversions have the same digest")
			}
			tokens, scores := half.score(t, k.px, k.ids, k.mask, n)
			got := against(&k.c, tokens, scores, ref)
			t.Logf("fp16 against float64: image tokens ‖Δ‖/‖ref‖ max %.3g (max |Δ| %.3g), score max |Δ| %.3g (scores %v, reference %v)",
				got.rel, got.tok, got.score, scores, ref.scores)
			if got.rel > tokenTol {
				t.Errorf("image tokens: relative error %.3g > %g", got.rel, tokenTol)
			}
			if got.score > scoreTol {
				t.Errorf("scores differ by %.3g > %g: onnxruntime %v, reference %v", got.score, scoreTol, scores, ref.scores)
			}
			// Not a float32 graph under another name: half precision is
			// measurably further from the reference than float32 (≤ 1e-5).
			if got.score < 1e-5 && got.rel < 1e-5 {
				t.Errorf("fp16 graphs as close as float32 ones (score %.3g, tokens %.3g): not half precision?", got.score, got.rel)
			}
		})
	}
}

// Int8 weights with fp16 compute is refused with ErrOptions, before anything
// is written.
func TestFP16WithInt8Refused(t *testing.T) {
	c := tinyConfig(t)
	w := blip.NewRandom(&c, 1)
	opts := blip.BuildOptions{FP16: true, Int8: true}
	if _, err := blip.BuildVision(&c, w, opts); !errors.Is(err, blip.ErrOptions) {
		t.Errorf("BuildVision: %v, want ErrOptions", err)
	}
	if _, err := blip.BuildText(&c, w, opts); !errors.Is(err, blip.ErrOptions) {
		t.Errorf("BuildText: %v, want ErrOptions", err)
	}
	if _, err := blip.WriteRandomDir(blip.PresetTiny, 1, t.TempDir(), opts); !errors.Is(err, blip.ErrOptions) {
		t.Errorf("WriteRandomDir: %v, want ErrOptions", err)
	}
}
