package convert_test

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icthp/icthp/internal/clipref"
	"github.com/icthp/icthp/internal/cliptest"
	"github.com/icthp/icthp/internal/testmodels"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/convert"
	"github.com/icthp/icthp/models/openclip"
)

// writeHPSv2 writes an open_clip checkpoint as HPSv2 publishes it
// (torch.save({"epoch", "state_dict"}), DDP's "module." prefix) and the
// tiny architecture's open_clip model config beside it.
func writeHPSv2(t *testing.T, dir string, c clip.Config, r *openclip.Random) (ckpt, cfg string) {
	t.Helper()
	ckpt = filepath.Join(dir, "HPS_v2_compressed.pt")
	if err := testmodels.WriteOpenCLIP(ckpt, r, "module.", true, 3); err != nil {
		t.Fatal(err)
	}
	mc := map[string]any{"embed_dim": c.ProjectionDim,
		"vision_cfg": map[string]any{"image_size": 224, "layers": c.Vision.NumLayers, "width": c.Vision.HiddenSize,
			"head_width": c.Vision.HiddenSize / c.Vision.NumHeads, "patch_size": c.Vision.PatchSize},
		"text_cfg": map[string]any{"context_length": 77, "vocab_size": c.Text.VocabSize, "width": c.Text.HiddenSize,
			"heads": c.Text.NumHeads, "layers": c.Text.NumLayers}}
	data, _ := json.Marshal(mc)
	cfg = filepath.Join(dir, "tiny.json")
	if err := os.WriteFile(cfg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return ckpt, cfg
}

// convert hpsv2 on an open_clip checkpoint file writes a clip directory
// whose embeddings match the float64 reference on the reference's own
// translation of the file, with the hpsv2 formula and the pipeline recorded.
func TestConvertHPSv2(t *testing.T) {
	needORT(t)
	c := tiny(t, clip.GELU)
	root := t.TempDir()
	r := openclip.NewRandom(&c, 17)
	ck, cfg := writeHPSv2(t, root, c, r)
	writeVocab(t, root)
	out := filepath.Join(root, "out")
	man, err := convert.OpenCLIP(convert.OpenCLIPOptions{Checkpoint: ck, ModelConfig: cfg, Formula: models.FormulaHPSv2, Out: out,
		Build: clip.BuildOptions{Fused: true}})
	if err != nil {
		t.Fatal(err)
	}
	if man.Kind != models.KindCLIP || man.Formula == nil || man.Formula.Name != "hpsv2" || man.Image.Pipeline != "hpsv2" ||
		!strings.HasPrefix(man.Version, "hpsv2-") || len(man.Notes) == 0 {
		t.Errorf("manifest %+v", man)
	}
	if _, err := models.ReadManifest(out); err != nil {
		t.Fatal(err)
	}
	ref, err := clipref.FromOpenCLIP(r, &c, "")
	if err != nil {
		t.Fatal(err)
	}
	compareWithReference(t, out, c, ref, 2e-5)

	// Without a model config the tiny widths' heads are unknown: refused.
	if _, err := convert.OpenCLIP(convert.OpenCLIPOptions{Checkpoint: ck, Out: filepath.Join(root, "x")}); err == nil ||
		!strings.Contains(err.Error(), "model config") {
		t.Errorf("missing heads: got %v", err)
	}
}

// convert aesthetic: an OpenAI-style CLIP folder (quick_gelu) and the MLP
// head give a directory whose score is the reference's MLP on the
// normalised image features.
func TestConvertAesthetic(t *testing.T) {
	needORT(t)
	c := tiny(t, clip.QuickGELU)
	w := clip.NewRandom(&c, 8, true)
	root := t.TempDir()
	writeFolder(t, filepath.Join(root, "clip"), c, w, paramNames(c.Params()), "safetensors", "F32")
	head := filepath.Join(root, "sac+logos+ava1-l14-linearMSE.pth")
	writeHead(t, head, c, w)
	out := filepath.Join(root, "out")
	man, err := convert.Aesthetic(convert.AestheticOptions{CLIP: filepath.Join(root, "clip"), Head: head, Out: out, Build: clip.BuildOptions{Fused: true}})
	if err != nil {
		t.Fatal(err)
	}
	if man.Kind != models.KindAesthetic || man.Image.Pipeline != "torchvision" || man.Formula.Name != "aesthetic" {
		t.Errorf("manifest %+v", man)
	}
	compareAesthetic(t, out, c, w, 1e-5)
}

func compareAesthetic(t *testing.T, dir string, c clip.Config, w clip.Weights, tol float64) {
	t.Helper()
	m := openModel(t, dir)
	const n = 3
	px := cliptest.Pixels(rand.New(rand.NewPCG(7, 7)), n)
	outs, err := m.EncodeImages(context.Background(), px, n)
	if err != nil {
		t.Fatal(err)
	}
	refImg := refImages(t, &c, w, px, n)
	worst := 0.0
	for i := 0; i < n; i++ {
		want, err := clipref.AestheticScore(w, refImg[i])
		if err != nil {
			t.Fatal(err)
		}
		worst = math.Max(worst, math.Abs(float64(outs[0][i])-want))
	}
	if worst > tol {
		t.Fatalf("aesthetic: max |model − float64 reference| = %g > %g", worst, tol)
	}
	t.Logf("aesthetic within %.2g", worst)
}

// convert clip with a formula records it: pickscore with the checkpoint's
// logit_scale and CLIPProcessor, clipscore (Hessel) with its prefix, 2.5 and
// the torchvision pipeline; the versions differ from each other and from the
// plain conversion of the same weights.
func TestCLIPWithFormula(t *testing.T) {
	c := tiny(t, clip.QuickGELU)
	w := clip.NewRandom(&c, 4, false)
	root := t.TempDir()
	ck := filepath.Join(root, "ck")
	writeFolder(t, ck, c, w, paramNames(c.Params()), "safetensors", "F32")
	writeVocab(t, ck)
	ls, _ := w.Float32("logit_scale")
	versions := map[string]bool{}
	plain, err := convert.CLIP(convert.CLIPOptions{Checkpoint: ck, Out: filepath.Join(root, "plain")})
	if err != nil {
		t.Fatal(err)
	}
	versions[plain.Version] = true
	for _, tc := range []struct {
		formula, pipeline, prefix string
		weight, logitScale        float64
	}{
		{"pickscore", "clip", "", 0, float64(ls[0])},
		{"clipscore", "torchvision", "A photo depicts ", 2.5, 0},
		{"clipscore-100", "clip", "", 100, 0},
	} {
		out := filepath.Join(root, tc.formula)
		m, err := convert.CLIPWithFormula(convert.CLIPOptions{Checkpoint: ck, Out: out}, tc.formula)
		if err != nil {
			t.Fatal(err)
		}
		back, err := models.ReadManifest(out)
		if err != nil {
			t.Fatal(err)
		}
		f := back.Formula
		if f == nil || f.Name != tc.formula || f.Prefix != tc.prefix || f.Weight != tc.weight || f.LogitScale != tc.logitScale ||
			back.Image.Pipeline != tc.pipeline || back.Kind != models.KindCLIP || back.Name != tc.formula {
			t.Errorf("%s: manifest %+v formula %+v", tc.formula, back, f)
		}
		if versions[m.Version] {
			t.Errorf("%s: version %s not distinct", tc.formula, m.Version)
		}
		versions[m.Version] = true
	}
	if _, err := convert.CLIPWithFormula(convert.CLIPOptions{Checkpoint: ck, Out: filepath.Join(root, "bad")}, "hpsv2"); err == nil {
		t.Error("hpsv2 accepted as a formula of a Hugging Face CLIP")
	}
}

// convert random for each zoo kind writes a loadable directory with the
// kind's formula; the hpsv2 one, generated under open_clip's names and read
// through the mapping, matches the reference on the same weights, and the
// aesthetic one the reference MLP.
func TestRandomZoo(t *testing.T) {
	needORT(t)
	root := t.TempDir()
	for _, kind := range convert.ZooKinds {
		out := filepath.Join(root, kind)
		m, err := convert.RandomZoo(convert.ZooRandomOptions{Kind: kind, Preset: clip.PresetTiny, Seed: 5, Vocab: []byte("v"), Synthetic: true,
			Out: out, Build: clip.BuildOptions{Fused: true}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := models.ReadManifest(out); err != nil {
			t.Fatal(err)
		}
		if m.Formula == nil || m.Formula.Name != kind {
			t.Errorf("%s: formula %+v", kind, m.Formula)
		}
		_, act, _ := convert.ZooPreset(kind)
		c := tiny(t, act)
		switch kind {
		case "hpsv2":
			ref, err := clipref.FromOpenCLIP(openclip.NewRandom(&c, 5), &c, "")
			if err != nil {
				t.Fatal(err)
			}
			compareWithReference(t, out, c, ref, 2e-5)
		case "aesthetic":
			compareAesthetic(t, out, c, clip.NewRandom(&c, 5, true), 1e-5)
		case "pickscore":
			compareWithReference(t, out, c, clip.NewRandom(&c, 5, false), 2e-5)
		}
	}
	if _, err := convert.RandomZoo(convert.ZooRandomOptions{Kind: "nope", Out: root}); err == nil {
		t.Error("unknown kind accepted")
	}
}

// --fp16 and --int8 aesthetic graphs (normalisation in the compute type)
// run and stay near the float64 reference, on a score of size about 0.1:
// fp16 within 1e-3; int8, which is outside the parity target (README,
// "int8"), within the 0.05 the tiny preset's int8 graphs are known to move.
func TestAestheticReducedPrecision(t *testing.T) {
	needORT(t)
	for _, tc := range []struct {
		b   clip.BuildOptions
		tol float64
	}{{clip.BuildOptions{Fused: true, FP16: true}, 1e-3}, {clip.BuildOptions{Fused: true, Int8: true}, 5e-2}} {
		out := filepath.Join(t.TempDir(), "a")
		if _, err := convert.RandomZoo(convert.ZooRandomOptions{Kind: "aesthetic", Preset: clip.PresetTiny, Seed: 5, Out: out, Build: tc.b}); err != nil {
			t.Fatal(err)
		}
		_, act, _ := convert.ZooPreset("aesthetic")
		c := tiny(t, act)
		compareAesthetic(t, out, c, clip.NewRandom(&c, 5, true), tc.tol)
	}
}
