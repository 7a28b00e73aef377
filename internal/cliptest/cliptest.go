// Package cliptest is what tests of the CLIP graphs share: the tiny
// configuration, random inputs drawn in a fixed order (so that a seed names
// the same pixels and token rows in every test that uses it), and sessions
// closed when the test ends.
package cliptest

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
)

// Token ids of CLIP's start and end of text.
const (
	BOS = 49406
	EOS = 49407
)

// Tiny is the tiny preset with both towers' activation set to act.
func Tiny(t testing.TB, act clip.Activation) clip.Config {
	t.Helper()
	c, err := clip.PresetConfig(clip.PresetTiny)
	if err != nil {
		t.Fatal(err)
	}
	c.Vision.HiddenAct, c.Text.HiddenAct = act, act
	return c
}

// Pixels draws n standard-normal 3×224×224 images from rng.
func Pixels(rng *rand.Rand, n int) []float32 {
	px := make([]float32, n*3*224*224)
	for i := range px {
		px[i] = float32(rng.NormFloat64())
	}
	return px
}

// IDs draws n token rows of ctx ids from rng: BOS, length(r)-1 ids below
// vocab, EOS at position length(r), zeros after.
func IDs(rng *rand.Rand, n, ctx, vocab int, length func(r int) int) []int64 {
	ids := make([]int64, n*ctx)
	for r := 0; r < n; r++ {
		ids[r*ctx] = BOS
		l := length(r)
		for j := 1; j < l; j++ {
			ids[r*ctx+j] = int64(rng.IntN(vocab))
		}
		ids[r*ctx+l] = EOS
	}
	return ids
}

// Session opens the graph at path with input in and outputs outs, and
// closes it when the test ends.
func Session(t testing.TB, path, in string, outs []string, o models.SessionOptions) *models.Session {
	t.Helper()
	s, err := models.OpenSession(path, in, outs, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// EachVariant runs f as the subtests "<activation>/fused=<bool>": both
// activations, plain and fused graphs.
func EachVariant(t *testing.T, f func(t *testing.T, act clip.Activation, fused bool)) {
	t.Helper()
	for _, act := range []clip.Activation{clip.GELU, clip.QuickGELU} {
		for _, fused := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/fused=%v", act, fused), func(t *testing.T) { f(t, act, fused) })
		}
	}
}
