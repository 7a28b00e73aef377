package clip_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/icthp/icthp/internal/clipref"
	"github.com/icthp/icthp/internal/cliptest"
	"github.com/icthp/icthp/models/clip"
	og "github.com/icthp/icthp/models/onnxgraph"
)

// onnxgraph.QuantizeColumns, the rule of the int8 graphs, against codes and
// scales worked out by hand.
func TestQuantizeColumns(t *testing.T) {
	// [in=3, out=2]: column 0 = 1, -0.5, 0.25 (max 1); column 1 = 0, 0, 0.
	w := []float32{1, 0, -0.5, 0, 0.25, 0}
	codes, scales := og.QuantizeColumns(w, 3, 2)
	if want := []float32{float32(1) / 127, 0}; !slices.Equal(scales, want) {
		t.Fatalf("scales %v, want %v", scales, want)
	}
	// -0.5·127 = -63.5 and 0.25·127 = 31.75: half to even gives -64, 32.
	if want := []int8{127, 0, -64, 0, 32, 0}; !slices.Equal(codes, want) {
		t.Fatalf("codes %v, want %v", codes, want)
	}
	// The builder's rule is the reference's (a torch weight is [out, in]).
	tw := []float64{1, -0.5, 0.25, 0, 0, 0}
	rs, rc := clipref.WeightScales(tw, 2, 3)
	if !slices.Equal(rs, scales) || !slices.Equal(rc, []int8{127, -64, 32, 0, 0, 0}) {
		t.Fatalf("reference: scales %v codes %v", rs, rc)
	}
}

func TestInt8RefusesFP16(t *testing.T) {
	c := tinyConfig(t, clip.GELU)
	_, err := clip.BuildVision(&c, clip.NewRandom(&c, 1, true), clip.BuildOptions{Int8: true, FP16: true})
	if !errors.Is(err, clip.ErrOptions) {
		t.Fatalf("err = %v, want ErrOptions", err)
	}
}

// onnxruntime running an int8 graph computes the int8 reference (integer
// GEMMs over DynamicQuantizeLinear activations and per-channel int8
// weights, written from their definitions) to float rounding, and is
// measurably away from the float64 reference, so the graph really is
// quantised. Each item runs alone: the activation scale is per run.
func TestInt8GraphsMatchInt8Reference(t *testing.T) {
	needORT(t)
	const n = 3
	cliptest.EachVariant(t, func(t *testing.T, act clip.Activation, fused bool) {
		r := runTiny(t, act, n, clip.BuildOptions{Fused: fused, Int8: true}, runMode{alone: true})
		// The quantised layers' weights are stored as int8: the data
		// file is smaller by most of 3 of every 4 bytes of them.
		v := r.c.Vision
		layerBytes := int64(v.NumLayers * (4*v.HiddenSize*v.HiddenSize + 2*v.HiddenSize*v.IntermediateSize) * 4)
		if q, f := r.g.weightBytes, r.g.floatBytes; f-q < layerBytes*3/4*9/10 {
			t.Errorf("int8 weights %d bytes, float %d: saves less than 3/4 of the layers' %d", q, f, layerBytes)
		}
		toInt8 := r.against(t, r.references(t, true))
		toInt8Ref, toFloatRef := max(toInt8.abs, toInt8.logit), r.against(t, r.references(t, false)).abs
		t.Logf("max |int8 graph − int8 reference| %.3g, − float64 reference %.3g", toInt8Ref, toFloatRef)
		if toInt8Ref > 1e-3 {
			t.Errorf("int8 graph differs from the int8 reference by %g (> 1e-3)", toInt8Ref)
		}
		if toFloatRef < 10*toInt8Ref || toFloatRef < 1e-4 {
			t.Errorf("int8 graph is as close to the float reference (%g) as to the int8 one (%g): not quantised?", toFloatRef, toInt8Ref)
		}
	})
}
