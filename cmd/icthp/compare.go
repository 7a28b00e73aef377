package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/icthp/icthp/cache"
	"io"
	"math"
	"sort"

	"github.com/icthp/icthp/hp"
	"github.com/icthp/icthp/ict"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/scoring"
)

// compareArgs is the synopsis of `models compare`, for its usage errors.
const compareArgs = "compare [--json] [--prompt TEXT | --prompt-file FILE] [model flags] A B IMAGE|DIR|GLOB..."

// compareModel describes one side of a comparison.
type compareModel struct {
	Dir       string      `json:"dir"`
	Kind      models.Kind `json:"kind"`
	Name      string      `json:"name,omitempty"`
	Version   string      `json:"version"`
	Precision string      `json:"precision"`
}

// deltaStats are the absolute differences of one score between A and B.
type deltaStats struct {
	MaxAbs  float64 `json:"max_abs"`
	MeanAbs float64 `json:"mean_abs"`
}

// compareReport is what `models compare` prints (README, "Comparing two
// models", documents the JSON fields). Figures that need more images than
// were compared (any with none, Spearman and pairs with one) are null.
type compareReport struct {
	A              compareModel           `json:"a"`
	B              compareModel           `json:"b"`
	Prompt         *string                `json:"prompt,omitempty"`
	ImagesCompared int                    `json:"images_compared"`
	ImagesFailed   int                    `json:"images_failed"`
	CosineMin      *float64               `json:"embedding_cosine_min"`
	CosineMean     *float64               `json:"embedding_cosine_mean"`
	TextCosine     *float64               `json:"text_embedding_cosine,omitempty"`
	Deltas         map[string]*deltaStats `json:"deltas"`
	RankBy         string                 `json:"rank_by"`
	Spearman       *float64               `json:"spearman"`
	Pairs          int                    `json:"pairs"`
	PairsSameOrder int                    `json:"pairs_same_order"`
	PairAgreement  *float64               `json:"pair_agreement"`
}

// compareFlags are the model-loading flags compare shares with score; the
// model choice (--ict, --hp, ...) and the cache flags are left out: the two
// models are positional, and a shared Redis must not hand one model's
// results to the other.
var compareFlags = []string{"provider", "threads", "batch-size", "opt-level", "ort-lib", "ep-library", "tf32", "max-image-bytes", "max-image-pixels"}

func runCompare(ctx context.Context, a *app, args []string) error {
	if err := checkCommandLine(args); err != nil {
		return err
	}
	fs := newFlags(a, "models compare")
	var mf modelFlags
	all := flag.NewFlagSet("", flag.ContinueOnError)
	mf.register(all, a)
	for _, n := range compareFlags {
		f := all.Lookup(n)
		fs.Var(f.Value, f.Name, f.Usage)
	}
	asJSON := fs.Bool("json", false, "print one JSON object")
	prompt := fs.String("prompt", "", "the prompt the images were generated for (needed for clip models)")
	promptFile := fs.String("prompt-file", "", "read the prompt from this file")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	promptGiven := false
	fs.Visit(func(f *flag.Flag) { promptGiven = promptGiven || f.Name == "prompt" })
	if *promptFile != "" {
		if promptGiven {
			return usagef("give --prompt or --prompt-file, not both")
		}
		if *prompt, err = readPromptFile(*promptFile); err != nil {
			return err
		}
		promptGiven = true
	}
	if len(pos) < 3 {
		return usagef("give two model directories and at least two images")
	}
	var rep compareReport
	mans := make([]*models.Manifest, 2)
	for i, dir := range pos[:2] {
		m, err := models.ReadManifest(dir)
		if err != nil {
			return usageError{err.Error()}
		}
		mans[i] = m
	}
	rep.A = compareModel{Dir: pos[0], Kind: mans[0].Kind, Name: mans[0].Name, Version: mans[0].Version, Precision: mans[0].Precision}
	rep.B = compareModel{Dir: pos[1], Kind: mans[1].Kind, Name: mans[1].Name, Version: mans[1].Version, Precision: mans[1].Precision}
	kind := mans[0].Kind
	switch {
	case kind != mans[1].Kind:
		return usagef("%s is of kind %s and %s of kind %s; compare two models of one kind", pos[0], kind, pos[1], mans[1].Kind)
	case kind != models.KindHP && kind != models.KindCLIP:
		return usagef("compare takes hp or clip models, not %s", kind)
	case mans[0].EmbeddingDim != mans[1].EmbeddingDim:
		return usagef("%s embeds in %d dimensions and %s in %d: not comparable", pos[0], mans[0].EmbeddingDim, pos[1], mans[1].EmbeddingDim)
	case kind == models.KindCLIP && !promptGiven:
		return usagef("clip models need --prompt (or --prompt-file)")
	}
	files, err := expandImages(pos[2:])
	if err != nil {
		return err
	}
	if len(files) < 2 {
		return usagef("the rank correlation needs at least 2 images, and %v give %d", pos[2:], len(files))
	}

	// Each side gets its own Service and in-process cache: Score fills the
	// cache and EmbedImages then reads the same images' embeddings from it,
	// so every image is encoded once per model, in the batches score makes.
	for name := range mf.dirs {
		mf.setDir(name, "")
	}
	mf.cache = cacheFlags{bytes: 256 << 20, breakerFailures: cache.DefaultBreakerThreshold, breakerCooldown: cache.DefaultBreakerCooldown}
	svcs := make([]*scoring.Service, 2)
	for i, dir := range pos[:2] {
		name := hp.Name
		if kind == models.KindCLIP {
			name = ict.Name
		}
		mf.setDir(ict.Name, "")
		mf.setDir(hp.Name, "")
		mf.setDir(name, dir)
		l, err := mf.loadModels(a, scoring.Options{})
		if err != nil {
			return err
		}
		defer l.close()
		svcs[i] = l.svc
	}
	var p *string
	if kind == models.KindCLIP {
		p, rep.Prompt = prompt, prompt
		var text [2][]float32
		for i, s := range svcs {
			emb, err := s.EmbedTexts(ctx, []string{*prompt})
			if err != nil {
				return err
			}
			text[i] = emb[0]
		}
		c := cosine(text[0], text[1])
		rep.TextCosine = &c
	}

	// score[i][k] is side i's value of scoreNames[k] for each compared image.
	scoreNames := []string{"ict"}
	if kind == models.KindHP {
		scoreNames = []string{"hp_logit", "hp"}
	}
	rep.RankBy = scoreNames[0]
	var score [2][][]float64
	for i := range score {
		score[i] = make([][]float64, len(scoreNames))
	}
	var cosines []float64
	for lo := 0; lo < len(files); lo += mf.batch {
		chunk := files[lo:min(lo+mf.batch, len(files))]
		imgs, readErr := readImages(chunk, mf.maxBytes)
		var res [2]*scoring.ScoreResponse
		var emb [2][][]float32
		var failed [2][]error // each side's failure of each image
		for i, s := range svcs {
			if res[i], err = s.Score(ctx, scoring.ScoreRequest{Prompt: p, Images: imgs}); err != nil {
				return fmt.Errorf("%s: %w", pos[i], err)
			}
			if emb[i], failed[i], err = s.EmbedImages(ctx, imgs); err != nil {
				return fmt.Errorf("%s: %w", pos[i], err)
			}
			for k, e := range failed[i] {
				if e == nil {
					failed[i][k] = res[i].Scores[k].Err
				}
			}
		}
		bad := make([]string, len(chunk))
		for k := range chunk {
			ea, eb := failed[0][k], failed[1][k]
			switch {
			case readErr[k] != nil:
				bad[k] = readErr[k].Error()
			case ea != nil && eb != nil && ea.Error() == eb.Error():
				bad[k] = ea.Error()
			case ea != nil && eb != nil:
				bad[k] = fmt.Sprintf("A: %v; B: %v", ea, eb)
			case ea != nil:
				bad[k] = "A only: " + ea.Error()
			case eb != nil:
				bad[k] = "B only: " + eb.Error()
			}
		}
		for k, f := range chunk {
			if bad[k] != "" {
				rep.ImagesFailed++
				fmt.Fprintf(a.stderr, "icthp models compare: skipping %s: %s\n", f, oneLine(bad[k]))
				continue
			}
			rep.ImagesCompared++
			cosines = append(cosines, cosine(emb[0][k], emb[1][k]))
			for i := range res {
				sc := res[i].Scores[k]
				vals := []*float64{sc.Get("ict")}
				if kind == models.KindHP {
					vals = []*float64{sc.Get("hp_logit"), sc.Get("hp")}
				}
				for n, v := range vals {
					score[i][n] = append(score[i][n], *v)
				}
			}
		}
	}

	if len(cosines) > 0 {
		lo, sum := math.Inf(1), 0.0
		for _, c := range cosines {
			lo, sum = math.Min(lo, c), sum+c
		}
		mean := sum / float64(len(cosines))
		rep.CosineMin, rep.CosineMean = &lo, &mean
	}
	rep.Deltas = map[string]*deltaStats{}
	for n, name := range scoreNames {
		if len(score[0][n]) > 0 {
			rep.Deltas[name] = absDeltas(score[0][n], score[1][n])
		}
	}
	rep.Spearman = spearman(score[0][0], score[1][0])
	rep.Pairs, rep.PairsSameOrder = sameOrderPairs(score[0][0], score[1][0])
	if rep.Pairs > 0 {
		f := float64(rep.PairsSameOrder) / float64(rep.Pairs)
		rep.PairAgreement = &f
	}

	if *asJSON {
		if err := json.NewEncoder(a.stdout).Encode(rep); err != nil {
			return err
		}
	} else {
		printCompare(a.stdout, &rep, scoreNames)
	}
	if rep.ImagesFailed > 0 {
		return exitError{code: 1, msg: fmt.Sprintf("%d of %d images failed (named above); the figures cover the other %d",
			rep.ImagesFailed, len(files), rep.ImagesCompared)}
	}
	return nil
}

// printCompare writes the report for people.
func printCompare(w io.Writer, r *compareReport, scoreNames []string) {
	num := func(v *float64, format string) string {
		if v == nil {
			return "n/a"
		}
		return fmt.Sprintf(format, *v)
	}
	kind := func(m compareModel) string {
		if m.Name != "" {
			return fmt.Sprintf("%s %s", m.Kind, m.Name)
		}
		return string(m.Kind)
	}
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-24s "+format+"\n", append([]any{label}, args...)...)
	}
	line("A", "%s  (%s, version %s, %s)", r.A.Dir, kind(r.A), r.A.Version, r.A.Precision)
	line("B", "%s  (%s, version %s, %s)", r.B.Dir, kind(r.B), r.B.Version, r.B.Precision)
	line("images compared", "%d (%d failed)", r.ImagesCompared, r.ImagesFailed)
	if r.TextCosine != nil {
		line("prompt embedding cosine", "%.6f", *r.TextCosine)
	}
	line("image embedding cosine", "min %s  mean %s", num(r.CosineMin, "%.6f"), num(r.CosineMean, "%.6f"))
	for _, n := range scoreNames {
		if d := r.Deltas[n]; d != nil {
			line(n+" |Δ|", "max %.4g  mean %.4g", d.MaxAbs, d.MeanAbs)
		}
	}
	line("Spearman ("+r.RankBy+")", "%s", num(r.Spearman, "%.6f"))
	line("pairs in the same order", "%d of %d (%s %%)", r.PairsSameOrder, r.Pairs, num(percent(r.PairAgreement), "%.2f"))
}

func percent(f *float64) *float64 {
	if f == nil {
		return nil
	}
	p := 100 * *f
	return &p
}

// cosine is the cosine of two vectors, accumulated in float64 and clamped
// to [-1, 1] (the embeddings are normalised already; dividing again keeps
// the figure a cosine for any input).
func cosine(x, y []float32) float64 {
	var dot, nx, ny float64
	for i := range x {
		a, b := float64(x[i]), float64(y[i])
		dot, nx, ny = dot+a*b, nx+a*a, ny+b*b
	}
	if nx == 0 || ny == 0 {
		return 0
	}
	return math.Max(-1, math.Min(1, dot/math.Sqrt(nx*ny)))
}

func absDeltas(x, y []float64) *deltaStats {
	var d deltaStats
	for i := range x {
		v := math.Abs(x[i] - y[i])
		d.MaxAbs, d.MeanAbs = math.Max(d.MaxAbs, v), d.MeanAbs+v
	}
	d.MeanAbs /= float64(len(x))
	return &d
}

// ranks returns the 1-based ranks of x, tied values sharing the average of
// their positions.
func ranks(x []float64) []float64 {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return x[idx[a]] < x[idx[b]] })
	r := make([]float64, len(x))
	for lo := 0; lo < len(idx); {
		hi := lo + 1
		for hi < len(idx) && x[idx[hi]] == x[idx[lo]] {
			hi++
		}
		avg := float64(lo+1+hi) / 2 // mean of positions lo+1 … hi
		for _, i := range idx[lo:hi] {
			r[i] = avg
		}
		lo = hi
	}
	return r
}

// spearman is Spearman's rank correlation of x and y: Pearson's correlation
// of their average ranks. It is nil for fewer than two values or when either
// side has all its values tied (no variance: undefined).
func spearman(x, y []float64) *float64 {
	n := len(x)
	if n < 2 {
		return nil
	}
	rx, ry := ranks(x), ranks(y)
	mean := float64(n+1) / 2 // the mean rank, with or without ties
	var sxy, sxx, syy float64
	for i := range rx {
		a, b := rx[i]-mean, ry[i]-mean
		sxy, sxx, syy = sxy+a*b, sxx+a*a, syy+b*b
	}
	if sxx == 0 || syy == 0 {
		return nil
	}
	s := math.Max(-1, math.Min(1, sxy/math.Sqrt(sxx*syy)))
	return &s
}

// sameOrderPairs counts the pairs of images and those the two scores put in
// the same order: both say i is above j, both below, or both tie them. It is
// quadratic, which costs less than encoding the images did even at 100,000.
func sameOrderPairs(x, y []float64) (pairs, same int) {
	sign := func(d float64) int {
		switch {
		case d > 0:
			return 1
		case d < 0:
			return -1
		}
		return 0
	}
	for i := range x {
		for j := i + 1; j < len(x); j++ {
			pairs++
			if sign(x[i]-x[j]) == sign(y[i]-y[j]) {
				same++
			}
		}
	}
	return pairs, same
}
