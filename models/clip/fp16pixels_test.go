package clip_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/x448/float16"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
)

// An --fp16 graph takes float16 pixel_values; the older form took float32
// and cast inside. On the same seeded weights, the new graph gives the same
// bits whether the host rounds the pixels (RunHalf) or hands float32 ones
// (RunFloat rounds them), and the same bits as the old graph fed those
// rounded pixels (RunHalf widens them; its Cast gives them back exactly).
//
// The old graph fed unrounded float32 pixels differs on the CPU provider,
// and only there: the CPU has no float16 Conv, so onnxruntime puts a Cast
// back to float32 in front of it and its RemoveDuplicateCastTransformer
// drops the float32→float16→float32 pair (it compares type groups, and both
// are "float"), so that Conv never saw rounded pixels. A GPU provider runs
// the Conv in float16 after the Cast, which rounds to nearest-even as the
// host does, so there the two forms agree. The test bounds that CPU-only
// difference (the rounding of the pixels, about 2⁻¹² relative) to the fp16
// graphs' own tolerance.
func TestHalfPixelGraphEqualsCastInside(t *testing.T) {
	needORT(t)
	const n = 3
	for _, fused := range []bool{false, true} {
		t.Run(fmt.Sprintf("fused=%v", fused), func(t *testing.T) {
			c := tinyConfig(t, clip.QuickGELU)
			w := clip.NewRandom(&c, 11, true)
			px, _ := inputs(n, 77, 5)
			half := make([]float16.Float16, len(px))
			models.HalfFromFloat32(half, px)
			outs := []string{clip.OutputHPLogi, clip.OutputImage}
			oldG := buildGraphs(t, &c, w, clip.BuildOptions{Fused: fused, FP16: true, FP32Pixels: true}).hp
			newG := buildGraphs(t, &c, w, clip.BuildOptions{Fused: fused, FP16: true}).hp
			oldS, newS := openHP(t, oldG, outs), openHP(t, newG, outs)
			if oldS.HalfInput() || !newS.HalfInput() {
				t.Fatalf("half inputs: old graph %v, new graph %v; want false, true", oldS.HalfInput(), newS.HalfInput())
			}
			want := runOrFatal(t, newS.RunHalf, half, n)
			for name, got := range map[string][][]float32{
				"new graph, float32 handed": runOrFatal(t, newS.RunFloat, px, n),
				"old graph, rounded pixels": runOrFatal(t, oldS.RunHalf, half, n),
			} {
				for o := range outs {
					if i := firstBitDiff(got[o], want[o]); i >= 0 {
						t.Errorf("%s: %s[%d] = %v, the new graph on host-rounded pixels gives %v", name, outs[o], i, got[o][i], want[o][i])
					}
				}
			}
			raw := runOrFatal(t, oldS.RunFloat, px, n)
			dLogit, dEmb := maxDiff(raw[0], want[0]), maxDiff(raw[1], want[1])
			t.Logf("old graph on unrounded pixels (CPU only): max |Δ hp_logit| %.3g, max |Δ image_embeds| %.3g", dLogit, dEmb)
			if dLogit > 5e-3 || dEmb > 5e-3 {
				t.Errorf("old graph on unrounded pixels: |Δ hp_logit| %.3g, |Δ image_embeds| %.3g; want ≤ 5e-3", dLogit, dEmb)
			}
		})
	}
}

func openHP(t *testing.T, path string, outs []string) *models.Session {
	t.Helper()
	s, err := models.OpenSession(path, clip.InputPixels, outs, models.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func runOrFatal[T any](t *testing.T, f func(context.Context, []T, int) ([][]float32, error), in []T, n int) [][]float32 {
	t.Helper()
	out, err := f(context.Background(), in, n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// firstBitDiff is the first index where a and b differ in their bits (or in
// length), -1 when they are identical.
func firstBitDiff(a, b []float32) int {
	for i := range a {
		if i >= len(b) || math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	if len(a) != len(b) {
		return len(a)
	}
	return -1
}
