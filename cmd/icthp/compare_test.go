package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/icthp/icthp/compare"
	"github.com/icthp/icthp/ict"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/preprocess"
)

// compareJSON runs `models compare --json` and decodes its one object,
// refusing unknown fields.
func compareJSON(t *testing.T, args ...string) (rep compareReport, stderr string, code int) {
	t.Helper()
	out, errOut, code := icthp(t, append([]string{"models", "compare", "--json"}, args...)...)
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("models compare %s: exit %d, stdout %q, want one JSON line\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("models compare output %q: %v", out, err)
	}
	return rep, errOut, code
}

// refSpearman is Spearman's correlation written differently from the
// command's: each value's average rank counted directly (1 + the values
// below it + half the others equal to it), then Pearson's correlation with
// means taken from the ranks.
func refSpearman(x, y []float64) float64 {
	rank := func(v []float64) []float64 {
		r := make([]float64, len(v))
		for i := range v {
			below, equal := 0, 0
			for j := range v {
				switch {
				case v[j] < v[i]:
					below++
				case v[j] == v[i] && j != i:
					equal++
				}
			}
			r[i] = 1 + float64(below) + float64(equal)/2
		}
		return r
	}
	rx, ry := rank(x), rank(y)
	var mx, my float64
	for i := range rx {
		mx, my = mx+rx[i], my+ry[i]
	}
	mx, my = mx/float64(len(rx)), my/float64(len(ry))
	var sxy, sxx, syy float64
	for i := range rx {
		sxy += (rx[i] - mx) * (ry[i] - my)
		sxx += (rx[i] - mx) * (rx[i] - mx)
		syy += (ry[i] - my) * (ry[i] - my)
	}
	return sxy / math.Sqrt(sxx) / math.Sqrt(syy)
}

// refPairs counts pairs and those in the same order: the product of the two
// differences is positive, or both are ties.
func refPairs(x, y []float64) (pairs, same int) {
	for i := range x {
		for j := 0; j < i; j++ {
			pairs++
			dx, dy := x[i]-x[j], y[i]-y[j]
			if dx*dy > 0 || (dx == 0 && dy == 0) {
				same++
			}
		}
	}
	return pairs, same
}

func refCosine(x, y []float32) float64 {
	var dot, nx, ny float64
	for i := range x {
		dot += float64(x[i]) * float64(y[i])
		nx += float64(x[i]) * float64(x[i])
		ny += float64(y[i]) * float64(y[i])
	}
	return dot / math.Sqrt(nx) / math.Sqrt(ny)
}

// refEmbeddings runs each image alone through dir's vision graph and
// returns its embedding by path. The pixels are icthp's pipeline's, after
// checking that its crop is Pillow's byte for byte: an int8 graph's output
// jumps when one pixel moves by a float32 ulp (Pillow's crop normalised in
// float64 moved checkers.webp's int8 hp_logit by 0.008 and its embedding
// cosine by 2e-5), so only the same tensor gives a reference to 1e-6.
func refEmbeddings(t *testing.T, dir string, imgs []refImage) map[string][]float32 {
	t.Helper()
	md, err := models.Open(dir, models.SessionOptions{IntraOpThreads: 1, MaxBatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	pipe, err := preprocess.NewImagePipeline(ict.ImageOptions(md.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for _, im := range imgs {
		data, err := os.ReadFile(im.path)
		if err != nil {
			t.Fatal(err)
		}
		crop, err := pipe.Crop(data)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(crop.Pix, im.crop) {
			t.Fatalf("%s: icthp's crop for %s is not Pillow's", im.path, dir)
		}
		px := make([]float32, pipe.TensorLen())
		if err := pipe.Tensor(data, px); err != nil {
			t.Fatal(err)
		}
		o, err := md.EncodeImages(context.Background(), px, 1)
		if err != nil {
			t.Fatal(err)
		}
		if md.Manifest.Kind == models.KindHP {
			out[im.path] = o[1] // hp_logit, embedding
		} else {
			out[im.path] = o[0]
		}
	}
	return out
}

// refTextEmbedding is dir's text embedding of prompt, from the ids
// `icthp tokenize` prints.
func refTextEmbedding(t *testing.T, dir, prompt string) []float32 {
	t.Helper()
	ids := tokenizeLines(t, mustRun(t, "tokenize", "--model", dir, prompt))[0]
	md, err := models.Open(dir, models.SessionOptions{IntraOpThreads: 1, MaxBatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	o, err := md.EncodeTexts(context.Background(), ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	return o[0]
}

// wantCompare computes what `models compare A B images...` should report:
// the scores from `icthp score` with each model, Spearman and pairs from
// those scores here, embeddings from refEmbeddings.
func wantCompare(t *testing.T, a, b string, kind models.Kind, prompt string, imgs []refImage, images []string) compareReport {
	t.Helper()
	scores := func(dir string) map[string][]float64 {
		args := []string{"score", "--hp", dir}
		if kind == models.KindCLIP {
			args = []string{"score", "--ict", dir, "--prompt", prompt}
		}
		byImage := map[string][]float64{}
		for _, l := range parseLines(t, mustRun(t, append(args, images...)...)) {
			if kind == models.KindCLIP {
				byImage[l.Image] = []float64{*l.ICT}
			} else {
				byImage[l.Image] = []float64{*l.HPLogit, *l.HP}
			}
		}
		return byImage
	}
	sa, sb := scores(a), scores(b)
	ea, eb := refEmbeddings(t, a, imgs), refEmbeddings(t, b, imgs)
	if len(sa) != len(imgs) {
		t.Fatalf("score gave %d images, the reference has %d", len(sa), len(imgs))
	}
	names := []string{"ict"}
	if kind == models.KindHP {
		names = []string{"hp_logit", "hp"}
	}
	want := compareReport{ImagesCompared: len(imgs), Deltas: map[string]*compare.Deltas{}, RankBy: names[0]}
	cosMin, cosSum := 2.0, 0.0
	x, y := make([]float64, len(imgs)), make([]float64, len(imgs))
	for n, name := range names {
		d := &compare.Deltas{}
		for i, im := range imgs {
			va, vb := sa[im.path], sb[im.path]
			if va == nil || vb == nil {
				t.Fatalf("score printed no line for %s", im.path)
			}
			d.MaxAbs = math.Max(d.MaxAbs, math.Abs(va[n]-vb[n]))
			d.MeanAbs += math.Abs(va[n]-vb[n]) / float64(len(imgs))
			if n == 0 {
				x[i], y[i] = va[0], vb[0]
				c := refCosine(ea[im.path], eb[im.path])
				cosMin, cosSum = math.Min(cosMin, c), cosSum+c
			}
		}
		want.Deltas[name] = d
	}
	cosMean := cosSum / float64(len(imgs))
	s := refSpearman(x, y)
	want.CosineMin, want.CosineMean, want.Spearman = &cosMin, &cosMean, &s
	want.Pairs, want.PairsSameOrder = refPairs(x, y)
	agree := float64(want.PairsSameOrder) / float64(want.Pairs)
	want.PairAgreement = &agree
	if kind == models.KindCLIP {
		c := refCosine(refTextEmbedding(t, a, prompt), refTextEmbedding(t, b, prompt))
		want.TextCosine = &c
	}
	return want
}

// Tolerances: score figures come from the same runs as `icthp score`'s
// (same images, same batches), so they agree to rounding; the reference
// embeddings come from the same tensors run one at a time (the float model
// batches them in compare), which moves a cosine by float32 rounding only
// (measured: 2e-10 at most), far below the int8 model's distance (1 - cosine
// is about 5e-5).
const (
	scoreTol  = 1e-12
	cosineTol = 1e-8
)

func checkCompare(t *testing.T, got, want compareReport) {
	t.Helper()
	near := func(what string, g, w *float64, tol float64) {
		t.Helper()
		switch {
		case g == nil && w == nil:
		case g == nil || w == nil:
			t.Errorf("%s: got %v, want %v", what, g, w)
		case math.Abs(*g-*w) > tol || math.IsNaN(*g):
			t.Errorf("%s = %.12g, reference %.12g (|Δ| %.3g > %g)", what, *g, *w, math.Abs(*g-*w), tol)
		}
	}
	if got.ImagesCompared != want.ImagesCompared || got.ImagesFailed != want.ImagesFailed {
		t.Errorf("images compared %d failed %d, want %d and %d", got.ImagesCompared, got.ImagesFailed, want.ImagesCompared, want.ImagesFailed)
	}
	near("embedding_cosine_min", got.CosineMin, want.CosineMin, cosineTol)
	near("embedding_cosine_mean", got.CosineMean, want.CosineMean, cosineTol)
	near("text_embedding_cosine", got.TextCosine, want.TextCosine, cosineTol)
	if len(got.Deltas) != len(want.Deltas) {
		t.Errorf("deltas for %v, want %v", keys(got.Deltas), keys(want.Deltas))
	}
	for n, w := range want.Deltas {
		g := got.Deltas[n]
		if g == nil {
			t.Errorf("no deltas for %s", n)
			continue
		}
		near(n+" max |Δ|", &g.MaxAbs, &w.MaxAbs, scoreTol)
		near(n+" mean |Δ|", &g.MeanAbs, &w.MeanAbs, scoreTol)
	}
	if got.RankBy != want.RankBy {
		t.Errorf("rank_by %q, want %q", got.RankBy, want.RankBy)
	}
	near("spearman", got.Spearman, want.Spearman, scoreTol)
	if got.Pairs != want.Pairs || got.PairsSameOrder != want.PairsSameOrder {
		t.Errorf("pairs %d of %d in the same order, want %d of %d", got.PairsSameOrder, got.Pairs, want.PairsSameOrder, want.Pairs)
	}
	near("pair_agreement", got.PairAgreement, want.PairAgreement, scoreTol)
}

func keys(m map[string]*compare.Deltas) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

// TestModelsCompare compares float32 and int8 conversions of the same
// random weights, and models with themselves, on the demo images and the
// preprocess fixtures; every figure is checked against one computed here
// from `icthp score`'s output and reference embeddings.
func TestModelsCompare(t *testing.T) {
	needORT(t)
	root := t.TempDir()
	dir := func(n string) string { return filepath.Join(root, n) }
	for _, c := range [][]string{
		{"--kind", "hp", "--seed", "3", "--out", dir("hp")},
		{"--kind", "hp", "--seed", "3", "--int8", "--out", dir("hp8")},
		{"--kind", "clip", "--seed", "4", "--out", dir("clip")},
		{"--kind", "clip", "--seed", "4", "--int8", "--out", dir("clip8")},
	} {
		mustRun(t, append([]string{"convert", "random", "--preset", "tiny"}, c...)...)
	}
	const prompt = "a red fox in the snow"
	imgs := refImages(t) // the fixtures, then the three demo images
	images := []string{filepath.Join(repoRoot, "testdata/demo/*")}
	for _, im := range imgs {
		if !strings.Contains(im.path, "testdata/demo/") {
			images = append(images, im.path)
		}
	}
	if len(imgs) != len(images)-1+3 {
		t.Fatalf("%d reference images, %d arguments: want the three demo images among them", len(imgs), len(images))
	}
	version := func(d string) (string, string) {
		m, err := models.ReadManifest(d)
		if err != nil {
			t.Fatal(err)
		}
		return m.Version, m.Precision
	}
	f := compareFixture{dir: dir, version: version, prompt: prompt, imgs: imgs, images: images}

	for _, c := range []struct {
		name   string
		a, b   string
		kind   models.Kind
		prompt []string
	}{
		{"hp float32 against int8", dir("hp"), dir("hp8"), models.KindHP, nil},
		{"clip float32 against int8", dir("clip"), dir("clip8"), models.KindCLIP, []string{"--prompt", prompt}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, errOut, code := compareJSON(t, append(append(c.prompt, c.a, c.b), images...)...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			want := wantCompare(t, c.a, c.b, c.kind, prompt, imgs, images)
			checkCompare(t, got, want)
			for _, side := range []struct {
				got compareModel
				dir string
			}{{got.A, c.a}, {got.B, c.b}} {
				v, p := version(side.dir)
				if side.got.Dir != side.dir || side.got.Kind != c.kind || side.got.Version != v || side.got.Precision != p {
					t.Errorf("model %+v, want %s kind %s version %s precision %s", side.got, side.dir, c.kind, v, p)
				}
			}
			if got.A.Precision != "float32" || got.B.Precision != "int8" {
				t.Errorf("precisions %s and %s, want float32 and int8", got.A.Precision, got.B.Precision)
			}
			if *got.CosineMin >= 1 || *got.CosineMin < 0.99 {
				t.Errorf("int8 embedding cosine min %v: want below 1 (quantised) and above 0.99", *got.CosineMin)
			}
			t.Logf("%s: cosine min %.6f mean %.6f, %s max |Δ| %.4g, Spearman %.4f, pairs %d/%d",
				c.name, *got.CosineMin, *got.CosineMean, got.RankBy, got.Deltas[got.RankBy].MaxAbs, *got.Spearman, got.PairsSameOrder, got.Pairs)
		})
	}

	t.Run("model against itself", func(t *testing.T) { compareAgainstItself(t, f) })

	t.Run("text output", func(t *testing.T) { compareTextOutput(t, f) })

	t.Run("bad images among good", func(t *testing.T) { compareBadImages(t, f) })

	t.Run("usage errors", func(t *testing.T) { compareUsageErrors(t, f) })
}

// compareFixture is what TestModelsCompare's subtests share: the model
// directories (dir), their manifests' version and precision, the prompt,
// the reference images and the command's image arguments.
type compareFixture struct {
	dir     func(string) string
	version func(string) (string, string)
	prompt  string
	imgs    []refImage
	images  []string
}

// compareAgainstItself: a model compared with itself: cosine 1, every Δ 0, Spearman 1, every pair in order.
func compareAgainstItself(t *testing.T, f compareFixture) {
	for _, c := range []struct {
		d    string
		args []string
	}{{f.dir("hp8"), nil}, {f.dir("clip"), []string{"--prompt", f.prompt}}} {
		got, _, code := compareJSON(t, append(append(c.args, c.d, c.d), f.images...)...)
		n := len(f.imgs)
		ok := code == 0 && got.ImagesCompared == n && *got.CosineMin == 1 && *got.CosineMean == 1 &&
			*got.Spearman == 1 && got.Pairs == n*(n-1)/2 && got.PairsSameOrder == got.Pairs && *got.PairAgreement == 1 &&
			(got.TextCosine == nil) == (c.args == nil) && (got.TextCosine == nil || *got.TextCosine == 1)
		for _, d := range got.Deltas {
			ok = ok && d.MaxAbs == 0 && d.MeanAbs == 0
		}
		if !ok {
			b, _ := json.Marshal(got)
			t.Errorf("%s against itself: exit %d, %s; want cosine 1, Δ 0, Spearman 1, every pair in order", c.d, code, b)
		}
	}
}

// compareTextOutput: the text report prints the JSON report's figures.
func compareTextOutput(t *testing.T, f compareFixture) {
	got, _, _ := compareJSON(t, f.dir("hp"), f.dir("hp8"), f.images[0])
	out := mustRun(t, "models", "compare", f.dir("hp"), f.dir("hp8"), f.images[0])
	va, _ := f.version(f.dir("hp"))
	for _, want := range []string{
		"images compared          3 (0 failed)\n",
		fmt.Sprintf("image embedding cosine   min %.6f  mean %.6f\n", *got.CosineMin, *got.CosineMean),
		fmt.Sprintf("hp_logit |Δ|             max %.4g  mean %.4g\n", got.Deltas["hp_logit"].MaxAbs, got.Deltas["hp_logit"].MeanAbs),
		fmt.Sprintf("hp |Δ|                   max %.4g  mean %.4g\n", got.Deltas["hp"].MaxAbs, got.Deltas["hp"].MeanAbs),
		fmt.Sprintf("Spearman (hp_logit)      %.6f\n", *got.Spearman),
		fmt.Sprintf("pairs in the same order  %d of 3 (%.2f %%)\n", got.PairsSameOrder, 100**got.PairAgreement),
		"version " + va + ", float32)",
		"int8)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
}

// compareBadImages: unreadable and missing images are named on stderr, counted, and the others compared as in a clean run.
func compareBadImages(t *testing.T, f compareFixture) {
	broken := f.dir("broken.png")
	if err := os.WriteFile(broken, []byte("not a png"), 0o644); err != nil {
		t.Fatal(err)
	}
	demo := []string{repoRoot + "/testdata/demo/apple.jpg", repoRoot + "/testdata/demo/checkers.webp", repoRoot + "/testdata/demo/sunset.png"}
	missing := f.dir("missing.jpg")
	clean, _, code := compareJSON(t, append([]string{f.dir("hp"), f.dir("hp8")}, demo...)...)
	if code != 0 {
		t.Fatalf("clean run: exit %d", code)
	}
	got, errOut, code := compareJSON(t, f.dir("hp"), f.dir("hp8"), demo[0], broken, demo[1], missing, demo[2])
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if code != 1 || len(lines) != 3 || !strings.Contains(lines[0], broken) || !strings.Contains(lines[1], missing) ||
		!strings.Contains(lines[2], "2 of 5 images failed") {
		t.Errorf("exit %d, stderr:\n%s\nwant 1, a line naming %s, one naming %s, then the count", code, errOut, broken, missing)
	}
	clean.ImagesFailed = 2
	checkCompare(t, got, clean)
}

// compareUsageErrors: usage errors exit 2 with one line; --prompt-file is the prompt.
func compareUsageErrors(t *testing.T, f compareFixture) {
	empty := f.dir("empty")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	pf := f.dir("prompt.txt")
	if err := os.WriteFile(pf, []byte(f.prompt+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	demo := repoRoot + "/testdata/demo/*"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{f.dir("hp"), f.dir("clip"), demo}, "of kind"},
		{[]string{f.dir("clip"), f.dir("clip8"), demo}, "--prompt"},
		{[]string{f.dir("nowhere"), f.dir("hp8"), demo}, "nowhere"},
		{[]string{f.dir("hp"), f.dir("nowhere"), demo}, "nowhere"},
		{[]string{f.dir("hp"), f.dir("hp8"), repoRoot + "/testdata/demo/apple.jpg"}, "at least 2"},
		{[]string{f.dir("hp"), f.dir("hp8"), empty}, "at least 2"},
		{[]string{f.dir("hp"), f.dir("hp8")}, "two model directories"},
		{[]string{"--prompt", "x", "--prompt-file", pf, f.dir("clip"), f.dir("clip8"), demo}, "not both"},
		{[]string{"--threads", "many", f.dir("hp"), f.dir("hp8"), demo}, "threads"},
	} {
		out, errOut, code := icthp(t, append([]string{"models", "compare"}, c.args...)...)
		if code != 2 || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("models compare %s: exit %d, stdout %q, stderr %q; want 2, one line with %q", strings.Join(c.args, " "), code, out, errOut, c.want)
		}
	}
	// --prompt-file is the prompt: the same report as --prompt.
	a, _, _ := compareJSON(t, "--prompt-file", pf, f.dir("clip"), f.dir("clip8"), demo)
	b, _, _ := compareJSON(t, "--prompt", f.prompt, f.dir("clip"), f.dir("clip8"), demo)
	checkCompare(t, a, b)
}
