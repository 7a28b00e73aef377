package server

import (
	"bytes"
	"runtime"
	"testing"
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
