package loadtest

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// exactQuantile is the nearest-rank quantile of sorted values.
func exactQuantile(sorted []int64, q float64) float64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = max(rank, 1)
	return float64(sorted[rank-1])
}

func checkQuantiles(t *testing.T, name string, vals []int64) {
	t.Helper()
	var h Histogram
	var sum float64
	for _, v := range vals {
		h.Record(v)
		sum += float64(v)
	}
	sorted := slices.Clone(vals)
	slices.Sort(sorted)
	if h.Count() != uint64(len(vals)) {
		t.Fatalf("%s: count %d, want %d", name, h.Count(), len(vals))
	}
	if h.Max() != sorted[len(sorted)-1] || h.Min() != sorted[0] {
		t.Errorf("%s: min/max %d/%d, want %d/%d", name, h.Min(), h.Max(), sorted[0], sorted[len(sorted)-1])
	}
	if mean := sum / float64(len(vals)); math.Abs(h.Mean()-mean) > 1e-9*mean {
		t.Errorf("%s: mean %g, want %g", name, h.Mean(), mean)
	}
	for _, q := range []float64{0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999} {
		got, want := h.Quantile(q), exactQuantile(sorted, q)
		if math.Abs(got-want) > HistogramRelErr*want {
			t.Errorf("%s: q%g = %g, exact %g: relative error %.5f > %.5f",
				name, q, got, want, math.Abs(got-want)/want, HistogramRelErr)
		}
	}
}

func TestHistogramKnownDistributions(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 200_000

	uniform := make([]int64, n)
	for i := range uniform {
		uniform[i] = 1 + rng.Int64N(10_000_000) // 1 ns … 10 ms
	}
	checkQuantiles(t, "uniform", uniform)

	expo := make([]int64, n)
	for i := range expo {
		expo[i] = int64(rng.ExpFloat64() * 20e6) // mean 20 ms in ns
	}
	checkQuantiles(t, "exponential", expo)

	lognormal := make([]int64, n)
	for i := range lognormal {
		lognormal[i] = int64(math.Exp(rng.NormFloat64()*1.5 + math.Log(5e6))) // heavy tail around 5 ms
	}
	checkQuantiles(t, "lognormal", lognormal)

	// Every value 1 … 100000 once: q-quantile is exactly ⌈q·n⌉.
	seq := make([]int64, 100_000)
	for i := range seq {
		seq[i] = int64(i + 1)
	}
	checkQuantiles(t, "sequence", seq)

	// Small values are exact.
	small := []int64{0, 1, 2, 3, 200, 255}
	checkQuantiles(t, "small", small)
	var h Histogram
	for _, v := range small {
		h.Record(v)
	}
	if got := h.Quantile(0.5); got != 2 {
		t.Errorf("small median %g, want exactly 2", got)
	}
}

func TestHistogramExtremesAndMerge(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
	h.Record(-5) // counts as 0
	h.Record(math.MaxInt64)
	if h.Min() != 0 || h.Max() != math.MaxInt64 {
		t.Errorf("min/max %d/%d", h.Min(), h.Max())
	}
	if got := h.Quantile(1); got != float64(math.MaxInt64) {
		t.Errorf("q1 = %g", got)
	}
	if got := h.Quantile(0.99); math.Abs(got-float64(math.MaxInt64)) > HistogramRelErr*float64(math.MaxInt64) {
		t.Errorf("q0.99 = %g", got)
	}

	// Merging two halves gives the same quantiles as recording all.
	var a, b, all Histogram
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 10_000 {
		v := int64(rng.ExpFloat64() * 1e6)
		all.Record(v)
		if i%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(&b)
	for _, q := range []float64{0.5, 0.9, 0.99} {
		if a.Quantile(q) != all.Quantile(q) {
			t.Errorf("merged q%g %g != %g", q, a.Quantile(q), all.Quantile(q))
		}
	}
	if a.Count() != all.Count() || a.Max() != all.Max() || a.Min() != all.Min() {
		t.Error("merged count/min/max differ")
	}
}

// Every bucket's range contains exactly the values mapped to it, and buckets
// tile the line without gaps.
func TestHistogramBuckets(t *testing.T) {
	var prevEnd uint64
	for i := 0; i < numBuckets; i++ {
		low, w := bucketRange(i)
		if low != prevEnd {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, low, prevEnd)
		}
		if bucketOf(low) != i || bucketOf(low+w-1) != i {
			t.Fatalf("bucket %d [%d,+%d) maps to %d/%d", i, low, w, bucketOf(low), bucketOf(low+w-1))
		}
		if low >= 2*SubBuckets && float64(w) > float64(low)/SubBuckets {
			t.Fatalf("bucket %d too wide: %d at %d", i, w, low)
		}
		prevEnd = low + w
		if prevEnd == 0 && i != numBuckets-1 { // only the last bucket ends at 2^64
			t.Fatalf("bucket %d wraps", i)
		}
	}
	if bucketOf(math.MaxUint64) >= numBuckets {
		t.Fatal("max value out of range")
	}
}
