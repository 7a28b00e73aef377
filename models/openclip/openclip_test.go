package openclip_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
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
	"github.com/icthp/icthp/models/openclip"
)

func tiny(t testing.TB, act clip.Activation) clip.Config { t.Helper(); return cliptest.Tiny(t, act) }

// tinyModelConfig is the open_clip model config of the tiny preset (heads
// cannot be read from shapes).
func tinyModelConfig(c clip.Config, quick bool) *openclip.ModelConfig {
	m := &openclip.ModelConfig{EmbedDim: c.ProjectionDim, QuickGELU: quick}
	m.Vision.Width, m.Vision.Layers, m.Vision.PatchSize = c.Vision.HiddenSize, c.Vision.NumLayers, c.Vision.PatchSize
	m.Vision.HeadWidth = c.Vision.HiddenSize / c.Vision.NumHeads
	m.Vision.ImageSize = []byte("224")
	m.Text.Width, m.Text.Heads, m.Text.Layers = c.Text.HiddenSize, c.Text.NumHeads, c.Text.NumLayers
	m.Text.VocabSize, m.Text.ContextLength = c.Text.VocabSize, c.Text.MaxPositions
	return m
}

// writeOpenCLIP writes r as torch.save({"epoch": 1, "state_dict": sd})
// would, every key under prefix ("" or "module."), and opens it.
func writeOpenCLIP(t *testing.T, r *openclip.Random, prefix string, wrapped bool) *checkpoint.StateDict {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ck.pt")
	if err := testmodels.WriteOpenCLIP(p, r, prefix, wrapped, 1); err != nil {
		t.Fatal(err)
	}
	sd, err := checkpoint.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sd.Close() })
	return sd
}

// Every transformers parameter read through the mapping, from a torch zip
// file in open_clip layout ({"state_dict": ...}, with and without the
// "module." prefix, or a plain state dict), equals the reference's
// independent translation (clipref.FromOpenCLIP) bit for bit, and the
// architecture inferred from the shapes is the one written.
func TestMappingMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		prefix  string
		wrapped bool
	}{{"", true}, {"module.", true}, {"", false}} {
		t.Run(fmt.Sprintf("prefix=%q/wrapped=%v", tc.prefix, tc.wrapped), func(t *testing.T) {
			c := tiny(t, clip.QuickGELU)
			sd := writeOpenCLIP(t, openclip.NewRandom(&c, 3), tc.prefix, tc.wrapped)
			w, err := openclip.NewWeights(sd)
			if err != nil {
				t.Fatal(err)
			}
			got, err := openclip.Config(w, openclip.Options{Model: tinyModelConfig(c, true)})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(c) {
				t.Errorf("inferred config\n%+v\nwant\n%+v", got, c)
			}
			ref, err := clipref.FromOpenCLIP(sd, &c, tc.prefix)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range c.Params() {
				if p.Name == "logit_scale" {
					continue
				}
				s, ok := w.Shape(p.Name)
				if !ok || !slices.Equal(s, p.Shape) {
					t.Fatalf("%s: shape %v, want %v", p.Name, s, p.Shape)
				}
				v, err := w.Float32(p.Name)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(v, ref[p.Name].Data) {
					t.Fatalf("%s differs from the reference translation", p.Name)
				}
			}
		})
	}
}

func needORT(t testing.TB) { t.Helper(); orttest.Need(t) }

// The graphs the CLIP builder writes from an open_clip checkpoint agree with
// the float64 reference run on the reference's own translation of the same
// file, for both activations and both graph styles.
func TestGraphsMatchFloat64Reference(t *testing.T) {
	needORT(t)
	const n = 3
	cliptest.EachVariant(t, func(t *testing.T, act clip.Activation, fused bool) {
		c := tiny(t, act)
		sd := writeOpenCLIP(t, openclip.NewRandom(&c, 9), "", true)
		w, err := openclip.NewWeights(sd)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := openclip.Config(w, openclip.Options{Model: tinyModelConfig(c, act == clip.QuickGELU)})
		if err != nil {
			t.Fatal(err)
		}
		img, txt, px, ids := runGraphs(t, &cfg, w, n, clip.BuildOptions{Fused: fused})
		ref, err := clipref.FromOpenCLIP(sd, &c, "")
		if err != nil {
			t.Fatal(err)
		}
		refImg, err := clipref.ImageFeatures(&c, ref, px, n)
		if err != nil {
			t.Fatal(err)
		}
		refTxt, err := clipref.TextFeatures(&c, ref, ids, n)
		if err != nil {
			t.Fatal(err)
		}
		worst, worstCos := 0.0, 0.0
		d := c.ProjectionDim
		for i := 0; i < n; i++ {
			gi, gt := make([]float64, d), make([]float64, d)
			for j := 0; j < d; j++ {
				gi[j], gt[j] = float64(img[i*d+j]), float64(txt[i*d+j])
				worst = math.Max(worst, math.Abs(gi[j]-refImg[i][j]))
				worst = math.Max(worst, math.Abs(gt[j]-refTxt[i][j]))
			}
			// The HPSv2 score: cosine of image and text features.
			worstCos = math.Max(worstCos, math.Abs(clipref.Cosine(gi, gt)-clipref.Cosine(refImg[i], refTxt[i])))
		}
		if worst > 2e-5 || worstCos > 1e-5 {
			t.Fatalf("max |onnxruntime − float64 reference|: embeddings %g (held to 2e-5), cosine %g (held to 1e-5)", worst, worstCos)
		}
		t.Logf("embeddings within %.2g, hpsv2 cosine within %.2g", worst, worstCos)
	})
}

func runGraphs(t *testing.T, c *clip.Config, w clip.Weights, n int, opts clip.BuildOptions) (img, txt, px []float32, ids []int64) {
	t.Helper()
	dir := t.TempDir()
	vg, err := clip.BuildVision(c, w, opts)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := clip.BuildText(c, w, 77, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vg.Save(filepath.Join(dir, "vision.onnx")); err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Save(filepath.Join(dir, "text.onnx")); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 5))
	px = cliptest.Pixels(rng, n)
	ids = cliptest.IDs(rng, n, 77, 49406, func(r int) int { return 3 + 20*r })
	vs := cliptest.Session(t, filepath.Join(dir, "vision.onnx"), clip.InputPixels, []string{clip.OutputImage}, models.SessionOptions{})
	ts := cliptest.Session(t, filepath.Join(dir, "text.onnx"), clip.InputIDs, []string{clip.OutputText}, models.SessionOptions{})
	io, err := vs.RunFloat(context.Background(), px, n)
	if err != nil {
		t.Fatal(err)
	}
	to, err := ts.RunInt64(context.Background(), ids, n)
	if err != nil {
		t.Fatal(err)
	}
	return io[0], to[0], px, ids
}

// mapWeights is an in-memory open_clip state dict for the error cases.
type mapWeights struct{ clipref.MapWeights }

func (m mapWeights) Keys() []string {
	var ks []string
	for k := range m.MapWeights {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func fromRandom(t *testing.T, r *openclip.Random) clipref.MapWeights {
	m := clipref.MapWeights{}
	for _, k := range r.Keys() {
		s, _ := r.Shape(k)
		v, err := r.Float32(k)
		if err != nil {
			t.Fatal(err)
		}
		m[k] = clipref.Tensor{Shape: s, Data: v}
	}
	return m
}

// Checkpoints the builder cannot compute faithfully are refused with the
// keys or sizes named.
func TestRefusals(t *testing.T) {
	c := tiny(t, clip.GELU)
	base := fromRandom(t, openclip.NewRandom(&c, 1))
	with := func(k string) mapWeights {
		m := clipref.MapWeights{}
		for n, v := range base {
			m[n] = v
		}
		m[k] = clipref.Tensor{Shape: []int64{1}, Data: []float32{1}}
		return mapWeights{m}
	}
	if _, err := openclip.NewWeights(with("visual.attn_pool.query")); !errors.Is(err, openclip.ErrUnsupported) {
		t.Errorf("attentional pooling: got %v", err)
	}
	if _, err := openclip.NewWeights(with("visual.transformer.resblocks.0.ls_1.gamma")); !errors.Is(err, openclip.ErrUnsupported) {
		t.Errorf("LayerScale: got %v", err)
	}
	if _, err := openclip.NewWeights(with("something.else")); err == nil || !strings.Contains(err.Error(), "something.else") {
		t.Errorf("unknown key: got %v", err)
	}
	// An ignored buffer is fine.
	w, err := openclip.NewWeights(with("attn_mask"))
	if err != nil {
		t.Fatal(err)
	}
	// Tiny widths are in no open_clip config: heads must be given.
	if _, err := openclip.Config(w, openclip.Options{}); err == nil || !strings.Contains(err.Error(), "model config") {
		t.Errorf("unknown heads: got %v", err)
	}
	mc := tinyModelConfig(c, false)
	mc.Vision.Layers = 5
	if _, err := openclip.Config(w, openclip.Options{Model: mc}); err == nil || !strings.Contains(err.Error(), "vision_cfg.layers=5") {
		t.Errorf("config disagreeing with shapes: got %v", err)
	}
}

// The real architectures are inferred from shapes alone (heads from
// open_clip's configs): ViT-H-14 as HPSv2 has it, and ViT-B-32, ViT-L-14.
func TestInferRealArchitectures(t *testing.T) {
	for _, p := range []clip.Preset{clip.PresetViTB32, clip.PresetViTL14, clip.PresetViTH14} {
		c, err := clip.PresetConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		w, err := openclip.NewWeights(openclip.NewRandom(&c, 1))
		if err != nil {
			t.Fatal(err)
		}
		got, err := openclip.Config(w, openclip.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(c) {
			t.Errorf("%s: inferred\n%+v\nwant\n%+v", p, got, c)
		}
		// Every parameter the builder needs is served with its shape (the
		// graphs are only described here; weights are read when saved).
		if _, err := clip.BuildVision(&got, w, clip.BuildOptions{Fused: true}); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		if _, err := clip.BuildText(&got, w, 77, clip.BuildOptions{Fused: true}); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// A checkpoint that lacks a key or holds one of the wrong shape is refused
// with open_clip's key named.
func TestCheckNamesOpenCLIPKeys(t *testing.T) {
	c := tiny(t, clip.GELU)
	base := fromRandom(t, openclip.NewRandom(&c, 1))
	edit := func(f func(m clipref.MapWeights)) *openclip.Weights {
		m := clipref.MapWeights{}
		for n, v := range base {
			m[n] = v
		}
		f(m)
		w, err := openclip.NewWeights(mapWeights{m})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	for _, tc := range []struct {
		name string
		f    func(m clipref.MapWeights)
		want string
	}{
		{"missing", func(m clipref.MapWeights) { delete(m, "transformer.resblocks.1.ln_2.bias") }, "lacks transformer.resblocks.1.ln_2.bias"},
		{"in_proj", func(m clipref.MapWeights) {
			m["visual.transformer.resblocks.0.attn.in_proj_bias"] = clipref.Tensor{Shape: []int64{190}, Data: make([]float32, 190)}
		}, "visual.transformer.resblocks.0.attn.in_proj_bias has shape [190]"},
		{"proj", func(m clipref.MapWeights) {
			m["text_projection"] = clipref.Tensor{Shape: []int64{64, 16}, Data: make([]float32, 64*16)}
		}, "text_projection has shape [64 16], the architecture needs [64 32]"},
	} {
		w := edit(tc.f)
		err := openclip.Check(w, &c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	if err := openclip.Check(edit(func(clipref.MapWeights) {}), &c); err != nil {
		t.Errorf("complete checkpoint: %v", err)
	}
}
