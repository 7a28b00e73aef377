//go:build !cgo

package preprocess

import "hash/adler32"

// adlerSum is hash/adler32's Checksum (with cgo, libdeflate's vectorised one).
func adlerSum(b []byte) uint32 { return adler32.Checksum(b) }
