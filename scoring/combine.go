package scoring

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// GroupICTHP is the paper's ranking score of a group of candidates for one
// prompt: ict_i × softmax(hp_logit)_i over the group. The softmax subtracts
// the maximum first, so large logits do not overflow.
func GroupICTHP(ict, hpLogit []float64) []float64 {
	if len(ict) != len(hpLogit) {
		panic("scoring: GroupICTHP needs one hp_logit per ict") // caller bug
	}
	if len(ict) == 0 {
		return nil
	}
	m := math.Inf(-1)
	for _, l := range hpLogit {
		m = math.Max(m, l)
	}
	var sum float64
	w := make([]float64, len(hpLogit))
	for i, l := range hpLogit {
		w[i] = math.Exp(l - m)
		sum += w[i]
	}
	out := make([]float64, len(ict))
	for i := range out {
		out[i] = ict[i] * w[i] / sum
	}
	return out
}

// RankOrder returns the indices of scores, best first; ties keep request
// order.
func RankOrder(scores []float64) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	return idx
}

// Combination is how a per-item reward is made from the scores.
type Combination struct {
	// Kind is "product" (the product of the loaded models' main scores,
	// those whose scorer.Output has Product: ict × hp × imagereward; the
	// default), "weighted", or the name of one score ("ict", "hp",
	// "hp_logit", "imagereward", ...: that score alone).
	Kind string
	// Weights of a "weighted" sum, by score name (the registry's output
	// names: ict, hp, hp_logit, imagereward, ...).
	Weights map[string]float64
}

// ErrOverflow means a reward is not a finite number (weights so large
// that the weighted sum overflows); over HTTP it is a 422.
var ErrOverflow = errors.New("reward overflows")

// validName says whether s can be a score name: lower-case letters, digits
// and underscores, starting with a letter. Which names exist is the loaded
// models' business, checked when the combination is applied.
func validName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}

// ParseCombination reads "product", a score name ("ict", "hp", ...), or
// "weighted:ict=1,hp=0.5" (score names, each at most once, finite numbers
// as strconv.ParseFloat reads them).
func ParseCombination(s string) (Combination, error) {
	kind, rest, hasArgs := strings.Cut(strings.TrimSpace(s), ":")
	c := Combination{Kind: kind}
	if kind == "weighted" {
		c.Weights = map[string]float64{}
		for _, kv := range strings.Split(rest, ",") {
			k, v, ok := strings.Cut(kv, "=")
			k = strings.TrimSpace(k)
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if !ok || k == "" || (err != nil && !errors.Is(err, strconv.ErrRange)) {
				return c, fmt.Errorf("reward weights %q: want name=number pairs", rest)
			}
			if _, dup := c.Weights[k]; dup {
				return c, fmt.Errorf("reward weight for %s given twice", k)
			}
			c.Weights[k] = f
		}
		return c, c.Validate()
	}
	if hasArgs {
		return c, fmt.Errorf("reward combination %q takes no arguments", kind)
	}
	if kind == "" {
		c.Kind = "product"
	}
	return c, c.Validate()
}

// Validate checks a combination, as a request may carry one that was not
// parsed: a product, a score name or a weighted sum, weights only for
// "weighted", well-formed score names and finite weights.
func (c Combination) Validate() error {
	switch {
	case c.Kind == "weighted":
	case c.Kind == "" || c.Kind == "product" || validName(c.Kind):
		if len(c.Weights) > 0 {
			return fmt.Errorf("reward combination %q has weights; only a weighted one takes them", c.Kind)
		}
		return nil
	default:
		return fmt.Errorf("unknown reward combination %q (want product, weighted or a score name such as ict)", c.Kind)
	}
	for k, w := range c.Weights {
		if !validName(k) {
			return fmt.Errorf("reward weight for unknown score %q", k)
		}
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return fmt.Errorf("reward weight for %s is not finite", k)
		}
	}
	if len(c.Weights) == 0 {
		return fmt.Errorf("weighted reward needs at least one weight")
	}
	return nil
}

// Names are the score names the combination reads (none for a product).
func (c Combination) Names() []string {
	switch c.Kind {
	case "", "product":
		return nil
	case "weighted":
		return slices.Sorted(maps.Keys(c.Weights))
	}
	return []string{c.Kind}
}

// Apply computes the reward of one item from its scores; product names
// the scores a product multiplies. It fails with ErrBadRequest when the
// combination needs a score the item does not have, and with ErrOverflow
// when the result is not finite.
func (c Combination) Apply(product map[string]bool, s Scores) (float64, error) {
	get := func(name string) (float64, error) {
		p := s.Get(name)
		if p == nil {
			var have []string
			for _, v := range s.Values {
				have = append(have, v.Name)
			}
			return 0, fmt.Errorf("%w: reward needs %s, which is not loaded or not requested (scores: %s)",
				ErrBadRequest, name, strings.Join(have, ", "))
		}
		return *p, nil
	}
	var r float64
	switch c.Kind {
	case "", "product":
		r = 1.0
		n := 0
		for _, v := range s.Values {
			if product[v.Name] {
				r *= v.Value
				n++
			}
		}
		if n == 0 {
			return 0, fmt.Errorf("%w: reward needs at least one score", ErrBadRequest)
		}
	case "weighted":
		for _, k := range slices.Sorted(maps.Keys(c.Weights)) {
			v, err := get(k)
			if err != nil {
				return 0, err
			}
			r += c.Weights[k] * v
		}
	default:
		v, err := get(c.Kind)
		if err != nil {
			return 0, err
		}
		r = v
	}
	if !finite(r) {
		return 0, fmt.Errorf("%w: the %s reward is %v", ErrOverflow, c.Kind, r)
	}
	return r, nil
}
