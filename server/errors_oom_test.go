package server

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/icthp/icthp/models"
)

// A batch the GPU had no memory for, even split to single items, answers
// 503 out_of_memory with Retry-After: that request fails, the server goes on.
func TestOutOfMemoryIs503(t *testing.T) {
	err := fmt.Errorf("encode images: %w", fmt.Errorf("%w: onnxruntime: CUDA failure 2: out of memory", models.ErrOutOfMemory))
	e := classify(err)
	if e.status != http.StatusServiceUnavailable || e.code != CodeOutOfMemory || e.retryAfter <= 0 {
		t.Fatalf("classify(%v) = %d %s retry %v, want 503 %s with Retry-After", err, e.status, e.code, e.retryAfter, CodeOutOfMemory)
	}
}
