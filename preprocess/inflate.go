//go:build cgo

package preprocess

// The PNG fast path's IDAT stream is inflated by libdeflate (Debian libdeflate0, 1.14),
// whole-buffer: the inflated size is known exactly from the header (h × (1 + row bytes)),
// which is the case libdeflate is built for. Measured on the 1024² RGB benchmark PNG
// (BENCHMARKS.md, "Inflating the PNG stream with libdeflate"), CPU time per inflate:
// compress/zlib 6.7–7.7 ms, klauspost/compress/zlib 5.5–6.2 ms, the system zlib (Pillow's)
// 5.4–5.5 ms, libdeflate 1.3–1.4 ms. Inflate is lossless, so they all give the same bytes
// on the streams they all accept; but libdeflate accepts a few malformed ones the others
// refuse (see deflateCheck), so a strict walk of the stream (1.5–1.8 ms) follows it. The
// fast path then takes exactly the streams compress/zlib takes, in about 40 % of its CPU
// time, and leaves the others to image/png as before. (A pure-Go inflater is the way to
// drop the C dependency; the walk is most of one.)

/*
#cgo LDFLAGS: -ldeflate
#include <stddef.h>
#include <libdeflate.h>

// icthp_zlib inflates the zlib stream at the start of in[0:n] into exactly out[0:m]; it
// returns the number of input bytes the stream took, or -1 (libdeflate's result code is not needed:
// every failure sends the file to image/png).
static long long icthp_zlib(struct libdeflate_decompressor *d, const void *in, size_t n, void *out, size_t m) {
	size_t used = 0;
	if (libdeflate_zlib_decompress_ex(d, in, n, out, m, &used, NULL) != LIBDEFLATE_SUCCESS) return -1;
	return (long long)used;
}

// icthp_deflate_any inflates the raw DEFLATE stream at the start of in[0:n] into up to m
// bytes of out; it returns the output size and sets *used to the stream's length, or -1.
static long long icthp_deflate_any(struct libdeflate_decompressor *d, const void *in, size_t n, void *out, size_t m, size_t *used) {
	size_t got = 0;
	if (libdeflate_deflate_decompress_ex(d, in, n, out, m, used, &got) != LIBDEFLATE_SUCCESS) return -1;
	return (long long)got;
}
*/
import "C"

import (
	"runtime"
	"sync"
	"unsafe"
)

// inflater is a libdeflate decompressor (its decode tables, about 10 KB of C memory, freed
// when the pool drops it), the strict walk's state, and the buffer that joins split IDAT
// chunks into the one contiguous stream libdeflate reads.
type inflater struct {
	d     *C.struct_libdeflate_decompressor
	check deflateCheck
	join  []byte
}

var inflaterPool sync.Pool

func getInflater() *inflater {
	if v := inflaterPool.Get(); v != nil {
		return v.(*inflater)
	}
	d := C.libdeflate_alloc_decompressor()
	if d == nil {
		return nil
	}
	in := &inflater{d: d}
	runtime.AddCleanup(in, func(d *C.struct_libdeflate_decompressor) { C.libdeflate_free_decompressor(d) }, d)
	return in
}

func putInflater(in *inflater) {
	if cap(in.join) > maxPooledBuf {
		in.join = nil
	}
	inflaterPool.Put(in)
}

// pngInflate fills dst with the zlib stream held in the IDAT bodies and reports whether
// the stream had exactly len(dst) bytes, a valid checksum, and only what compress/zlib
// accepts. Data after the stream is ignored, as compress/zlib (the fast path before
// libdeflate) and Pillow ignore it.
func pngInflate(dst []byte, idat [][]byte) bool {
	in := getInflater()
	if in == nil {
		return false
	}
	defer putInflater(in)
	src := in.joined(idat)
	n, ok := in.zlib(dst, src)
	return ok && in.check.strictCheck(src[2:n-4])
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

// zlib is libdeflate alone: whether src starts with a zlib stream of exactly len(dst)
// bytes, which it writes to dst, and the stream's length in src.
func (in *inflater) zlib(dst, src []byte) (int, bool) {
	if len(dst) == 0 || len(src) < 2+1+4 { // header, one byte of DEFLATE, Adler-32
		return 0, false
	}
	used := C.icthp_zlib(in.d, unsafe.Pointer(&src[0]), C.size_t(len(src)), unsafe.Pointer(&dst[0]), C.size_t(len(dst)))
	return int(used), used >= 2+1+4 // -1: corrupt, shorter or longer than dst, bad checksum
}

// deflateAny is libdeflate alone on a raw DEFLATE stream of unknown size (up to max
// bytes), for the tests that cross-check it with compress/flate: the output and the
// stream's length in src.
func (in *inflater) deflateAny(src []byte, max int) ([]byte, int, bool) {
	if len(src) == 0 || max <= 0 {
		return nil, 0, false
	}
	out := make([]byte, max)
	used := new(C.size_t)
	n := C.icthp_deflate_any(in.d, unsafe.Pointer(&src[0]), C.size_t(len(src)), unsafe.Pointer(&out[0]), C.size_t(max), used)
	if n < 0 {
		return nil, 0, false
	}
	return out[:n], int(*used), true
}
