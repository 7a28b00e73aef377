package models

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/icthp/icthp/models/ortlib"
)

// Input is one named graph input for MultiSession.RunInputs: n items laid out
// row after row (the batch is the first dimension). Exactly one of Float and
// Int64 holds the values, matching the graph input's element type.
type Input struct {
	Name  string
	Float []float32
	Int64 []int64
	// Shape is the full shape, batch first. It may be left out when every
	// dimension but the batch is fixed in the graph; it is needed for
	// inputs with other symbolic dimensions.
	Shape []int64
}

// MultiSession runs one graph with any number of float32 or int64 inputs
// and one or more float32 outputs (ImageReward's text graph: token ids,
// attention mask and image tokens). Session (one input) is the simpler form.
type MultiSession struct {
	sess     *ort.DynamicAdvancedSession
	inputs   []ort.InputOutputInfo // in the order given to OpenMultiSession
	outputs  []ort.InputOutputInfo
	maxBatch int
}

// OpenMultiSession loads path and checks that its inputs are exactly the
// named ones (in any order) with element types float32 or int64, and that it
// has the named float32 outputs.
func OpenMultiSession(path string, inputs, outputs []string, o SessionOptions) (*MultiSession, error) {
	if _, err := ortlib.Init(o.LibraryPath); err != nil {
		return nil, err
	}
	ins, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(inputs) == 0 || len(ins) != len(inputs) {
		return nil, fmt.Errorf("%s: graph inputs %v do not match the manifest's %v", path, names(ins), inputs)
	}
	s := &MultiSession{maxBatch: o.MaxBatch}
	for _, want := range inputs {
		i := slices.IndexFunc(ins, func(in ort.InputOutputInfo) bool { return in.Name == want })
		if i < 0 {
			return nil, fmt.Errorf("%s: graph inputs %v do not match the manifest's %v", path, names(ins), inputs)
		}
		switch ins[i].DataType {
		case ort.TensorElementDataTypeFloat, ort.TensorElementDataTypeInt64:
		default:
			return nil, fmt.Errorf("%s: input %s is %v, want float32 or int64", path, want, ins[i].DataType)
		}
		if len(ins[i].Dimensions) == 0 {
			return nil, fmt.Errorf("%s: input %s is a scalar; inputs need a batch dimension", path, want)
		}
		s.inputs = append(s.inputs, ins[i])
	}
	for _, want := range outputs {
		i := slices.IndexFunc(outs, func(out ort.InputOutputInfo) bool { return out.Name == want })
		if i < 0 {
			return nil, fmt.Errorf("%s: graph outputs %v lack the manifest's %q", path, names(outs), want)
		}
		if outs[i].DataType != ort.TensorElementDataTypeFloat {
			return nil, fmt.Errorf("%s: output %s is %v, want float32", path, want, outs[i].DataType)
		}
		s.outputs = append(s.outputs, outs[i])
	}
	so, err := o.ortOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	sess, err := ort.NewDynamicAdvancedSession(path, inputs, outputs, so)
	if err != nil {
		if o.Provider != CPU && o.Provider != "" {
			return nil, fmt.Errorf("%w: open %s with %s: %s", ErrProvider, filepath.Base(path), o.Provider, ortlib.OneLine(err.Error()))
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s.sess = sess
	if o.WarmUp || (o.Provider != CPU && o.Provider != "") {
		if err := s.warmUp(); err != nil {
			s.Close()
			return nil, fmt.Errorf("%w: %s does not run on the %s provider: %s", ErrProvider, filepath.Base(path), o.providerName(), ortlib.OneLine(err.Error()))
		}
	}
	return s, nil
}

// warmUp is Session.warmUp for several inputs: one item of zeros each, when
// no input has a symbolic dimension beyond the batch (ImageReward's text
// graph has, so it is not warmed up here).
func (s *MultiSession) warmUp() error {
	ins := make([]Input, len(s.inputs))
	for i, in := range s.inputs {
		per := 1
		for _, d := range in.Dimensions[1:] {
			if d < 0 {
				return nil
			}
			per *= int(d)
		}
		ins[i].Name = in.Name
		if in.DataType == ort.TensorElementDataTypeFloat {
			ins[i].Float = make([]float32, per)
		} else {
			ins[i].Int64 = make([]int64, per)
		}
	}
	if _, err := s.RunInputs(context.Background(), 1, ins...); err != nil {
		return fmt.Errorf("warm-up run: %w", err)
	}
	return nil
}

// InputNames lists the inputs in the order given to OpenMultiSession.
func (s *MultiSession) InputNames() []string { return names(s.inputs) }

// InputShape is the graph's shape of the named input, -1 for symbolic
// dimensions (the batch); nil when there is no such input.
func (s *MultiSession) InputShape(name string) []int64 {
	for _, in := range s.inputs {
		if in.Name == name {
			return slices.Clone(in.Dimensions)
		}
	}
	return nil
}

// prepared is one input checked against the graph: its item shape and its
// values.
type prepared struct {
	item  []int64 // shape without the batch
	per   int     // values per item
	float []float32
	int64 []int64
}

func (s *MultiSession) prepare(n int, given []Input) ([]prepared, error) {
	byName := map[string]*Input{}
	for i := range given {
		in := &given[i]
		if byName[in.Name] != nil {
			return nil, fmt.Errorf("input %s given twice", in.Name)
		}
		byName[in.Name] = in
	}
	out := make([]prepared, len(s.inputs))
	for k, info := range s.inputs {
		in := byName[info.Name]
		if in == nil {
			return nil, fmt.Errorf("input %s missing (the graph takes %v)", info.Name, names(s.inputs))
		}
		delete(byName, info.Name)
		var have int
		switch info.DataType {
		case ort.TensorElementDataTypeFloat:
			if in.Int64 != nil || (in.Float == nil && n > 0) {
				return nil, fmt.Errorf("input %s takes float32 values", info.Name)
			}
			have = len(in.Float)
		default:
			if in.Float != nil || (in.Int64 == nil && n > 0) {
				return nil, fmt.Errorf("input %s takes int64 values", info.Name)
			}
			have = len(in.Int64)
		}
		item := slices.Clone(info.Dimensions[1:])
		if in.Shape != nil {
			if len(in.Shape) != len(info.Dimensions) || in.Shape[0] != int64(n) {
				return nil, fmt.Errorf("input %s: shape %v for %d items does not fit the graph's %v", info.Name, in.Shape, n, info.Dimensions)
			}
			for i, d := range info.Dimensions[1:] {
				if d >= 0 && in.Shape[i+1] != d {
					return nil, fmt.Errorf("input %s: shape %v does not fit the graph's %v", info.Name, in.Shape, info.Dimensions)
				}
			}
			item = slices.Clone(in.Shape[1:])
		}
		per := 1
		for _, d := range item {
			if d < 0 {
				return nil, fmt.Errorf("input %s has symbolic dimensions %v beyond the batch: give its Shape", info.Name, info.Dimensions)
			}
			per *= int(d)
		}
		if have != n*per {
			return nil, fmt.Errorf("input %s has %d values, %d items of %v need %d", info.Name, have, n, item, n*per)
		}
		out[k] = prepared{item: item, per: per, float: in.Float, int64: in.Int64}
	}
	for name := range byName {
		return nil, fmt.Errorf("input %s is not an input of the graph (it takes %v)", name, names(s.inputs))
	}
	return out, nil
}

// RunInputs runs n items: every graph input given once by name, each holding
// n items row after row. It returns each output (in the order given to
// OpenMultiSession) as n rows laid out row after row. With MaxBatch set,
// the items run in consecutive slices of at most MaxBatch. A cancelled
// context stops the run.
func (s *MultiSession) RunInputs(ctx context.Context, n int, inputs ...Input) ([][]float32, error) {
	if n < 0 {
		return nil, fmt.Errorf("negative item count %d", n)
	}
	ps, err := s.prepare(n, inputs)
	if err != nil {
		return nil, err
	}
	results := make([][]float32, len(s.outputs))
	if n == 0 {
		return results, nil
	}
	step := n
	if s.maxBatch > 0 && step > s.maxBatch {
		step = s.maxBatch
	}
	for lo := 0; lo < n; lo += step {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		outs, err := runSplitting(ctx, lo, min(lo+step, n), func(lo, hi int) ([][]float32, error) {
			return s.runSlice(ctx, ps, lo, hi)
		})
		if err != nil {
			return nil, err
		}
		for i, o := range outs {
			results[i] = append(results[i], o...)
		}
	}
	return results, nil
}

func (s *MultiSession) runSlice(ctx context.Context, ps []prepared, lo, hi int) ([][]float32, error) {
	vals := make([]ort.Value, len(ps))
	defer func() {
		for _, v := range vals {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, p := range ps {
		shape := append(ort.Shape{int64(hi - lo)}, p.item...)
		var err error
		if p.float != nil {
			vals[i], err = ort.NewTensor(shape, p.float[lo*p.per:hi*p.per])
		} else {
			vals[i], err = ort.NewTensor(shape, p.int64[lo*p.per:hi*p.per])
		}
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", s.inputs[i].Name, err)
		}
	}
	res, err := runGraph(ctx, s.sess, vals, s.outputs)
	runtime.KeepAlive(ps)
	return res, err
}

// Close releases the session.
func (s *MultiSession) Close() error {
	if s == nil || s.sess == nil {
		return nil
	}
	err := s.sess.Destroy()
	s.sess = nil
	return err
}
