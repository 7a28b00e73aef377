//go:build !linux

package preprocess

import "testing"

// fenced returns n bytes (without a fence: only Linux maps an inaccessible page after them).
func fenced(t *testing.T, n int) []byte {
	t.Helper()
	return make([]byte, n)
}
