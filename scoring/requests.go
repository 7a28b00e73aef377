package scoring

import (
	"context"
	"fmt"
	"math"
)

// Score is one named score of one image ("ict", "hp", "hp_logit", ...).
type Score struct {
	Name  string
	Value float64
}

// Scores are one image's results, in the order of the models (registry
// order) and of each model's outputs.
type Scores struct {
	Values []Score
	// Err is this image's own failure (undecodable, too large, ...); the
	// other images of the request are scored regardless. With Err set,
	// Values is empty: every row is all or nothing.
	Err error
}

// Get returns the named score, nil when it was not computed.
func (s Scores) Get(name string) *float64 {
	for _, v := range s.Values {
		if v.Name == name {
			x := v.Value
			return &x
		}
	}
	return nil
}

// ScoreRequest asks for the scores of images for one prompt.
type ScoreRequest struct {
	Prompt *string // nil: no prompt (models without a text side only)
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
	ms, err := s.selectModels(r.Models, r.Prompt != nil)
	if err != nil {
		return nil, err
	}
	j := &job{images: r.Images, models: ms}
	if r.Prompt != nil {
		j.prompts, j.promptOf = []string{*r.Prompt}, make([]int, len(r.Images))
	}
	rows, err := s.run(ctx, j)
	if err != nil {
		return nil, err
	}
	return &ScoreResponse{Scores: rows, Versions: versionsOf(ms)}, nil
}

// run admits a job, encodes it and applies each model's head.
func (s *Service) run(ctx context.Context, j *job) ([]Scores, error) {
	rows := make([]Scores, len(j.images))
	if len(j.images) == 0 {
		return rows, nil
	}
	release, err := s.admit.enter(len(j.images))
	if err != nil {
		return nil, err
	}
	defer release()
	enc, err := s.encode(ctx, j)
	if err != nil {
		return nil, err
	}
	if err := s.heads(ctx, j, enc, rows); err != nil {
		return nil, err
	}
	return rows, nil
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

// The models the paper's group score combines.
const (
	modelICT = "ict"
	modelHP  = "hp"
)

// Rank orders candidate images for one prompt by the paper's group ICT-HP
// score (ict × softmax(hp_logit) over the successfully scored candidates)
// when both models are loaded; otherwise by the first loaded model's
// RankBy output. Every loaded model's scores are reported.
func (s *Service) Rank(ctx context.Context, prompt string, images []Image) (*RankResponse, error) {
	sr, err := s.Score(ctx, ScoreRequest{Prompt: &prompt, Images: images, Models: s.allNames()})
	if err != nil {
		return nil, err
	}
	var ok []int
	for i, sc := range sr.Scores {
		if sc.Err == nil {
			ok = append(ok, i)
		}
	}
	group := s.byName[modelICT] != nil && s.byName[modelHP] != nil
	key := make([]float64, len(ok))
	if group {
		ictv, logits := make([]float64, len(ok)), make([]float64, len(ok))
		for k, i := range ok {
			ictv[k], logits[k] = *sr.Scores[i].Get(modelICT), *sr.Scores[i].Get("hp_logit")
		}
		key = GroupICTHP(ictv, logits)
	} else {
		by := s.models[0].RankBy
		for k, i := range ok {
			key[k] = *sr.Scores[i].Get(by)
		}
	}
	ranked := make([]Ranked, 0, len(images))
	for _, k := range RankOrder(key) {
		r := Ranked{Index: ok[k], Scores: sr.Scores[ok[k]]}
		if group {
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

func (s *Service) allNames() []string {
	n := make([]string, len(s.models))
	for i, m := range s.models {
		n[i] = m.Name
	}
	return n
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
// request's combination, else the service's default, else the product of
// the loaded models' main scores). Items with the same prompt share one
// tokenization and text encoding per model.
func (s *Service) Reward(ctx context.Context, items []RewardItem, comb *Combination) (*RewardResponse, error) {
	c := s.opts.Reward
	if comb != nil {
		if err := comb.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		c = *comb
	}
	j := &job{images: make([]Image, len(items)), models: s.models, promptOf: make([]int, len(items))}
	at := map[string]int{}
	for i, it := range items {
		p, seen := at[it.Prompt]
		if !seen {
			p = len(j.prompts)
			at[it.Prompt] = p
			j.prompts = append(j.prompts, it.Prompt)
		}
		j.promptOf[i], j.images[i] = p, it.Image
	}
	rows, err := s.run(ctx, j)
	if err != nil {
		return nil, err
	}
	res := &RewardResponse{Rewards: make([]*float64, len(items)), Scores: rows, Versions: s.Versions()}
	for i := range rows {
		if rows[i].Err != nil {
			continue
		}
		r, err := c.Apply(s.products(), rows[i])
		if err != nil {
			return nil, err
		}
		res.Rewards[i] = &r
	}
	return res, nil
}

// products are the outputs the default reward multiplies.
func (s *Service) products() map[string]bool {
	p := map[string]bool{}
	for _, m := range s.models {
		for _, o := range m.Outputs {
			if o.Product {
				p[o.Name] = true
			}
		}
	}
	return p
}

// embedder is the first loaded model whose features /v1/embed returns.
func (s *Service) embedder(text bool) *model {
	for _, m := range s.models {
		if m.Embeds && (!text || m.emb != nil) {
			return m
		}
	}
	return nil
}

// EmbedTexts returns the L2-normalised text embeddings of the first loaded
// model that has them (ICT).
func (s *Service) EmbedTexts(ctx context.Context, texts []string) ([][]float32, error) {
	m := s.embedder(true)
	if m == nil {
		return nil, badRequest("text embeddings need a CLIP-style model (ict)")
	}
	if len(texts) == 0 {
		return nil, nil
	}
	enc, err := s.encode(ctx, &job{models: []*model{m}, prompts: texts, allTexts: true})
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(texts))
	for p, t := range enc.texts[0] {
		out[p] = t.Embed
	}
	return out, nil
}

// EmbedImages returns the L2-normalised image embeddings of the first
// loaded model that has them (ICT's, else the HP backbone's); errs[i] is
// image i's own failure.
func (s *Service) EmbedImages(ctx context.Context, images []Image) (emb [][]float32, errs []error, err error) {
	m := s.embedder(false)
	if m == nil {
		return nil, nil, badRequest("image embeddings need the ict or hp model")
	}
	if len(images) == 0 {
		return nil, nil, nil
	}
	release, err := s.admit.enter(len(images))
	if err != nil {
		return nil, nil, err
	}
	defer release()
	enc, err := s.encode(ctx, &job{images: images, models: []*model{m}})
	if err != nil {
		return nil, nil, err
	}
	emb = make([][]float32, len(images))
	for i := range images {
		if enc.errs[i] == nil {
			emb[i] = enc.feats[0][i].Vec
		}
	}
	return emb, enc.errs, nil
}

// finite checks a computed reward.
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
