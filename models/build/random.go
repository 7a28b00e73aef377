package build

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
)

// Numel is the number of values of a tensor of shape (1 for a scalar).
func Numel(shape []int64) int {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	return n
}

// FanIn is the product of shape's dimensions after the first: the input
// width of a torch Linear (or convolution) weight (1 for a scalar).
func FanIn(shape []int64) int {
	if len(shape) == 0 {
		return 1
	}
	return Numel(shape[1:])
}

// RandomNormal is the random presets' value of parameter name: mean +
// std·N(0,1), drawn in row-major order from a PCG generator seeded by seed
// and the FNV-1a hash of the name, so that a parameter's values depend on
// nothing else the model holds (the CLIP, open_clip and BLIP random weights
// share it).
func RandomNormal(seed uint64, name string, shape []int64, mean, std float64) []float32 {
	h := fnv.New64a()
	h.Write([]byte(name))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	out := make([]float32, Numel(shape))
	for i := range out {
		out[i] = float32(mean + std*rng.NormFloat64())
	}
	return out
}

// Shapes are the parameters of a random preset by name.
type Shapes map[string][]int64

// Shape implements Shaper.
func (s Shapes) Shape(name string) ([]int64, bool) {
	v, ok := s[name]
	return v, ok
}

// Need is the shape of name, or an error that what (the weights' kind) has
// no such parameter.
func (s Shapes) Need(name, what string) ([]int64, error) {
	v, ok := s[name]
	if !ok {
		return nil, fmt.Errorf("%s: no parameter %s", what, name)
	}
	return v, nil
}
