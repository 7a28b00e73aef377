package hp_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/icthp/icthp/hp"
	"github.com/icthp/icthp/internal/clipref"
	"github.com/icthp/icthp/internal/testmodels"
	"github.com/icthp/icthp/models"
)

func TestSigmoid(t *testing.T) {
	for _, c := range []struct{ x, want float64 }{
		{0, 0.5},
		{math.Log(3), 0.75},    // 1/(1+1/3)
		{-math.Log(3), 0.25},   // 1/(1+3)
		{math.Log(99), 0.99},   // 1/(1+1/99)
		{800, 1},               // e^800 overflows; the result must not be NaN
		{-800, math.Exp(-800)}, // underflows to 0 without NaN
		{-40, math.Exp(-40) / (1 + math.Exp(-40))},
		{math.Inf(1), 1},
		{math.Inf(-1), 0},
	} {
		got := hp.Sigmoid(c.x)
		if math.IsNaN(got) || math.Abs(got-c.want) > 1e-15*math.Max(1, c.want) {
			t.Errorf("Sigmoid(%v) = %v, want %v", c.x, got, c.want)
		}
	}
	// Symmetry σ(−x) = 1 − σ(x) across the two branches.
	for _, x := range []float64{0.1, 1, 5, 20} {
		if d := hp.Sigmoid(-x) - (1 - hp.Sigmoid(x)); math.Abs(d) > 1e-15 {
			t.Errorf("σ(−%v) − (1 − σ(%v)) = %g", x, x, d)
		}
	}
	if r := (hp.Result{Logit: math.Log(3)}); math.Abs(r.HP()-0.75) > 1e-15 {
		t.Errorf("Result.HP = %v", r.HP())
	}
}

// The scorer's hp_logit, hp and embedding equal the float64 reference's
// head(get_image_features(pixels)) on the same weights.
func TestScorerAgainstReference(t *testing.T) {
	for _, fused := range []bool{true, false} {
		name := "fused"
		if !fused {
			name = "unfused"
		}
		t.Run(name, func(t *testing.T) {
			dir, m, c, w := testmodels.OpenTiny(t, models.KindHP, 11, fused)
			s, err := hp.New(dir, m.Manifest, m)
			if err != nil {
				t.Fatal(err)
			}
			if s.Version() != m.Manifest.Version || !strings.HasPrefix(s.Version(), "hp-") {
				t.Errorf("version %q", s.Version())
			}
			const n = 3
			px := testmodels.NormalPixels(n*s.Images().TensorLen(), 5, 6)
			res, err := s.Score(context.Background(), px, n)
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != n {
				t.Fatalf("%d results for %d images", len(res), n)
			}
			ref, err := clipref.ImageFeatures(&c, w, px, n)
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for i := range res {
				logit, err := clipref.HPLogit(w, ref[i])
				if err != nil {
					t.Fatal(err)
				}
				worst = math.Max(worst, math.Abs(res[i].Logit-logit))
				worst = math.Max(worst, math.Abs(res[i].HP()-clipref.Sigmoid(logit)))
				unit := clipref.Normalize(ref[i])
				for j := range unit {
					worst = math.Max(worst, math.Abs(float64(res[i].Embed[j])-unit[j]))
				}
			}
			if worst > 1e-5 {
				t.Fatalf("max |hp − reference| = %g", worst)
			}
			t.Logf("max |hp − reference| = %.3g", worst)
		})
	}
}

func TestNewRefusesOtherKinds(t *testing.T) {
	dir, m, _, _ := testmodels.OpenTiny(t, models.KindCLIP, 3, true)
	if _, err := hp.New(dir, m.Manifest, m); err == nil || !strings.Contains(err.Error(), `"clip"`) {
		t.Fatalf("hp.New on a clip model: %v", err)
	}
}

// fakeEncoder returns fixed outputs, to test how Score reads them.
type fakeEncoder struct {
	out [][]float32
	err error
}

func (f fakeEncoder) EncodeImages(ctx context.Context, pixels []float32, n int) ([][]float32, error) {
	return f.out, f.err
}

// Score maps output 0 to logits and output 1 to normalised embeddings, and
// refuses a graph that returns too few outputs rather than indexing past
// them.
func TestScoreReadsOutputs(t *testing.T) {
	dir, m, _, _ := testmodels.OpenTiny(t, models.KindHP, 3, true)
	mk := func(enc hp.Encoder) *hp.Scorer {
		s, err := hp.New(dir, m.Manifest, enc)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	res, err := mk(fakeEncoder{out: [][]float32{{2, -1}, {3, 4, 0, 5}}}).Score(context.Background(), nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Logit != 2 || res[1].Logit != -1 || res[0].Embed[0] != 0.6 || res[0].Embed[1] != 0.8 || res[1].Embed[1] != 1 {
		t.Errorf("results %+v", res)
	}
	if _, err := mk(fakeEncoder{out: [][]float32{{2, -1}}}).Score(context.Background(), nil, 2); err == nil {
		t.Error("one output accepted")
	}
	boom := errors.New("boom")
	if _, err := mk(fakeEncoder{err: boom}).Score(context.Background(), nil, 2); !errors.Is(err, boom) {
		t.Errorf("encoder error = %v", err)
	}
	if r, err := mk(fakeEncoder{err: boom}).Score(context.Background(), nil, 0); r != nil || err != nil {
		t.Errorf("empty batch = %v, %v", r, err)
	}
}
