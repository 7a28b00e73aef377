package scoring

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scorer"
)

// What the models' encoders produce for a request goes through the cache
// (Options.Cache; nil caches nothing): every key of the request (each
// text-embedding model's prompts by token ids, each model's image features
// by the image's bytes) is looked up at once, and everything missing is
// computed in one go, each image decoded once for all the models that take
// decoded pixels. Every model, whatever its kind, takes this one path.

// job says what one request needs of the pipeline.
type job struct {
	images []Image
	models []*model
	// prompts are the distinct prompts; promptOf[i] is the prompt image i
	// is scored against (nil without prompts). A prompt none of whose
	// images can be read is not encoded, unless allTexts.
	prompts  []string
	promptOf []int
	allTexts bool
}

// encoded holds what the pipeline made of a job, indexed like it.
type encoded struct {
	texts [][]*scorer.Text    // [model][prompt]; nil rows for models without text
	feats [][]scorer.Features // [model][image]
	errs  []error             // per image: its own failure
	sums  [][32]byte          // per image: content hash (zero without a cache)
}

// slot is what one cache key stands for.
type slot struct {
	m    int  // model index in the job
	text bool // a prompt's text embedding, else an image's features
	i    int  // prompt or image index
}

func (s *Service) maxPixels() int64 {
	if s.opts.MaxImagePixels > 0 {
		return s.opts.MaxImagePixels
	}
	return preprocess.DefaultMaxPixels
}

func (s *Service) maxBytes() int64 {
	if s.opts.MaxImageBytes > 0 {
		return s.opts.MaxImageBytes
	}
	return preprocess.DefaultMaxBytes
}

func (s *Service) limits() preprocess.ImageOptions {
	return preprocess.ImageOptions{MaxBytes: s.opts.MaxImageBytes, MaxPixels: s.opts.MaxImagePixels}
}

// encode returns what j needs, from the cache where it can.
func (s *Service) encode(ctx context.Context, j *job) (*encoded, error) {
	out := &encoded{texts: make([][]*scorer.Text, len(j.models)), feats: make([][]scorer.Features, len(j.models)),
		errs: make([]error, len(j.images)), sums: make([][32]byte, len(j.images))}
	if err := s.tokenize(j, out); err != nil {
		return nil, err
	}
	s.hashImages(j, out)
	keys, slots := s.keysOf(j, out)
	if len(keys) == 0 {
		return out, nil
	}
	vals, errs, err := s.opts.Cache.Resolve(ctx, keys, func(ctx context.Context, missing []int) ([]cache.Value, []error, error) {
		return s.compute(ctx, j, out, slots, missing)
	})
	if err != nil {
		return nil, err
	}
	s.collect(j, out, slots, vals, errs)
	return out, nil
}

// tokenize reads each distinct prompt once per model with a text side; the
// tokens key the cache and go to the encoder and the head unchanged.
func (s *Service) tokenize(j *job, out *encoded) error {
	for mi, m := range j.models {
		out.feats[mi] = make([]scorer.Features, len(j.images))
		if m.text == nil || len(j.prompts) == 0 {
			continue
		}
		out.texts[mi] = make([]*scorer.Text, len(j.prompts))
		for p, prompt := range j.prompts {
			tok, err := m.text.Tokenize(prompt)
			if err != nil {
				return err
			}
			out.texts[mi][p] = &scorer.Text{Tokens: tok}
		}
	}
	return nil
}

// hashImages applies the byte limit (an oversized file is refused before
// it is hashed or read) and hashes the rest when there is a cache.
func (s *Service) hashImages(j *job, out *encoded) {
	cached := s.opts.Cache != nil
	for i, img := range j.images {
		switch {
		case img.RGB != nil:
			if cached {
				out.sums[i] = cache.PixelsSum(img.RGB.W, img.RGB.H, img.RGB.Pix)
			}
		case int64(len(img.Data)) > s.maxBytes():
			_, out.errs[i] = preprocess.DecodeRGB(img.Data, s.limits()) // refuses by size alone
		case cached:
			out.sums[i] = cache.BytesSum(img.Data)
		}
	}
}

// keysOf lists the cache keys of a job: each text-embedding model's
// prompts, each model's readable images.
func (s *Service) keysOf(j *job, out *encoded) ([]cache.Key, []slot) {
	var keys []cache.Key
	var slots []slot
	for mi, m := range j.models {
		if m.emb != nil {
			for p, t := range out.texts[mi] {
				k := cache.Key{Version: m.Version(), Kind: cache.KindText}
				if s.opts.Cache != nil {
					k.Sum = cache.TokensSum(t.Tokens.IDs)
				}
				keys, slots = append(keys, k), append(slots, slot{m: mi, text: true, i: p})
			}
		}
		for i := range j.images {
			if out.errs[i] == nil {
				keys = append(keys, cache.Key{Version: m.Version(), Kind: m.ImageKind, Sum: out.sums[i]})
				slots = append(slots, slot{m: mi, i: i})
			}
		}
	}
	return keys, slots
}

// collect puts the resolved values in place and applies this process's
// pixel limit to every image entry (a cached one may come from a process
// with larger limits).
func (s *Service) collect(j *job, out *encoded, slots []slot, vals []cache.Value, errs []error) {
	for k, sl := range slots {
		v, e := vals[k], errs[k]
		if sl.text {
			if e == nil {
				out.texts[sl.m][sl.i].Embed = v.Vec
			}
			continue
		}
		switch {
		case out.errs[sl.i] != nil:
		case e != nil:
			out.errs[sl.i] = e
		default:
			out.feats[sl.m][sl.i] = scorer.Features{Vec: v.Vec, Scalars: v.Scalars}
			out.errs[sl.i] = s.checkPixels(int64(v.Width), int64(v.Height))
		}
	}
	for i, e := range out.errs {
		if e != nil {
			for mi := range out.feats {
				out.feats[mi][i] = scorer.Features{}
			}
		}
	}
}

// checkPixels applies the pixel limit as preprocess does on decoding.
func (s *Service) checkPixels(w, h int64) error {
	if lim := s.maxPixels(); w > lim || h > lim || w*h > lim {
		return fmt.Errorf("%w: image is %dx%d = %d pixels, the limit is %d", preprocess.ErrTooLarge, w, h, w*h, lim)
	}
	return nil
}

// compute makes the values of the keys the cache did not have: images
// decoded and preprocessed once, one encoder call per model, one text
// encoder call per model for the prompts still needed.
func (s *Service) compute(ctx context.Context, j *job, out *encoded, slots []slot, missing []int) ([]cache.Value, []error, error) {
	vals, errs := make([]cache.Value, len(missing)), make([]error, len(missing))
	need := make([][]bool, len(j.models))
	for mi := range need {
		need[mi] = make([]bool, len(j.images))
	}
	var union []int
	inUnion := make([]bool, len(j.images))
	for _, m := range missing {
		if sl := slots[m]; !sl.text {
			need[sl.m][sl.i] = true
			if !inUnion[sl.i] {
				inUnion[sl.i] = true
				union = append(union, sl.i)
			}
		}
	}
	t, err := s.tensors(ctx, j, union, need)
	if err != nil {
		return nil, nil, err
	}
	// The image encoders and the text encoders all run at once: each waits
	// in its own batcher (up to --batch-wait for its batch to fill) and runs
	// its own session, so one after another a 1-image ICT + HP request
	// waited three times (BENCHMARKS.md, "Encoders side by side").
	// A failure on one side stops the other; the error returned is the one
	// that failed, not the other's cancellation.
	run, cancel := context.WithCancel(ctx)
	defer cancel()
	var feats [][]scorer.Features
	var imgErr, textErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		textErr = s.runTextEncoders(run, j, out, t, inUnion, slots, missing, vals, errs)
		if textErr != nil {
			cancel()
		}
	}()
	feats, imgErr = s.runEncoders(run, j, t)
	if imgErr != nil {
		cancel()
	} else {
		s.release(t) // every row was answered for: nothing reads them now
	}
	wg.Wait()
	if imgErr != nil && (ctx.Err() != nil || !errors.Is(imgErr, context.Canceled)) {
		return nil, nil, imgErr
	}
	if err := cmp.Or(textErr, imgErr); err != nil {
		return nil, nil, err
	}
	for k, m := range missing {
		sl := slots[m]
		if sl.text {
			continue
		}
		if e := t.errs[sl.i]; e != nil {
			errs[k] = e
			continue
		}
		f := feats[sl.m][sl.i]
		vals[k] = cache.Value{Vec: f.Vec, Scalars: f.Scalars, Width: uint32(t.dims[sl.i][0]), Height: uint32(t.dims[sl.i][1])}
	}
	return vals, errs, nil
}

// runEncoders runs each model's image encoder once over its rows, all
// models at once; the result is indexed [model][image]. The first error in
// model order is returned.
func (s *Service) runEncoders(ctx context.Context, j *job, t *tensorSet) ([][]scorer.Features, error) {
	out := make([][]scorer.Features, len(j.models))
	calls := make([]func() error, len(j.models))
	for mi, m := range j.models {
		rows := t.rows[mi]
		if len(rows) == 0 {
			continue
		}
		calls[mi] = func() error {
			var f []scorer.Features
			var err error
			if p := t.pix[mi]; p.half {
				f, err = m.half.EncodeHalf(ctx, p.f16, len(rows))
			} else {
				f, err = m.img.Encode(ctx, p.f32, len(rows))
			}
			if err != nil {
				return fmt.Errorf("%s image: %w", m.Name, err)
			}
			if len(f) != len(rows) {
				return fmt.Errorf("%s image: %d results for %d images", m.Name, len(f), len(rows))
			}
			out[mi] = make([]scorer.Features, len(j.images))
			for k, i := range rows {
				out[mi][i] = f[k]
			}
			return nil
		}
	}
	if err := sideBySide(calls); err != nil {
		return nil, err
	}
	return out, nil
}

// sideBySide runs the non-nil calls each on a goroutine of its own and
// returns the first error in their order. A panic in a call (an encoder's,
// on client input) is its error: on its own goroutine it would end the
// process.
func sideBySide(calls []func() error) error {
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i, call := range calls {
		if call == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					errs[i] = fmt.Errorf("the encoder failed (%v)", r)
				}
			}()
			errs[i] = call()
		}()
	}
	wg.Wait()
	return cmp.Or(errs...)
}

// runTextEncoders embeds the missing prompts that are needed: a prompt is
// needed when one of its images may be good (decoded here, or not decoded
// here at all: a hit, or another request's), or when allTexts.
func (s *Service) runTextEncoders(ctx context.Context, j *job, out *encoded, t *tensorSet, inUnion []bool,
	slots []slot, missing []int, vals []cache.Value, errs []error) error {
	needed := make([]bool, len(j.prompts))
	for i, p := range j.promptOf {
		if (!inUnion[i] || t.errs[i] == nil) && out.errs[i] == nil {
			needed[p] = true
		}
	}
	// Each model writes only its own positions of vals and errs.
	calls := make([]func() error, len(j.models))
	for mi, m := range j.models {
		var toks []scorer.Tokens
		var at []int // positions in missing
		for k, idx := range missing {
			sl := slots[idx]
			if !sl.text || sl.m != mi {
				continue
			}
			if !j.allTexts && !needed[sl.i] {
				errs[k] = cache.ErrNotComputed
				continue
			}
			toks, at = append(toks, out.texts[mi][sl.i].Tokens), append(at, k)
		}
		if len(toks) == 0 {
			continue
		}
		calls[mi] = func() error {
			emb, err := m.emb.EncodeTexts(ctx, toks)
			if err != nil {
				return fmt.Errorf("%s text: %w", m.Name, err)
			}
			for n, k := range at {
				vals[k] = cache.Value{Vec: emb[n]}
			}
			return nil
		}
	}
	return sideBySide(calls)
}

// heads applies each model's head to the pairs of its good images and
// fills rows in registry order; a row with an error has no scores.
func (s *Service) heads(ctx context.Context, j *job, enc *encoded, rows []Scores) error {
	for mi, m := range j.models {
		var pairs []scorer.Pair
		var at []int
		for i := range j.images {
			if enc.errs[i] != nil {
				continue
			}
			p := scorer.Pair{Image: enc.feats[mi][i]}
			if m.text != nil {
				p.Text = enc.texts[mi][j.promptOf[i]]
			}
			pairs, at = append(pairs, p), append(at, i)
		}
		if len(pairs) == 0 {
			continue
		}
		out, err := m.Head(ctx, pairs)
		if err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
		if len(out) != len(pairs) {
			return fmt.Errorf("%s: %d results for %d images", m.Name, len(out), len(pairs))
		}
		for k, i := range at {
			if len(out[k]) != len(m.Outputs) {
				return fmt.Errorf("%s: %d values for %d outputs", m.Name, len(out[k]), len(m.Outputs))
			}
			for o, spec := range m.Outputs {
				rows[i].Values = append(rows[i].Values, Score{Name: spec.Name, Value: out[k][o]})
			}
		}
	}
	for i := range rows {
		rows[i].Err = enc.errs[i]
	}
	return nil
}
