package pickscore_test

import (
	"math"
	"testing"

	"github.com/icthp/icthp/pickscore"
	"github.com/icthp/icthp/scorer"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }

// Hand-computed: exp(ln 100) × 0.25 = 25; the softmax of [1, 2] is
// [1/(1+e), e/(1+e)]; a prompt with one image gets probability 1.
func TestFormula(t *testing.T) {
	if got := pickscore.Score(math.Log(100), 0.25); !near(got, 25) {
		t.Errorf("Score = %v, want 25", got)
	}
	a, b := &scorer.Text{}, &scorer.Text{}
	pairs := []scorer.Pair{{Text: a}, {Text: b}, {Text: a}}
	got := pickscore.GroupSoftmax(pairs, []float64{1, 5, 2})
	want := []float64{0.2689414213699951, 1, 0.7310585786300049}
	for i := range want {
		if !near(got[i], want[i]) {
			t.Errorf("prob[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	// Large scores (exp(logit_scale) is 100 for PickScore_v1) do not overflow.
	got = pickscore.GroupSoftmax(pairs[:1:1], []float64{1000})
	if got[0] != 1 {
		t.Errorf("single large score: %v", got)
	}
}

// Head on unit embeddings: cos 0.6 and 0.8 with logit_scale ln 10 give 6
// and 8, and probabilities 1/(1+e²), e²/(1+e²).
func TestHead(t *testing.T) {
	txt := &scorer.Text{Embed: []float32{1, 0}}
	pairs := []scorer.Pair{{Text: txt, Image: scorer.Features{Vec: []float32{0.6, 0.8}}}, {Text: txt, Image: scorer.Features{Vec: []float32{0.8, 0.6}}}}
	out, err := pickscore.Head(math.Log(10), pairs)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]float64{{6, 0.11920292202211755}, {8, 0.8807970779778823}}
	for i := range want {
		for j := range want[i] {
			if math.Abs(out[i][j]-want[i][j]) > 1e-6 { // embeddings are float32
				t.Errorf("out[%d][%d] = %v, want %v", i, j, out[i][j], want[i][j])
			}
		}
	}
	if _, err := pickscore.Head(math.Log(10), []scorer.Pair{{Image: scorer.Features{Vec: []float32{1}}}}); err == nil {
		t.Error("a pair without text embedding was scored")
	}
}
