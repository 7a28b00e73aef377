package scoring

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestGroupICTHP(t *testing.T) {
	ln2, ln3 := math.Log(2), math.Log(3)
	for _, c := range []struct {
		name        string
		ict, logits []float64
		want        []float64
	}{
		// softmax(0, ln2, ln3) = (1, 2, 3)/6 by hand.
		{"hand", []float64{0.5, 0.2, 0.8}, []float64{0, ln2, ln3}, []float64{0.5 / 6, 0.4 / 6, 2.4 / 6}},
		// The softmax does not change when every logit moves by the same
		// amount, however far: no overflow to Inf/Inf, no underflow to 0/0.
		{"huge", []float64{0.5, 0.2, 0.8}, []float64{1000, 1000 + ln2, 1000 + ln3}, []float64{0.5 / 6, 0.4 / 6, 2.4 / 6}},
		{"very negative", []float64{0.5, 0.2, 0.8}, []float64{-1000, -1000 + ln2, -1000 + ln3}, []float64{0.5 / 6, 0.4 / 6, 2.4 / 6}},
		{"max float", []float64{0.5, 0.2}, []float64{math.MaxFloat64, math.MaxFloat64}, []float64{0.25, 0.1}},
		// One logit far above the others takes all the weight.
		{"dominant", []float64{0.3, 0.9}, []float64{1e6, 0}, []float64{0.3, 0}},
		{"single", []float64{0.42}, []float64{-7}, []float64{0.42}},
		{"equal logits", []float64{0.1, 0.2, 0.3, 0.4}, []float64{2, 2, 2, 2}, []float64{0.025, 0.05, 0.075, 0.1}},
		{"empty", nil, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := GroupICTHP(c.ict, c.logits)
			if len(got) != len(c.want) {
				t.Fatalf("GroupICTHP = %v, want %v", got, c.want)
			}
			for i := range got {
				if math.IsNaN(got[i]) || math.Abs(got[i]-c.want[i]) > 1e-12 {
					t.Fatalf("GroupICTHP = %v, want %v", got, c.want)
				}
			}
		})
	}
	defer func() {
		if recover() == nil {
			t.Error("mismatched lengths did not panic")
		}
	}()
	GroupICTHP([]float64{1}, []float64{1, 2})
}

func TestRankOrder(t *testing.T) {
	for _, c := range []struct {
		scores []float64
		want   []int
	}{
		{[]float64{0.1, 0.3, 0.2}, []int{1, 2, 0}},
		// Ties keep request order.
		{[]float64{0.3, 0.5, 0.3, 0.5}, []int{1, 3, 0, 2}},
		{[]float64{1, 1, 1}, []int{0, 1, 2}},
		{[]float64{-2, -1}, []int{1, 0}},
		{nil, []int{}},
	} {
		if got := RankOrder(c.scores); !slices.Equal(got, c.want) {
			t.Errorf("RankOrder(%v) = %v, want %v", c.scores, got, c.want)
		}
	}
}

func TestParseCombination(t *testing.T) {
	for _, c := range []struct {
		in      string
		kind    string
		weights map[string]float64
		err     string // substring of the error; "" for none
	}{
		{"", "product", nil, ""},
		{"product", "product", nil, ""},
		{"  product ", "product", nil, ""},
		{"ict", "ict", nil, ""},
		{"hp", "hp", nil, ""},
		{"imagereward", "imagereward", nil, ""},
		{"weighted:ict=1,hp=0.5", "weighted", map[string]float64{"ict": 1, "hp": 0.5}, ""},
		{"weighted: ict = 2 , hp_logit=-0.25", "weighted", map[string]float64{"ict": 2, "hp_logit": -0.25}, ""},
		{"weighted:imagereward=1e-3", "weighted", map[string]float64{"imagereward": 1e-3}, ""},
		{"weighted:", "", nil, "name=number"},
		{"weighted", "", nil, "name=number"},
		{"weighted:ict", "", nil, "name=number"},
		{"weighted:ict=x", "", nil, "name=number"},
		{"weighted:ict=1,", "", nil, "name=number"},
		{"weighted:ict=1 2", "", nil, "name=number"},
		{"weighted:Aesthetic=1", "", nil, "unknown score"},
		{"aesthetic", "aesthetic", nil, ""}, // any score name parses; the loaded models decide
		{"weighted:ict=NaN", "", nil, "not finite"},
		{"weighted:ict=Inf", "", nil, "not finite"},
		{"weighted:ict=1,ict=2", "", nil, "twice"},
		{"ICT", "", nil, "want product"},
		{"ict-hp", "", nil, "want product"},
		{"hp:0.5", "", nil, "takes no arguments"},
	} {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseCombination(c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("ParseCombination(%q) error = %v, want one saying %q", c.in, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind != c.kind || len(got.Weights) != len(c.weights) {
				t.Fatalf("ParseCombination(%q) = %+v", c.in, got)
			}
			for k, w := range c.weights {
				if got.Weights[k] != w {
					t.Fatalf("ParseCombination(%q) = %+v, want weights %v", c.in, got, c.weights)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		comb Combination
		err  string
	}{
		{Combination{}, ""},
		{Combination{Kind: "product"}, ""},
		{Combination{Kind: "hp"}, ""},
		{Combination{Kind: "weighted", Weights: map[string]float64{"ict": 1}}, ""},
		{Combination{Kind: "weighted"}, "at least one weight"},
		{Combination{Kind: "weighted", Weights: map[string]float64{"Beauty": 1}}, "unknown score"},
		{Combination{Kind: "weighted", Weights: map[string]float64{"hp": math.Inf(-1)}}, "not finite"},
		{Combination{Kind: "median"}, ""}, // a score name: the loaded models decide (Apply)
		{Combination{Kind: "me dian"}, "unknown reward combination"},
		{Combination{Kind: "ict", Weights: map[string]float64{"ict": 1}}, "only a weighted"},
	} {
		err := c.comb.Validate()
		if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%+v.Validate() = %v, want %q", c.comb, err, c.err)
		}
	}
}

func sc(kv ...any) Scores {
	var s Scores
	for i := 0; i < len(kv); i += 2 {
		s.Values = append(s.Values, Score{Name: kv[i].(string), Value: kv[i+1].(float64)})
	}
	return s
}

// The default product multiplies these (the registry's Product outputs).
var products = map[string]bool{"ict": true, "hp": true, "imagereward": true}

func TestApply(t *testing.T) {
	all := sc("ict", 0.3, "hp", 0.8, "hp_logit", 1.5, "imagereward", -0.5)
	ictHP := sc("ict", 0.3, "hp", 0.8, "hp_logit", 1.5)
	for _, c := range []struct {
		name   string
		comb   string
		scores Scores
		want   float64
		err    string
	}{
		{"default is ict × hp", "", ictHP, 0.24, ""},
		{"product of all loaded", "product", all, 0.3 * 0.8 * -0.5, ""},
		{"product of hp alone", "product", sc("hp", 0.8, "hp_logit", 1.5), 0.8, ""},
		{"product of ict alone", "product", sc("ict", 0.3), 0.3, ""},
		{"product of nothing", "product", Scores{}, 0, "at least one score"},
		{"ict", "ict", all, 0.3, ""},
		{"hp", "hp", all, 0.8, ""},
		{"imagereward", "imagereward", all, -0.5, ""},
		{"imagereward not loaded", "imagereward", ictHP, 0, "imagereward"},
		{"hp not loaded", "hp", sc("ict", 0.3), 0, "hp"},
		{"weighted", "weighted:ict=2,hp_logit=0.5,imagereward=-1", all, 2*0.3 + 0.5*1.5 + 0.5, ""},
		{"weighted needs its scores", "weighted:ict=1,imagereward=1", ictHP, 0, "imagereward"},
		{"weighted overflows", "weighted:ict=1e308,hp=1e308", sc("ict", 1.5, "hp", 1.5), 0, "overflows"},
		{"product overflows", "product", sc("ict", 1e200, "imagereward", 1e200), 0, "overflows"},
	} {
		t.Run(c.name, func(t *testing.T) {
			comb, err := ParseCombination(c.comb)
			if err != nil {
				t.Fatal(err)
			}
			got, err := comb.Apply(products, c.scores)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("Apply = %v, %v; want an error naming %q", got, err, c.err)
				}
				return
			}
			if err != nil || math.Abs(got-c.want) > 1e-15 {
				t.Fatalf("Apply = %v, %v; want %v", got, err, c.want)
			}
		})
	}
}
