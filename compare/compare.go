// Package compare holds the statistics of `icthp models compare`: how closely two models
// agree on the same images (embedding cosines, score differences, rank correlation and
// pair order). It knows nothing of models or files: it takes the numbers both sides gave.
package compare

import (
	"math"
	"sort"
)

// Cosine is the cosine of two vectors of equal length, accumulated in float64 and clamped
// to [-1, 1] (embeddings are normalised already; dividing again keeps the figure a cosine
// for any input). It is 0 when either vector is all zeros.
func Cosine(x, y []float32) float64 {
	var dot, nx, ny float64
	for i := range x {
		a, b := float64(x[i]), float64(y[i])
		dot, nx, ny = dot+a*b, nx+a*a, ny+b*b
	}
	if nx == 0 || ny == 0 {
		return 0
	}
	return math.Max(-1, math.Min(1, dot/math.Sqrt(nx*ny)))
}

// MinMean returns the smallest value of v and the mean; ok is false for no values.
func MinMean(v []float64) (lo, mean float64, ok bool) {
	if len(v) == 0 {
		return 0, 0, false
	}
	lo, sum := math.Inf(1), 0.0
	for _, c := range v {
		lo, sum = math.Min(lo, c), sum+c
	}
	return lo, sum / float64(len(v)), true
}

// Deltas are the absolute differences of one score between the two sides.
type Deltas struct {
	MaxAbs  float64 `json:"max_abs"`
	MeanAbs float64 `json:"mean_abs"`
}

// AbsDeltas returns the largest and the mean |x[i] - y[i]| of x and y (equal lengths, at
// least one value).
func AbsDeltas(x, y []float64) Deltas {
	var d Deltas
	for i := range x {
		v := math.Abs(x[i] - y[i])
		d.MaxAbs, d.MeanAbs = math.Max(d.MaxAbs, v), d.MeanAbs+v
	}
	d.MeanAbs /= float64(len(x))
	return d
}

// Ranks returns the 1-based ranks of x, tied values sharing the average of their
// positions (as scipy.stats.rankdata's default).
func Ranks(x []float64) []float64 {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return x[idx[a]] < x[idx[b]] })
	r := make([]float64, len(x))
	for lo := 0; lo < len(idx); {
		hi := lo + 1
		for hi < len(idx) && x[idx[hi]] == x[idx[lo]] {
			hi++
		}
		avg := float64(lo+1+hi) / 2 // mean of positions lo+1 … hi
		for _, i := range idx[lo:hi] {
			r[i] = avg
		}
		lo = hi
	}
	return r
}

// Spearman is Spearman's rank correlation of x and y: Pearson's correlation of their
// average ranks. ok is false for fewer than two values or when either side has all its
// values tied (no variance: undefined).
func Spearman(x, y []float64) (rho float64, ok bool) {
	n := len(x)
	if n < 2 {
		return 0, false
	}
	rx, ry := Ranks(x), Ranks(y)
	mean := float64(n+1) / 2 // the mean rank, with or without ties
	var sxy, sxx, syy float64
	for i := range rx {
		a, b := rx[i]-mean, ry[i]-mean
		sxy, sxx, syy = sxy+a*b, sxx+a*a, syy+b*b
	}
	if sxx == 0 || syy == 0 {
		return 0, false
	}
	return math.Max(-1, math.Min(1, sxy/math.Sqrt(sxx*syy))), true
}

// SameOrderPairs counts the pairs of items and those the two scores put in the same
// order: both say i is above j, both below, or both tie them. It is quadratic, which costs
// less than encoding the images did even at 100,000.
func SameOrderPairs(x, y []float64) (pairs, same int) {
	sign := func(d float64) int {
		switch {
		case d > 0:
			return 1
		case d < 0:
			return -1
		}
		return 0
	}
	for i := range x {
		for j := i + 1; j < len(x); j++ {
			pairs++
			if sign(x[i]-x[j]) == sign(y[i]-y[j]) {
				same++
			}
		}
	}
	return pairs, same
}
