package ict_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/icthp/icthp/ict"
	"github.com/icthp/icthp/internal/clipref"
	"github.com/icthp/icthp/internal/testmodels"
	"github.com/icthp/icthp/models"
)

func TestNormalize(t *testing.T) {
	for _, c := range []struct {
		name    string
		in, out []float32
	}{
		{"3-4-5", []float32{3, 4}, []float32{0.6, 0.8}},
		{"negative", []float32{0, -2, 0}, []float32{0, -1, 0}},
		{"unit stays", []float32{1, 0, 0, 0}, []float32{1, 0, 0, 0}},
		{"zero stays zero", []float32{0, 0, 0}, []float32{0, 0, 0}},
		// 1e20² overflows float32 but not the float64 accumulator.
		{"huge", []float32{1e20, 1e20}, []float32{float32(1 / math.Sqrt2), float32(1 / math.Sqrt2)}},
		{"tiny", []float32{1e-30, 0, -1e-30}, []float32{float32(1 / math.Sqrt2), 0, -float32(1 / math.Sqrt2)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := append([]float32(nil), c.in...)
			ict.Normalize(v)
			for i := range v {
				if math.Abs(float64(v[i]-c.out[i])) > 1e-7 {
					t.Fatalf("Normalize(%v) = %v, want %v", c.in, v, c.out)
				}
			}
		})
	}
}

func TestScoreIsDotProduct(t *testing.T) {
	// Hand computed: 0.6·0.8 + 0.8·0.6 = 0.96; orthogonal = 0; opposite = −1.
	for _, c := range []struct {
		a, b []float32
		want float64
	}{
		{[]float32{0.6, 0.8}, []float32{0.8, 0.6}, 0.96},
		{[]float32{1, 0}, []float32{0, 1}, 0},
		{[]float32{0.6, 0.8}, []float32{-0.6, -0.8}, -1},
	} {
		if got := ict.Score(c.a, c.b); math.Abs(got-c.want) > 1e-7 {
			t.Errorf("Score(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestRows(t *testing.T) {
	flat := []float32{3, 4, 0, 0, 5, 12}
	rows := ict.Rows(flat, 3, true)
	want := [][]float32{{0.6, 0.8}, {0, 0}, {5.0 / 13, 12.0 / 13}}
	if len(rows) != 3 {
		t.Fatalf("%d rows", len(rows))
	}
	for i := range want {
		for j := range want[i] {
			if math.Abs(float64(rows[i][j]-want[i][j])) > 1e-7 {
				t.Fatalf("rows = %v, want %v", rows, want)
			}
		}
	}
	// A row cannot grow into its neighbour.
	if cap(rows[0]) != 2 {
		t.Errorf("row capacity %d, want 2", cap(rows[0]))
	}
	raw := ict.Rows([]float32{3, 4}, 1, false)
	if raw[0][0] != 3 || raw[0][1] != 4 {
		t.Errorf("unnormalised row = %v", raw[0])
	}
	if ict.Rows(nil, 0, true) != nil {
		t.Error("Rows of 0 rows is not nil")
	}
}

// The scorer's ICT equals the cosine of the float64 reference's text and
// image features of the same weights, ids and pixels.
func TestScorerAgainstReference(t *testing.T) {
	dir, m, c, w := testmodels.OpenTiny(t, models.KindCLIP, 7, true)
	s, err := ict.New(dir, m.Manifest, m)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version() != m.Manifest.Version || !strings.HasPrefix(s.Version(), "clip-") {
		t.Errorf("version %q, manifest %q", s.Version(), m.Manifest.Version)
	}
	prompts := []string{"a red apple on a wooden table", "a cat", ""}
	texts, err := s.EmbedTexts(context.Background(), prompts)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2
	px := testmodels.NormalPixels(n*s.Images().TensorLen(), 1, 2)
	refI, err := clipref.ImageFeatures(&c, w, px, n)
	if err != nil {
		t.Fatal(err)
	}
	images, err := s.EmbedImages(context.Background(), px, n)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, 0, len(prompts)*77)
	for _, p := range prompts {
		row, err := s.Tokenizer().Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, row...)
	}
	refT, err := clipref.TextFeatures(&c, w, ids, len(prompts))
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i := range prompts {
		if got := norm(texts[i]); math.Abs(got-1) > 1e-6 {
			t.Errorf("text embedding %d has norm %v", i, got)
		}
		for j := 0; j < n; j++ {
			got := ict.Score(texts[i], images[j])
			want := clipref.Cosine(refT[i], refI[j])
			worst = math.Max(worst, math.Abs(got-want))
		}
	}
	if worst > 1e-5 {
		t.Fatalf("max |ict − reference cosine| = %g", worst)
	}
	t.Logf("max |ict − reference cosine| = %.3g", worst)
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func TestNewRefusesOtherKinds(t *testing.T) {
	dir, m, _, _ := testmodels.OpenTiny(t, models.KindHP, 3, true)
	if _, err := ict.New(dir, m.Manifest, m); err == nil || !strings.Contains(err.Error(), `"hp"`) {
		t.Fatalf("ict.New on an hp model: %v", err)
	}
}

func TestEmptyBatches(t *testing.T) {
	dir, m, _, _ := testmodels.OpenTiny(t, models.KindCLIP, 7, true)
	s, err := ict.New(dir, m.Manifest, m)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := s.EmbedTexts(context.Background(), nil); e != nil || err != nil {
		t.Errorf("EmbedTexts(nil) = %v, %v", e, err)
	}
	if e, err := s.EmbedImages(context.Background(), nil, 0); e != nil || err != nil {
		t.Errorf("EmbedImages(0) = %v, %v", e, err)
	}
}
