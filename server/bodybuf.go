package server

import (
	"bytes"
	"sync"
)

// bodyBuffers hands out the buffers JSON bodies are read into. Bodies of
// base64 images are tens of megabytes, and a buffer grown afresh as they
// arrive is cleared at every doubling: with a sync.Pool alone, which
// drops its buffers at each collection (frequent when requests carry
// megabytes), that clearing was 9 % of the server's CPU on 1024² PNGs sent
// as JSON (BENCHMARKS.md). So up to keep bytes of buffers are kept across
// collections; the rest go to the pool. The buffers still grow only with
// what clients send, never from a declared Content-Length.
type bodyBuffers struct {
	max  int // larger buffers are dropped
	keep int // bytes of capacity kept across collections

	mu    sync.Mutex
	kept  []*bytes.Buffer
	bytes int // capacity of kept
	pool  sync.Pool
}

func newBodyBuffers(maxBody int64) *bodyBuffers {
	b := &bodyBuffers{max: int(2*maxBody) + bytes.MinRead, keep: int(2 * maxBody)}
	b.pool.New = func() any { return new(bytes.Buffer) }
	return b
}

// get returns an empty buffer, the largest kept one if any.
func (b *bodyBuffers) get() *bytes.Buffer {
	b.mu.Lock()
	if n := len(b.kept); n > 0 {
		buf := b.kept[n-1]
		b.kept = b.kept[:n-1]
		b.bytes -= buf.Cap()
		b.mu.Unlock()
		return buf
	}
	b.mu.Unlock()
	return b.pool.Get().(*bytes.Buffer)
}

// put gives buf back once the body is decoded (api.UnmarshalRequest copies
// or decodes what it keeps: nothing it returns refers to the body).
func (b *bodyBuffers) put(buf *bytes.Buffer) {
	if buf.Cap() > b.max {
		return
	}
	buf.Reset()
	b.mu.Lock()
	if buf.Cap() > 64<<10 && b.bytes+buf.Cap() <= b.keep {
		// Kept largest last, so that get hands out the buffer least likely
		// to grow again.
		i := len(b.kept)
		for i > 0 && b.kept[i-1].Cap() > buf.Cap() {
			i--
		}
		b.kept = append(b.kept, nil)
		copy(b.kept[i+1:], b.kept[i:])
		b.kept[i] = buf
		b.bytes += buf.Cap()
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	b.pool.Put(buf)
}
