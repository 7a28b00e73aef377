package scoring

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/x448/float16"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scorer"
)

// tensorSet holds the model inputs of the images that needed computing.
type tensorSet struct {
	pix []pixelRows // per model: its rows, one after another
	// pooled are the buffers under pix, whole, from the service's pools.
	pooled []pixelRows
	rows   [][]int  // per model: the image index of each row
	dims   [][2]int // per image: the source's width and height
	errs   []error  // per image
}

// pixelRows are rows of one model's input, of its graph's element type:
// float32, or binary16 (half) for a model whose graph takes float16 pixels
// (scorer.HalfEncoder), so that no float32 row is made for it.
type pixelRows struct {
	half bool
	f32  []float32
	f16  []float16.Float16
}

// makeRows gives n values of rows, from the service's pool where it holds a
// buffer large enough. They need no clearing: every row is written before a
// model reads it (an image that fails is compacted away).
func (s *Service) makeRows(half bool, n int) pixelRows {
	if half {
		if b, ok := s.rows16.Get().(*[]float16.Float16); ok && cap(*b) >= n {
			return pixelRows{half: true, f16: (*b)[:n]}
		}
		return pixelRows{half: true, f16: make([]float16.Float16, n)}
	}
	if b, ok := s.rows32.Get().(*[]float32); ok && cap(*b) >= n {
		return pixelRows{f32: (*b)[:n]}
	}
	return pixelRows{f32: make([]float32, n)}
}

// release hands t's row buffers back to the service's pools. Only once the
// models have answered for every row: a batcher runs a lone request's rows
// where they are, and a caller that stops waiting leaves the run reading
// them (encode.go releases on success only).
func (s *Service) release(t *tensorSet) {
	for _, p := range t.pooled {
		switch {
		case p.half && cap(p.f16) > 0:
			b := p.f16[:0]
			s.rows16.Put(&b)
		case !p.half && cap(p.f32) > 0:
			b := p.f32[:0]
			s.rows32.Put(&b)
		}
	}
	t.pooled = nil
}

// row is the k-th row of l values.
func (r pixelRows) row(k, l int) pixelRows {
	if r.half {
		return pixelRows{half: true, f16: r.f16[k*l : (k+1)*l]}
	}
	return pixelRows{f32: r.f32[k*l : (k+1)*l]}
}

// rowKey is a row's preprocessing (scorer.Preprocessor.Key) and element
// type: the models of one image whose rows have equal keys share one row.
type rowKey struct {
	prep any
	half bool
}

// tensors decodes each image of idx once (for the models that take
// decoded pixels) and makes the rows its models need, in parallel over the
// service's decode slots (shared by every request), each image holding
// its share of the pixel budget meanwhile.
func (s *Service) tensors(ctx context.Context, j *job, idx []int, need [][]bool) (*tensorSet, error) {
	t := &tensorSet{pix: make([]pixelRows, len(j.models)), rows: make([][]int, len(j.models)),
		dims: make([][2]int, len(j.images)), errs: make([]error, len(j.images))}
	if len(idx) == 0 {
		return t, nil
	}
	// Rows are laid out in idx order, so each image knows where it goes.
	at := make([][]int, len(j.models))
	for mi, m := range j.models {
		at[mi] = make([]int, len(j.images))
		for _, i := range idx {
			if need[mi][i] {
				at[mi][i] = len(t.rows[mi])
				t.rows[mi] = append(t.rows[mi], i)
			}
		}
		t.pix[mi] = s.makeRows(m.half != nil, len(t.rows[mi])*m.prep.TensorLen())
	}
	t.pooled = slices.Clone(t.pix)
	var wg sync.WaitGroup
	for _, i := range idx {
		if !s.takeSlot(ctx) {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer func() { <-s.slots; wg.Done() }()
			t.errs[i] = s.prepare(ctx, j, i, need, func(mi int) pixelRows {
				return t.pix[mi].row(at[mi][i], j.models[mi].prep.TensorLen())
			}, &t.dims[i])
		}(i)
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for mi, m := range j.models {
		p, l := &t.pix[mi], m.prep.TensorLen()
		if p.half {
			p.f16, t.rows[mi] = compact(p.f16, t.rows[mi], t.errs, l)
		} else {
			p.f32, t.rows[mi] = compact(p.f32, t.rows[mi], t.errs, l)
		}
	}
	return t, nil
}

// takeSlot waits for one of the service's decode slots; false when ctx
// ends first.
func (s *Service) takeSlot(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	select {
	case s.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// prepare makes image i's rows for every model that needs them (dst(mi)
// is model mi's row). It runs on client input: a panic in a decoder or a
// preprocessor becomes this image's error, never the process's end.
func (s *Service) prepare(ctx context.Context, j *job, i int, need [][]bool, dst func(int) pixelRows, dims *[2]int) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: the decoder failed on this image (%v)", preprocess.ErrUndecodable, r)
		}
	}()
	img := j.images[i]
	w, h := headerDims(img)
	release, err := s.pixels.acquire(ctx, int64(w)*int64(h), s.maxPixels())
	if err != nil {
		return err
	}
	defer release()
	src := scorer.Source(img)
	if src.RGB == nil && s.needsRGB(j, i, need) {
		start := time.Now()
		var done func()
		if src.RGB, done, err = s.decode(img.Data, s.limits()); err != nil {
			return err
		}
		defer done() // the rows below are made from the pixels, which nothing keeps
		s.observePrep("decode", start)
	}
	if src.RGB != nil {
		w, h = src.RGB.W, src.RGB.H
	}
	*dims = [2]int{w, h}
	done := map[rowKey]pixelRows{} // rows made, by preprocessing and type
	// float32 rows first: a model that takes halves of the same
	// preprocessing then gets that row rounded instead of a second resize.
	for _, half := range [2]bool{false, true} {
		for mi, m := range j.models {
			if !need[mi][i] || (m.half != nil) != half {
				continue
			}
			in := src
			if !m.prep.NeedsRGB() {
				in = scorer.Source(img) // the file itself, not our decode
			}
			start := time.Now()
			if err := fill(m.prep, in, dst(mi), done); err != nil {
				return err
			}
			s.observePrep(m.Name, start)
		}
	}
	return nil
}

// fill writes one row with p: a copy of a row of equal preprocessing and
// type already made for the image, a float32 one of equal preprocessing
// rounded (TensorHalf's values, by the Preprocessor's contract), or p's
// own; done records it.
func fill(p scorer.Preprocessor, in scorer.Source, row pixelRows, done map[rowKey]pixelRows) error {
	key := rowKey{p.Key(), row.half}
	prev, same := done[key]
	float, haveFloat := done[rowKey{key.prep, false}]
	var err error
	switch {
	case same:
		copy(row.f32, prev.f32)
		copy(row.f16, prev.f16)
	case row.half && haveFloat:
		models.HalfFromFloat32(row.f16, float.f32)
	case row.half:
		err = p.TensorHalf(in, row.f16)
	default:
		err = p.Tensor(in, row.f32)
	}
	if err == nil {
		done[key] = row
	}
	return err
}

// needsRGB says whether one of the models that need image i takes decoded
// pixels.
func (s *Service) needsRGB(j *job, i int, need [][]bool) bool {
	for mi, m := range j.models {
		if need[mi][i] && m.prep.NeedsRGB() {
			return true
		}
	}
	return false
}

// compact drops the rows of failed images (errs), moving the others down
// in place.
func compact[T any](pix []T, rows []int, errs []error, l int) ([]T, []int) {
	if len(rows) == 0 {
		return pix, rows
	}
	first := -1 // the first row of a failed image: nothing moves before it
	for k, i := range rows {
		if errs[i] != nil {
			first = k
			break
		}
	}
	if first < 0 {
		return pix, rows
	}
	out, kept := pix[:first*l], rows[:first]
	for k := first; k < len(rows); k++ {
		i := rows[k]
		if errs[i] != nil {
			continue
		}
		out = append(out, pix[k*l:(k+1)*l]...) // moves rows down in place: k*l >= len(out)
		kept = append(kept, i)
	}
	return out, kept
}
