package clipscore_test

import (
	"math"
	"testing"

	"github.com/icthp/icthp/clipscore"
	"github.com/icthp/icthp/scorer"
)

// Hand-computed: 2.5 × 0.3 = 0.75; a negative cosine clamps to 0;
// 100 × 0.31 = 31.
func TestFormula(t *testing.T) {
	for _, tc := range []struct{ w, cos, want float64 }{{2.5, 0.3, 0.75}, {2.5, -0.2, 0}, {100, 0.31, 31}, {100, 0, 0}} {
		if got := clipscore.Score(tc.w, tc.cos); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Score(%v, %v) = %v, want %v", tc.w, tc.cos, got, tc.want)
		}
	}
}

// Head on unit embeddings: cos 0.6 → 1.5, cos −0.6 → 0.
func TestHead(t *testing.T) {
	txt := &scorer.Text{Embed: []float32{1, 0}}
	out, err := clipscore.Head(clipscore.Name, 2.5, []scorer.Pair{
		{Text: txt, Image: scorer.Features{Vec: []float32{0.6, 0.8}}},
		{Text: txt, Image: scorer.Features{Vec: []float32{-0.6, 0.8}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(out[0][0]-1.5) > 1e-6 || out[1][0] != 0 {
		t.Errorf("Head = %v, want [[1.5] [0]]", out)
	}
}
