package imagereward_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/imagereward"
	"github.com/icthp/icthp/internal/blipref"
	"github.com/icthp/icthp/internal/orttest"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/blip"
	"github.com/icthp/icthp/models/checkpoint"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scoring"
)

// original writes a tiny ImageReward checkpoint in the original layout
// (ImageReward.pt as torch zip-pickle, with position_ids, the unused
// projections and a stray training key), its med_config.json, a vision
// config and a vocabulary, and returns their paths.
func original(t *testing.T, c *blip.Config, w blipref.MapWeights) (ckpt, med, vis, vocab string) {
	t.Helper()
	d := t.TempDir()
	ckpt, med, vis, vocab = filepath.Join(d, "ImageReward.pt"), filepath.Join(d, "med_config.json"), filepath.Join(d, "vision.json"), filepath.Join(d, "vocab.txt")
	if err := blipref.WriteCheckpoint(ckpt, c, w, checkpoint.NamedTensor{Name: "blip.temp", DType: checkpoint.F32, Shape: []int64{}, Data: []float32{0.07}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(med, blipref.MedConfigJSON(c), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vis, blipref.VisionConfigJSON(c), 0o644); err != nil {
		t.Fatal(err)
	}
	words := blip.SyntheticVocab()
	if real, err := os.ReadFile(filepath.Join("..", "..", "shared", "vocab", "bert-base-uncased-vocab.txt")); err == nil {
		words = real
	} else {
		t.Logf("real bert-base-uncased vocabulary not found (shared/vocab beside the repository); using the synthetic one: %v", err)
	}
	if err := os.WriteFile(vocab, words, 0o644); err != nil {
		t.Fatal(err)
	}
	return ckpt, med, vis, vocab
}

func readImages(t *testing.T, names ...string) []scoring.Image {
	t.Helper()
	var imgs []scoring.Image
	for _, n := range names {
		if n == "junk" {
			imgs = append(imgs, scoring.Image{Data: []byte("not an image")})
			continue
		}
		b, err := os.ReadFile(filepath.Join("..", "preprocess", "testdata", "torchvision", "src", n))
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, scoring.Image{Data: b})
	}
	return imgs
}

// A tiny checkpoint in the original layout, converted by ConvertFiles (what
// `icthp convert imagereward` runs), scored end to end from image bytes and
// a prompt, agrees with the float64 reference of ImageReward.score fed with
// the same torchvision tensors and WordPiece ids, to 1e-5; plain and fused.
func TestScoreMatchesFloat64Reference(t *testing.T) {
	orttest.Need(t)
	c, err := blip.PresetConfig(blip.PresetTiny)
	if err != nil {
		t.Fatal(err)
	}
	w := blipref.RandomWeights(&c, 5)
	ckpt, med, vis, vocab := original(t, &c, w)
	const prompt = "A red apple on a wooden table, highly detailed"
	names := []string{"rgba8_100x80.png", "junk", "p8_310x215.gif", "rgb8_227x224.png", "webp_alpha_lossy_330x250.webp"}
	images := readImages(t, names...)

	good, ref := referenceScores(t, &c, w, vocab, prompt, images)

	versions := map[bool]string{}
	for _, fused := range []bool{false, true} {
		out := t.TempDir()
		man, err := blip.ConvertFiles(ckpt, med, vis, vocab, out, "", blip.BuildOptions{Fused: fused})
		if err != nil {
			t.Fatal(err)
		}
		if man.Kind != models.KindImageReward || !strings.HasPrefix(man.Version, "imagereward-") || man.Text.ContextLength != 35 || man.Image.Pipeline != "torchvision" {
			t.Errorf("manifest %+v", man)
		}
		if !strings.Contains(strings.Join(man.Notes, " "), "blip.temp") {
			t.Errorf("notes %q do not report the unused key blip.temp", man.Notes)
		}
		versions[fused] = man.Version
		tc, err := cache.New(cache.Options{LocalBytes: 64 << 20})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		s, err := imagereward.Open(out, models.SessionOptions{MaxBatch: 3}, imagereward.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		scores, errs, err := scoreCached(context.Background(), s, tc, prompt, images)
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(errs[1], preprocess.ErrUnsupportedFormat) {
			t.Errorf("junk image: error %v", errs[1])
		}
		worst := 0.0
		for k, i := range good {
			if errs[i] != nil {
				t.Fatalf("%s: %v", names[i], errs[i])
			}
			worst = math.Max(worst, math.Abs(scores[i]-ref[k]))
		}
		t.Logf("fused=%v: max |onnxruntime − float64| = %.3g over %d images (scores %.5f)", fused, worst, len(good), scores)
		if worst > 1e-5 {
			t.Errorf("fused=%v: scores %v differ from the reference %v by %g", fused, scores, ref, worst)
		}

		// Again: the image tokens come from the cache, the scores do not move.
		again, _, err := scoreCached(context.Background(), s, tc, prompt, images)
		if err != nil {
			t.Fatal(err)
		}
		// Failures are not cached: the junk image is tried again.
		if st := tc.Stats(); st.LocalHits != int64(len(good)) || st.Computed != int64(len(images)+1) {
			t.Errorf("cache stats %+v: want %d hits the second time, %d computed in all", st, len(good), len(images)+1)
		}
		for _, i := range good {
			if again[i] != scores[i] {
				t.Errorf("image %d: %g from cached tokens, %g before", i, again[i], scores[i])
			}
		}

		// Through scoring.Service, the front doors' way in.
		checkServiceScores(t, s, man.Version, prompt, images, scores, errs)
	}
	if versions[true] == versions[false] {
		t.Error("plain and fused directories have the same version")
	}
}

// referenceScores is the float64 reference of ImageReward.score for the
// images that the torchvision pipeline takes (good, their indices).
func referenceScores(t *testing.T, c *blip.Config, w blip.Weights, vocab, prompt string, images []scoring.Image) (good []int, ref []float64) {
	t.Helper()
	files := make([][]byte, len(images))
	for i, img := range images {
		files[i] = img.Data
	}
	good, ref, err := blipref.FileScores(c, w, vocab, prompt, files)
	if err != nil {
		t.Fatal(err)
	}
	return good, ref
}

// checkServiceScores scores images through scoring.Service and checks that
// it reports the scorer's version, scores and failures.
func checkServiceScores(t *testing.T, s *imagereward.Scorer, version, prompt string, images []scoring.Image, scores []float64, errs []error) {
	t.Helper()
	svc, err := scoring.New([]scorer.Model{{Spec: imagereward.Entry.Spec, Scorer: s}}, scoring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := prompt
	res, err := svc.Score(context.Background(), scoring.ScoreRequest{Prompt: &p, Images: images, Models: []string{"imagereward"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Versions["imagereward"] != version {
		t.Errorf("versions %v", res.Versions)
	}
	for i, sc := range res.Scores {
		if (sc.Err != nil) != (errs[i] != nil) || (sc.Err == nil && (sc.Get("imagereward") == nil || *sc.Get("imagereward") != scores[i])) {
			t.Errorf("service row %d: %+v, scorer %g / %v", i, sc, scores[i], errs[i])
		}
	}
}

// A different prompt, a different image: different scores; the prompt's
// padding is masked (trailing spaces change nothing).
func TestScoreDependsOnPromptAndImage(t *testing.T) {
	orttest.Need(t)
	out := t.TempDir()
	if _, err := blip.WriteRandomDir(blip.PresetTiny, 3, out, blip.BuildOptions{Fused: true}); err != nil {
		t.Fatal(err)
	}
	s, err := imagereward.Open(out, models.SessionOptions{}, imagereward.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	imgs := readImages(t, "rgb8_100x80.png", "l8_301x227.png")
	ctx := context.Background()
	a, _, err := score(ctx, s, "a cat", imgs)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := score(ctx, s, "a dog on the moon", imgs)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := score(ctx, s, "a cat   ", imgs)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(a[0]-a[1]) < 1e-6 || math.Abs(a[0]-b[0]) < 1e-6 {
		t.Errorf("scores do not depend on the image or prompt: %v %v", a, b)
	}
	if a[0] != c[0] || a[1] != c[1] {
		t.Errorf("trailing spaces changed the scores: %v %v", a, c)
	}
	if s.Tokenizer().ContextLength() != 35 || s.TokenLen() != 50*64 {
		t.Errorf("context %d, token values %d", s.Tokenizer().ContextLength(), s.TokenLen())
	}
}

func TestOpenErrors(t *testing.T) {
	orttest.Need(t)
	out := t.TempDir()
	man, err := blip.WriteRandomDir(blip.PresetTiny, 1, out, blip.BuildOptions{Fused: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := imagereward.Open(t.TempDir(), models.SessionOptions{}, imagereward.Options{}); !errors.Is(err, models.ErrNoManifest) {
		t.Errorf("empty directory: %v", err)
	}
	man.Kind = models.KindHP
	if err := models.WriteManifest(out, man); err != nil {
		t.Fatal(err)
	}
	if _, err := imagereward.Open(out, models.SessionOptions{}, imagereward.Options{}); !errors.Is(err, imagereward.ErrNotImageReward) {
		t.Errorf("hp kind: %v", err)
	}
}

// score runs one prompt over images through the scoring pipeline with the
// ImageReward model alone (no cache): the scores, and each image's own
// failure.
func score(ctx context.Context, s *imagereward.Scorer, prompt string, images []scoring.Image) ([]float64, []error, error) {
	return scoreCached(ctx, s, nil, prompt, images)
}

// scoreCached is score with an embedding cache for the image tokens.
func scoreCached(ctx context.Context, s *imagereward.Scorer, c *cache.Cache, prompt string, images []scoring.Image) ([]float64, []error, error) {
	svc, err := scoring.New([]scorer.Model{{Spec: imagereward.Entry.Spec, Scorer: s}}, scoring.Options{Cache: c})
	if err != nil {
		return nil, nil, err
	}
	res, err := svc.Score(ctx, scoring.ScoreRequest{Prompt: &prompt, Images: images})
	if err != nil {
		return nil, nil, err
	}
	scores, errs := make([]float64, len(images)), make([]error, len(images))
	for i, sc := range res.Scores {
		if errs[i] = sc.Err; sc.Err == nil {
			scores[i] = *sc.Get("imagereward")
		}
	}
	return scores, errs, nil
}
