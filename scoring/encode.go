package scoring

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/hp"
	"github.com/icthp/icthp/preprocess"
)

// What the encoders produce for a request goes through the cache
// (Options.Cache; nil caches nothing): every key of the request (the
// prompts' token ids, each image's bytes for ICT and for HP) is looked up at
// once, and everything missing is computed in one go, each image decoded
// once for both models.

// encodeRequest says what one request needs from the ICT and HP encoders.
type encodeRequest struct {
	images  []Image
	ict, hp bool // image embeddings of every image from ICT, HP results
	// prompts are the distinct prompts to embed with ICT; promptOf[i] is
	// the prompt that image i is scored against, -1 for none. A prompt none
	// of whose images can be read is not encoded, unless allTexts.
	prompts  []string
	promptOf []int
	allTexts bool
}

// encoded holds the encoders' results, indexed like the request.
type encoded struct {
	text [][]float32 // per prompt; nil when not needed
	ict  [][]float32 // per image
	hp   []hp.Result // per image
	errs []error     // per image: its own failure
}

// Cache is the service's embedding cache (nil when it has none).
func (s *Service) Cache() *cache.Cache { return s.opts.Cache }

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

// encode returns what r needs, from the cache where it can.
func (s *Service) encode(ctx context.Context, r encodeRequest) (*encoded, error) {
	n := len(r.images)
	out := &encoded{text: make([][]float32, len(r.prompts)), ict: make([][]float32, n), hp: make([]hp.Result, n), errs: make([]error, n)}
	cached := s.opts.Cache != nil
	var keys []cache.Key
	type slot struct {
		kind cache.Kind
		i    int // prompt or image index
	}
	var slots []slot
	add := func(k cache.Key, sl slot) {
		keys, slots = append(keys, k), append(slots, sl)
	}
	if len(r.prompts) > 0 {
		tok := s.ict.Tokenizer()
		for p, text := range r.prompts {
			k := cache.Key{Version: s.ict.Version(), Kind: cache.KindText}
			if cached {
				ids, err := tok.Encode(text)
				if err != nil {
					return nil, fmt.Errorf("ict text: %w", err)
				}
				k.Sum = cache.TokensSum(ids)
			}
			add(k, slot{cache.KindText, p})
		}
	}
	if r.ict || r.hp {
		lim := preprocess.ImageOptions{MaxBytes: s.opts.MaxImageBytes, MaxPixels: s.opts.MaxImagePixels}
		for i, img := range r.images {
			var sum [32]byte
			switch {
			case img.RGB != nil:
				if cached {
					sum = cache.PixelsSum(img.RGB.W, img.RGB.H, img.RGB.Pix)
				}
			case int64(len(img.Data)) > s.maxBytes():
				// Refused before anything is read (and never hashed).
				_, out.errs[i] = preprocess.DecodeRGB(img.Data, lim)
				continue
			default:
				if cached {
					sum = cache.BytesSum(img.Data)
				}
			}
			if r.ict {
				add(cache.Key{Version: s.ict.Version(), Kind: cache.KindImage, Sum: sum}, slot{cache.KindImage, i})
			}
			if r.hp {
				add(cache.Key{Version: s.hp.Version(), Kind: cache.KindHP, Sum: sum}, slot{cache.KindHP, i})
			}
		}
	}
	if len(keys) == 0 {
		return out, nil
	}

	compute := func(ctx context.Context, missing []int) ([]cache.Value, []error, error) {
		vals, errs := make([]cache.Value, len(missing)), make([]error, len(missing))
		// Which images need which model; the others are cache hits.
		needICT, needHP := make([]bool, n), make([]bool, n)
		var texts []int // positions in missing
		var union []int
		inUnion := make([]bool, n)
		for k, m := range missing {
			sl := slots[m]
			switch sl.kind {
			case cache.KindText:
				texts = append(texts, k)
				continue
			case cache.KindImage:
				needICT[sl.i] = true
			case cache.KindHP:
				needHP[sl.i] = true
			}
			if !inUnion[sl.i] {
				inUnion[sl.i] = true
				union = append(union, sl.i)
			}
		}
		t, err := s.tensors(ctx, r.images, union, needICT, needHP)
		if err != nil {
			return nil, nil, err
		}
		var ictEmb [][]float32
		var hpOut []hp.Result
		if len(t.ictRows) > 0 {
			if ictEmb, err = s.ict.EmbedImages(ctx, t.ictPix, len(t.ictRows)); err != nil {
				return nil, nil, fmt.Errorf("ict image: %w", err)
			}
		}
		if len(t.hpRows) > 0 {
			if hpOut, err = s.hp.Score(ctx, t.hpPix, len(t.hpRows)); err != nil {
				return nil, nil, fmt.Errorf("hp: %w", err)
			}
		}
		ictAt, hpAt := map[int]int{}, map[int]int{}
		for k, i := range t.ictRows {
			ictAt[i] = k
		}
		for k, i := range t.hpRows {
			hpAt[i] = k
		}
		// A prompt is needed when one of its images may be good: decoded
		// here, or not decoded here at all (a hit, or another request's).
		need := make([]bool, len(r.prompts))
		for i, p := range r.promptOf {
			if p >= 0 && (!inUnion[i] || t.errs[i] == nil) && out.errs[i] == nil {
				need[p] = true
			}
		}
		var prompts []string
		var textK []int
		for _, k := range texts {
			p := slots[missing[k]].i
			if !r.allTexts && !need[p] {
				errs[k] = cache.ErrNotComputed
				continue
			}
			prompts, textK = append(prompts, r.prompts[p]), append(textK, k)
		}
		if len(prompts) > 0 {
			emb, err := s.ict.EmbedTexts(ctx, prompts)
			if err != nil {
				return nil, nil, fmt.Errorf("ict text: %w", err)
			}
			for j, k := range textK {
				vals[k] = cache.Value{Vec: emb[j]}
			}
		}
		for k, m := range missing {
			sl := slots[m]
			if sl.kind == cache.KindText {
				continue
			}
			if e := t.errs[sl.i]; e != nil {
				errs[k] = e
				continue
			}
			w, h := float64(t.dims[sl.i][0]), float64(t.dims[sl.i][1])
			if sl.kind == cache.KindImage {
				vals[k] = cache.Value{Vec: ictEmb[ictAt[sl.i]], Scalars: []float64{w, h}}
			} else {
				o := hpOut[hpAt[sl.i]]
				vals[k] = cache.Value{Vec: o.Embed, Scalars: []float64{o.Logit, w, h}}
			}
		}
		return vals, errs, nil
	}

	vals, errs, err := s.opts.Cache.Resolve(ctx, keys, compute)
	if err != nil {
		return nil, err
	}
	for k, sl := range slots {
		v, e := vals[k], errs[k]
		if sl.kind == cache.KindText {
			if e == nil {
				out.text[sl.i] = v.Vec
			}
			continue
		}
		if out.errs[sl.i] != nil {
			continue
		}
		if e != nil {
			out.errs[sl.i] = e
			continue
		}
		dims := v.Scalars
		if sl.kind == cache.KindHP && len(dims) > 0 {
			out.hp[sl.i] = hp.Result{Logit: dims[0], Embed: v.Vec}
			dims = dims[1:]
		} else {
			out.ict[sl.i] = v.Vec
		}
		// A cached entry may come from a process with larger limits: this
		// one's pixel limit still applies.
		if len(dims) != 2 {
			out.errs[sl.i] = fmt.Errorf("scoring: cached %v entry without image size", sl.kind)
		} else if err := s.checkPixels(int64(dims[0]), int64(dims[1])); err != nil {
			out.errs[sl.i] = err
		}
	}
	for i, e := range out.errs {
		if e != nil {
			out.ict[i], out.hp[i] = nil, hp.Result{}
		}
	}
	return out, nil
}

// checkPixels applies the pixel limit as preprocess does on decoding.
func (s *Service) checkPixels(w, h int64) error {
	if lim := s.maxPixels(); w > lim || h > lim || w*h > lim {
		return fmt.Errorf("%w: image is %dx%d = %d pixels, the limit is %d", preprocess.ErrTooLarge, w, h, w*h, lim)
	}
	return nil
}

// tensorSet holds the model inputs of the images that needed computing.
type tensorSet struct {
	ictPix, hpPix   []float32
	ictRows, hpRows []int    // image indices, in the order of the rows
	dims            [][2]int // per image: the source's width and height
	errs            []error  // per image
}

// tensors decodes each image of idx once and makes the tensors its models
// need (one tensor for both when ICT and HP preprocess alike), in parallel
// over the service's workers.
func (s *Service) tensors(ctx context.Context, images []Image, idx []int, needICT, needHP []bool) (*tensorSet, error) {
	t := &tensorSet{dims: make([][2]int, len(images)), errs: make([]error, len(images))}
	if len(idx) == 0 {
		return t, nil
	}
	var ictPipe, hpPipe *preprocess.ImagePipeline
	if s.ict != nil {
		ictPipe = s.ict.Images()
	}
	if s.hp != nil {
		hpPipe = s.hp.Images()
	}
	shared := ictPipe != nil && hpPipe != nil && ictPipe.Options() == hpPipe.Options()
	// Rows are laid out in idx order, so each image knows where it goes.
	ictRow, hpRow := make([]int, len(images)), make([]int, len(images))
	for _, i := range idx {
		if needICT[i] {
			ictRow[i] = len(t.ictRows)
			t.ictRows = append(t.ictRows, i)
		}
		if needHP[i] {
			hpRow[i] = len(t.hpRows)
			t.hpRows = append(t.hpRows, i)
		}
	}
	if len(t.ictRows) > 0 {
		t.ictPix = make([]float32, len(t.ictRows)*ictPipe.TensorLen())
	}
	if len(t.hpRows) > 0 {
		t.hpPix = make([]float32, len(t.hpRows)*hpPipe.TensorLen())
	}
	lim := preprocess.ImageOptions{MaxBytes: s.opts.MaxImageBytes, MaxPixels: s.opts.MaxImagePixels}
	sem := make(chan struct{}, s.workers)
	var wg sync.WaitGroup
	for _, i := range idx {
		if err := ctx.Err(); err != nil {
			wg.Wait()
			return nil, err
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			img := images[i].RGB
			if img == nil {
				var err error
				start := time.Now()
				if img, err = preprocess.DecodeRGB(images[i].Data, lim); err != nil {
					t.errs[i] = err
					return
				}
				s.observePrep("decode", start)
			}
			t.dims[i] = [2]int{img.W, img.H}
			var ictDst []float32
			if needICT[i] {
				l := ictPipe.TensorLen()
				ictDst = t.ictPix[ictRow[i]*l : (ictRow[i]+1)*l]
				start := time.Now()
				if err := ictPipe.TensorRGB(img, ictDst); err != nil {
					t.errs[i] = err
					return
				}
				s.observePrep(ModelICT, start)
			}
			if needHP[i] {
				l := hpPipe.TensorLen()
				hpDst := t.hpPix[hpRow[i]*l : (hpRow[i]+1)*l]
				start := time.Now()
				if shared && ictDst != nil {
					copy(hpDst, ictDst)
				} else if err := hpPipe.TensorRGB(img, hpDst); err != nil {
					t.errs[i] = err
					return
				}
				s.observePrep(ModelHP, start)
			}
		}(i)
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Drop the rows of images that failed.
	t.ictPix, t.ictRows = compact(t.ictPix, t.ictRows, t.errs, ictPipe)
	t.hpPix, t.hpRows = compact(t.hpPix, t.hpRows, t.errs, hpPipe)
	return t, nil
}

func compact(pix []float32, rows []int, errs []error, pipe *preprocess.ImagePipeline) ([]float32, []int) {
	if len(rows) == 0 {
		return pix, rows
	}
	l := pipe.TensorLen()
	out, kept := pix[:0], rows[:0]
	for k, i := range rows {
		if errs[i] != nil {
			continue
		}
		out = append(out, pix[k*l:(k+1)*l]...) // moves rows down in place: k*l >= len(out)
		kept = append(kept, i)
	}
	return out, kept
}
