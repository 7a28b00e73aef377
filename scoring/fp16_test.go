package scoring_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/x448/float16"

	"github.com/icthp/icthp/hp"
	"github.com/icthp/icthp/ict"
	"github.com/icthp/icthp/internal/testmodels"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/ortlib"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scoring"
)

// graph is what sits under a scorer: a model or a batcher, both of which
// take binary16 rows too.
type graph interface {
	models.BatchEncoder
	models.HalfEncoder
}

// spyGraph passes calls on to g and counts the rows it hands on by element
// type: what the layer above gave it.
type spyGraph struct {
	g                   graph
	floatRows, halfRows atomic.Int64
}

func (s *spyGraph) EncodeImages(ctx context.Context, px []float32, n int) ([][]float32, error) {
	s.floatRows.Add(int64(n))
	return s.g.EncodeImages(ctx, px, n)
}

func (s *spyGraph) EncodeTexts(ctx context.Context, ids []int64, n int) ([][]float32, error) {
	return s.g.EncodeTexts(ctx, ids, n)
}

func (s *spyGraph) HalfPixels() bool { return s.g.HalfPixels() }

func (s *spyGraph) EncodeImagesHalf(ctx context.Context, px []float16.Float16, n int) ([][]float32, error) {
	s.halfRows.Add(int64(n))
	return s.g.EncodeImagesHalf(ctx, px, n)
}

// spyPrep counts the rows a preprocessor writes, by element type.
type spyPrep struct {
	scorer.Preprocessor
	floats, halves atomic.Int64
}

func (p *spyPrep) Tensor(src scorer.Source, dst []float32) error {
	p.floats.Add(1)
	return p.Preprocessor.Tensor(src, dst)
}

func (p *spyPrep) TensorHalf(src scorer.Source, dst []float16.Float16) error {
	p.halves.Add(1)
	return p.Preprocessor.TensorHalf(src, dst)
}

// spyScorer is a scorer whose image side's preprocessor is spied on.
type spyScorer struct {
	scorer.Scorer
	prep *spyPrep
}

func (s spyScorer) Image() scorer.ImageEncoder {
	side := s.Scorer.Image().(scorer.ImageSide)
	s.prep.Preprocessor = side.Prep
	side.Prep = s.prep
	return side
}

// layer is one model as the service sees it, with its spies: top between
// scorer and batcher, bottom between batcher and model. ref scores the old
// way: float32 rows handed to the model, which rounds them per run.
type layer struct {
	model       scorer.Model
	prep        *spyPrep
	top, bottom *spyGraph
	ictRef      *ict.Scorer
	hpRef       *hp.Scorer
}

// openLayer opens a tiny random model of kind (fp16: converted --fp16)
// behind spies and a batcher.
func openLayer(t *testing.T, kind models.Kind, seed uint64, fp16 bool) *layer {
	t.Helper()
	if _, err := ortlib.Init(""); err != nil {
		t.Fatalf("onnxruntime is required (run `make setup`): %v", err)
	}
	dir := filepath.Join(t.TempDir(), string(kind))
	if _, _, _, err := testmodels.RandomDir(dir, kind, seed, nil, clip.BuildOptions{Fused: true, FP16: fp16}); err != nil {
		t.Fatal(err)
	}
	m, err := models.Open(dir, models.SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if m.HalfPixels() != fp16 {
		t.Fatalf("%s: HalfPixels %v, want %v", dir, m.HalfPixels(), fp16)
	}
	l := &layer{prep: &spyPrep{}, bottom: &spyGraph{g: m}}
	b, err := models.NewBatcher(l.bottom, models.BatcherOptions{Name: string(kind), MaxWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	l.top = &spyGraph{g: b}
	var s scorer.Scorer
	if kind == models.KindCLIP {
		l.model.Spec = ict.Entry.Spec
		if s, err = ict.New(dir, m.Manifest, l.top); err == nil {
			l.ictRef, err = ict.New(dir, m.Manifest, m)
		}
	} else {
		l.model.Spec = hp.Entry.Spec
		if s, err = hp.New(dir, m.Manifest, l.top); err == nil {
			l.hpRef, err = hp.New(dir, m.Manifest, m)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	l.model.Scorer = spyScorer{s, l.prep}
	return l
}

// demoImages are the demo's three files (JPEG, WebP, PNG) and one raw RGB.
func demoImages(t *testing.T) []scoring.Image {
	t.Helper()
	var out []scoring.Image
	for _, f := range []string{"apple.jpg", "checkers.webp", "sunset.png"} {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "demo", f))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, scoring.Image{Data: b})
	}
	px := make([]uint8, 300*200*3)
	for i := range px {
		px[i] = uint8(i*7 + i>>8)
	}
	return append(out, scoring.Image{RGB: &preprocess.RGB{W: 300, H: 200, Pix: px}})
}

// oldPath scores the images the way the service did before it made half
// rows: each image's float32 tensor (TensorRGB), handed to the model as
// float32, which rounds it to float16 per run (Session.RunFloat).
func oldPath(t *testing.T, ls []*layer, prompt string, images []scoring.Image) map[string][]float64 {
	t.Helper()
	ctx := context.Background()
	out := map[string][]float64{}
	for _, img := range images {
		rgb := img.RGB
		if rgb == nil {
			var err error
			if rgb, err = preprocess.DecodeRGB(img.Data, preprocess.ImageOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		for _, l := range ls {
			if l.ictRef != nil {
				px := make([]float32, l.ictRef.Images().TensorLen())
				if err := l.ictRef.Images().TensorRGB(rgb, px); err != nil {
					t.Fatal(err)
				}
				te, err := l.ictRef.EmbedTexts(ctx, []string{prompt})
				if err != nil {
					t.Fatal(err)
				}
				ie, err := l.ictRef.EmbedImages(ctx, px, 1)
				if err != nil {
					t.Fatal(err)
				}
				out["ict"] = append(out["ict"], ict.Score(te[0], ie[0]))
				continue
			}
			px := make([]float32, l.hpRef.Images().TensorLen())
			if err := l.hpRef.Images().TensorRGB(rgb, px); err != nil {
				t.Fatal(err)
			}
			r, err := l.hpRef.Score(ctx, px, 1)
			if err != nil {
				t.Fatal(err)
			}
			out["hp"] = append(out["hp"], r[0].HP())
			out["hp_logit"] = append(out["hp_logit"], r[0].Logit)
		}
	}
	return out
}

// checkScores runs one Score request over the layers' models and checks
// every value against the old path's, bit for bit.
func checkScores(t *testing.T, ls []*layer, prompt string, images []scoring.Image) {
	t.Helper()
	ms := make([]scorer.Model, len(ls))
	for i, l := range ls {
		ms[i] = l.model
	}
	svc, err := scoring.New(ms, scoring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.Score(context.Background(), scoring.ScoreRequest{Prompt: &prompt, Images: images})
	if err != nil {
		t.Fatal(err)
	}
	want := oldPath(t, ls, prompt, images)
	for name, w := range want {
		for i, s := range res.Scores {
			if s.Err != nil {
				t.Fatalf("image %d: %v", i, s.Err)
			}
			got := s.Get(name)
			if got == nil {
				t.Fatalf("image %d: no %s", i, name)
			}
			if math.Float64bits(*got) != math.Float64bits(w[i]) {
				t.Errorf("image %d: %s = %v, the float32-then-round path gives %v", i, name, *got, w[i])
			}
		}
	}
}

// For --fp16 ICT and HP (vision graphs that take float16 pixels) the
// service writes binary16 rows (TensorHalf, one per image: the two models'
// preprocessing is equal, so they share it), the batchers take and hand on
// halves only, and the scores are bit for bit those of the old path, which
// built float32 rows and had the session round them.
func TestHalfRowsThroughService(t *testing.T) {
	ls := []*layer{openLayer(t, models.KindCLIP, 41, true), openLayer(t, models.KindHP, 42, true)}
	images := demoImages(t)
	checkScores(t, ls, "a red bicycle", images)
	n := int64(len(images))
	for _, l := range ls {
		name := l.model.Name
		if f, h := l.top.floatRows.Load(), l.top.halfRows.Load(); f != 0 || h != n {
			t.Errorf("%s: the service handed its batcher %d float32 and %d half rows, want 0 and %d", name, f, h, n)
		}
		if f, h := l.bottom.floatRows.Load(), l.bottom.halfRows.Load(); f != 0 || h != n {
			t.Errorf("%s: the batcher handed the model %d float32 and %d half rows, want 0 and %d", name, f, h, n)
		}
	}
	var floats, halves int64
	for _, l := range ls {
		floats, halves = floats+l.prep.floats.Load(), halves+l.prep.halves.Load()
	}
	if floats != 0 || halves != n {
		t.Errorf("the preprocessors wrote %d float32 and %d half rows, want 0 and %d (one shared per image)", floats, halves, n)
	}
}

// A float32 ICT and an --fp16 HP with the same preprocessing do not share
// a row of the wrong type: ICT's graph gets float32 rows, HP's halves (the
// float32 row rounded, not a second resize), and both score as alone on the
// old path. HP comes first, so the order of the models does not decide it.
func TestMixedRowTypes(t *testing.T) {
	hpL, ictL := openLayer(t, models.KindHP, 42, true), openLayer(t, models.KindCLIP, 41, false)
	ls := []*layer{hpL, ictL}
	images := demoImages(t)
	checkScores(t, ls, "a red bicycle", images)
	if hpL.prep.Key() != ictL.prep.Key() {
		t.Fatal("the two tiny models' preprocessing differs: the test needs it equal")
	}
	n := int64(len(images))
	if f, h := ictL.top.floatRows.Load(), ictL.top.halfRows.Load(); f != n || h != 0 {
		t.Errorf("ict (float32 graph) got %d float32 and %d half rows, want %d and 0", f, h, n)
	}
	if f, h := hpL.top.floatRows.Load(), hpL.top.halfRows.Load(); f != 0 || h != n {
		t.Errorf("hp (float16 graph) got %d float32 and %d half rows, want 0 and %d", f, h, n)
	}
	if f, h := ictL.prep.floats.Load()+hpL.prep.floats.Load(), ictL.prep.halves.Load()+hpL.prep.halves.Load(); f != n || h != 0 {
		t.Errorf("the preprocessors wrote %d float32 and %d half rows, want %d and 0 (hp's rounded from ict's)", f, h, n)
	}
}
