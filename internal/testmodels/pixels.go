package testmodels

import "math/rand/v2"

// NormalPixels are n standard-normal values from a PCG seeded with (seed1,
// seed2): preprocessed-looking input for a graph and its float64
// reference.
func NormalPixels(n int, seed1, seed2 uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed1, seed2))
	px := make([]float32, n)
	for i := range px {
		px[i] = float32(rng.NormFloat64())
	}
	return px
}
