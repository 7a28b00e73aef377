package scoring_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/icthp/icthp/hp"
	"github.com/icthp/icthp/ict"
	"github.com/icthp/icthp/internal/clipref"
	"github.com/icthp/icthp/internal/testmodels"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/ortlib"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/preprocess/text"
	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scoring"
)

// counting wraps a real model and counts the calls and rows that reach it,
// so that tests can see what the service asks the model to encode.
type counting struct {
	m                     *models.Model
	textCalls, textRows   atomic.Int64
	imageCalls, imageRows atomic.Int64
}

func (c *counting) EncodeImages(ctx context.Context, pixels []float32, n int) ([][]float32, error) {
	c.imageCalls.Add(1)
	c.imageRows.Add(int64(n))
	return c.m.EncodeImages(ctx, pixels, n)
}

func (c *counting) EncodeTexts(ctx context.Context, ids []int64, n int) ([][]float32, error) {
	c.textCalls.Add(1)
	c.textRows.Add(int64(n))
	return c.m.EncodeTexts(ctx, ids, n)
}

// fixture is a Service over tiny random ICT and HP models, with what the
// float64 reference needs to recompute every score.
type fixture struct {
	svc           *scoring.Service
	ict, hp       *counting
	ictS          *ict.Scorer
	hpS           *hp.Scorer
	models        []scorer.Model // the loaded ones, for scoring.New
	cfg           clip.Config
	ictW, hpW     clip.Weights
	ictVer, hpVer string
	tok           *text.Tokenizer
	pipe          *preprocess.ImagePipeline
}

func open(t *testing.T, kind models.Kind, seed uint64) (string, *counting, clip.Config, clip.Weights) {
	t.Helper()
	dir, m, c, w := testmodels.OpenTiny(t, kind, seed, true)
	return dir, &counting{m: m}, c, w
}

func newFixture(t *testing.T, withICT, withHP bool, o scoring.Options) *fixture {
	t.Helper()
	if _, err := ortlib.Init(""); err != nil {
		t.Fatalf("onnxruntime is required (run `make setup`): %v", err)
	}
	f := &fixture{}
	var err error
	if withICT {
		dir, enc, c, w := open(t, models.KindCLIP, 31)
		if f.ictS, err = ict.New(dir, enc.m.Manifest, enc); err != nil {
			t.Fatal(err)
		}
		f.ict, f.cfg, f.ictW, f.ictVer = enc, c, w, enc.m.Manifest.Version
		f.tok, f.pipe = f.ictS.Tokenizer(), f.ictS.Images()
		f.models = append(f.models, scorer.Model{Spec: ict.Entry.Spec, Scorer: f.ictS})
	}
	if withHP {
		dir, enc, c, w := open(t, models.KindHP, 32)
		if f.hpS, err = hp.New(dir, enc.m.Manifest, enc); err != nil {
			t.Fatal(err)
		}
		f.hp, f.cfg, f.hpW, f.hpVer = enc, c, w, enc.m.Manifest.Version
		f.pipe = f.hpS.Images()
		f.models = append(f.models, scorer.Model{Spec: hp.Entry.Spec, Scorer: f.hpS})
	}
	if f.svc, err = scoring.New(f.models, o); err != nil {
		t.Fatal(err)
	}
	return f
}

// want is the reference's ict and hp_logit of one image (NaN where the
// model is absent).
type want struct{ ict, logit float64 }

func (f *fixture) reference(t *testing.T, prompt string, img scoring.Image) want {
	t.Helper()
	rgb := img.RGB
	if rgb == nil {
		var err error
		if rgb, err = preprocess.DecodeRGB(img.Data, preprocess.ImageOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	px := make([]float32, f.pipe.TensorLen())
	if err := f.pipe.TensorRGB(rgb, px); err != nil {
		t.Fatal(err)
	}
	w := want{math.NaN(), math.NaN()}
	if f.ictW != nil {
		ids, err := f.tok.Encode(prompt)
		if err != nil {
			t.Fatal(err)
		}
		tf, err := clipref.TextFeatures(&f.cfg, f.ictW, ids, 1)
		if err != nil {
			t.Fatal(err)
		}
		imf, err := clipref.ImageFeatures(&f.cfg, f.ictW, px, 1)
		if err != nil {
			t.Fatal(err)
		}
		w.ict = clipref.Cosine(tf[0], imf[0])
	}
	if f.hpW != nil {
		imf, err := clipref.ImageFeatures(&f.cfg, f.hpW, px, 1)
		if err != nil {
			t.Fatal(err)
		}
		if w.logit, err = clipref.HPLogit(f.hpW, imf[0]); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

const tol = 1e-5

func near(t *testing.T, what string, got *float64, want float64) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s missing, want %v", what, want)
	}
	if math.Abs(*got-want) > tol {
		t.Fatalf("%s = %v, reference %v", what, *got, want)
	}
}

// formula is a deterministic RGB test image.
func formula(w, h, salt int) scoring.Image {
	img := &preprocess.RGB{W: w, H: h, Pix: make([]uint8, w*h*3)}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			p := img.Pix[(y*w+x)*3:]
			p[0], p[1], p[2] = uint8((x*3)^(y*5)+salt), uint8((x*x+3*y*y)>>7), uint8(x+2*y*salt)
		}
	}
	return scoring.Image{RGB: img}
}

func demo(t *testing.T, name string) scoring.Image {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "demo", name))
	if err != nil {
		t.Fatal(err)
	}
	return scoring.Image{Data: b}
}

var garbage = scoring.Image{Data: []byte("this is not an image")}

// Every image gets its own result in request order; a bad one gets its own
// error and no scores, and does not fail the others; the scores equal the
// float64 reference; the versions of the models that ran are carried.
func TestScore(t *testing.T) {
	f := newFixture(t, true, true, scoring.Options{Workers: 2})
	prompt := "a red apple on a wooden table"
	images := []scoring.Image{demo(t, "sunset.png"), garbage, formula(300, 200, 1), demo(t, "checkers.webp"), formula(61, 97, 7)}
	res, err := f.svc.Score(context.Background(), scoring.ScoreRequest{Prompt: &prompt, Images: images})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Scores) != len(images) {
		t.Fatalf("%d results for %d images", len(res.Scores), len(images))
	}
	if v := res.Versions; len(v) != 2 || v["ict"] != f.ictVer || v["hp"] != f.hpVer {
		t.Errorf("versions %v, want ict %s and hp %s", v, f.ictVer, f.hpVer)
	}
	for i, img := range images {
		sc := res.Scores[i]
		if i == 1 {
			if !errors.Is(sc.Err, preprocess.ErrUnsupportedFormat) && !errors.Is(sc.Err, preprocess.ErrUndecodable) {
				t.Errorf("garbage image: error %v", sc.Err)
			}
			if sc.Get("ict") != nil || sc.Get("hp") != nil || sc.Get("hp_logit") != nil {
				t.Errorf("garbage image has scores %+v", sc)
			}
			continue
		}
		if sc.Err != nil {
			t.Fatalf("image %d: %v", i, sc.Err)
		}
		w := f.reference(t, prompt, img)
		near(t, "ict", sc.Get("ict"), w.ict)
		near(t, "hp_logit", sc.Get("hp_logit"), w.logit)
		near(t, "hp", sc.Get("hp"), clipref.Sigmoid(w.logit))
	}
	// One text encoding for the prompt; one image batch per model holding
	// only the four good images.
	if c, r := f.ict.textCalls.Load(), f.ict.textRows.Load(); c != 1 || r != 1 {
		t.Errorf("ict text: %d calls, %d rows; want 1, 1", c, r)
	}
	if r := f.ict.imageRows.Load(); r != 4 {
		t.Errorf("ict encoded %d images, want 4", r)
	}
	if r := f.hp.imageRows.Load(); r != 4 {
		t.Errorf("hp encoded %d images, want 4", r)
	}
}

// Without a prompt only HP runs, and only its version is reported.
func TestScoreWithoutPrompt(t *testing.T) {
	f := newFixture(t, true, true, scoring.Options{})
	img := formula(50, 80, 3)
	res, err := f.svc.Score(context.Background(), scoring.ScoreRequest{Images: []scoring.Image{img}})
	if err != nil {
		t.Fatal(err)
	}
	sc := res.Scores[0]
	if sc.Get("ict") != nil {
		t.Errorf("ict computed without a prompt")
	}
	f.ictW = nil
	near(t, "hp_logit", sc.Get("hp_logit"), f.reference(t, "", img).logit)
	if len(res.Versions) != 1 || res.Versions["hp"] != f.hpVer {
		t.Errorf("versions %v", res.Versions)
	}
	if f.ict.textCalls.Load()+f.ict.imageCalls.Load() != 0 {
		t.Error("the ict model ran without a prompt")
	}
}

// An empty prompt is a prompt: ICT scores it (the text is just
// <start_of_text><end_of_text>).
func TestScoreEmptyPrompt(t *testing.T) {
	f := newFixture(t, true, false, scoring.Options{})
	empty := ""
	img := formula(40, 40, 2)
	res, err := f.svc.Score(context.Background(), scoring.ScoreRequest{Prompt: &empty, Images: []scoring.Image{img}})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "ict", res.Scores[0].Get("ict"), f.reference(t, "", img).ict)
}

func TestScoreBadRequests(t *testing.T) {
	both := newFixture(t, true, true, scoring.Options{})
	hpOnly := newFixture(t, false, true, scoring.Options{})
	p := "a cat"
	img := []scoring.Image{formula(30, 30, 1)}
	for _, c := range []struct {
		name string
		svc  *scoring.Service
		req  scoring.ScoreRequest
	}{
		{"unknown model", both.svc, scoring.ScoreRequest{Prompt: &p, Images: img, Models: []string{"clip"}}},
		{"ict without prompt", both.svc, scoring.ScoreRequest{Images: img, Models: []string{"ict"}}},
		{"ict not loaded", hpOnly.svc, scoring.ScoreRequest{Prompt: &p, Images: img, Models: []string{"ict"}}},
		{"imagereward not loaded", both.svc, scoring.ScoreRequest{Prompt: &p, Images: img, Models: []string{"imagereward"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.svc.Score(context.Background(), c.req); !errors.Is(err, scoring.ErrBadRequest) {
				t.Errorf("error %v, want ErrBadRequest", err)
			}
		})
	}
	// Models narrows what runs.
	res, err := both.svc.Score(context.Background(), scoring.ScoreRequest{Prompt: &p, Images: img, Models: []string{"hp"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Scores[0].Get("ict") != nil || res.Scores[0].Get("hp") == nil || len(res.Versions) != 1 {
		t.Errorf("narrowed to hp: %+v, versions %v", res.Scores[0], res.Versions)
	}
	if _, err := scoring.New(nil, scoring.Options{}); err == nil {
		t.Error("a service without models was made")
	}
	if _, err := scoring.New(both.models[:1], scoring.Options{Reward: scoring.Combination{Kind: "weighted"}}); err == nil {
		t.Error("a service with an invalid default reward was made")
	}
	// No images: an empty, successful answer.
	res, err = both.svc.Score(context.Background(), scoring.ScoreRequest{Prompt: &p})
	if err != nil || len(res.Scores) != 0 {
		t.Errorf("no images: %v, %v", res, err)
	}
}

// Items with the same prompt share one text encoding (all distinct prompts
// of a request go in one batch), failed items get no reward, and each reward
// is the combination of the item's own scores.
func TestReward(t *testing.T) {
	f := newFixture(t, true, true, scoring.Options{Workers: 3})
	a, b, c := "a red apple", "a blue car at night", "only on a failed item"
	items := []scoring.RewardItem{
		{Prompt: a, Image: formula(64, 48, 1)},
		{Prompt: b, Image: formula(64, 48, 1)},
		{Prompt: a, Image: demo(t, "checkers.webp")},
		{Prompt: c, Image: garbage},
		{Prompt: a, Image: formula(90, 70, 5)},
		{Prompt: b, Image: demo(t, "sunset.png")},
	}
	res, err := f.svc.Reward(context.Background(), items, nil)
	if err != nil {
		t.Fatal(err)
	}
	if calls, rows := f.ict.textCalls.Load(), f.ict.textRows.Load(); calls != 1 || rows != 2 {
		t.Errorf("text encoder: %d calls with %d rows; want 1 call with the 2 distinct prompts of good items", calls, rows)
	}
	if r := f.ict.imageRows.Load(); r != 5 {
		t.Errorf("ict encoded %d images, want 5", r)
	}
	if len(res.Rewards) != len(items) || len(res.Scores) != len(items) {
		t.Fatalf("%d rewards, %d scores for %d items", len(res.Rewards), len(res.Scores), len(items))
	}
	if res.Versions["ict"] != f.ictVer || res.Versions["hp"] != f.hpVer {
		t.Errorf("versions %v", res.Versions)
	}
	refs := make([]want, len(items))
	for i, it := range items {
		if i == 3 {
			if res.Rewards[i] != nil || res.Scores[i].Err == nil || res.Scores[i].Get("ict") != nil {
				t.Errorf("failed item: reward %v, scores %+v", res.Rewards[i], res.Scores[i])
			}
			continue
		}
		refs[i] = f.reference(t, it.Prompt, it.Image)
		near(t, "ict", res.Scores[i].Get("ict"), refs[i].ict)
		near(t, "hp_logit", res.Scores[i].Get("hp_logit"), refs[i].logit)
		near(t, "reward (ict × hp)", res.Rewards[i], refs[i].ict*clipref.Sigmoid(refs[i].logit))
	}
	// The same image under two prompts gets two different ICT scores.
	if *res.Scores[0].Get("ict") == *res.Scores[1].Get("ict") {
		t.Error("items 0 and 1 (same image, different prompts) got the same ict")
	}

	// A named combination replaces the default.
	comb, err := scoring.ParseCombination("weighted:ict=2,hp_logit=-0.5")
	if err != nil {
		t.Fatal(err)
	}
	res, err = f.svc.Reward(context.Background(), items[:3], &comb)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		near(t, "weighted reward", res.Rewards[i], 2*refs[i].ict-0.5*refs[i].logit)
	}
	// A combination the loaded models cannot make, or an invalid one, is
	// the caller's mistake.
	for _, bad := range []scoring.Combination{{Kind: "imagereward"}, {Kind: "weighted"}, {Kind: "nonsense"}} {
		if _, err := f.svc.Reward(context.Background(), items[:1], &bad); !errors.Is(err, scoring.ErrBadRequest) {
			t.Errorf("combination %+v: error %v, want ErrBadRequest", bad, err)
		}
	}
}

// The service's default combination applies when the request names none;
// with only HP loaded, the product is hp itself.
func TestRewardDefaults(t *testing.T) {
	hpOnly := newFixture(t, false, true, scoring.Options{})
	img := formula(33, 44, 9)
	res, err := hpOnly.svc.Reward(context.Background(), []scoring.RewardItem{{Prompt: "ignored", Image: img}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "reward (hp alone)", res.Rewards[0], clipref.Sigmoid(hpOnly.reference(t, "", img).logit))

	ictOnly := newFixture(t, true, false, scoring.Options{Reward: scoring.Combination{Kind: "ict"}})
	res, err = ictOnly.svc.Reward(context.Background(), []scoring.RewardItem{{Prompt: "a dog", Image: img}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "reward (ict)", res.Rewards[0], ictOnly.reference(t, "a dog", img).ict)

	res, err = ictOnly.svc.Reward(context.Background(), nil, nil)
	if err != nil || len(res.Rewards) != 0 {
		t.Errorf("no items: %v, %v", res, err)
	}
}

// Rank orders by ict × softmax(hp_logit) over the good candidates, best
// first, failed candidates last.
func TestRank(t *testing.T) {
	f := newFixture(t, true, true, scoring.Options{})
	prompt := "a sunset over the sea"
	images := []scoring.Image{formula(80, 60, 1), garbage, demo(t, "sunset.png"), formula(60, 80, 4), demo(t, "checkers.webp")}
	res, err := f.svc.Rank(context.Background(), prompt, images)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Ranking) != len(images) {
		t.Fatalf("%d ranked for %d images", len(res.Ranking), len(images))
	}
	good := []int{0, 2, 3, 4}
	ictv, logits := make([]float64, len(good)), make([]float64, len(good))
	for k, i := range good {
		w := f.reference(t, prompt, images[i])
		ictv[k], logits[k] = w.ict, w.logit
	}
	// The reference's group score, by hand: ict_i e^{l_i} / Σ e^{l_j}.
	var sum float64
	for _, l := range logits {
		sum += math.Exp(l)
	}
	groupScore := make([]float64, len(good))
	for k := range good {
		groupScore[k] = ictv[k] * math.Exp(logits[k]) / sum
	}
	order := scoring.RankOrder(groupScore)
	for pos, k := range order {
		r := res.Ranking[pos]
		if r.Index != good[k] {
			t.Fatalf("position %d holds image %d, reference ranks image %d there (group scores %v)", pos, r.Index, good[k], groupScore)
		}
		near(t, "ict_hp", r.ICTHP, groupScore[k])
		near(t, "ict", r.Get("ict"), ictv[k])
	}
	last := res.Ranking[len(images)-1]
	if last.Index != 1 || last.Err == nil || last.ICTHP != nil {
		t.Errorf("failed candidate: %+v", last)
	}
}

func TestEmbed(t *testing.T) {
	f := newFixture(t, true, true, scoring.Options{})
	texts := []string{"a cat", "a dog"}
	emb, err := f.svc.EmbedTexts(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, 0, 2*77)
	for _, s := range texts {
		row, _ := f.tok.Encode(s)
		ids = append(ids, row...)
	}
	ref, err := clipref.TextFeatures(&f.cfg, f.ictW, ids, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range texts {
		u := clipref.Normalize(ref[i])
		for j := range u {
			if math.Abs(float64(emb[i][j])-u[j]) > tol {
				t.Fatalf("text %d [%d] = %v, reference %v", i, j, emb[i][j], u[j])
			}
		}
	}
	imgs := []scoring.Image{garbage, formula(40, 50, 1)}
	iemb, errs, err := f.svc.EmbedImages(context.Background(), imgs)
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] == nil || iemb[0] != nil || errs[1] != nil || len(iemb[1]) != f.cfg.ProjectionDim {
		t.Fatalf("image embeddings: errs %v, lengths %d %d", errs, len(iemb[0]), len(iemb[1]))
	}
	if d := math.Abs(float64(ict.Score(iemb[1], iemb[1])) - 1); d > 1e-6 {
		t.Errorf("image embedding not unit: |e|² − 1 = %g", d)
	}
	hpOnly := newFixture(t, false, true, scoring.Options{})
	if _, err := hpOnly.svc.EmbedTexts(context.Background(), texts); !errors.Is(err, scoring.ErrBadRequest) {
		t.Errorf("text embeddings without ict: %v", err)
	}
	if e, _, err := hpOnly.svc.EmbedImages(context.Background(), imgs[1:]); err != nil || len(e[0]) != f.cfg.ProjectionDim {
		t.Errorf("image embeddings from the hp backbone: %v", err)
	}
}

// A cancelled context stops the request with the context's error.
func TestCancelled(t *testing.T) {
	f := newFixture(t, true, true, scoring.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := "x"
	_, err := f.svc.Score(ctx, scoring.ScoreRequest{Prompt: &p, Images: []scoring.Image{formula(30, 30, 1)}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}
