package server

import (
	"bytes"
	"io"
	"math/bits"
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

// bodyStart is the first capacity readBody gives an empty buffer.
const bodyStart = 64 << 10

// readBody reads r to its end into buf's memory and returns the bytes read,
// which stay buf's contents. An empty or full buffer grows fourfold as bytes
// arrive, from bodyStart (powers of two), and no further than the power of
// two above the declared length (declared < 0: none) while the body keeps
// to it.
// bytes.Buffer.ReadFrom doubles from 512 bytes and clears each new slice
// whole: a cold server faulted in about three times each 46 MB JSON body
// (BENCHMARKS.md). As before, what is allocated follows what arrives, at
// most four times it, never a declared length alone.
func readBody(buf *bytes.Buffer, r io.Reader, declared int64) ([]byte, error) {
	b := buf.Bytes()[:0]
	defer func() { *buf = *bytes.NewBuffer(b) }()
	for {
		if len(b) == cap(b) {
			n := max(bodyStart, 4*len(b))
			if declared >= int64(len(b)) && int64(n)-1 > declared { // (no overflow at a declared MaxInt64)
				// A power of two, as every size here: a kept buffer then takes
				// the next bodies of about the same size too.
				n = min(n, 1<<bits.Len64(uint64(declared)))
			}
			nb := make([]byte, len(b), n)
			copy(nb, b)
			b = nb
		}
		k, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+k]
		switch {
		case err == io.EOF:
			return b, nil
		case err != nil:
			return nil, err
		}
	}
}
