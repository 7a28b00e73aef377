//go:build !unix

package preprocess

// processCPU is not measured on this platform.
func processCPU() float64 { return -1 }
