//go:build amd64 && !purego

package base64simd

import "golang.org/x/sys/cpu"

func hasAVX2() bool { return cpu.X86.HasAVX2 }
