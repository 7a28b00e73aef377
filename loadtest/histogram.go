package loadtest

import (
	"math"
	"math/bits"
)

// Histogram is a log-linear histogram of non-negative integer values (the
// load generator records latencies in nanoseconds), in the manner of an HDR
// histogram: values below 2·SubBuckets are counted exactly, and every
// power-of-two range [2^k, 2^(k+1)) above that is cut into SubBuckets equal
// buckets. A bucket [L, L+w) therefore has w ≤ L/SubBuckets, and the value a
// percentile reports (the bucket's middle) is within HistogramRelErr of the
// exact sample quantile (nearest rank), whatever the distribution. Memory is
// fixed (about 58 KiB) however many values are recorded; Max, Min and Mean
// are exact.
//
// A Histogram is not safe for concurrent use.
type Histogram struct {
	counts [numBuckets]uint64
	n      uint64
	sum    float64
	min    uint64
	max    uint64
}

const (
	subBits = 7
	// SubBuckets is the number of buckets in each power-of-two range.
	SubBuckets = 1 << subBits
	// HistogramRelErr bounds the relative error of a reported percentile:
	// |reported − exact| ≤ HistogramRelErr × exact (half a bucket's width).
	HistogramRelErr = 1.0 / (2 * SubBuckets)

	numBuckets = (64 - subBits + 1) * SubBuckets
)

// bucketOf returns the index of v's bucket.
func bucketOf(v uint64) int {
	n := bits.Len64(v)
	if n <= subBits+1 {
		return int(v) // exact: 0 … 2·SubBuckets−1
	}
	shift := n - (subBits + 1)
	return shift*SubBuckets + int(v>>uint(shift))
}

// bucketRange returns the lowest value of bucket i and its width.
func bucketRange(i int) (low, width uint64) {
	if i < 2*SubBuckets {
		return uint64(i), 1
	}
	shift := i/SubBuckets - 1
	sub := uint64(i - shift*SubBuckets) // in [SubBuckets, 2·SubBuckets)
	return sub << uint(shift), 1 << uint(shift)
}

// Record adds one value; negative values count as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	h.counts[bucketOf(u)]++
	if h.n == 0 || u < h.min {
		h.min = u
	}
	if u > h.max {
		h.max = u
	}
	h.n++
	h.sum += float64(u)
}

// Merge adds every value recorded in o.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest value recorded (exact), 0 when empty.
func (h *Histogram) Max() int64 { return int64(h.max) }

// Min is the smallest value recorded (exact), 0 when empty.
func (h *Histogram) Min() int64 { return int64(h.min) }

// Mean is the exact mean of the values recorded, 0 when empty.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1) by nearest rank: an estimate
// of the smallest recorded value v such that at least ⌈q·n⌉ values are ≤ v,
// within HistogramRelErr of it, and never outside [Min, Max]. It is 0 when
// the histogram is empty.
func (h *Histogram) Quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	if q <= 0 {
		return float64(h.min)
	}
	if q >= 1 {
		return float64(h.max)
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			low, width := bucketRange(i)
			mid := float64(low) + float64(width-1)/2
			return math.Min(math.Max(mid, float64(h.min)), float64(h.max))
		}
	}
	return float64(h.max)
}
