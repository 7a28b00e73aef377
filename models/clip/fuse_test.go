package clip_test

import (
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/icthp/icthp/models/clip"
)

// contribNodes are the com.microsoft node kinds in a saved graph, read from
// the node names the builder gives them (Kind_N).
var contribNode = regexp.MustCompile(`(?:^|[^A-Za-z])(Attention|MultiHeadAttention|SkipLayerNormalization|BiasGelu|FastGelu|QuickGelu)_[0-9]+`)

func contribKinds(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, m := range contribNode.FindAllSubmatch(b, -1) {
		if k := string(m[1]); !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	slices.Sort(kinds)
	return kinds
}

// Graphs with one fused kind each (the forms a GPU check bisects a
// provider's crash with) hold just that kind of contrib node and compute
// the float64 reference's function, like the plain and all-fused graphs.
// MultiHeadAttention is also checked in float16, the form whose flash
// kernels the CUDA provider uses.
func TestFusedKindsMatchFloat64Reference(t *testing.T) {
	needORT(t)
	const n = 3
	cases := []struct {
		fuse     string
		fp16     bool
		image    []string // contrib kinds in the vision graph, "" for the activation's
		text     []string
		tol, cos float64
	}{
		{fuse: "attention", image: []string{"Attention"}, text: []string{"Attention"}, tol: 1e-4},
		{fuse: "mha", image: []string{"MultiHeadAttention"}, text: nil, tol: 1e-4},
		{fuse: "skiplayernorm", image: []string{"SkipLayerNormalization"}, text: []string{"SkipLayerNormalization"}, tol: 1e-4},
		{fuse: "gelu", image: []string{""}, text: []string{""}, tol: 1e-4},
		{fuse: "attention,skiplayernorm,gelu", image: []string{"Attention", "SkipLayerNormalization", ""}, text: []string{"Attention", "SkipLayerNormalization", ""}, tol: 1e-4},
		{fuse: "mha,skiplayernorm,gelu", fp16: true, image: []string{"MultiHeadAttention", "SkipLayerNormalization", ""}, text: []string{"SkipLayerNormalization", ""}, cos: 1e-5},
	}
	for _, tc := range cases {
		for _, act := range []clip.Activation{clip.GELU, clip.QuickGELU} {
			name := strings.ReplaceAll(tc.fuse, ",", "+") + "/" + string(act)
			if tc.fp16 {
				name += "/fp16"
			}
			t.Run(name, func(t *testing.T) {
				kinds, err := clip.ParseFuse(tc.fuse)
				if err != nil {
					t.Fatal(err)
				}
				r := runTiny(t, act, n, clip.BuildOptions{Fuse: kinds, FP16: tc.fp16}, runMode{})
				if got, want := contribKinds(t, r.g.vision), wantKinds(tc.image, act); !slices.Equal(got, want) {
					t.Errorf("vision graph has contrib nodes %v, want %v", got, want)
				}
				if got, want := contribKinds(t, r.g.text), wantKinds(tc.text, act); !slices.Equal(got, want) {
					t.Errorf("text graph has contrib nodes %v, want %v", got, want)
				}
				got := r.against(t, r.references(t, false))
				t.Logf("against float64: max |Δ| %.3g, 1 − cosine %.3g, hp_logit |Δ| %.3g", got.abs, 1-got.cos, got.logit)
				if tc.fp16 {
					if 1-got.cos > tc.cos || got.logit > 5e-3 {
						t.Errorf("1 − cosine %.3g (want ≤ %g), hp_logit |Δ| %.3g (want ≤ 5e-3)", 1-got.cos, tc.cos, got.logit)
					}
				} else if got.abs > tc.tol || got.logit > tc.tol {
					t.Errorf("max |Δ| %.3g, hp_logit |Δ| %.3g: want ≤ %g", got.abs, got.logit, tc.tol)
				}
			})
		}
	}
}

// wantKinds is the sorted list of contrib kinds ks, "" standing for the
// fused form of activation act.
func wantKinds(ks []string, act clip.Activation) []string {
	gelu := map[clip.Activation]string{clip.GELU: "BiasGelu", clip.QuickGELU: "QuickGelu"}
	out := []string{}
	for _, k := range ks {
		if k == "" {
			k = gelu[act]
		}
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestParseFuse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []clip.FusedKind
		bad  bool
	}{
		{in: "", want: nil},
		{in: "gelu, Attention,gelu", want: []clip.FusedKind{clip.FuseGelu, clip.FuseAttention}},
		{in: "flash", bad: true},
		{in: "mha,attention", bad: true},
	} {
		got, err := clip.ParseFuse(tc.in)
		if tc.bad != (err != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("ParseFuse(%q) = %v, %v", tc.in, got, err)
		}
		if tc.bad && !errors.Is(err, clip.ErrOptions) {
			t.Errorf("ParseFuse(%q): %v is not ErrOptions", tc.in, err)
		}
	}
	c, _ := clip.PresetConfig(clip.PresetTiny)
	w := clip.NewRandom(&c, 1, true)
	for _, o := range []clip.BuildOptions{
		{Fuse: []clip.FusedKind{clip.FuseAttention, clip.FuseMHA}},
		{Fuse: []clip.FusedKind{clip.FuseGelu}, Fused: true},
		{Fuse: []clip.FusedKind{clip.FuseGelu}, Int8: true},
	} {
		if _, err := clip.BuildVision(&c, w, o); !errors.Is(err, clip.ErrOptions) {
			t.Errorf("BuildVision(%+v): %v, want ErrOptions", o, err)
		}
	}
}
