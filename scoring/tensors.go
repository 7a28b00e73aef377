package scoring

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scorer"
)

// tensorSet holds the model inputs of the images that needed computing.
type tensorSet struct {
	pix  [][]float32 // per model: its rows, one after another
	rows [][]int     // per model: the image index of each row
	dims [][2]int    // per image: the source's width and height
	errs []error     // per image
}

// tensors decodes each image of idx once (for the models that take
// decoded pixels) and makes the rows its models need, in parallel over the
// service's workers, each image holding its share of the pixel budget
// meanwhile.
func (s *Service) tensors(ctx context.Context, j *job, idx []int, need [][]bool) (*tensorSet, error) {
	t := &tensorSet{pix: make([][]float32, len(j.models)), rows: make([][]int, len(j.models)),
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
		t.pix[mi] = make([]float32, len(t.rows[mi])*m.prep.TensorLen())
	}
	sem := make(chan struct{}, s.workers)
	var wg sync.WaitGroup
	for _, i := range idx {
		if err := ctx.Err(); err != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			t.errs[i] = s.prepare(ctx, j, i, need, func(mi int) []float32 {
				l := j.models[mi].prep.TensorLen()
				return t.pix[mi][at[mi][i]*l : (at[mi][i]+1)*l]
			}, &t.dims[i])
		}(i)
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for mi, m := range j.models {
		t.pix[mi], t.rows[mi] = compact(t.pix[mi], t.rows[mi], t.errs, m.prep.TensorLen())
	}
	return t, nil
}

// prepare makes image i's rows for every model that needs them (dst(mi)
// is model mi's row). It runs on client input: a panic in a decoder or a
// preprocessor becomes this image's error, never the process's end.
func (s *Service) prepare(ctx context.Context, j *job, i int, need [][]bool, dst func(int) []float32, dims *[2]int) (err error) {
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
		if src.RGB, err = s.decode(img.Data, s.limits()); err != nil {
			return err
		}
		s.observePrep("decode", start)
	}
	if src.RGB != nil {
		w, h = src.RGB.W, src.RGB.H
	}
	*dims = [2]int{w, h}
	done := map[any][]float32{} // rows made, by preprocessing
	for mi, m := range j.models {
		if !need[mi][i] {
			continue
		}
		row, key := dst(mi), m.prep.Key()
		in := src
		if !m.prep.NeedsRGB() {
			in = scorer.Source(img) // the file itself, not our decode
		}
		start := time.Now()
		if prev, ok := done[key]; ok {
			copy(row, prev)
		} else if err := m.prep.Tensor(in, row); err != nil {
			return err
		}
		done[key] = row
		s.observePrep(m.Name, start)
	}
	return nil
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

func compact(pix []float32, rows []int, errs []error, l int) ([]float32, []int) {
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
