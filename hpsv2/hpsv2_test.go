package hpsv2_test

import (
	"math"
	"testing"

	"github.com/icthp/icthp/hpsv2"
	"github.com/icthp/icthp/scorer"
)

// Head is the plain cosine: 0.6 and −0.8 for these unit vectors (no clamp,
// no scale, as img_score.py's diagonal of image_features @ text_features.T).
func TestHead(t *testing.T) {
	txt := &scorer.Text{Embed: []float32{1, 0}}
	out, err := hpsv2.Head([]scorer.Pair{
		{Text: txt, Image: scorer.Features{Vec: []float32{0.6, 0.8}}},
		{Text: txt, Image: scorer.Features{Vec: []float32{-0.8, 0.6}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(out[0][0]-0.6) > 1e-6 || math.Abs(out[1][0]+0.8) > 1e-6 {
		t.Errorf("Head = %v, want [[0.6] [-0.8]]", out)
	}
}
