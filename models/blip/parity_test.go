package blip_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icthp/icthp/internal/blipref"
	"github.com/icthp/icthp/internal/orttest"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/blip"
	"github.com/icthp/icthp/models/checkpoint"
)

func needORT(t testing.TB) { t.Helper(); orttest.Need(t) }

// writeOriginal writes w as ImageReward.pt is laid out: a torch zip-pickle
// state dict with keys blip.* and mlp.layers.* in ImageReward.state_dict()
// order, position_ids as int64.
func writeOriginal(t testing.TB, c *blip.Config, w blipref.MapWeights, path string) {
	t.Helper()
	// The extra keys a training checkpoint may hold are reported, not used.
	temp := checkpoint.NamedTensor{Name: "blip.temp", DType: checkpoint.F32, Shape: []int64{}, Data: []float32{0.07}}
	if err := blipref.WriteCheckpoint(path, c, w, temp); err != nil {
		t.Fatal(err)
	}
}

// tinyConfig is the tiny preset.
func tinyConfig(t testing.TB) blip.Config {
	t.Helper()
	c, err := blip.PresetConfig(blip.PresetTiny)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tinyCase is the tiny preset, its random reference weights and n inputs:
// what the parity, fp16 and int8 tests convert, run and compare.
type tinyCase struct {
	c         blip.Config
	w         blipref.MapWeights
	n         int
	px        []float32
	ids, mask []int64
}

func newTinyCase(t testing.TB, n int, weightSeed int64, inputSeed uint64) *tinyCase {
	t.Helper()
	k := &tinyCase{c: tinyConfig(t), n: n}
	k.w = blipref.RandomWeights(&k.c, weightSeed)
	k.px, k.ids, k.mask = testInputs(&k.c, n, inputSeed)
	return k
}

// reference is the float64 reference's scores and image tokens of the
// case's inputs, plain or with the int8 scheme.
func (k *tinyCase) reference(t testing.TB, int8 bool) scored {
	t.Helper()
	scores := blipref.Scores
	if int8 {
		scores = blipref.ScoresInt8
	}
	ref, tokens, err := scores(&k.c, k.w, k.px, k.ids, k.mask, k.n)
	if err != nil {
		t.Fatal(err)
	}
	return scored{scores: ref, tokens: tokens}
}

// scored is a reference's scores and image tokens [item][token][width].
type scored struct {
	scores []float64
	tokens [][][]float64
}

// diffs is how far image tokens and scores are from a reference's.
type diffs struct {
	tok   float64 // max |Δ| of a token value
	rel   float64 // max over the items of ‖Δ‖/‖ref‖ of their tokens
	score float64 // max |Δ| of a score
}

// against compares image tokens [n×T×D] and scores [n] with ref.
func against(c *blip.Config, tokens, scores []float32, ref scored) diffs {
	T, D := c.Vision.NumTokens(), c.Vision.Width
	var out diffs
	for b := range ref.scores {
		var dd, rr float64
		for i := 0; i < T; i++ {
			for d := 0; d < D; d++ {
				r := ref.tokens[b][i][d]
				e := float64(tokens[(b*T+i)*D+d]) - r
				dd, rr = dd+e*e, rr+r*r
				out.tok = math.Max(out.tok, math.Abs(e))
			}
		}
		out.rel = math.Max(out.rel, math.Sqrt(dd/rr))
		out.score = math.Max(out.score, math.Abs(float64(scores[b])-ref.scores[b]))
	}
	return out
}

// testInputs is n images of standard-normal pixels and n token rows of
// different lengths: [CLS] random ids [SEP], padded with 0, mask 1 on the
// tokens; the last row fills the context.
func testInputs(c *blip.Config, n int, seed uint64) (px []float32, ids, mask []int64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	S, L := c.Vision.ImageSize, c.ContextLength
	px = make([]float32, n*3*S*S)
	for i := range px {
		px[i] = float32(rng.NormFloat64())
	}
	ids, mask = make([]int64, n*L), make([]int64, n*L)
	for r := 0; r < n; r++ {
		l := 3 + (r*11)%(L-3)
		if r == n-1 {
			l = L
		}
		ids[r*L] = 101
		for j := 1; j < l-1; j++ {
			ids[r*L+j] = int64(999 + rng.IntN(c.Text.VocabSize-999))
		}
		ids[r*L+l-1] = 102
		for j := 0; j < l; j++ {
			mask[r*L+j] = 1
		}
	}
	return px, ids, mask
}

// converted is a model directory written by Convert with its sessions.
type converted struct {
	res    blip.Result
	vision *models.Session
	text   *models.MultiSession
}

func convertAndOpen(t *testing.T, c *blip.Config, w blip.Weights, opts blip.BuildOptions, so models.SessionOptions) *converted {
	t.Helper()
	dir := t.TempDir()
	res, err := blip.Convert(w, c.Text, c.Vision, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := models.OpenSession(filepath.Join(dir, res.Vision.File), res.Vision.Inputs[0], res.Vision.Outputs, so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vs.Close() })
	ts, err := models.OpenMultiSession(filepath.Join(dir, res.Text.File), res.Text.Inputs, res.Text.Outputs, so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.Close() })
	return &converted{res: res, vision: vs, text: ts}
}

func (cv *converted) score(t *testing.T, px []float32, ids, mask []int64, n int) (tokens, scores []float32) {
	t.Helper()
	ctx := context.Background()
	out, err := cv.vision.RunFloat(ctx, px, n)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := cv.text.RunInputs(ctx, n,
		models.Input{Name: blip.InputIDs, Int64: ids},
		models.Input{Name: blip.InputMask, Int64: mask},
		models.Input{Name: blip.InputImageTokens, Float: out[0]})
	if err != nil {
		t.Fatal(err)
	}
	return out[0], sc[0]
}

// A tiny checkpoint in the original layout (ImageReward.pt as torch
// zip-pickle), converted, run by onnxruntime, agrees with the float64
// reference of ImageReward.score to 1e-5 on the score, plain and fused.
func TestCheckpointMatchesFloat64Reference(t *testing.T) {
	needORT(t)
	const n, scoreTol, tokenTol = 4, 1e-5, 1e-4
	k := newTinyCase(t, n, 21, 3)
	path := filepath.Join(t.TempDir(), "ImageReward.pt")
	writeOriginal(t, &k.c, k.w, path)
	sd, err := checkpoint.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	ref := k.reference(t, false)
	digests := map[bool]string{}
	for _, fused := range []bool{false, true} {
		t.Run(fmt.Sprintf("fused=%v", fused), func(t *testing.T) {
			cv := convertAndOpen(t, &k.c, sd, blip.BuildOptions{Fused: fused}, models.SessionOptions{MaxBatch: 3})
			if len(cv.res.Notes) != 1 || !strings.Contains(cv.res.Notes[0], "blip.temp") {
				t.Errorf("notes %q: want the unknown key blip.temp reported", cv.res.Notes)
			}
			digests[fused] = cv.res.Digest
			tokens, scores := cv.score(t, k.px, k.ids, k.mask, n)
			got := against(&k.c, tokens, scores, ref)
			t.Logf("max |onnxruntime − float64|: image tokens %.3g, score %.3g (scores %v)", got.tok, got.score, scores)
			if got.tok > tokenTol {
				t.Errorf("image tokens differ by %g > %g", got.tok, tokenTol)
			}
			if got.score > scoreTol {
				t.Errorf("scores differ by %g > %g: onnxruntime %v, reference %v", got.score, scoreTol, scores, ref.scores)
			}
		})
	}
	if digests[false] == digests[true] {
		t.Error("plain and fused conversions have the same digest")
	}
}

// The score depends on the image and the prompt, and not on what sits at
// padded positions (masked with −10000 in every layer).
func TestMaskAndSensitivity(t *testing.T) {
	needORT(t)
	const n = 3
	c := tinyConfig(t)
	w := blip.NewRandom(&c, 8)
	px, ids, mask := testInputs(&c, n, 4)
	for _, fused := range []bool{false, true} {
		t.Run(fmt.Sprintf("fused=%v", fused), func(t *testing.T) {
			cv := convertAndOpen(t, &c, w, blip.BuildOptions{Fused: fused}, models.SessionOptions{})
			_, base := cv.score(t, px, ids, mask, n)

			padded := append([]int64(nil), ids...)
			for i := range padded {
				if mask[i] == 0 {
					padded[i] = 2000 + int64(i)
				}
			}
			_, got := cv.score(t, px, padded, mask, n)
			for b := range got {
				if math.Abs(float64(got[b]-base[b])) > 1e-6 {
					t.Errorf("row %d: ids under mask 0 changed the score %g → %g", b, base[b], got[b])
				}
			}

			// Unmasking the padding changes the score.
			ones := append([]int64(nil), mask...)
			for i := range ones {
				ones[i] = 1
			}
			_, got = cv.score(t, px, ids, ones, n)
			if math.Abs(float64(got[0]-base[0])) < 1e-4 {
				t.Errorf("attending to the padding left the score at %g", got[0])
			}

			// Another image, same prompt.
			S := c.Vision.ImageSize
			swapped := append(append([]float32(nil), px[3*S*S:2*3*S*S]...), px[:3*S*S]...)
			swapped = append(swapped, px[2*3*S*S:]...)
			ids01 := append(append([]int64(nil), ids[:c.ContextLength]...), ids[:c.ContextLength]...)
			ids01 = append(ids01, ids[2*c.ContextLength:]...)
			mask01 := append(append([]int64(nil), mask[:c.ContextLength]...), mask[:c.ContextLength]...)
			mask01 = append(mask01, mask[2*c.ContextLength:]...)
			_, got = cv.score(t, swapped, ids01, mask01, n)
			if math.Abs(float64(got[0]-got[1])) < 1e-4 {
				t.Errorf("two images scored the same for one prompt: %v", got)
			}
			if math.Abs(float64(got[1]-base[0])) > 1e-5 {
				t.Errorf("image 0 with prompt 0 scored %g in row 1, %g in row 0", got[1], base[0])
			}
		})
	}
}

// The fused graph (contrib kernels, last layer at position 0, folded head)
// and the plain one agree at the real size, on the random preset.
func TestFusedMatchesPlainRealSize(t *testing.T) {
	if testing.Short() {
		t.Skip("real-size conversion (2 GB of weights) skipped in -short")
	}
	needORT(t)
	if os.Getenv("ICTHP_BIG_TESTS") == "" {
		t.Skip("set ICTHP_BIG_TESTS=1 to convert and run the real-size ImageReward preset")
	}
	c, err := blip.PresetConfig(blip.PresetImageReward)
	if err != nil {
		t.Fatal(err)
	}
	w := blip.NewRandom(&c, 1)
	px, ids, mask := testInputs(&c, 2, 9)
	var scores [2][]float32
	for i, fused := range []bool{false, true} {
		cv := convertAndOpen(t, &c, w, blip.BuildOptions{Fused: fused}, models.SessionOptions{})
		_, scores[i] = cv.score(t, px, ids, mask, 2)
	}
	for b := range scores[0] {
		if d := math.Abs(float64(scores[0][b] - scores[1][b])); d > 1e-4 {
			t.Errorf("row %d: plain %g, fused %g", b, scores[0][b], scores[1][b])
		}
	}
	t.Logf("plain %v fused %v", scores[0], scores[1])
}

// The folded head is the head.
func TestFoldHead(t *testing.T) {
	c := tinyConfig(t)
	w := blipref.RandomWeights(&c, 2)
	vec, beta, err := blip.FoldHead(w, c.Text.HiddenSize)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for k := 0; k < 5; k++ {
		h := make([]float64, c.Text.HiddenSize)
		s := beta
		for i := range h {
			h[i] = rng.NormFloat64()
			s += h[i] * vec[i]
		}
		raw, err := blipref.Head(w, h)
		if err != nil {
			t.Fatal(err)
		}
		if d := math.Abs(s - blipref.Normalize(raw)); d > 1e-12 {
			t.Errorf("folded head %g, head %g", s, blipref.Normalize(raw))
		}
	}
}

// A checkpoint whose ViT differs from the vision config is refused with a
// message saying what it holds; missing keys are named.
func TestConvertErrors(t *testing.T) {
	c := tinyConfig(t)
	w := blipref.RandomWeights(&c, 2)
	vis := c.Vision
	vis.Width, vis.NumHeads = 128, 4
	_, err := blip.Convert(w, c.Text, vis, t.TempDir(), blip.BuildOptions{})
	if err == nil || !strings.Contains(err.Error(), "width 64") {
		t.Errorf("width mismatch: %v", err)
	}
	got, ok := blip.InferVision(w)
	got.NumHeads = c.Vision.NumHeads // not in the shapes
	if !ok || got != c.Vision {
		t.Errorf("InferVision = %+v, %v; want %+v", got, ok, c.Vision)
	}
	delete(w, "blip.text_encoder.encoder.layer.1.crossattention.self.value.bias")
	_, err = blip.Convert(w, c.Text, c.Vision, t.TempDir(), blip.BuildOptions{})
	if err == nil || !strings.Contains(err.Error(), "crossattention.self.value.bias") {
		t.Errorf("missing key: %v", err)
	}
	// Unused keys may be absent.
	w = blipref.RandomWeights(&c, 2)
	for _, p := range c.UnusedParams() {
		delete(w, p.Name)
	}
	if _, err := blip.Convert(w, c.Text, c.Vision, t.TempDir(), blip.BuildOptions{}); err != nil {
		t.Errorf("without the unused keys: %v", err)
	}
}
