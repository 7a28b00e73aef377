package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scoring"
)

// Scorer is what a batch run needs of scoring.Service.
type Scorer interface {
	// Reward scores each item with its own prompt (ict, hp, imagereward:
	// whichever are loaded); identical prompts share one text encoding.
	Reward(ctx context.Context, items []scoring.RewardItem, comb *scoring.Combination) (*scoring.RewardResponse, error)
	EmbedImages(ctx context.Context, images []scoring.Image) ([][]float32, []error, error)
	Versions() map[string]string
	// Specs are the loaded models' registry specs, in registry order.
	Specs() []scorer.Spec
	// TakesRGB says whether every loaded model takes decoded pixels, so
	// that images may be decoded ahead (ImageReward reads the file itself,
	// in its own mode by Pillow's rules).
	TakesRGB() bool
}

// Defaults of Options' zero fields.
const (
	DefaultBatchSize = 16
	DefaultPartSize  = 1000
	DefaultInFlight  = 1
)

// Options configure a run.
type Options struct {
	Inputs []string // paths or globs (see Enumerate)
	// Out is FILE.jsonl or FILE.parquet; a shard writes Shard.OutputPath(Out).
	// The parts and the journal live in the folder OUT.parts beside it.
	Out   string
	Shard Shard
	// BatchSize is how many images go to the service (and the encoders)
	// at once (a part's last batch may be smaller); PartSize how many rows
	// one committed part holds; InFlight how many batches are in the
	// service at once. One is best on CPU: two batches in the encoders at
	// once fight over the same cores. Decoders is how many goroutines
	// decode the batches ahead of the service, so that decoding overlaps
	// encoding even with InFlight 1.
	BatchSize, PartSize, InFlight, Decoders int
	// Embeddings adds each image's embedding (Parquet: the embedding list
	// column; JSONL: OUT without extension + .embeddings.npy, EmbeddingDim
	// wide, NaN rows where the image failed).
	Embeddings   bool
	EmbeddingDim int
	// KeepParts keeps the part files after the merge (the journal is kept
	// regardless, so that a rerun knows the work is done).
	KeepParts bool
	// MaxImageBytes and MaxImagePixels are the limits of the decoders
	// (0: preprocess's defaults), the same as the service's.
	MaxImageBytes, MaxImagePixels int64
	// Progress, when set, receives a progress line several times a second
	// (carriage returns, for a terminal).
	Progress io.Writer
	// now is the clock (tests); nil means time.Now.
	now func() time.Time
}

// Summary is what a run did.
type Summary struct {
	Out          string            `json:"out"`
	Items        int               `json:"items"`         // in this shard
	Skipped      int               `json:"skipped"`       // done by an earlier run
	Scored       int               `json:"scored"`        // scored by this run
	Errors       int               `json:"errors"`        // rows with an error, over the whole shard
	Parts        int               `json:"parts"`         // in this shard
	PartsSkipped int               `json:"parts_skipped"` // done by an earlier run
	Elapsed      time.Duration     `json:"elapsed_ns"`
	Models       map[string]string `json:"models"`
}

// ImagesPerSecond is the rate of this run's scoring.
func (s *Summary) ImagesPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Scored) / s.Elapsed.Seconds()
}

// part is a run of consecutive items of the shard.
type part struct {
	index, first int
	items        []Item
	hash         string
}

func (p part) name(f Format) string { return fmt.Sprintf("part-%05d.%s", p.index, f) }

// setDefaults fills the options left zero with their defaults.
func (o *Options) setDefaults() {
	orDefault(&o.BatchSize, DefaultBatchSize)
	orDefault(&o.PartSize, DefaultPartSize)
	orDefault(&o.InFlight, DefaultInFlight)
	// Decoders: as many as there are cores. They only ever work a batch or
	// two ahead, so on a CPU they cost no more than fewer would, and with
	// the encoders on a GPU the CPU's cores are all theirs.
	orDefault(&o.Decoders, runtime.GOMAXPROCS(0))
	if o.Shard.N == 0 {
		o.Shard = Shard{0, 1}
	}
}

// orDefault sets *v to def when it is not positive.
func orDefault(v *int, def int) {
	if *v <= 0 {
		*v = def
	}
}

// splitParts cuts the shard's items into parts of size items (the last
// one shorter), each with the hash that identifies it in the journal.
func splitParts(items []Item, size int) []part {
	var parts []part
	for lo := 0; lo < len(items); lo += size {
		its := items[lo:min(lo+size, len(items))]
		parts = append(parts, part{index: len(parts), first: lo, items: its, hash: itemsHash(its)})
	}
	return parts
}

// partsToDo returns the parts the journal does not name as committed with
// the same items and files of the recorded sizes (the .npy too when npy is
// set); the others count in sum as skipped, with their error rows.
func partsToDo(parts []part, j *journal, dir string, format Format, npy bool, sum *Summary) []part {
	var todo []part
	for _, p := range parts {
		r, ok := j.parts[p.index]
		if ok && r.First == p.first && r.Count == len(p.items) && r.Hash == p.hash &&
			sizeIs(filepath.Join(dir, p.name(format)), r.Bytes) &&
			(!npy || sizeIs(filepath.Join(dir, p.npyName()), r.NpyBytes)) {
			sum.Skipped += len(p.items)
			sum.PartsSkipped++
			sum.Errors += r.Errors
			continue
		}
		todo = append(todo, p)
	}
	return todo
}

// mergeAll merges the parts' files in order into out (and their .npy files
// into npyOut when set), journals the merge, and removes the parts unless
// KeepParts.
func (r *runner) mergeAll(parts []part, out, npyOut string, rows int) error {
	names := make([]string, len(parts))
	npys := make([]string, len(parts))
	for i, p := range parts {
		names[i] = filepath.Join(r.dir, p.name(r.format))
		npys[i] = filepath.Join(r.dir, p.npyName())
	}
	var err error
	m := mergedRecord{Rows: rows}
	if m.Bytes, err = mergeParts(r.format, r.cols, out, names); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	if npyOut != "" {
		if m.NpyBytes, err = mergeNpy(npyOut, npys, r.o.EmbeddingDim); err != nil {
			return fmt.Errorf("merge embeddings: %w", err)
		}
	}
	if err := r.j.commitMerged(m); err != nil {
		return err
	}
	if !r.o.KeepParts {
		for i := range names {
			os.Remove(names[i])
			if npyOut != "" {
				os.Remove(npys[i])
			}
		}
	}
	return nil
}

// Run scores the inputs into o.Out, resuming from what an earlier run of
// the same inputs, models and settings committed.
func Run(ctx context.Context, s Scorer, o Options) (*Summary, error) {
	o.setDefaults()
	now := o.now
	if now == nil {
		now = time.Now
	}
	start := now()
	format, err := FormatOf(o.Out)
	if err != nil {
		return nil, err
	}
	if o.Embeddings && format == JSONL && o.EmbeddingDim <= 0 {
		return nil, errors.New("batch: embeddings in a .npy file need EmbeddingDim")
	}
	out := o.Shard.OutputPath(o.Out)
	if dir := filepath.Dir(out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	all, err := Enumerate(o.Inputs)
	if err != nil {
		return nil, err
	}
	items := o.Shard.Filter(all)
	versions := s.Versions()
	sum := &Summary{Out: out, Items: len(items), Models: versions}

	parts := splitParts(items, o.PartSize)
	sum.Parts = len(parts)
	dir := out + ".parts"
	j, err := openJournal(dir, header{Journal: 1, Format: format, Shard: o.Shard.String(), PartSize: o.PartSize,
		Items: len(items), InputHash: itemsHash(items), Models: versions, Embeddings: o.Embeddings})
	if err != nil {
		return nil, err
	}
	defer j.close()
	npyOut := ""
	if o.Embeddings && format == JSONL {
		npyOut = NpyPath(out)
	}

	if m := j.merged; m != nil && sizeIs(out, m.Bytes) && (npyOut == "" || sizeIs(npyOut, m.NpyBytes)) {
		sum.Skipped, sum.PartsSkipped = len(items), len(parts)
		for _, r := range j.parts {
			sum.Errors += r.Errors
		}
		sum.Elapsed = now().Sub(start)
		return sum, nil
	}

	todo := partsToDo(parts, j, dir, format, npyOut != "", sum)

	var prog *progress
	if o.Progress != nil {
		prog = newProgress(o.Progress, now, 250*time.Millisecond, len(items), sum.Skipped, sum.Errors)
		defer prog.stop()
	}
	specs := s.Specs()
	cols := newColumns(specs)
	r := &runner{s: s, o: o, format: format, dir: dir, j: j, npy: npyOut != "", prog: prog,
		needPrompt: needsPrompt(specs), decodeAhead: s.TakesRGB(), specs: specs, cols: cols}
	scored, errs, err := r.run(ctx, todo)
	sum.Scored = scored
	sum.Errors += errs
	if err != nil {
		sum.Elapsed = now().Sub(start)
		return sum, err
	}

	// Every part is on disk: merge them, in order.
	if err := r.mergeAll(parts, out, npyOut, len(items)); err != nil {
		return sum, err
	}
	sum.Elapsed = now().Sub(start)
	return sum, nil
}

func (p part) npyName() string { return fmt.Sprintf("part-%05d.npy", p.index) }

func sizeIs(path string, size int64) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Size() == size
}

// runner is one run's pipeline.
type runner struct {
	s           Scorer
	o           Options
	format      Format
	dir         string
	j           *journal
	npy         bool
	needPrompt  bool
	decodeAhead bool
	prog        *progress
	specs       []scorer.Spec // the loaded models'
	cols        *columns
}

// job is one batch: consecutive items of one part, read (and decoded when
// rgb is set).
type job struct {
	part  int // index into todo
	lo    int // offset of the batch in the part
	items []Item
	loads []loaded
	rgb   []*preprocess.RGB
	// done hands the decoded pixels back to their pool once the batch is
	// scored (nothing keeps them after).
	done []func()
}

// release hands the batch's decoded pixels back.
func (jb *job) release() {
	for _, f := range jb.done {
		f()
	}
	jb.done, jb.rgb = nil, nil
}

// decode decodes a job's images to RGB as the service would (same limits,
// same typed errors, which become the images' error rows).
func (r *runner) decode(jb *job) {
	lim := preprocess.ImageOptions{MaxBytes: r.o.MaxImageBytes, MaxPixels: r.o.MaxImagePixels}
	jb.rgb = make([]*preprocess.RGB, len(jb.items))
	for i := range jb.loads {
		l := &jb.loads[i]
		if l.err != nil || (r.needPrompt && (l.prompt == nil || *l.prompt == "")) {
			continue
		}
		img, done, err := decodeSafely(l.data, lim)
		if err != nil {
			l.err = err
			continue
		}
		jb.rgb[i], l.data = img, nil
		jb.done = append(jb.done, done)
	}
}

// decodeSafely is preprocess.DecodeRGBPooled with a decoder panic turned
// into the image's error: a hostile file fails its row, not the run.
func decodeSafely(data []byte, lim preprocess.ImageOptions) (img *preprocess.RGB, done func(), err error) {
	defer func() {
		if r := recover(); r != nil {
			img, done, err = nil, nil, fmt.Errorf("%w: the decoder failed on this image (%v)", preprocess.ErrUndecodable, r)
		}
	}()
	return preprocess.DecodeRGBPooled(data, lim)
}

type result struct {
	part, lo int
	rows     []Row
}

// stage runs n goroutines in g that take what in gives, apply f and send
// the result on (until ctx ends or f fails), and closes out when all of
// them are done.
func stage[I, O any](ctx context.Context, g *errgroup.Group, n int, in <-chan I, out chan<- O, f func(I) (O, error)) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		g.Go(func() error {
			defer wg.Done()
			for x := range in {
				y, err := f(x)
				if err != nil {
					return err
				}
				select {
				case out <- y:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	}
	go func() { wg.Wait(); close(out) }()
}

// run scores the parts: a reader goroutine reads batches ahead, Decoders
// goroutines decode them, InFlight goroutines score them, and a collector
// commits each part as soon as all its rows are in. It returns the images scored and the
// error rows among them.
func (r *runner) run(ctx context.Context, todo []part) (scored, errRows int, err error) {
	if len(todo) == 0 {
		return 0, 0, nil
	}
	g, ctx := errgroup.WithContext(ctx)
	// Small buffers: each batch held costs BatchSize decoded images of
	// memory (see the README's limits).
	read := make(chan job, 1)
	jobs := make(chan job, 1)
	results := make(chan result, r.o.InFlight)
	g.Go(func() error {
		defer close(read)
		return r.readBatches(ctx, todo, read)
	})
	stage(ctx, g, r.o.Decoders, read, jobs, func(jb job) (job, error) {
		if r.decodeAhead {
			r.decode(&jb)
		}
		return jb, nil
	})
	stage(ctx, g, r.o.InFlight, jobs, results, func(jb job) (result, error) {
		rows, err := r.score(ctx, jb)
		jb.release()
		return result{part: jb.part, lo: jb.lo, rows: rows}, err
	})
	g.Go(func() (err error) {
		scored, errRows, err = r.collect(todo, results)
		return err
	})
	err = g.Wait()
	return scored, errRows, err
}

// readBatches reads the parts' items (files and prompts, not yet decoded)
// batch by batch into read, in order.
func (r *runner) readBatches(ctx context.Context, todo []part, read chan<- job) error {
	for pi, p := range todo {
		for lo := 0; lo < len(p.items); lo += r.o.BatchSize {
			its := p.items[lo:min(lo+r.o.BatchSize, len(p.items))]
			jb := job{part: pi, lo: lo, items: its, loads: make([]loaded, len(its))}
			for i := range its {
				jb.loads[i] = its[i].load(r.o.MaxImageBytes)
			}
			select {
			case read <- jb:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// collect gathers the scored batches into their parts and commits each part
// as soon as all its rows are in. It returns the images committed and the
// error rows among them.
func (r *runner) collect(todo []part, results <-chan result) (scored, errRows int, err error) {
	pending := map[int][]Row{}
	filled := map[int]int{}
	for res := range results {
		p := todo[res.part]
		rows := pending[res.part]
		if rows == nil {
			rows = make([]Row, len(p.items))
			pending[res.part] = rows
		}
		copy(rows[res.lo:], res.rows)
		filled[res.part] += len(res.rows)
		e := 0
		for i := range res.rows {
			if res.rows[i].Error != nil {
				e++
			}
		}
		if r.prog != nil {
			r.prog.add(len(res.rows), e)
		}
		if filled[res.part] < len(p.items) {
			continue
		}
		delete(pending, res.part)
		delete(filled, res.part)
		n, err := r.commit(p, rows)
		if err != nil {
			return scored, errRows, fmt.Errorf("part %d: %w", p.index, err)
		}
		scored += len(rows)
		errRows += n
	}
	return scored, errRows, nil
}

// commit writes a part's files atomically, then its journal line. It
// returns the part's error rows.
func (r *runner) commit(p part, rows []Row) (int, error) {
	rec := partRecord{Part: p.index, First: p.first, Count: len(p.items), Hash: p.hash}
	for i := range rows {
		if rows[i].Error != nil {
			rec.Errors++
		}
	}
	var err error
	if r.npy {
		// The .npy goes first: a part counts as done only when the journal
		// names it, and then both files are in place.
		if rec.NpyBytes, err = writeAtomic(filepath.Join(r.dir, p.npyName()), func(w io.Writer) error {
			return writeNpy(w, rows, r.o.EmbeddingDim)
		}); err != nil {
			return 0, err
		}
		for i := range rows {
			rows[i].Embedding = nil // not in the JSONL itself
		}
	}
	if rec.Bytes, err = writeAtomic(filepath.Join(r.dir, p.name(r.format)), func(w io.Writer) error {
		if r.format == Parquet {
			return writeParquet(w, r.cols, rows)
		}
		return writeJSONL(w, rows)
	}); err != nil {
		return 0, err
	}
	return rec.Errors, r.j.commitPart(rec)
}

// score turns one batch into rows. Items that could not be read, or that
// lack the prompt a loaded model needs, become error rows without reaching
// the service; the service's own per-image errors become error rows too.
// Only a failure of the whole call (the models, the context) is an error.
func (r *runner) score(ctx context.Context, jb job) ([]Row, error) {
	rows := make([]Row, len(jb.items))
	var req []scoring.RewardItem
	var at []int
	for i, it := range jb.items {
		rows[i] = Row{Key: it.Key, Source: it.Source, Prompt: jb.loads[i].prompt}
		l := jb.loads[i]
		switch {
		case l.err != nil:
			rows[i].Error = errText(l.err)
		case r.needPrompt && l.prompt == nil:
			rows[i].Error = errText(errors.New("no prompt (no .txt sidecar, no prompt in the manifest or .json)"))
		case r.needPrompt && *l.prompt == "":
			rows[i].Error = errText(errors.New("empty prompt"))
		default:
			p := ""
			if l.prompt != nil {
				p = *l.prompt
			}
			img := scoring.Image{Data: l.data}
			if jb.rgb != nil {
				img = scoring.Image{RGB: jb.rgb[i]}
			}
			req = append(req, scoring.RewardItem{Prompt: p, Image: img})
			at = append(at, i)
		}
	}
	if len(req) == 0 {
		return rows, nil
	}
	res, err := r.s.Reward(ctx, req, nil)
	if err != nil {
		return nil, err
	}
	var emb [][]float32
	if r.o.Embeddings {
		imgs := make([]scoring.Image, len(req))
		for k := range req {
			imgs[k] = req[k].Image
		}
		if emb, _, err = r.s.EmbedImages(ctx, imgs); err != nil {
			return nil, err
		}
	}
	v := res.Versions
	for k, i := range at {
		sc := res.Scores[k]
		row := &rows[i]
		if sc.Err != nil {
			row.Error = errText(sc.Err)
			continue
		}
		row.Scores = r.cols.scoresOf(sc)
		row.Versions = versionsOf(r.specs, v)
		if emb != nil && emb[k] != nil {
			row.Embedding = slices.Clone(emb[k])
		}
	}
	return rows, nil
}

func needsPrompt(specs []scorer.Spec) bool {
	for _, sp := range specs {
		if sp.Prompt {
			return true
		}
	}
	return false
}

// versionsOf are the versions of the models that gave v, in registry
// order.
func versionsOf(specs []scorer.Spec, v map[string]string) []ModelVersion {
	var out []ModelVersion
	for _, sp := range specs {
		if s, ok := v[sp.Name]; ok {
			out = append(out, ModelVersion{Model: sp.Name, Version: s})
		}
	}
	return out
}

func errText(err error) *string {
	s := err.Error()
	return &s
}
