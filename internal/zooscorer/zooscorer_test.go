package zooscorer_test

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/icthp/icthp/aesthetic"
	"github.com/icthp/icthp/clipscore"
	"github.com/icthp/icthp/hpsv2"
	"github.com/icthp/icthp/internal/clipref"
	"github.com/icthp/icthp/internal/orttest"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/convert"
	"github.com/icthp/icthp/models/openclip"
	"github.com/icthp/icthp/pickscore"
	"github.com/icthp/icthp/preprocess/text"
	"github.com/icthp/icthp/scorer"
)

func needORT(t testing.TB) { t.Helper(); orttest.Need(t) }

// reference computes a zoo model's score in float64 from the weights the
// directory was built from: clipref's features, then the published formula.
type reference struct {
	c       clip.Config
	w       clip.Weights
	formula func(cos float64) float64
}

func tinyRef(t *testing.T, kind string, preset clip.Preset, seed uint64) reference {
	_, act, err := convert.ZooPreset(kind)
	if err != nil {
		t.Fatal(err)
	}
	c, err := clip.PresetConfig(preset)
	if err != nil {
		t.Fatal(err)
	}
	c.Vision.HiddenAct, c.Text.HiddenAct = act, act
	r := reference{c: c}
	switch kind {
	case "hpsv2":
		if r.w, err = clipref.FromOpenCLIP(openclip.NewRandom(&c, seed), &c, ""); err != nil {
			t.Fatal(err)
		}
		r.formula = func(cos float64) float64 { return cos }
	case "pickscore":
		r.w = clip.NewRandom(&c, seed, false)
		ls, _ := r.w.Float32("logit_scale")
		r.formula = func(cos float64) float64 { return math.Exp(float64(ls[0])) * cos }
	case "clipscore":
		r.w = clip.NewRandom(&c, seed, false)
		r.formula = func(cos float64) float64 { return 2.5 * math.Max(cos, 0) }
	case "clipscore-100":
		r.w = clip.NewRandom(&c, seed, false)
		r.formula = func(cos float64) float64 { return 100 * math.Max(cos, 0) }
	case "aesthetic":
		r.w = clip.NewRandom(&c, seed, true)
	}
	return r
}

// Each zoo scorer, opened through its registry Entry on a directory that
// `icthp convert random --kind K --preset tiny` writes, scores random pixels
// and a prompt as the float64 reference of its published formula does; the
// prompt is tokenized with the formula's prefix; the pipeline is the one the
// original code uses.
func TestEntriesMatchReference(t *testing.T) {
	needORT(t)
	preset := clip.PresetTiny
	if p := os.Getenv("ICTHP_ZOO_PRESET"); p != "" {
		// A real size, run by hand: ICTHP_ZOO_PRESET=vit-b-32 (each model at
		// that size with its own activation); the reference takes minutes.
		preset = clip.Preset(p)
	}
	vocab := text.SyntheticVocab(500)
	const seed, n = 7, 3 // seed 7: clipscore's cosines are positive for two images and clamped for one
	prompt := "a red bicycle leaning on a wall"
	for _, tc := range []struct {
		kind     string
		entry    scorer.Entry
		needsRGB bool   // CLIPProcessor or HPSv2's (true), or the torchvision pipeline
		prefix   string // what Tokenize prepends
		tol      float64
	}{
		{"pickscore", pickscore.Entry, true, "", 1e-4},
		{"clipscore", clipscore.Entry, false, "A photo depicts ", 1e-5},
		{"clipscore-100", clipscore.Entry100, true, "", 1e-3},
		{"hpsv2", hpsv2.Entry, true, "", 1e-5},
		{"aesthetic", aesthetic.Entry, false, "", 1e-5},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), tc.kind)
			if _, err := convert.RandomZoo(convert.ZooRandomOptions{Kind: tc.kind, Preset: preset, Seed: seed, Vocab: vocab,
				VocabName: "bpe_simple_vocab_16e6.txt.gz", Synthetic: true, Out: dir, Build: clip.BuildOptions{Fused: true}}); err != nil {
				t.Fatal(err)
			}
			s, closer, err := tc.entry.Open(dir, scorer.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer closer.Close()
			if got := s.Image().Preprocess().NeedsRGB(); got != tc.needsRGB {
				t.Errorf("NeedsRGB = %v, want %v (pipeline %s)", got, tc.needsRGB, s.Manifest().Image.Pipeline)
			}
			ref := tinyRef(t, tc.kind, preset, seed)
			px := pixels(n)
			feats, err := s.Image().Encode(context.Background(), px, n)
			if err != nil {
				t.Fatal(err)
			}
			refImg, err := clipref.ImageFeatures(&ref.c, ref.w, px, n)
			if err != nil {
				t.Fatal(err)
			}
			pairs := make([]scorer.Pair, n)
			want := make([]float64, n)
			if tc.entry.Prompt {
				text, refTxt := encodePrompt(t, s, dir, prompt, tc.prefix, ref)
				for i := range pairs {
					pairs[i] = scorer.Pair{Text: text, Image: feats[i]}
					want[i] = ref.formula(clipref.Cosine(refTxt, refImg[i]))
				}
			} else {
				for i := range pairs {
					pairs[i] = scorer.Pair{Image: feats[i]}
					if want[i], err = clipref.AestheticScore(ref.w, refImg[i]); err != nil {
						t.Fatal(err)
					}
				}
			}
			out, err := s.Head(context.Background(), pairs)
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for i := range want {
				worst = math.Max(worst, math.Abs(out[i][0]-want[i]))
			}
			if worst > tc.tol {
				t.Fatalf("max |scorer − float64 reference| = %g > %g (got %v, want %v)", worst, tc.tol, out, want)
			}
			t.Logf("%s within %.2g of the float64 reference (scores %v)", tc.kind, worst, want)
		})
	}
}

func pixels(n int) []float32 {
	rng := rand.New(rand.NewPCG(11, 12))
	px := make([]float32, n*3*224*224)
	for i := range px {
		px[i] = float32(rng.NormFloat64())
	}
	return px
}

// encodePrompt tokenizes the prompt through the scorer (checking the
// prefix against the tokenizer itself), embeds it, and returns the
// reference's text features of the same ids.
func encodePrompt(t *testing.T, s scorer.Scorer, dir, prompt, prefix string, ref reference) (*scorer.Text, []float64) {
	t.Helper()
	toks, err := s.Text().Tokenize(prompt)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := text.LoadTokenizer(filepath.Join(dir, s.Manifest().Text.Vocab))
	if err != nil {
		t.Fatal(err)
	}
	direct, err := tok.Encode(prefix + prompt)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(toks.IDs, direct) {
		t.Errorf("Tokenize(%q) = %v, want the ids of %q", prompt, toks.IDs[:12], prefix+prompt)
	}
	emb, err := s.Text().(scorer.TextEmbedder).EncodeTexts(context.Background(), []scorer.Tokens{toks})
	if err != nil {
		t.Fatal(err)
	}
	refTxt, err := clipref.TextFeatures(&ref.c, ref.w, toks.IDs, 1)
	if err != nil {
		t.Fatal(err)
	}
	return &scorer.Text{Tokens: toks, Embed: emb[0]}, refTxt[0]
}

// A directory without the scorer's formula (a plain `clip` one, or another
// zoo model's) is refused, naming the converter to use.
func TestWrongDirectoryRefused(t *testing.T) {
	root := t.TempDir()
	plain := filepath.Join(root, "plain")
	if _, err := convert.Random(convert.RandomOptions{Preset: clip.PresetTiny, Kind: models.KindCLIP, Seed: 1,
		Vocab: text.SyntheticVocab(50), Synthetic: true, Out: plain}); err != nil {
		t.Fatal(err)
	}
	hp := filepath.Join(root, "hpsv2")
	if _, err := convert.RandomZoo(convert.ZooRandomOptions{Kind: "hpsv2", Preset: clip.PresetTiny, Seed: 1,
		Vocab: text.SyntheticVocab(50), Synthetic: true, Out: hp}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		entry scorer.Entry
		dir   string
		want  string
	}{
		{pickscore.Entry, plain, "convert pickscore"},
		{clipscore.Entry, hp, "convert clipscore"},
		{aesthetic.Entry, plain, `kind "clip"`},
	} {
		_, _, err := tc.entry.Open(tc.dir, scorer.OpenOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s on %s: got %v, want an error mentioning %q", tc.entry.Name, tc.dir, err, tc.want)
		}
	}
}
