package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/compare"
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

// compareReport is what `models compare` prints (README, "Comparing two
// models", documents the JSON fields). Figures that need more images than
// were compared (any with none, Spearman and pairs with one) are null.
type compareReport struct {
	A              compareModel               `json:"a"`
	B              compareModel               `json:"b"`
	Prompt         *string                    `json:"prompt,omitempty"`
	ImagesCompared int                        `json:"images_compared"`
	ImagesFailed   int                        `json:"images_failed"`
	CosineMin      *float64                   `json:"embedding_cosine_min"`
	CosineMean     *float64                   `json:"embedding_cosine_mean"`
	TextCosine     *float64                   `json:"text_embedding_cosine,omitempty"`
	Deltas         map[string]*compare.Deltas `json:"deltas"`
	RankBy         string                     `json:"rank_by"`
	Spearman       *float64                   `json:"spearman"`
	Pairs          int                        `json:"pairs"`
	PairsSameOrder int                        `json:"pairs_same_order"`
	PairAgreement  *float64                   `json:"pair_agreement"`
}

// compareFlags are the model-loading flags compare shares with score; the
// model choice (--ict, --hp, ...) and the cache flags are left out: the two
// models are positional, and a shared Redis must not hand one model's
// results to the other.
var compareFlags = []string{"provider", "threads", "batch-size", "opt-level", "ort-lib", "ep-library", "tf32", "max-image-bytes", "max-image-pixels"}

// compareCmd is what the command line of `models compare` says, flags parsed.
type compareCmd struct {
	mf          modelFlags
	asJSON      bool
	prompt      string
	promptGiven bool
	pos         []string // A, B, then the images
}

func parseCompare(a *app, args []string) (*compareCmd, error) {
	if err := checkCommandLine(args); err != nil {
		return nil, err
	}
	c := &compareCmd{}
	fs := newFlags(a, "models compare")
	all := flag.NewFlagSet("", flag.ContinueOnError)
	c.mf.register(all, a)
	for _, n := range compareFlags {
		f := all.Lookup(n)
		fs.Var(f.Value, f.Name, f.Usage)
	}
	fs.BoolVar(&c.asJSON, "json", false, "print one JSON object")
	fs.StringVar(&c.prompt, "prompt", "", "the prompt the images were generated for (needed for clip models)")
	promptFile := fs.String("prompt-file", "", "read the prompt from this file")
	var err error
	if c.pos, err = parseFlags(fs, args); err != nil {
		return nil, err
	}
	fs.Visit(func(f *flag.Flag) { c.promptGiven = c.promptGiven || f.Name == "prompt" })
	if *promptFile != "" {
		if c.promptGiven {
			return nil, usagef("give --prompt or --prompt-file, not both")
		}
		if c.prompt, err = readPromptFile(*promptFile); err != nil {
			return nil, err
		}
		c.promptGiven = true
	}
	if len(c.pos) < 3 {
		return nil, usagef("give two model directories and at least two images")
	}
	return c, nil
}

// readModels reads both manifests into rep and checks that the two models can be
// compared; it returns their kind.
func (c *compareCmd) readModels(rep *compareReport) (models.Kind, error) {
	var mans [2]*models.Manifest
	for i, dir := range c.pos[:2] {
		m, err := models.ReadManifest(dir)
		if err != nil {
			return "", usageError{err.Error()}
		}
		mans[i] = m
	}
	rep.A = compareModel{Dir: c.pos[0], Kind: mans[0].Kind, Name: mans[0].Name, Version: mans[0].Version, Precision: mans[0].Precision}
	rep.B = compareModel{Dir: c.pos[1], Kind: mans[1].Kind, Name: mans[1].Name, Version: mans[1].Version, Precision: mans[1].Precision}
	kind := mans[0].Kind
	switch {
	case kind != mans[1].Kind:
		return "", usagef("%s is of kind %s and %s of kind %s; compare two models of one kind", c.pos[0], kind, c.pos[1], mans[1].Kind)
	case kind != models.KindHP && kind != models.KindCLIP:
		return "", usagef("compare takes hp or clip models, not %s", kind)
	case mans[0].EmbeddingDim != mans[1].EmbeddingDim:
		return "", usagef("%s embeds in %d dimensions and %s in %d: not comparable", c.pos[0], mans[0].EmbeddingDim, c.pos[1], mans[1].EmbeddingDim)
	case kind == models.KindCLIP && !c.promptGiven:
		return "", usagef("clip models need --prompt (or --prompt-file)")
	}
	return kind, nil
}

func runCompare(ctx context.Context, a *app, args []string) error {
	c, err := parseCompare(a, args)
	if err != nil {
		return err
	}
	var rep compareReport
	kind, err := c.readModels(&rep)
	if err != nil {
		return err
	}
	files, err := expandImages(c.pos[2:])
	if err != nil {
		return err
	}
	if len(files) < 2 {
		return usagef("the rank correlation needs at least 2 images, and %v give %d", c.pos[2:], len(files))
	}
	svcs, err := c.loadServices(a, kind)
	if err != nil {
		return err
	}
	defer func() {
		for _, l := range svcs {
			l.close()
		}
	}()
	var p *string
	if kind == models.KindCLIP {
		p, rep.Prompt = &c.prompt, &c.prompt
		var text [2][]float32
		for i, l := range svcs {
			emb, err := l.svc.EmbedTexts(ctx, []string{c.prompt})
			if err != nil {
				return err
			}
			text[i] = emb[0]
		}
		tc := compare.Cosine(text[0], text[1])
		rep.TextCosine = &tc
	}
	sides := newCompareSides(kind)
	for lo := 0; lo < len(files); lo += c.mf.batch {
		chunk := files[lo:min(lo+c.mf.batch, len(files))]
		if err := c.compareChunk(ctx, a, svcs, p, chunk, sides, &rep); err != nil {
			return err
		}
	}
	sides.report(&rep)
	if c.asJSON {
		if err := json.NewEncoder(a.stdout).Encode(rep); err != nil {
			return err
		}
	} else {
		printCompare(a.stdout, &rep, sides.names)
	}
	if rep.ImagesFailed > 0 {
		return exitError{code: 1, msg: fmt.Sprintf("%d of %d images failed (named above); the figures cover the other %d",
			rep.ImagesFailed, len(files), rep.ImagesCompared)}
	}
	return nil
}

// loadServices gives each side its own Service and in-process cache: Score fills the
// cache and EmbedImages then reads the same images' embeddings from it, so every image is
// encoded once per model, in the batches score makes.
func (c *compareCmd) loadServices(a *app, kind models.Kind) ([]*loaded, error) {
	mf := c.mf
	for name := range mf.dirs {
		mf.setDir(name, "")
	}
	mf.cache = cacheFlags{bytes: 256 << 20, breakerFailures: cache.DefaultBreakerThreshold, breakerCooldown: cache.DefaultBreakerCooldown}
	var svcs []*loaded
	for _, dir := range c.pos[:2] {
		name := hp.Name
		if kind == models.KindCLIP {
			name = ict.Name
		}
		mf.setDir(ict.Name, "")
		mf.setDir(hp.Name, "")
		mf.setDir(name, dir)
		l, err := mf.loadModels(a, scoring.Options{})
		if err != nil {
			for _, l := range svcs {
				l.close()
			}
			return nil, err
		}
		svcs = append(svcs, l)
	}
	return svcs, nil
}

// compareSides collects, per compared image, both sides' embedding cosine and scores.
type compareSides struct {
	kind    models.Kind
	names   []string       // the scores compared; the first ranks
	cosines []float64      // of each image's two embeddings
	score   [2][][]float64 // score[i][k]: side i's values of names[k]
}

func newCompareSides(kind models.Kind) *compareSides {
	s := &compareSides{kind: kind, names: []string{"ict"}}
	if kind == models.KindHP {
		s.names = []string{"hp_logit", "hp"}
	}
	for i := range s.score {
		s.score[i] = make([][]float64, len(s.names))
	}
	return s
}

func (s *compareSides) add(res [2]*scoring.ScoreResponse, emb [2][][]float32, k int) {
	s.cosines = append(s.cosines, compare.Cosine(emb[0][k], emb[1][k]))
	for i := range res {
		sc := res[i].Scores[k]
		vals := []*float64{sc.Get("ict")}
		if s.kind == models.KindHP {
			vals = []*float64{sc.Get("hp_logit"), sc.Get("hp")}
		}
		for n, v := range vals {
			s.score[i][n] = append(s.score[i][n], *v)
		}
	}
}

// report fills the figures of rep from what was collected.
func (s *compareSides) report(rep *compareReport) {
	if lo, mean, ok := compare.MinMean(s.cosines); ok {
		rep.CosineMin, rep.CosineMean = &lo, &mean
	}
	rep.Deltas = map[string]*compare.Deltas{}
	for n, name := range s.names {
		if len(s.score[0][n]) > 0 {
			d := compare.AbsDeltas(s.score[0][n], s.score[1][n])
			rep.Deltas[name] = &d
		}
	}
	rep.RankBy = s.names[0]
	if r, ok := compare.Spearman(s.score[0][0], s.score[1][0]); ok {
		rep.Spearman = &r
	}
	rep.Pairs, rep.PairsSameOrder = compare.SameOrderPairs(s.score[0][0], s.score[1][0])
	if rep.Pairs > 0 {
		f := float64(rep.PairsSameOrder) / float64(rep.Pairs)
		rep.PairAgreement = &f
	}
}

// compareChunk scores and embeds one chunk of files with both sides, names on stderr the
// images either side (or reading) failed, and adds the others to sides.
func (c *compareCmd) compareChunk(ctx context.Context, a *app, svcs []*loaded, p *string, chunk []string,
	sides *compareSides, rep *compareReport) error {
	imgs, readErr := readImages(chunk, c.mf.maxBytes)
	var res [2]*scoring.ScoreResponse
	var emb [2][][]float32
	var failed [2][]error // each side's failure of each image
	for i, l := range svcs {
		var err error
		if res[i], err = l.svc.Score(ctx, scoring.ScoreRequest{Prompt: p, Images: imgs}); err != nil {
			return fmt.Errorf("%s: %w", c.pos[i], err)
		}
		if emb[i], failed[i], err = l.svc.EmbedImages(ctx, imgs); err != nil {
			return fmt.Errorf("%s: %w", c.pos[i], err)
		}
		for k, e := range failed[i] {
			if e == nil {
				failed[i][k] = res[i].Scores[k].Err
			}
		}
	}
	for k, f := range chunk {
		if bad := compareFailure(readErr[k], failed[0][k], failed[1][k]); bad != "" {
			rep.ImagesFailed++
			fmt.Fprintf(a.stderr, "icthp models compare: skipping %s: %s\n", f, oneLine(bad))
			continue
		}
		rep.ImagesCompared++
		sides.add(res, emb, k)
	}
	return nil
}

// compareFailure says why an image is not compared ("" when it is): it could not be read,
// or side A, B or both failed on it.
func compareFailure(readErr, ea, eb error) string {
	switch {
	case readErr != nil:
		return readErr.Error()
	case ea != nil && eb != nil && ea.Error() == eb.Error():
		return ea.Error()
	case ea != nil && eb != nil:
		return fmt.Sprintf("A: %v; B: %v", ea, eb)
	case ea != nil:
		return "A only: " + ea.Error()
	case eb != nil:
		return "B only: " + eb.Error()
	}
	return ""
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
