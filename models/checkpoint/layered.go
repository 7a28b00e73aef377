package checkpoint

import (
	"fmt"
	"slices"
	"strings"
)

// Layered is a base state dict with a checkpoint laid over it, the way
// torch's model.load_state_dict(over, strict=False) leaves a model built
// from base: base's keys, each read from over where over has it. It reads
// lazily from both; it does not own them (close them yourself when done).
type Layered struct {
	base, over *StateDict
	keys       []string
	fromOver   map[string]bool
}

// LayerReport says what laying a checkpoint over a base did, in the terms of
// torch's load_state_dict(strict=False): Replaced are over's keys that base
// has (loaded), Unexpected are over's keys base lacks (ignored), Missing are
// base's keys over lacks (kept from base). Each list is in file order.
type LayerReport struct {
	Replaced, Unexpected, Missing []string
}

// Layer lays over on base. As in torch, a key both have with different
// shapes is an error (all such keys are named); dtypes may differ (values
// are converted on read, as Tensor.copy_ does).
func Layer(base, over *StateDict) (*Layered, LayerReport, error) {
	l := &Layered{base: base, over: over, keys: base.Keys(), fromOver: map[string]bool{}}
	var rep LayerReport
	var mismatch []string
	for _, k := range over.keys {
		bs, ok := base.Shape(k)
		if !ok {
			rep.Unexpected = append(rep.Unexpected, k)
			continue
		}
		ovs, _ := over.Shape(k)
		if !slices.Equal(bs, ovs) {
			mismatch = append(mismatch, fmt.Sprintf("%s: checkpoint has %v, base has %v", k, ovs, bs))
			continue
		}
		l.fromOver[k] = true
		rep.Replaced = append(rep.Replaced, k)
	}
	if len(mismatch) > 0 {
		return nil, rep, fmt.Errorf("checkpoint: size mismatch laying %s over %s: %s", over.path, base.path, strings.Join(mismatch, "; "))
	}
	for _, k := range l.keys {
		if !l.fromOver[k] {
			rep.Missing = append(rep.Missing, k)
		}
	}
	return l, rep, nil
}

func (l *Layered) src(name string) *StateDict {
	if l.fromOver[name] {
		return l.over
	}
	return l.base
}

// Keys returns base's keys in base's file order.
func (l *Layered) Keys() []string { return append([]string(nil), l.keys...) }

// Shape returns the tensor's shape, and false when base has no such key.
func (l *Layered) Shape(name string) ([]int64, bool) { return l.base.Shape(name) }

// DType returns the element type of the tensor that will be read.
func (l *Layered) DType(name string) (DType, bool) { return l.src(name).DType(name) }

// Bytes returns the stored size of the tensor that will be read.
func (l *Layered) Bytes(name string) (int64, bool) { return l.src(name).Bytes(name) }

// FromOver reports whether the tensor comes from the checkpoint laid over base.
func (l *Layered) FromOver(name string) bool { return l.fromOver[name] }

// Float32 reads the tensor from over when over has it, else from base.
func (l *Layered) Float32(name string) ([]float32, error) {
	if !l.base.Has(name) {
		return nil, fmt.Errorf("checkpoint: base %s has no tensor %q", l.base.path, name)
	}
	return l.src(name).Float32(name)
}
