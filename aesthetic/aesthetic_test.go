package aesthetic_test

import (
	"testing"

	"github.com/icthp/icthp/aesthetic"
	"github.com/icthp/icthp/scorer"
)

// Head returns the graph's score unchanged (no sigmoid) and refuses
// features without it.
func TestHead(t *testing.T) {
	out, err := aesthetic.Head([]scorer.Pair{{Image: scorer.Features{Scalars: []float64{6.25}}}})
	if err != nil || out[0][0] != 6.25 {
		t.Errorf("Head = %v, %v; want [[6.25]]", out, err)
	}
	if _, err := aesthetic.Head([]scorer.Pair{{Image: scorer.Features{Vec: []float32{1}}}}); err == nil {
		t.Error("features without a score were scored")
	}
}
