//go:build cgo

package main

// cgoEnabled: with cgo, preprocess decodes JPEG with libjpeg-turbo, as
// Pillow does, so JPEG crops are Pillow-exact.
const cgoEnabled = true
