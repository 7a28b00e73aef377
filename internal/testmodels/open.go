package testmodels

import (
	"path/filepath"
	"testing"

	"github.com/icthp/icthp/internal/orttest"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
)

// OpenTiny writes a tiny random model directory of kind (with onnxruntime's
// fused kernels or without, the synthetic vocabulary) under the test's temporary folder and opens it
// with one intra-op thread, closed when the test ends; it fails the test
// when onnxruntime cannot be loaded. It returns the directory, the opened
// model and the config and weights the float64 references take.
func OpenTiny(t testing.TB, kind models.Kind, seed uint64, fused bool) (string, *models.Model, clip.Config, clip.Weights) {
	t.Helper()
	orttest.Need(t)
	dir := filepath.Join(t.TempDir(), string(kind))
	_, c, w, err := RandomDir(dir, kind, seed, nil, clip.BuildOptions{Fused: fused})
	if err != nil {
		t.Fatal(err)
	}
	m, err := models.Open(dir, models.SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return dir, m, c, w
}
