package scoring

import (
	"errors"
	"fmt"
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
	// Kind is "product" (ict × hp × imagereward of those loaded and named;
	// the default), "ict", "hp", "imagereward", or "weighted".
	Kind string
	// Weights of a "weighted" sum, by score name: ict, hp, hp_logit,
	// imagereward.
	Weights map[string]float64
}

// ScoreNames are the names a Combination may use.
var ScoreNames = []string{"ict", "hp", "hp_logit", "imagereward"}

// ParseCombination reads "product", "ict", "hp", "imagereward", or
// "weighted:ict=1,hp=0.5" (names from ScoreNames, each at most once, finite
// numbers as strconv.ParseFloat reads them).
func ParseCombination(s string) (Combination, error) {
	kind, rest, hasArgs := strings.Cut(strings.TrimSpace(s), ":")
	c := Combination{Kind: kind}
	switch kind {
	case "", "product", "ict", "hp", "imagereward":
		if hasArgs {
			return c, fmt.Errorf("reward combination %q takes no arguments", kind)
		}
		if kind == "" {
			c.Kind = "product"
		}
		return c, nil
	case "weighted":
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
	return c, fmt.Errorf("reward combination %q: want product, ict, hp, imagereward or weighted:NAME=W,...", s)
}

// Validate checks a combination, as a request may carry one that was not
// parsed: a known kind, weights only for "weighted", known score names and
// finite weights.
func (c Combination) Validate() error {
	switch c.Kind {
	case "", "product", "ict", "hp", "imagereward":
		if len(c.Weights) > 0 {
			return fmt.Errorf("reward combination %q has weights; only a weighted one takes them", c.Kind)
		}
		return nil
	case "weighted":
	default:
		return fmt.Errorf("unknown reward combination %q (want product, ict, hp, imagereward or weighted)", c.Kind)
	}
	for k, w := range c.Weights {
		if !slices.Contains(ScoreNames, k) {
			return fmt.Errorf("reward weight for unknown score %q (want %v)", k, ScoreNames)
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

// Apply computes the reward of one item from its scores (nil when that
// model is not loaded). It fails when the combination needs a score the
// item does not have.
func (c Combination) Apply(s Scores) (float64, error) {
	get := func(name string) (float64, error) {
		var p *float64
		switch name {
		case "ict":
			p = s.ICT
		case "hp":
			p = s.HP
		case "hp_logit":
			p = s.HPLogit
		case "imagereward":
			p = s.ImageReward
		}
		if p == nil {
			return 0, fmt.Errorf("reward needs %s, which is not loaded or not requested", name)
		}
		return *p, nil
	}
	switch c.Kind {
	case "", "product":
		r, n := 1.0, 0
		for _, p := range []*float64{s.ICT, s.HP, s.ImageReward} {
			if p != nil {
				r *= *p
				n++
			}
		}
		if n == 0 {
			return 0, fmt.Errorf("reward needs at least one score")
		}
		return r, nil
	case "weighted":
		var r float64
		for k, w := range c.Weights {
			v, err := get(k)
			if err != nil {
				return 0, err
			}
			r += w * v
		}
		return r, nil
	default:
		return get(c.Kind)
	}
}
