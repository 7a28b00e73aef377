package server

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkRawReadOne reads one raw image's pixels from a body already in
// memory, as readOne does from a connection: what the buffer growth costs
// beside the read itself (the copies of what has arrived at each growth).
//
//	go test ./server -run '^$' -bench RawReadOne -cpu 1
func BenchmarkRawReadOne(b *testing.B) {
	for _, c := range []struct {
		name string
		sz   int
	}{
		{"512²", 512 * 512 * 3},
		{"1024²", 1024 * 1024 * 3},
		{"2048²", 2048 * 2048 * 3},
	} {
		b.Run(c.name, func(b *testing.B) {
			r, err := newRawBuffers(1<<30, prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			body := bytes.Repeat([]byte{7}, c.sz)
			src := bytes.NewReader(body)
			br := bufio.NewReaderSize(src, 64<<10)
			b.SetBytes(int64(c.sz))
			for b.Loop() {
				src.Reset(body)
				br.Reset(src)
				buf, err := r.readOne(br, c.sz)
				if err != nil || len(buf) != c.sz {
					b.Fatalf("%d bytes, %v", len(buf), err)
				}
				r.put(buf, true)
			}
		})
	}
}
