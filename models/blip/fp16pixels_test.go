package blip_test

import (
	"context"
	"math"
	"testing"

	"github.com/x448/float16"

	"github.com/icthp/icthp/internal/blipref"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/blip"
)

// ImageReward's --fp16 vision graph takes float16 pixel_values; the older
// form (FP32Pixels) took float32 and cast inside. Fed the same pixels
// rounded on the host, the two give the same image tokens and scores, bit
// for bit; handed float32 pixels, the new graph rounds them as the host
// does. (The old graph on unrounded pixels differs on the CPU provider only,
// where onnxruntime drops its Cast: models/clip's
// TestHalfPixelGraphEqualsCastInside.)
func TestHalfPixelVisionEqualsCastInside(t *testing.T) {
	needORT(t)
	const n = 2
	c, err := blip.PresetConfig(blip.PresetTiny)
	if err != nil {
		t.Fatal(err)
	}
	w := blipref.RandomWeights(&c, 17)
	px, ids, mask := testInputs(&c, n, 6)
	half := make([]float16.Float16, len(px))
	models.HalfFromFloat32(half, px)
	so := models.SessionOptions{MaxBatch: n}
	oldM := convertAndOpen(t, &c, w, blip.BuildOptions{Fused: true, FP16: true, FP32Pixels: true}, so)
	newM := convertAndOpen(t, &c, w, blip.BuildOptions{Fused: true, FP16: true}, so)
	if oldM.vision.HalfInput() || !newM.vision.HalfInput() {
		t.Fatalf("half inputs: old graph %v, new graph %v; want false, true", oldM.vision.HalfInput(), newM.vision.HalfInput())
	}
	ctx := context.Background()
	tokens := func(s *models.Session, half []float16.Float16) []float32 {
		out, err := s.RunHalf(ctx, half, n)
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	want := tokens(newM.vision, half)
	_, newScores := newM.score(t, px, ids, mask, n) // float32 handed: rounded by the session
	for name, got := range map[string][]float32{"new graph, float32 handed": newFloatTokens(t, newM, px, n), "old graph, rounded pixels": tokens(oldM.vision, half)} {
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: image_tokens[%d] = %v, the new graph on host-rounded pixels gives %v", name, i, got[i], want[i])
			}
		}
	}
	oldScores, err := oldM.text.RunInputs(ctx, n, models.Input{Name: blip.InputIDs, Int64: ids},
		models.Input{Name: blip.InputMask, Int64: mask}, models.Input{Name: blip.InputImageTokens, Float: want})
	if err != nil {
		t.Fatal(err)
	}
	for i := range newScores {
		if math.Float32bits(newScores[i]) != math.Float32bits(oldScores[0][i]) {
			t.Errorf("score %d: %v (new form), %v (old form on the same tokens)", i, newScores[i], oldScores[0][i])
		}
	}
}

func newFloatTokens(t *testing.T, cv *converted, px []float32, n int) []float32 {
	t.Helper()
	out, err := cv.vision.RunFloat(context.Background(), px, n)
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}
