package batch

import (
	"fmt"
	"hash/fnv"
	"path/filepath"
	"strconv"
	"strings"
)

// Shard is one of N disjoint slices of a dataset: I in [0, N).
type Shard struct{ I, N int }

// ParseShard reads "I/N" (0 <= I < N); "" is the whole dataset (0/1).
func ParseShard(s string) (Shard, error) {
	if s == "" {
		return Shard{0, 1}, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("shard %q: want I/N with 0 <= I < N, e.g. 0/4", s)
	}
	return Shard{i, n}, nil
}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.I, s.N) }

// Whole reports whether the shard is the whole dataset.
func (s Shard) Whole() bool { return s.N <= 1 }

// KeyHash is the hash the split uses: FNV-1a, 64 bit, of the key's bytes.
func KeyHash(key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return h.Sum64()
}

// Contains reports whether the item with this key belongs to the shard:
// KeyHash(key) mod N == I. The split depends on the key only, so workers
// that list the inputs in different orders still agree.
func (s Shard) Contains(key string) bool {
	if s.Whole() {
		return true
	}
	return KeyHash(key)%uint64(s.N) == uint64(s.I)
}

// Filter keeps the shard's items, in order.
func (s Shard) Filter(items []Item) []Item {
	if s.Whole() {
		return items
	}
	out := make([]Item, 0, len(items)/s.N+1)
	for _, it := range items {
		if s.Contains(it.Key) {
			out = append(out, it)
		}
	}
	return out
}

// OutputPath is where a shard's output goes: out itself for the whole
// dataset, else out with "-IIIII-of-NNNNN" before its extension, so that
// one command line serves every worker of an indexed job.
func (s Shard) OutputPath(out string) string {
	if s.Whole() {
		return out
	}
	ext := filepath.Ext(out)
	return fmt.Sprintf("%s-%05d-of-%05d%s", strings.TrimSuffix(out, ext), s.I, s.N, ext)
}
