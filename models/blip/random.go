package blip

import (
	"fmt"
	"math"
	"strings"

	"github.com/icthp/icthp/models/build"
)

// Random is a set of seeded random weights for every entry of an ImageReward
// state dict (Config.Params). Values are generated when read, from the seed
// and the key, so the same seed gives the same bytes whatever the order of
// reads, and the real size needs no memory until a tensor is asked for.
type Random struct {
	seed   uint64
	params map[string]Param
	keys   []string
}

// NewRandom covers every entry of c.Params().
func NewRandom(c *Config, seed uint64) *Random {
	r := &Random{seed: seed, params: map[string]Param{}}
	for _, p := range c.Params() {
		r.params[p.Name] = p
		r.keys = append(r.keys, p.Name)
	}
	return r
}

// Keys lists the keys in state-dict order.
func (r *Random) Keys() []string { return append([]string(nil), r.keys...) }

// Param returns a key's description.
func (r *Random) Param(name string) (Param, bool) {
	p, ok := r.params[name]
	return p, ok
}

// Shape implements Weights.
func (r *Random) Shape(name string) ([]int64, bool) {
	p, ok := r.params[name]
	return append([]int64(nil), p.Shape...), ok
}

// Float32 implements Weights. LayerNorm scales are near 1, biases and
// embeddings small, matrices scaled by 1/√fan_in so that activations keep
// their size through the layers; position_ids is the arange it is in a
// real checkpoint.
func (r *Random) Float32(name string) ([]float32, error) {
	p, ok := r.params[name]
	if !ok {
		return nil, fmt.Errorf("random weights: no parameter %s", name)
	}
	if p.Int {
		out := make([]float32, build.Numel(p.Shape))
		for i := range out {
			out[i] = float32(i)
		}
		return out, nil
	}
	isNorm := strings.Contains(name, "norm") || strings.Contains(name, "LayerNorm")
	switch {
	case isNorm && strings.HasSuffix(name, ".weight"):
		return build.RandomNormal(r.seed, name, p.Shape, 1, 0.1), nil
	case strings.HasSuffix(name, ".bias"), strings.HasSuffix(name, "pos_embed"), strings.HasSuffix(name, "cls_token"),
		strings.Contains(name, "_embeddings."):
		return build.RandomNormal(r.seed, name, p.Shape, 0, 0.02), nil
	default:
		return build.RandomNormal(r.seed, name, p.Shape, 0, 1/math.Sqrt(float64(build.FanIn(p.Shape)))), nil
	}
}
