// Package scoring says what a request means: per-image ICT and HP scores,
// the paper's group ICT-HP ranking, per-item rewards for training loops, and
// embeddings. The command line, the HTTP server and the batch scorer are
// three front doors onto one Service.
package scoring

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/hp"
	"github.com/icthp/icthp/ict"
	"github.com/icthp/icthp/preprocess"
)

// ErrBadRequest marks a request that cannot be served as asked (an unknown
// model name, ICT without a prompt, a model that is not loaded).
var ErrBadRequest = errors.New("bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// Model names, as requests and responses use them.
const (
	ModelICT         = "ict"
	ModelHP          = "hp"
	ModelImageReward = "imagereward"
)

// Options configure a Service.
type Options struct {
	// Workers bounds how many images are decoded and preprocessed at once;
	// 0 means GOMAXPROCS.
	Workers int
	// Limits on input images (bytes, pixels); zero fields take
	// preprocess's defaults.
	MaxImageBytes  int64
	MaxImagePixels int64
	// Reward is the default combination of /v1/reward; zero means product.
	Reward Combination
	// Metrics, when set, is where the service and what it owns (the cache,
	// the batchers) register their Prometheus collectors. The server passes
	// its registry; the command line leaves it nil. No package registers on
	// the global default registry.
	Metrics prometheus.Registerer
	// Cache keeps ICT text and image embeddings and HP results, keyed by
	// model version and content; nil caches nothing. Results are the same
	// with and without it (see the cache package for float16 storage).
	Cache *cache.Cache
}

// Service scores images with whichever models are loaded.
type Service struct {
	ict     *ict.Scorer
	hp      *hp.Scorer
	ir      ImageRewardScorer
	workers int
	opts    Options
	// prep times preprocessing per image, by step: decode (bytes to RGB),
	// then ict and hp (that model's resize, crop and normalisation); nil
	// without Options.Metrics.
	prep *prometheus.HistogramVec
}

// ImageRewardScorer is the BLIP-based ImageReward model, when loaded.
type ImageRewardScorer interface {
	Version() string
	// Score returns one score per image for the prompt, or a per-image
	// error; the error return is for failures of the whole call.
	Score(ctx context.Context, prompt string, images []Image) ([]float64, []error, error)
}

// New makes a Service over the loaded models; any of them may be nil, but
// not all.
func New(ictS *ict.Scorer, hpS *hp.Scorer, ir ImageRewardScorer, o Options) (*Service, error) {
	if ictS == nil && hpS == nil && ir == nil {
		return nil, errors.New("scoring: no model loaded")
	}
	if err := o.Reward.Validate(); err != nil {
		return nil, err
	}
	w := o.Workers
	if w <= 0 {
		w = runtime.GOMAXPROCS(0)
	}
	svc := &Service{ict: ictS, hp: hpS, ir: ir, workers: w, opts: o}
	if o.Metrics != nil {
		svc.prep = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "icthp_preprocess_seconds",
			Help:    "Preprocessing time per image, by step: decode, then each model's (ict, hp) resize, crop and normalisation.",
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

// ICT, HP and ImageReward return the loaded scorers (nil when not loaded).
func (s *Service) ICT() *ict.Scorer               { return s.ict }
func (s *Service) HP() *hp.Scorer                 { return s.hp }
func (s *Service) ImageReward() ImageRewardScorer { return s.ir }

// Versions names each loaded model's version string.
func (s *Service) Versions() map[string]string {
	v := map[string]string{}
	if s.ict != nil {
		v[ModelICT] = s.ict.Version()
	}
	if s.hp != nil {
		v[ModelHP] = s.hp.Version()
	}
	if s.ir != nil {
		v[ModelImageReward] = s.ir.Version()
	}
	return v
}

// Image is one input image: encoded file bytes, or raw RGB pixels.
type Image struct {
	Data []byte
	RGB  *preprocess.RGB
}

// Scores are one image's results; a nil field was not computed.
type Scores struct {
	ICT         *float64
	HP          *float64
	HPLogit     *float64
	ImageReward *float64
	// Err is this image's own failure (undecodable, too large, ...); the
	// other images of the request are scored regardless.
	Err error
}

// which is the set of models a request asks for.
type which struct{ ict, hp, ir bool }

// selectModels resolves a request's model list against what is loaded.
// Without a list, every loaded model runs (ICT only when there is a prompt).
func (s *Service) selectModels(names []string, hasPrompt bool) (which, error) {
	var w which
	if len(names) == 0 {
		return which{ict: s.ict != nil && hasPrompt, hp: s.hp != nil, ir: s.ir != nil && hasPrompt}, nil
	}
	for _, n := range names {
		switch n {
		case ModelICT:
			if s.ict == nil {
				return w, badRequest("model %q is not loaded", n)
			}
			w.ict = true
		case ModelHP:
			if s.hp == nil {
				return w, badRequest("model %q is not loaded", n)
			}
			w.hp = true
		case ModelImageReward:
			if s.ir == nil {
				return w, badRequest("model %q is not loaded", n)
			}
			w.ir = true
		default:
			return w, badRequest("unknown model %q (want ict, hp or imagereward)", n)
		}
	}
	if (w.ict || w.ir) && !hasPrompt {
		return w, badRequest("ict and imagereward need a prompt")
	}
	return w, nil
}

// ScoreRequest asks for the scores of images for one prompt.
type ScoreRequest struct {
	Prompt *string // nil: no prompt (HP only)
	Images []Image
	Models []string // narrows the models; empty means all loaded
}

// ScoreResponse holds one Scores per image, in request order.
type ScoreResponse struct {
	Scores   []Scores
	Versions map[string]string
}

// Score computes the requested models' scores of each image.
func (s *Service) Score(ctx context.Context, r ScoreRequest) (*ScoreResponse, error) {
	w, err := s.selectModels(r.Models, r.Prompt != nil)
	if err != nil {
		return nil, err
	}
	res := &ScoreResponse{Scores: make([]Scores, len(r.Images)), Versions: s.versionsOf(w)}
	if len(r.Images) == 0 {
		return res, nil
	}
	er := encodeRequest{images: r.Images, ict: w.ict, hp: w.hp}
	if w.ict {
		er.prompts, er.promptOf = []string{*r.Prompt}, make([]int, len(r.Images))
	}
	enc, err := s.encode(ctx, er)
	if err != nil {
		return nil, err
	}
	for i := range r.Images {
		if res.Scores[i].Err = enc.errs[i]; enc.errs[i] != nil {
			continue
		}
		if w.ict {
			v := ict.Score(enc.text[0], enc.ict[i])
			res.Scores[i].ICT = &v
		}
		if w.hp {
			logit, p := enc.hp[i].Logit, enc.hp[i].HP()
			res.Scores[i].HPLogit, res.Scores[i].HP = &logit, &p
		}
	}
	if w.ir {
		scores, perr, err := s.ir.Score(ctx, *r.Prompt, r.Images)
		if err != nil {
			return nil, fmt.Errorf("imagereward: %w", err)
		}
		for i := range scores {
			if perr[i] != nil {
				if res.Scores[i].Err == nil {
					res.Scores[i].Err = perr[i]
				}
				continue
			}
			v := scores[i]
			res.Scores[i].ImageReward = &v
		}
	}
	// An image that failed for one model has no scores from the others
	// either, so every result row is all or nothing.
	for i := range res.Scores {
		if res.Scores[i].Err != nil {
			res.Scores[i] = Scores{Err: res.Scores[i].Err}
		}
	}
	return res, nil
}

func (s *Service) versionsOf(w which) map[string]string {
	all := s.Versions()
	v := map[string]string{}
	for name, on := range map[string]bool{ModelICT: w.ict, ModelHP: w.hp, ModelImageReward: w.ir} {
		if on {
			v[name] = all[name]
		}
	}
	return v
}

// Ranked is one candidate of a ranking.
type Ranked struct {
	Index int // position in the request
	Scores
	ICTHP *float64 // the group score, when both ICT and HP are loaded
}

// RankResponse lists the candidates best first; failed images come last,
// in request order, with their error.
type RankResponse struct {
	Ranking  []Ranked
	Versions map[string]string
}

// Rank orders candidate images for one prompt by the paper's group ICT-HP
// score (ict × softmax(hp_logit) over the successfully scored candidates).
// With only one of the models loaded, it ranks by that model's score
// (ImageReward's when it is the only one). A loaded ImageReward's score is
// reported beside the others.
func (s *Service) Rank(ctx context.Context, prompt string, images []Image) (*RankResponse, error) {
	var names []string
	if s.ict != nil {
		names = append(names, ModelICT)
	}
	if s.hp != nil {
		names = append(names, ModelHP)
	}
	if s.ir != nil {
		names = append(names, ModelImageReward)
	}
	if len(names) == 0 {
		return nil, badRequest("ranking needs a model loaded")
	}
	sr, err := s.Score(ctx, ScoreRequest{Prompt: &prompt, Images: images, Models: names})
	if err != nil {
		return nil, err
	}
	var ok []int
	for i, sc := range sr.Scores {
		if sc.Err == nil {
			ok = append(ok, i)
		}
	}
	key := make([]float64, len(ok))
	ranked := make([]Ranked, 0, len(images))
	switch {
	case s.ict != nil && s.hp != nil:
		ictv, logits := make([]float64, len(ok)), make([]float64, len(ok))
		for k, i := range ok {
			ictv[k], logits[k] = *sr.Scores[i].ICT, *sr.Scores[i].HPLogit
		}
		key = GroupICTHP(ictv, logits)
	case s.ict != nil:
		for k, i := range ok {
			key[k] = *sr.Scores[i].ICT
		}
	case s.hp != nil:
		for k, i := range ok {
			key[k] = *sr.Scores[i].HPLogit
		}
	default:
		for k, i := range ok {
			key[k] = *sr.Scores[i].ImageReward
		}
	}
	for _, k := range RankOrder(key) {
		i := ok[k]
		r := Ranked{Index: i, Scores: sr.Scores[i]}
		if s.ict != nil && s.hp != nil {
			v := key[k]
			r.ICTHP = &v
		}
		ranked = append(ranked, r)
	}
	for i, sc := range sr.Scores {
		if sc.Err != nil {
			ranked = append(ranked, Ranked{Index: i, Scores: sc})
		}
	}
	return &RankResponse{Ranking: ranked, Versions: sr.Versions}, nil
}

// RewardItem is one (prompt, image) pair of a training batch.
type RewardItem struct {
	Prompt string
	Image  Image
}

// RewardResponse has one entry per item, in order.
type RewardResponse struct {
	Rewards  []*float64 // nil where the item failed
	Scores   []Scores
	Versions map[string]string
}

// Reward scores each item with its own prompt and combines the scores (the
// request's combination, else the service's default, else ict × hp of the
// models loaded). Items with the same prompt share one text encoding.
func (s *Service) Reward(ctx context.Context, items []RewardItem, comb *Combination) (*RewardResponse, error) {
	c := s.opts.Reward
	if comb != nil {
		if err := comb.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		c = *comb
	}
	w, err := s.selectModels(nil, true)
	if err != nil {
		return nil, err
	}
	res := &RewardResponse{Rewards: make([]*float64, len(items)), Scores: make([]Scores, len(items)), Versions: s.versionsOf(w)}
	if len(items) == 0 {
		return res, nil
	}
	er := encodeRequest{images: make([]Image, len(items)), ict: w.ict, hp: w.hp}
	if w.ict {
		// Encode each distinct prompt once (and only for items that can be read).
		er.promptOf = make([]int, len(items))
		at := map[string]int{}
		for i, it := range items {
			p, seen := at[it.Prompt]
			if !seen {
				p = len(er.prompts)
				at[it.Prompt] = p
				er.prompts = append(er.prompts, it.Prompt)
			}
			er.promptOf[i] = p
		}
	}
	for i, it := range items {
		er.images[i] = it.Image
	}
	enc, err := s.encode(ctx, er)
	if err != nil {
		return nil, err
	}
	for i := range items {
		if res.Scores[i].Err = enc.errs[i]; enc.errs[i] != nil {
			continue
		}
		if w.ict {
			v := ict.Score(enc.text[er.promptOf[i]], enc.ict[i])
			res.Scores[i].ICT = &v
		}
		if w.hp {
			logit, p := enc.hp[i].Logit, enc.hp[i].HP()
			res.Scores[i].HPLogit, res.Scores[i].HP = &logit, &p
		}
	}
	if w.ir {
		if err := s.rewardImageReward(ctx, items, res); err != nil {
			return nil, err
		}
	}
	for i := range res.Scores {
		if res.Scores[i].Err != nil {
			res.Scores[i] = Scores{Err: res.Scores[i].Err}
			continue
		}
		r, err := c.Apply(res.Scores[i])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		res.Rewards[i] = &r
	}
	return res, nil
}

// rewardImageReward scores items grouped by prompt with ImageReward.
func (s *Service) rewardImageReward(ctx context.Context, items []RewardItem, res *RewardResponse) error {
	groups := map[string][]int{}
	var order []string
	for i, it := range items {
		if res.Scores[i].Err != nil {
			continue
		}
		if _, ok := groups[it.Prompt]; !ok {
			order = append(order, it.Prompt)
		}
		groups[it.Prompt] = append(groups[it.Prompt], i)
	}
	for _, p := range order {
		idx := groups[p]
		imgs := make([]Image, len(idx))
		for k, i := range idx {
			imgs[k] = items[i].Image
		}
		scores, perr, err := s.ir.Score(ctx, p, imgs)
		if err != nil {
			return fmt.Errorf("imagereward: %w", err)
		}
		for k, i := range idx {
			if perr[k] != nil {
				res.Scores[i].Err = perr[k]
				continue
			}
			v := scores[k]
			res.Scores[i].ImageReward = &v
		}
	}
	return nil
}

// EmbedTexts returns the ICT model's L2-normalised text embeddings.
func (s *Service) EmbedTexts(ctx context.Context, texts []string) ([][]float32, error) {
	if s.ict == nil {
		return nil, badRequest("text embeddings need the ict model")
	}
	if len(texts) == 0 {
		return nil, nil
	}
	enc, err := s.encode(ctx, encodeRequest{prompts: texts, allTexts: true})
	if err != nil {
		return nil, err
	}
	return enc.text, nil
}

// EmbedImages returns the ICT model's L2-normalised image embeddings (the HP
// backbone's when ICT is not loaded); errs[i] is image i's own failure.
func (s *Service) EmbedImages(ctx context.Context, images []Image) (emb [][]float32, errs []error, err error) {
	if s.ict == nil && s.hp == nil {
		return nil, nil, badRequest("image embeddings need the ict or hp model")
	}
	enc, err := s.encode(ctx, encodeRequest{images: images, ict: s.ict != nil, hp: s.ict == nil})
	if err != nil {
		return nil, nil, err
	}
	emb = make([][]float32, len(images))
	for i := range images {
		if enc.errs[i] != nil {
			continue
		}
		if s.ict != nil {
			emb[i] = enc.ict[i]
		} else {
			emb[i] = enc.hp[i].Embed
		}
	}
	return emb, enc.errs, nil
}
