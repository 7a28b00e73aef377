package clip_test

import (
	"slices"
	"testing"

	"github.com/icthp/icthp/internal/clipref"
	"github.com/icthp/icthp/internal/cliptest"
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

// onnxruntime running the built graphs agrees with the float64 reference of
// transformers' equations, for both activations and both graph styles.
func TestGraphsMatchFloat64Reference(t *testing.T) {
	needORT(t)
	const n, tol = 4, 1e-4
	cliptest.EachVariant(t, func(t *testing.T, act clip.Activation, fused bool) {
		// The text session takes 3 items a run: 4 items are two runs.
		r := runTiny(t, act, n, clip.BuildOptions{Fused: fused}, runMode{textBatch: 3})
		got := r.against(t, r.references(t, false))
		worst := max(got.abs, got.logit)
		if worst > tol {
			t.Fatalf("max |onnxruntime − float64 reference| = %g > %g", worst, tol)
		}
		t.Logf("max abs difference %.3g", worst)
	})
}
