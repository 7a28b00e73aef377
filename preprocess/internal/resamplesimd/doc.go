// Package resamplesimd holds the AVX2 kernels of preprocess's Pillow-exact bicubic
// resampling (preprocess/resample.go): the horizontal pass over four rows at once for
// packed RGB, RGBX and gray pixels, and the vertical pass over one output row; and an
// AVX-512 kernel of the horizontal pass over eight rows of RGB or RGBX pixels.
//
// They live in their own package because Go assembly cannot sit in a package that uses
// cgo (preprocess does, for libjpeg-turbo). The kernels take raw pointers and read and
// write exactly what their documentation says; preprocess checks every bound before it
// calls them. On other architectures (or with -tags purego) the package is empty.
package resamplesimd
