package main

import (
	"math"
	"testing"
	"time"
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

// TestRefusalCost: the 50× phase's CPU less its served images at the
// uncontended cost per image, over its refusals.
func TestRefusalCost(t *testing.T) {
	for _, c := range []struct {
		name              string
		cpu0              time.Duration
		images0           int
		cpu1              time.Duration
		images1, refusals int
		want              time.Duration
	}{
		// 1 ms an image; 20 s at 50×: 10 s for 10,000 images, 2 s for 40,000 refusals.
		{"shared", 20 * time.Second, 20000, 12 * time.Second, 10000, 40000, 50 * time.Microsecond},
		{"no refusals", time.Second, 1000, time.Second, 1000, 0, 0},
		{"no uncontended images", time.Second, 0, time.Second, 1000, 10, 0},
		{"images cost more at 50×: no estimate", 10 * time.Second, 10000, 5 * time.Second, 6000, 100, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := refusalCost(c.cpu0, c.images0, c.cpu1, c.images1, c.refusals); got != c.want {
				t.Errorf("refusalCost = %v, want %v", got, c.want)
			}
		})
	}
}
