package compare

import (
	"math"
	"slices"
	"testing"
)

// Every expected value here is worked by hand from the definitions (shown beside it).

func TestCosine(t *testing.T) {
	for _, c := range []struct {
		name string
		x, y []float32
		want float64
	}{
		{"orthogonal", []float32{1, 0}, []float32{0, 1}, 0},
		{"(1,2,2)·(2,1,2) = 8, norms 3 and 3", []float32{1, 2, 2}, []float32{2, 1, 2}, 8.0 / 9},
		{"45 degrees", []float32{1, 0}, []float32{1, 1}, 1 / math.Sqrt2},
		{"opposite", []float32{3, 4}, []float32{-3, -4}, -1},
		{"parallel, other length", []float32{1, 1}, []float32{2, 2}, 1},
		{"zero vector", []float32{0, 0}, []float32{1, 2}, 0},
		{"empty", nil, nil, 0},
	} {
		if got := Cosine(c.x, c.y); math.Abs(got-c.want) > 1e-15 || got > 1 || got < -1 {
			t.Errorf("%s: Cosine = %.17g, want %.17g", c.name, got, c.want)
		}
	}
}

func TestMinMeanAndAbsDeltas(t *testing.T) {
	if lo, mean, ok := MinMean([]float64{0.5, 1, 0.75}); !ok || lo != 0.5 || mean != 0.75 {
		t.Errorf("MinMean(0.5 1 0.75) = %v %v %v, want 0.5 0.75 true", lo, mean, ok)
	}
	if _, _, ok := MinMean(nil); ok {
		t.Error("MinMean of nothing is defined")
	}
	for _, c := range []struct {
		name string
		x, y []float64
		want Deltas
	}{
		{"|Δ| = 0.5 0 2", []float64{1, 2, 3}, []float64{1.5, 2, 1}, Deltas{MaxAbs: 2, MeanAbs: 2.5 / 3}},
		{"equal", []float64{-1, 4}, []float64{-1, 4}, Deltas{}},
		{"one value", []float64{-2}, []float64{3}, Deltas{MaxAbs: 5, MeanAbs: 5}},
	} {
		if got := AbsDeltas(c.x, c.y); got != c.want {
			t.Errorf("%s: AbsDeltas = %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestRanks(t *testing.T) {
	for _, c := range []struct {
		x, want []float64
	}{
		{[]float64{10, 30, 20}, []float64{1, 3, 2}},
		{[]float64{10, 30, 20, 20}, []float64{1, 4, 2.5, 2.5}}, // the 20s hold positions 2 and 3
		{[]float64{5, 5, 5}, []float64{2, 2, 2}},
		{[]float64{-1, 7, 7, -1, 0}, []float64{1.5, 4.5, 4.5, 1.5, 3}},
		{nil, []float64{}},
	} {
		if got := Ranks(c.x); !slices.Equal(got, c.want) {
			t.Errorf("Ranks(%v) = %v, want %v", c.x, got, c.want)
		}
	}
}

// Spearman with ties uses average ranks (x = 1 2 2 3 ranks as 1 2.5 2.5 4 against 1 2 3 4:
// centred, -1.5 0 0 1.5 and -1.5 -0.5 0.5 1.5, so r = 4.5/√(4.5·5) = 4.5/√22.5); without
// ties it is 1 - 6Σd²/(n(n²-1)) (ranks 1 2 3 4 5 and 2 1 4 3 5: Σd² = 4, r = 1 - 24/120);
// it is undefined for one value or no variance; a pair tied by one score only is out of
// order.
func TestSpearmanAndPairs(t *testing.T) {
	for _, c := range []struct {
		name        string
		x, y        []float64
		spearman    float64 // NaN: undefined
		pairs, same int
	}{
		{"ties", []float64{1, 2, 2, 3}, []float64{1, 2, 3, 4}, 4.5 / math.Sqrt(22.5), 6, 5},
		{"two swaps", []float64{1, 2, 3, 4, 5}, []float64{2, 1, 4, 3, 5}, 0.8, 10, 8},
		{"reversed", []float64{1, 2, 3}, []float64{-1, -5, -9}, -1, 3, 0},
		{"same order, other scale", []float64{0.1, 0.5, 0.2}, []float64{10, 50, 20}, 1, 3, 3},
		{"ties in both", []float64{1, 1, 2}, []float64{5, 5, 7}, 1, 3, 3},
		{"one side constant", []float64{1, 1, 1}, []float64{1, 2, 3}, math.NaN(), 3, 0},
		{"one value", []float64{1}, []float64{2}, math.NaN(), 0, 0},
		{"none", nil, nil, math.NaN(), 0, 0},
	} {
		s, ok := Spearman(c.x, c.y)
		if math.IsNaN(c.spearman) == ok || (ok && math.Abs(s-c.spearman) > 1e-15) {
			t.Errorf("%s: Spearman = %v (defined %v), want %v", c.name, s, ok, c.spearman)
		}
		if p, same := SameOrderPairs(c.x, c.y); p != c.pairs || same != c.same {
			t.Errorf("%s: %d of %d pairs in order, want %d of %d", c.name, same, p, c.same, c.pairs)
		}
	}
}
