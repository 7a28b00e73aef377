package server

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/bits"
	"runtime"
	"testing"
	"testing/iotest"
)

// Body buffers outlive garbage collections up to the kept bound: a
// buffer grown for a big body is handed out again after two collections
// (a sync.Pool alone drops it), and what is kept never passes the bound.
func TestBodyBuffersKeptAcrossCollections(t *testing.T) {
	const maxBody = 1 << 20 // keeps 2 MiB
	b := newBodyBuffers(maxBody)
	grown := func(n int) *bytes.Buffer {
		buf := b.get()
		buf.Write(make([]byte, n))
		return buf
	}
	big := grown(900 << 10)
	c := big.Cap()
	b.put(big)
	runtime.GC()
	runtime.GC()
	if got := b.get(); got != big || got.Len() != 0 {
		t.Fatalf("after two collections: buffer of cap %d, len %d; want the kept one of cap %d, empty", got.Cap(), got.Len(), c)
	}
	bufs := []*bytes.Buffer{big, grown(900 << 10), grown(900 << 10), grown(900 << 10)}
	for _, buf := range bufs {
		b.put(buf)
	}
	if b.bytes > b.keep || len(b.kept) == 0 {
		t.Errorf("kept %d buffers, %d bytes; bound %d", len(b.kept), b.bytes, b.keep)
	}
	sum := 0
	for i, k := range b.kept {
		sum += k.Cap()
		if i > 0 && b.kept[i-1].Cap() > k.Cap() {
			t.Errorf("kept out of order: %d before %d", b.kept[i-1].Cap(), k.Cap())
		}
	}
	if sum != b.bytes {
		t.Errorf("kept capacity %d, counted %d", sum, b.bytes)
	}
	huge := grown(3 << 20) // past 2 × maxBody: dropped
	n := len(b.kept)
	b.put(huge)
	if len(b.kept) != n {
		t.Errorf("a buffer past the size limit was kept")
	}
	for range len(b.kept) {
		b.get()
	}
	if b.bytes != 0 {
		t.Errorf("all taken, %d bytes still counted", b.bytes)
	}
}

// readBody returns the whole body, whatever the reads' sizes, and grows its
// buffer only with what arrived: to at most the declared length plus one
// (a body that keeps to it), else at most four times what was read; a
// buffer large enough is used as it is.
func TestReadBody(t *testing.T) {
	errCut := errors.New("connection reset")
	cases := []struct {
		name     string
		size     int   // bytes sent
		declared int64 // Content-Length; -1 none
		chunk    int   // largest read
		cut      bool  // the body stops with errCut after size bytes
	}{
		{"empty", 0, 0, 1000, false},
		{"empty, undeclared", 0, -1, 1000, false},
		{"one byte", 1, 1, 1, false},
		{"at the first size", bodyStart, bodyStart, 4096, false},
		{"just past it", bodyStart + 1, bodyStart + 1, 4096, false},
		{"5 MB declared", 5 << 20, 5 << 20, 60000, false},
		{"5 MB undeclared", 5 << 20, -1, 60000, false},
		{"300 kB in one-byte reads", 300000, 300000, 1, false},
		{"declared far more than sent", 200000, 1 << 40, 60000, true},
		{"declared the largest length", 200000, math.MaxInt64, 60000, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := make([]byte, c.size)
			for i := range body {
				body[i] = byte(i * 7)
			}
			var r io.Reader = &chunkReader{data: body, max: c.chunk}
			if c.cut {
				r = io.MultiReader(r, iotest.ErrReader(errCut))
			}
			var buf bytes.Buffer
			got, err := readBody(&buf, r, c.declared)
			limit := max(bodyStart, 4*c.size)
			if c.declared >= 0 && c.declared < 1<<40 {
				limit = max(bodyStart, 1<<bits.Len64(uint64(c.declared))) // the power of two above it
			}
			if buf.Cap() > limit {
				t.Errorf("buffer grew to %d for %d bytes (declared %d); want at most %d", buf.Cap(), c.size, c.declared, limit)
			}
			if c.cut {
				if !errors.Is(err, errCut) || got != nil {
					t.Fatalf("%d bytes, error %v; want the read's error", len(got), err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, body) || !bytes.Equal(buf.Bytes(), body) {
				t.Fatalf("%d bytes (buffer %d), error %v; want the %d sent", len(got), buf.Len(), err, c.size)
			}
			// Again into the same buffer, emptied: no new memory for a body that fits.
			buf.Reset()
			before := buf.Cap()
			got, err = readBody(&buf, &chunkReader{data: body, max: c.chunk}, c.declared)
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("reused: %d bytes, error %v", len(got), err)
			}
			if c.size > 0 && c.size < before && (buf.Cap() != before || &got[0] != &buf.Bytes()[0]) {
				t.Errorf("reused buffer of cap %d: now cap %d; want it used as it was", before, buf.Cap())
			}
		})
	}
}

// chunkReader returns data in reads of at most max bytes.
type chunkReader struct {
	data []byte
	max  int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.max)], r.data)
	r.data = r.data[n:]
	return n, nil
}
