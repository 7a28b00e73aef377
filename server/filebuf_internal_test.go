package server

import "testing"

// A file buffer has the length asked for and a power-of-two capacity of at
// least 64 KiB; beyond the largest class it is a plain slice, never pooled.
func TestFileBuffers(t *testing.T) {
	var f fileBuffers
	for _, c := range []struct{ n, cap int }{
		{1, 64 << 10}, {64 << 10, 64 << 10}, {64<<10 + 1, 128 << 10}, {2_200_000, 4 << 20},
		{128 << 20, 128 << 20}, {128<<20 + 1, 128<<20 + 1},
	} {
		b := f.get(c.n)
		if len(b) != c.n || cap(b) != c.cap {
			t.Errorf("get(%d): len %d cap %d, want cap %d", c.n, len(b), cap(b), c.cap)
		}
		f.put(b) // the oversized one is dropped, the others pooled
	}
	if c := fileClass(128<<20 + 1); c < fileClasses {
		t.Errorf("class of 128 MiB + 1: %d, want ≥ %d (not pooled)", c, fileClasses)
	}
}
