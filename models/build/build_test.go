package build

import (
	"errors"
	"strings"
	"testing"
)

type shapes map[string][]int64

func (s shapes) Shape(name string) ([]int64, bool) { v, ok := s[name]; return v, ok }

func TestOptionsCheck(t *testing.T) {
	for _, c := range []struct {
		o   Options
		bad bool
	}{
		{Options{}, false}, {Options{Fused: true}, false}, {Options{FP16: true}, false},
		{Options{Int8: true, Fused: true}, false}, {Options{Int8: true, FP16: true}, true},
	} {
		if err := c.o.Check(); (err != nil) != c.bad || (err != nil && !errors.Is(err, ErrOptions)) {
			t.Errorf("%+v: Check() = %v, want refused %v (ErrOptions)", c.o, err, c.bad)
		}
	}
}

func TestCheckWeights(t *testing.T) {
	w := shapes{"a": {2, 3}, "scale": {1}, "b": {4}}
	p := func(n string, s ...int64) Param { return Param{Name: n, Shape: s} }
	for _, c := range []struct {
		name   string
		params []Param
		hint   string
		want   string // "" = no error
	}{
		{"all there", []Param{p("a", 2, 3), p("b", 4)}, "", ""},
		{"scalar stored as [1]", []Param{p("scale")}, "", ""},
		{"other shape", []Param{p("a", 3, 2)}, "", "weight a has shape [2 3], the architecture needs [3 2]"},
		{"other rank", []Param{p("b", 4, 1)}, "", "weight b has shape [4], the architecture needs [4 1]"},
		{"missing", []Param{p("a", 2, 3), p("x"), p("y")}, "", "weights lack [x y]"},
		{"missing with hint", []Param{p("x")}, "give --base", "weights lack [x] (give --base)"},
		{"many missing", []Param{p("m1"), p("m2"), p("m3"), p("m4"), p("m5"), p("m6"), p("m7")}, "",
			"weights lack [m1 m2 m3 m4 m5] and 2 more"},
		{"a wrong shape before missing ones", []Param{p("x"), p("a", 6)}, "", "weight a has shape"},
	} {
		err := CheckWeights(w, c.params, c.hint)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), c.want)):
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		case c.want != "" && !strings.HasPrefix(c.want, "weight a") && err.Error() != c.want:
			t.Errorf("%s: err = %q, want exactly %q", c.name, err, c.want)
		}
	}
}
