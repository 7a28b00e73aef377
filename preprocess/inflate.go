package preprocess

import (
	"encoding/binary"
	"sync"
)

// The PNG fast path's IDAT stream is inflated by flateDecoder (deflate.go), whole-buffer:
// the inflated size is known exactly from the header (h × (1 + row bytes)). Measured on a
// noisy 1024² RGB PNG (2.18 MB of DEFLATE, 3.1 MB out; BENCHMARKS.md), CPU time per
// inflate: compress/zlib about 20 ms, libdeflate 6.6 ms plus the strict walk that held it
// to compress/flate's rules 12 ms, flateDecoder 8.3 ms with the Adler-32. Inflate is lossless:
// every inflater gives the same bytes on the streams it accepts; flateDecoder accepts
// exactly those compress/zlib accepts (FuzzInflate), so the fast path refuses a damaged
// stream exactly when the image/png path (checked against Pillow) does.

// inflater is a decoder's state (its tables, about 30 KB) and the buffer that joins split
// IDAT chunks into one contiguous stream.
type inflater struct {
	dec  flateDecoder
	join []byte
}

var inflaterPool = sync.Pool{New: func() any { return new(inflater) }}

func getInflater() *inflater { return inflaterPool.Get().(*inflater) }

func putInflater(in *inflater) {
	if cap(in.join) > maxPooledBuf {
		in.join = nil
	}
	inflaterPool.Put(in)
}

// pngInflate fills dst with the zlib stream held in the IDAT bodies and reports whether
// the stream had exactly len(dst) bytes, a valid checksum, and only what compress/zlib
// accepts. Data after the stream is ignored, as compress/zlib and Pillow ignore it.
func pngInflate(dst []byte, idat [][]byte) bool {
	in := getInflater()
	defer putInflater(in)
	return in.zlib(dst, in.joined(idat))
}

// joined is the IDAT bodies as one stream: the only body, or their copy in in.join.
func (in *inflater) joined(idat [][]byte) []byte {
	if len(idat) == 1 {
		return idat[0]
	}
	n := 0
	for _, b := range idat {
		n += len(b)
	}
	if cap(in.join) < n {
		in.join = make([]byte, 0, n)
	}
	src := in.join[:0]
	for _, b := range idat {
		src = append(src, b...)
	}
	return src
}

// zlib reports whether src starts with a zlib stream (RFC 1950) that compress/zlib reads
// as exactly len(dst) bytes, which it writes to dst: compress/zlib's header checks
// (deflate, a window of at most 32 KiB, the check bits, no preset dictionary), the
// DEFLATE stream, then its Adler-32.
func (in *inflater) zlib(dst, src []byte) bool {
	if len(dst) == 0 || len(src) < 2 {
		return false
	}
	if src[0]&0x0f != 8 || src[0]>>4 > 7 || (uint16(src[0])<<8|uint16(src[1]))%31 != 0 || src[1]&0x20 != 0 {
		return false
	}
	end, ok := in.dec.inflate(dst, src[2:])
	if !ok || len(src)-2-end < 4 {
		return false
	}
	return binary.BigEndian.Uint32(src[2+end:]) == adlerSum(dst)
}
