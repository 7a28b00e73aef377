// Package scoring says what a request means: per-image scores of the
// loaded models, the paper's group ICT-HP ranking, per-item rewards for
// training loops, and embeddings. The command line, the HTTP server and the
// batch scorer are three front doors onto one Service.
//
// The Service holds named models (scorer.Model: a registry Spec and the
// scorer behind the scorer package's interfaces) and runs every one of them
// through the same pipeline: admission, limits, cache, one decode per
// image, preprocessing, one encoder call per model, the model's head.
package scoring

import (
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scorer"
)

// ErrBadRequest marks a request that cannot be served as asked; it is
// scorer.ErrBadRequest, which model packages use too.
var ErrBadRequest = scorer.ErrBadRequest

// Image is one input image (scorer.Image).
type Image = scorer.Image

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// Options configure a Service.
type Options struct {
	// Workers bounds how many images are decoded and preprocessed at once;
	// 0 means GOMAXPROCS.
	Workers int
	// Limits on input images (bytes, pixels); zero fields take
	// preprocess's defaults. They apply to every model, cache hits
	// included.
	MaxImageBytes  int64
	MaxImagePixels int64
	// MaxQueue bounds the images admitted and not yet answered, over all
	// requests (waiting for decode, decoding, waiting for or in a model): a
	// request that would pass it is refused (*models.OverloadError, 429)
	// before any of its images is read. A request alone may exceed it.
	// 0: no bound.
	MaxQueue int
	// PixelBudget bounds the decoded pixels held at once by all requests
	// and models; an image takes its header's width × height (at most the
	// whole budget) before it is decoded and gives it back once its
	// tensors are made. 0: twice the pixel limit.
	PixelBudget int64
	// Reward is the default combination of /v1/reward; zero means product.
	Reward Combination
	// Metrics, when set, is where the service registers its Prometheus
	// collectors. No package registers on the global default registry.
	Metrics prometheus.Registerer
	// Cache keeps text embeddings and image features, keyed by model
	// version and content; nil caches nothing. Results are the same with
	// and without it (see the cache package for float16 storage).
	Cache *cache.Cache
}

// model is one loaded model with its sides resolved once.
type model struct {
	scorer.Model
	text scorer.TextEncoder  // nil without a text side
	emb  scorer.TextEmbedder // nil unless the text side embeds
	prep scorer.Preprocessor
	img  scorer.ImageEncoder
	// half is img when its graph takes float16 pixels: its rows are
	// binary16 (Preprocessor.TensorHalf, HalfEncoder.EncodeHalf).
	half scorer.HalfEncoder
}

// Service scores images with whichever models are loaded.
type Service struct {
	models []*model // in the order given to New (the registry's)
	byName map[string]*model
	// slots holds one token per image being decoded and preprocessed,
	// over every request (Options.Workers of them). Bounding it per
	// service, not per request, keeps the runnable decoders at the core
	// count however many requests are admitted: a goroutine answering a
	// 429 or reading a body then waits behind a few decoders, not behind
	// every admitted image (RELIABILITY.md, overload on pinned cores).
	slots  chan struct{}
	opts   Options
	admit  *admission
	pixels *pixelBudget
	// decode is preprocess.DecodeRGBPooled (the pixels go back to its pool
	// once the image's rows are made); tests put a decoder that panics here.
	decode func([]byte, preprocess.ImageOptions) (*preprocess.RGB, func(), error)
	// prep times preprocessing per image, by step: decode (bytes to RGB),
	// then each model's name (its resize, crop and normalisation); nil
	// without Options.Metrics.
	prep *prometheus.HistogramVec
	// rows32 and rows16 hold the buffers of requests' model input rows
	// (*[]float32, *[]float16.Float16) between requests: 602 KB a 224² row,
	// allocated and cleared per request they were 5.6 % of the server's CPU
	// on 1-image requests (tensors.go).
	rows32, rows16 sync.Pool
}

// New makes a Service over the loaded models, in registry order; names
// and output names must be unique.
func New(ms []scorer.Model, o Options) (*Service, error) {
	if len(ms) == 0 {
		return nil, errors.New("scoring: no model loaded")
	}
	if err := o.Reward.Validate(); err != nil {
		return nil, err
	}
	w := o.Workers
	if w <= 0 {
		w = runtime.GOMAXPROCS(0)
	}
	svc := &Service{byName: map[string]*model{}, slots: make(chan struct{}, w), opts: o, decode: preprocess.DecodeRGBPooled}
	outs := map[string]bool{}
	for _, m := range ms {
		if m.Scorer == nil || m.Name == "" || svc.byName[m.Name] != nil {
			return nil, fmt.Errorf("scoring: model %q is nil, unnamed or given twice", m.Name)
		}
		for _, out := range m.Outputs {
			if outs[out.Name] {
				return nil, fmt.Errorf("scoring: output %q given by two models", out.Name)
			}
			outs[out.Name] = true
		}
		lm := &model{Model: m, text: m.Text(), img: m.Image()}
		lm.prep = lm.img.Preprocess()
		lm.emb, _ = lm.text.(scorer.TextEmbedder)
		if h, ok := lm.img.(scorer.HalfEncoder); ok && h.HalfPixels() {
			lm.half = h
		}
		svc.models = append(svc.models, lm)
		svc.byName[m.Name] = lm
	}
	for _, n := range o.Reward.Names() {
		if !outs[n] {
			return nil, fmt.Errorf("scoring: the default reward reads %q, which no loaded model gives (scores: %s)", n, strings.Join(slices.Sorted(maps.Keys(outs)), ", "))
		}
	}
	svc.admit = &admission{max: int64(o.MaxQueue)}
	budget := o.PixelBudget
	if budget <= 0 {
		budget = 2 * svc.maxPixels()
	}
	svc.pixels = newPixelBudget(budget)
	if o.Metrics != nil {
		svc.prep = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "icthp_preprocess_seconds",
			Help:    "Preprocessing time per image, by step: decode, then each model's resize, crop and normalisation.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"step"})
		if err := o.Metrics.Register(svc.prep); err != nil {
			return nil, fmt.Errorf("scoring metrics: %w", err)
		}
	}
	return svc, nil
}

// observePrep records one preprocessing step's time since start.
func (s *Service) observePrep(step string, start time.Time) {
	if s.prep != nil {
		s.prep.WithLabelValues(step).Observe(time.Since(start).Seconds())
	}
}

// Models are the loaded models, in registry order.
func (s *Service) Models() []scorer.Model {
	out := make([]scorer.Model, len(s.models))
	for i, m := range s.models {
		out[i] = m.Model
	}
	return out
}

// Model returns the loaded model of that name.
func (s *Service) Model(name string) (scorer.Model, bool) {
	m, ok := s.byName[name]
	if !ok {
		return scorer.Model{}, false
	}
	return m.Model, true
}

// Versions names each loaded model's version string.
func (s *Service) Versions() map[string]string { return versionsOf(s.models) }

func versionsOf(ms []*model) map[string]string {
	v := map[string]string{}
	for _, m := range ms {
		v[m.Name] = m.Version()
	}
	return v
}

// Cache is the service's embedding cache (nil when it has none).
func (s *Service) Cache() *cache.Cache { return s.opts.Cache }

func (s *Service) names() string {
	n := make([]string, len(s.models))
	for i, m := range s.models {
		n[i] = m.Name
	}
	return strings.Join(n, ", ")
}

// selectModels resolves a request's model list against what is loaded.
// Without a list, every loaded model runs (those that need a prompt only
// when there is one); a request that leaves none is refused.
func (s *Service) selectModels(names []string, hasPrompt bool) ([]*model, error) {
	var out []*model
	if len(names) == 0 {
		for _, m := range s.models {
			if hasPrompt || m.text == nil {
				out = append(out, m)
			}
		}
		if len(out) == 0 {
			return nil, badRequest("the loaded models (%s) need a prompt", s.names())
		}
		return out, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		if s.byName[n] == nil {
			return nil, badRequest("model %q is not loaded (loaded: %s)", n, s.names())
		}
		want[n] = true
	}
	var needs []string
	for _, m := range s.models {
		if want[m.Name] {
			out = append(out, m)
			if m.text != nil && !hasPrompt {
				needs = append(needs, m.Name)
			}
		}
	}
	if len(needs) > 0 {
		return nil, badRequest("%s need a prompt", strings.Join(needs, " and "))
	}
	return out, nil
}

// Specs are the loaded models' registry specs, in registry order.
func (s *Service) Specs() []scorer.Spec {
	out := make([]scorer.Spec, len(s.models))
	for i, m := range s.models {
		out[i] = m.Spec
	}
	return out
}

// TakesRGB says whether every loaded model takes decoded pixels (none
// decodes files itself), so that a caller may decode images ahead.
func (s *Service) TakesRGB() bool {
	for _, m := range s.models {
		if !m.prep.NeedsRGB() {
			return false
		}
	}
	return true
}
