// Package pngsimd holds the vector kernels of preprocess's PNG decoding: the Paeth filter
// undone for pixels of 3 or 4 bytes, each pixel's channels in 16-bit lanes (AVX), for one
// row, two rows (AVX) or four rows (AVX2) at once; and the Up filter undone 32 bytes a
// step (AVX2).
//
// The Paeth predictor of a byte depends on the byte just decoded to its left, so a row is
// one chain of dependent steps per channel, and Go's branches on the predictor are
// mispredicted on detailed images (13–18 ms for a 1024² RGB image's rows). Here the
// channels share each step's instructions, the predictor is chosen without branches, and
// consecutive Paeth rows run side by side, each a pixel or two behind the one above (its
// upper neighbours are then decoded): 1.3–1.4 ms for the same rows.
//
// It lives in its own package because Go assembly cannot sit in a package that uses cgo
// (preprocess does, for libjpeg-turbo). The kernel takes raw pointers and reads and writes
// exactly what its documentation says; preprocess checks every bound before it calls it.
// On other architectures (or with -tags purego) the package is empty.
package pngsimd
