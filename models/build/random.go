package build

import (
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
// width of a torch Linear (or convolution) weight.
func FanIn(shape []int64) int { return Numel(shape[1:]) }

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
