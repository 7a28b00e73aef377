package convert_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/icthp/icthp/internal/clipref"
	"github.com/icthp/icthp/internal/cliptest"
	"github.com/icthp/icthp/internal/orttest"
	"github.com/icthp/icthp/internal/testmodels"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/checkpoint"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/convert"
)

func needORT(t testing.TB) { t.Helper(); orttest.Need(t) }

func tiny(t *testing.T, act clip.Activation) clip.Config { t.Helper(); return cliptest.Tiny(t, act) }

// openModel opens the model directory dir and closes it when the test ends.
func openModel(t *testing.T, dir string) *models.Model {
	t.Helper()
	m, err := models.Open(dir, models.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func writeVocab(t *testing.T, dir string) string {
	// Any non-empty file stands for the vocabulary here: the converter
	// copies it and the manifest names it; tokenizing is tested elsewhere.
	p := filepath.Join(dir, "bpe_simple_vocab_16e6.txt.gz")
	if err := os.WriteFile(p, []byte("vocab"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// quantized returns w's values as the checkpoint stores them (F16 or BF16
// rounding), so the reference sees exactly the weights the graph gets.
type quantized struct {
	clip.Weights
	sd *checkpoint.StateDict
}

func (q quantized) Float32(name string) ([]float32, error) {
	if q.sd.Has(name) {
		return q.sd.Float32(name)
	}
	return q.Weights.Float32(name)
}

// refImages is the float64 reference's image features of n images.
func refImages(t *testing.T, c *clip.Config, w clip.Weights, px []float32, n int) [][]float64 {
	t.Helper()
	f, err := clipref.ImageFeatures(c, w, px, n)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func compareWithReference(t *testing.T, dir string, c clip.Config, ref clip.Weights, tol float64) {
	t.Helper()
	m := openModel(t, dir)
	const n = 2
	rng := rand.New(rand.NewPCG(3, 4))
	px := cliptest.Pixels(rng, n)
	ids := cliptest.IDs(rng, n, 77, 49000, func(r int) int { return 5 + r*9 })
	var outs [][]float32
	var err error
	if m.Manifest.Kind == models.KindHP {
		outs, err = m.EncodeImages(context.Background(), px, n)
	} else {
		var img, txt [][]float32
		img, err = m.EncodeImages(context.Background(), px, n)
		if err == nil {
			txt, err = m.EncodeTexts(context.Background(), ids, n)
			outs = append(img, txt...)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	refImg := refImages(t, &c, ref, px, n)
	worst := 0.0
	d := c.ProjectionDim
	if m.Manifest.Kind == models.KindHP {
		for i := 0; i < n; i++ {
			logit, err := clipref.HPLogit(ref, refImg[i])
			if err != nil {
				t.Fatal(err)
			}
			worst = math.Max(worst, math.Abs(float64(outs[0][i])-logit))
			for j := 0; j < d; j++ {
				worst = math.Max(worst, math.Abs(float64(outs[1][i*d+j])-refImg[i][j]))
			}
		}
	} else {
		refTxt, err := clipref.TextFeatures(&c, ref, ids, n)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			for j := 0; j < d; j++ {
				worst = math.Max(worst, math.Abs(float64(outs[0][i*d+j])-refImg[i][j]))
				worst = math.Max(worst, math.Abs(float64(outs[1][i*d+j])-refTxt[i][j]))
			}
		}
	}
	if worst > tol {
		t.Fatalf("max |model − float64 reference| = %g > %g", worst, tol)
	}
	t.Logf("max abs difference %.3g", worst)
}

// A Hugging Face folder in either file format and either activation, alone
// or laid over a base, converts into a directory whose embeddings match the
// float64 reference.
func TestConvertCLIPFolder(t *testing.T) {
	needORT(t)
	for _, format := range []string{"safetensors", "torch"} {
		for _, act := range []clip.Activation{clip.GELU, clip.QuickGELU} {
			for _, withBase := range []bool{false, true} {
				for _, dt := range []checkpoint.DType{"F32", "F16", "BF16"} {
					if dt != "F32" && (withBase || act != clip.GELU) {
						continue // half storage once per format is enough
					}
					name := fmt.Sprintf("%s/%s/base=%v/%s", format, act, withBase, dt)
					t.Run(name, func(t *testing.T) {
						c := tiny(t, act)
						fine := clip.NewRandom(&c, 21, false)
						root := t.TempDir()
						ck := filepath.Join(root, "ict")
						all := paramNames(c.Params())
						buffers := []checkpoint.NamedTensor{{Name: "text_model.embeddings.position_ids", DType: "I64", Shape: []int64{1, 77}, Data: make([]float32, 77)}}
						opts := convert.CLIPOptions{Checkpoint: ck, Out: filepath.Join(root, "out"), Build: clip.BuildOptions{Fused: true}}
						ref := clip.Weights(fine)
						if withBase {
							// The fine-tuned checkpoint holds the vision tower and
							// projections only, plus a stray key; the base holds a
							// different whole model. The text tower comes from the base.
							base := clip.NewRandom(&c, 99, false)
							writeFolder(t, filepath.Join(root, "base"), c, base, all, format, "F32")
							var part []string
							for _, n := range all {
								if !strings.HasPrefix(n, "text_model.") {
									part = append(part, n)
								}
							}
							stray := checkpoint.NamedTensor{Name: "extra.head.weight", DType: "F32", Shape: []int64{2}, Data: []float32{1, 2}}
							writeFolder(t, ck, c, fine, part, format, "F32", append(buffers, stray)...)
							opts.Base = filepath.Join(root, "base")
							ref = mixed{fine: fine, base: base}
						} else {
							writeFolder(t, ck, c, fine, all, format, dt, buffers...)
						}
						writeVocab(t, ck)
						if dt != "F32" {
							sd, _, err := checkpoint.OpenFolder(ck)
							if err != nil {
								t.Fatal(err)
							}
							defer sd.Close()
							ref = quantized{fine, sd}
						}
						var log strings.Builder
						opts.Log = &log
						man, err := convert.CLIP(opts)
						if err != nil {
							t.Fatal(err)
						}
						if !strings.Contains(log.String(), "num_hidden_layers=5 disagrees") {
							t.Errorf("stale num_hidden_layers not reported; log:\n%s", log.String())
						}
						if withBase && !strings.Contains(log.String(), "extra.head.weight") {
							t.Errorf("unexpected key not reported; log:\n%s", log.String())
						}
						if man.Kind != models.KindCLIP || !strings.HasPrefix(man.Version, "clip-") || man.EmbeddingDim != c.ProjectionDim {
							t.Errorf("manifest %+v", man)
						}
						compareWithReference(t, opts.Out, c, ref, 1e-4)
					})
				}
			}
		}
	}
}

// mixed is the text tower from base and everything else from fine.
type mixed struct{ fine, base clip.Weights }

func (m mixed) pick(n string) clip.Weights {
	if strings.HasPrefix(n, "text_model.") {
		return m.base
	}
	return m.fine
}
func (m mixed) Shape(n string) ([]int64, bool)      { return m.pick(n).Shape(n) }
func (m mixed) Float32(n string) ([]float32, error) { return m.pick(n).Float32(n) }

// The HP backbone (a CLIPModel folder) and the head's bare state dict
// convert into an hp directory whose logits match the reference.
func TestConvertHP(t *testing.T) {
	needORT(t)
	for _, format := range []string{"safetensors", "torch"} {
		t.Run(format, func(t *testing.T) {
			c := tiny(t, clip.GELU)
			w := clip.NewRandom(&c, 5, true)
			root := t.TempDir()
			writeFolder(t, filepath.Join(root, "hp_backbone"), c, w, paramNames(c.Params()), format, "F32")
			headPath := filepath.Join(root, "mlp_pytorch_model.bin")
			writeHead(t, headPath, c, w)
			out := filepath.Join(root, "out")
			man, err := convert.HP(convert.HPOptions{Backbone: filepath.Join(root, "hp_backbone"), Head: headPath, Out: out, Build: clip.BuildOptions{Fused: true}})
			if err != nil {
				t.Fatal(err)
			}
			if man.Kind != models.KindHP || !strings.HasPrefix(man.Version, "hp-") {
				t.Errorf("manifest %+v", man)
			}
			compareWithReference(t, out, c, w, 1e-4)
		})
	}
}

// Same seed, same bytes, same version; another seed, another version.
func TestRandomIsDeterministic(t *testing.T) {
	root := t.TempDir()
	var versions []string
	for i, seed := range []uint64{1, 1, 2} {
		m, err := convert.Random(convert.RandomOptions{Preset: clip.PresetTiny, Kind: models.KindCLIP, Seed: seed,
			Vocab: []byte("v"), Synthetic: true, Out: filepath.Join(root, fmt.Sprint(i))})
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, m.Version)
	}
	a, _ := os.ReadFile(filepath.Join(root, "0", "vision.onnx.data"))
	b, _ := os.ReadFile(filepath.Join(root, "1", "vision.onnx.data"))
	if !slices.Equal(a, b) || versions[0] != versions[1] {
		t.Errorf("same seed gave different bytes or versions %v", versions)
	}
	if versions[0] == versions[2] {
		t.Errorf("different seeds gave the same version %s", versions[0])
	}
}

// Without a base, a checkpoint that lacks parameters is refused with their
// names; a head of the wrong width is refused.
func TestConvertErrors(t *testing.T) {
	c := tiny(t, clip.GELU)
	w := clip.NewRandom(&c, 5, true)
	root := t.TempDir()
	ck := filepath.Join(root, "ck")
	var part []string
	for _, n := range paramNames(c.Params()) {
		if n != "text_projection.weight" {
			part = append(part, n)
		}
	}
	writeFolder(t, ck, c, w, part, "safetensors", "F32")
	writeVocab(t, ck)
	_, err := convert.CLIP(convert.CLIPOptions{Checkpoint: ck, Out: filepath.Join(root, "out")})
	if err == nil || !strings.Contains(err.Error(), "text_projection.weight") || !strings.Contains(err.Error(), "--base") {
		t.Errorf("missing parameter: got %v", err)
	}
	os.Remove(filepath.Join(ck, "bpe_simple_vocab_16e6.txt.gz"))
	writeFolder(t, ck, c, w, paramNames(c.Params()), "safetensors", "F32")
	_, err = convert.CLIP(convert.CLIPOptions{Checkpoint: ck, Out: filepath.Join(root, "out")})
	if err == nil || !strings.Contains(err.Error(), "--tokenizer") {
		t.Errorf("missing vocabulary: got %v", err)
	}
	_, err = convert.CLIP(convert.CLIPOptions{Checkpoint: filepath.Join(root, "nope"), Out: filepath.Join(root, "out")})
	if err == nil {
		t.Error("missing folder accepted")
	}
}

func writeFolder(t *testing.T, dir string, c clip.Config, w clip.Weights, names []string, format string, dtype checkpoint.DType, extra ...checkpoint.NamedTensor) {
	t.Helper()
	if err := testmodels.WriteFolder(dir, c, w, names, testmodels.Format(format), dtype, extra...); err != nil {
		t.Fatal(err)
	}
}

// writeHead writes the HP head's parameters of w as a bare state dict.
func writeHead(t *testing.T, path string, c clip.Config, w clip.Weights) {
	t.Helper()
	if err := testmodels.WriteHead(path, c, w); err != nil {
		t.Fatal(err)
	}
}

func paramNames(ps []clip.Param) []string { return testmodels.Names(ps) }
