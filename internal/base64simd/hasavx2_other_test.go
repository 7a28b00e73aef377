//go:build !amd64 || purego

package base64simd

func hasAVX2() bool { return false }
