package cache

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/icthp/icthp/cache/redistest"
)

// BenchmarkMemoryPerEntry measures what one image entry (an embedding with
// the image's width and height) costs in Redis (used_memory) and in the
// in-process tier (Go heap), at the embedding widths of ViT-B/32, ViT-L/14
// and ViT-H-14, stored as float32 and float16. Reported per entry; times a
// million gives the memory per million embeddings.
//
//	go test ./cache -run '^$' -bench MemoryPerEntry -benchtime 1x
func BenchmarkMemoryPerEntry(b *testing.B) {
	const entries = 20000
	srv := redistest.Start(b)
	for _, dim := range []int{512, 768, 1024} {
		for _, f16 := range []bool{false, true} {
			b.Run(fmt.Sprintf("dim=%d/float16=%v", dim, f16), func(b *testing.B) {
				if _, err := srv.CLI("flushall"); err != nil {
					b.Fatal(err)
				}
				rdb, err := NewRedis(srv.URL(), 0)
				if err != nil {
					b.Fatal(err)
				}
				c, err := New(Options{Redis: rdb, LocalBytes: 1 << 30, Float16: f16, Logger: quiet()})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				before := usedMemory(b, srv)
				var ms0, ms1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms0)
				for start := 0; start < entries; start += 500 {
					keys := make([]Key, 500)
					for i := range keys {
						keys[i] = Key{Version: "clip-0123456789abcdef", Kind: KindImage, Sum: BytesSum([]byte(strconv.Itoa(start + i)))}
					}
					_, _, err := c.Resolve(context.Background(), keys, func(_ context.Context, missing []int) ([]Value, []error, error) {
						vals := make([]Value, len(missing))
						for k := range vals {
							vals[k] = Value{Vec: make([]float32, dim), Scalars: []float64{512, 512}}
						}
						return vals, nil, nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				c.local.CleanUp()
				runtime.GC()
				runtime.ReadMemStats(&ms1)
				if st := c.Stats(); st.RedisErrors != 0 {
					b.Fatalf("redis errors: %+v", st)
				}
				b.ReportMetric(float64(usedMemory(b, srv)-before)/entries, "redis-B/entry")
				b.ReportMetric(float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc))/entries, "local-heap-B/entry")
				b.ReportMetric(float64(c.Stats().LocalBytes)/entries, "local-weight-B/entry")
				runtime.KeepAlive(c)
			})
		}
	}
}

func usedMemory(b *testing.B, s *redistest.Server) int64 {
	b.Helper()
	out, err := s.CLI("info", "memory")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no used_memory in INFO")
	return 0
}
