// Package pngsimd holds an AVX kernel of preprocess's PNG decoding: the Paeth filter
// undone for pixels of 3 or 4 bytes, one pixel per step with its channels in 16-bit lanes.
//
// The Paeth predictor of a byte depends on the byte just decoded to its left, so a row is
// one chain of dependent steps per channel; in Go the three channels of an RGB row each
// ran their own chain (about 8 cycles a byte: the interleaved form spilled registers and
// ran no faster). Here the channels share each step's instructions.
//
// It lives in its own package because Go assembly cannot sit in a package that uses cgo
// (preprocess does, for libjpeg-turbo). The kernel takes raw pointers and reads and writes
// exactly what its documentation says; preprocess checks every bound before it calls it.
// On other architectures (or with -tags purego) the package is empty.
package pngsimd
