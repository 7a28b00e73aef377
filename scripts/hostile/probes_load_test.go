package main

import (
	"math"
	"testing"
)

// TestRSSGrowth: the peak just after warm-up against the peak of the last
// tenth: a flat sawtooth (the garbage collector's cycle) is no growth
// whichever phase a sample falls on; a steady climb is.
func TestRSSGrowth(t *testing.T) {
	saw := make([]float64, 360)
	climb := make([]float64, 360)
	for i := range saw {
		saw[i] = 100 + float64(i%7)*10 // 100..160, period 7
		climb[i] = 100 + float64(i)    // +1 per sample
	}
	cases := []struct {
		name       string
		rs         []float64
		warm, last float64
	}{
		{"flat sawtooth", saw, 160, 160},
		{"climb", climb, 100 + 125, 100 + 359}, // peaks of [90, 126) and [324, 360)
		{"short run", []float64{5, 6, 7, 8}, 6, 8},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			warm, last, g := rssGrowth(c.rs)
			if warm != c.warm || last != c.last || math.Abs(g-(c.last-c.warm)/c.warm) > 1e-12 {
				t.Errorf("rssGrowth = %v, %v, %v; want %v, %v", warm, last, g, c.warm, c.last)
			}
		})
	}
}
