// Package orttest is what tests that run real onnxruntime sessions share.
package orttest

import (
	"testing"

	"github.com/icthp/icthp/models/ortlib"
)

// Need loads onnxruntime, the way the commands do, and fails the test when it cannot: the
// tests that need it are not optional (`make setup` installs it).
func Need(t testing.TB) {
	t.Helper()
	if _, err := ortlib.Init(""); err != nil {
		t.Fatalf("onnxruntime is required (run `make setup`): %v", err)
	}
}
