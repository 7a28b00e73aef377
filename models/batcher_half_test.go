package models_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/x448/float16"

	"github.com/icthp/icthp/models"
)

// halfEnc is fakeEnc behind the models.HalfEncoder interface: a graph that
// takes float16 pixels when half is set. Its runs see the halves widened
// (exactly), so fakeEnc's outputs are a function of the values it got, and
// it counts the runs handed float32 rows.
type halfEnc struct {
	*fakeEnc
	half   bool
	floats atomic.Int64 // EncodeImages calls
	halves atomic.Int64 // EncodeImagesHalf calls
}

func (h *halfEnc) HalfPixels() bool { return h.half }

func (h *halfEnc) EncodeImages(ctx context.Context, px []float32, n int) ([][]float32, error) {
	h.floats.Add(1)
	return h.fakeEnc.EncodeImages(ctx, px, n)
}

func (h *halfEnc) EncodeImagesHalf(ctx context.Context, px []float16.Float16, n int) ([][]float32, error) {
	h.halves.Add(1)
	return h.fakeEnc.EncodeImages(ctx, widen(px), n)
}

func widen(h []float16.Float16) []float32 {
	f := make([]float32, len(h))
	for i, v := range h {
		f[i] = v.Float32()
	}
	return f
}

// halfRowsOf makes n distinct rows for caller c, [c*8+k, c, k, 1] as
// halves (small integers: exact in binary16).
func halfRowsOf(c, n int) []float16.Float16 {
	var d []float16.Float16
	for k := range n {
		for _, v := range []int{c*8 + k, c, k, 1} {
			d = append(d, float16.Fromfloat32(float32(v)))
		}
	}
	return d
}

// A batcher in front of a graph that takes float16 pixels gathers the
// binary16 rows of several callers into one run, hands the graph halves
// (never float32 rows), and gives each caller its own rows' outputs.
func TestBatcherGathersHalfRows(t *testing.T) {
	f := &halfEnc{fakeEnc: &fakeEnc{rowLen: 4, started: make(chan int, 8), gate: make(chan struct{})}, half: true}
	b := newBatcher(t, f, models.BatcherOptions{MaxBatch: 16, MaxWait: -1})
	if !b.HalfPixels() {
		t.Fatal("HalfPixels = false in front of a graph that takes float16 pixels")
	}
	first := make(chan error, 1)
	go func() {
		_, err := b.EncodeImagesHalf(context.Background(), halfRowsOf(39, 1), 1)
		first <- err
	}()
	<-f.started // the first run holds the worker; the callers below queue behind it
	const callers = 5
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 1 + c%3
			data := halfRowsOf(c, n)
			outs, err := b.EncodeImagesHalf(context.Background(), data, n)
			if err != nil {
				t.Error(err)
				return
			}
			checkOuts(t, widen(data), n, outs)
		}()
	}
	waitQueued(t, b, false, 1+2+3+1+2)
	f.gate <- struct{}{}
	<-f.started
	f.gate <- struct{}{}
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(f.runs) != "[1 9]" {
		t.Errorf("runs %v, want [1 9]: the five queued callers' rows in one run", f.runs)
	}
	if n := f.floats.Load(); n != 0 || f.halves.Load() != 2 {
		t.Errorf("the graph got %d float32 runs and %d half runs, want 0 and 2", n, f.halves.Load())
	}
}

// Callers of the other element type share the graph's one queue: float32
// rows for a float16 graph are rounded to nearest-even (what Session.RunFloat
// did), halves for a float32 graph widened exactly.
func TestBatcherConvertsTheOtherElementType(t *testing.T) {
	v := []float32{0.1, -2.0004, 1e-6, 70000} // inexact, tie-free, subnormal, overflow
	for _, half := range []bool{true, false} {
		t.Run(fmt.Sprintf("half=%v", half), func(t *testing.T) {
			f := &halfEnc{fakeEnc: &fakeEnc{rowLen: 4}, half: half}
			b := newBatcher(t, f, models.BatcherOptions{MaxBatch: 4})
			if b.HalfPixels() != half {
				t.Fatalf("HalfPixels = %v, want %v", b.HalfPixels(), half)
			}
			want := make([]float16.Float16, len(v))
			models.HalfFromFloat32(want, v)
			var outs [][]float32
			var err error
			if half {
				outs, err = b.EncodeImages(context.Background(), v, 1)
			} else {
				outs, err = b.EncodeImagesHalf(context.Background(), want, 1)
			}
			if err != nil {
				t.Fatal(err)
			}
			// Output 1 is (first value, 2 × last value) of what the graph saw.
			w := widen(want)
			if outs[1][0] != w[0] || outs[1][1] != 2*w[3] {
				t.Errorf("the graph saw %v … %v, want the halves %v … %v", outs[1][0], outs[1][1]/2, w[0], w[3])
			}
			if half && (f.floats.Load() != 0 || f.halves.Load() != 1) || !half && (f.floats.Load() != 1 || f.halves.Load() != 0) {
				t.Errorf("float32 runs %d, half runs %d", f.floats.Load(), f.halves.Load())
			}
		})
	}
}
