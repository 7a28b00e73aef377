// Package build holds what the ONNX graph builders of models/clip and models/blip share:
// the build options and the check of a checkpoint's weights against the parameters a graph
// reads. The graphs themselves are written with models/onnxgraph.
package build

import (
	"errors"
	"fmt"
)

// Options choose how a model's graphs are written. Every combination but Int8 with FP16
// computes the same function as the plain float32 graph, within its precision; each
// builder documents what the switches mean for its architecture (clip.BuildOptions,
// blip.BuildOptions).
type Options struct {
	// Fused uses onnxruntime's com.microsoft kernels (Attention, SkipLayerNormalization,
	// BiasGelu, ...) instead of their decomposition into standard operators.
	Fused bool
	// FP16 stores weights and computes in half precision (for GPU execution providers).
	// The image input (pixel_values) is float16 too, so the host hands the device half
	// the bytes and no Cast runs on it; the other inputs (token ids, masks, ImageReward's
	// image tokens) and every output keep their types (int64, float32), with the casts
	// inside the graphs (PixelInput, Output).
	FP16 bool
	// FP32Pixels, with FP16, keeps pixel_values float32 and casts it inside the graph:
	// the form --fp16 wrote before float16 inputs (a Cast rounds to nearest-even, as the
	// host does when it writes float16 pixels, so both forms give the same outputs).
	// Tests build it to check that; model directories of that form still run.
	FP32Pixels bool
	// Int8 stores the Linear weights inside the transformer layers as int8, symmetric per
	// output column, and runs them with onnxruntime's DynamicQuantizeMatMul (activations
	// quantised at run time, an integer GEMM, float32 everywhere else): an opt-in for CPU
	// throughput, outside the float32 parity target. Not with FP16.
	Int8 bool
	// Fuse, when not empty, fuses only these kinds of contrib kernel and writes the rest as
	// standard operators (fuse.go): graph forms per execution provider (the CLIP builder
	// reads it). Not with Fused or Int8.
	Fuse []FusedKind
}

// HalfPixels says whether the graphs take pixel_values as float16 (FP16 without
// FP32Pixels): what the model directory's manifest records as its pixel type.
func (o Options) HalfPixels() bool { return o.FP16 && !o.FP32Pixels }

// ErrOptions reports build options that cannot go together.
var ErrOptions = errors.New("incompatible build options")

// Check refuses options that cannot go together (Int8 with FP16), wrapping ErrOptions.
func (o Options) Check() error {
	if o.Int8 && o.FP16 {
		return fmt.Errorf("%w: int8 weights with fp16 compute (pick one)", ErrOptions)
	}
	return o.checkFuse()
}

// Shaper tells the shape of a named weight of a checkpoint (false when it is absent).
type Shaper interface {
	Shape(name string) ([]int64, bool)
}

// Param is a weight a graph reads: its state-dict key and shape.
type Param struct {
	Name  string
	Shape []int64
}

// CheckWeights compares the weights with the parameters a graph needs: the first shape
// that differs is an error naming the weight; else the missing ones (the first five and a
// count) are, followed by hint when it is not "" (say, where the missing weights come
// from). A scalar stored as [1] (as older files keep logit_scale) matches the shape [].
func CheckWeights(w Shaper, params []Param, hint string) error {
	var missing []string
	for _, p := range params {
		s, ok := w.Shape(p.Name)
		if !ok {
			missing = append(missing, p.Name)
			continue
		}
		if !sameShape(s, p.Shape) {
			return fmt.Errorf("weight %s has shape %v, the architecture needs %v", p.Name, s, p.Shape)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	more := ""
	if len(missing) > 5 {
		more = fmt.Sprintf(" and %d more", len(missing)-5)
		missing = missing[:5]
	}
	if hint != "" {
		more += " (" + hint + ")"
	}
	return fmt.Errorf("weights lack %v%s", missing, more)
}

func sameShape(a, b []int64) bool {
	n := func(s []int64) int64 {
		p := int64(1)
		for _, d := range s {
			p *= d
		}
		return p
	}
	if len(a) != len(b) {
		return n(a) == 1 && n(b) == 1
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Prepare is the first step of every builder: the options must go together
// (Check), then each of steps must pass, in order (the configuration's
// Validate, a Part); the first error is returned.
func (o Options) Prepare(steps ...func() error) error {
	if err := o.Check(); err != nil {
		return err
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// Part is a Prepare step: the weights w of one part of a model hold the
// parameters params() (checked by the builder's CheckWeights), or the error
// names the part. params is called only when the step runs, after the
// configuration was validated.
func Part[W, P any](name string, check func(W, []P) error, w W, params func() []P) func() error {
	return func() error {
		if err := check(w, params()); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
}
