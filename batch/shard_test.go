package batch

import (
	"fmt"
	"testing"
)

func TestParseShard(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Shard
		ok   bool
	}{
		{"", Shard{0, 1}, true}, {"0/1", Shard{0, 1}, true}, {"3/8", Shard{3, 8}, true}, {" 1 / 2 ", Shard{1, 2}, true},
		{"8/8", Shard{}, false}, {"-1/4", Shard{}, false}, {"1/0", Shard{}, false}, {"1", Shard{}, false}, {"a/b", Shard{}, false},
	} {
		got, err := ParseShard(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParseShard(%q) = %v, %v; want %v, ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

// TestKeyHash pins the split to FNV-1a 64 (published test vectors), so that
// workers built from different versions still agree.
func TestKeyHash(t *testing.T) {
	for in, want := range map[string]uint64{"": 0xcbf29ce484222325, "a": 0xaf63dc4c8601ec8c, "foobar": 0x85944171f73967e8} {
		if got := KeyHash(in); got != want {
			t.Errorf("KeyHash(%q) = %#x, want %#x", in, got, want)
		}
	}
}

// TestShardsPartition checks that the shards of N cover every item exactly
// once, whatever N, and that a shard's items keep their order.
func TestShardsPartition(t *testing.T) {
	items := make([]Item, 5000)
	for i := range items {
		items[i].Key = fmt.Sprintf("%05d/%d", i, i*i)
	}
	for _, n := range []int{1, 2, 3, 7, 16} {
		owner := make(map[string]int, len(items))
		for i := 0; i < n; i++ {
			sh := Shard{i, n}
			part := sh.Filter(items)
			if n > 1 && (len(part) < len(items)/n/2 || len(part) > 2*len(items)/n) {
				t.Errorf("shard %v has %d of %d items: badly balanced", sh, len(part), len(items))
			}
			last := -1
			for _, it := range part {
				if o, dup := owner[it.Key]; dup {
					t.Fatalf("N=%d: %q in shards %d and %d", n, it.Key, o, i)
				}
				owner[it.Key] = i
				var idx int
				fmt.Sscanf(it.Key, "%05d", &idx)
				if idx <= last {
					t.Fatalf("shard %v out of order at %q", sh, it.Key)
				}
				last = idx
			}
		}
		if len(owner) != len(items) {
			t.Errorf("N=%d: shards cover %d of %d items", n, len(owner), len(items))
		}
	}
}

func TestOutputPath(t *testing.T) {
	for _, c := range []struct {
		sh       Shard
		out, got string
	}{
		{Shard{0, 1}, "out/scores.parquet", "out/scores.parquet"},
		{Shard{3, 12}, "out/scores.parquet", "out/scores-00003-of-00012.parquet"},
		{Shard{0, 2}, "s.jsonl", "s-00000-of-00002.jsonl"},
	} {
		if g := c.sh.OutputPath(c.out); g != c.got {
			t.Errorf("%v.OutputPath(%q) = %q, want %q", c.sh, c.out, g, c.got)
		}
	}
}
