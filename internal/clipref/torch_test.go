package clipref

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/icthp/icthp/models/clip"
)

// The comparison with PyTorch: testdata/torch_features.json holds, for a few
// tiny configurations, the features that testdata/torch_clip.py (a float64
// torch transcription of transformers 4.27's CLIP) computed from weights and
// pixels this package generated. The test regenerates the same inputs from the
// seeds recorded there, checks their bytes against the recorded SHA-256, and
// compares. Python is only needed to regenerate the JSON:
//
//	CLIPREF_WRITE=/tmp/clipref go test -run TestWriteTorchInputs ./internal/clipref/
//	/usr/bin/python3 internal/clipref/testdata/torch_clip.py /tmp/clipref internal/clipref/testdata/torch_features.json

// torchTol is the largest difference allowed between torch's float64 features
// and ours: both compute in float64 from the same float32 weights, so they
// differ only by summation order.
const torchTol = 1e-9

type torchCase struct {
	Name      string      `json:"name"`
	Config    clip.Config `json:"config"`
	Seed      int64       `json:"seed"`
	Std       float32     `json:"std"`
	HeadSeed  int64       `json:"head_seed"`
	PixelSeed int64       `json:"pixel_seed"`
	NumImages int         `json:"num_images"`
	InputIDs  [][]int64   `json:"input_ids"`
}

// torchCases are the configurations the JSON was generated for.
func torchCases() []torchCase {
	sot, eot := int64(598), int64(599)
	return []torchCase{
		{
			Name: "vision-gelu_text-quick_gelu",
			Config: clip.Config{
				Vision: clip.TowerConfig{HiddenSize: 32, IntermediateSize: 64, NumLayers: 2, NumHeads: 4,
					HiddenAct: clip.GELU, LayerNormEps: 1e-5, ImageSize: 32, PatchSize: 8, NumChannels: 3},
				Text: clip.TowerConfig{HiddenSize: 32, IntermediateSize: 80, NumLayers: 2, NumHeads: 4,
					HiddenAct: clip.QuickGELU, LayerNormEps: 1e-5, VocabSize: 600, MaxPositions: 16},
				ProjectionDim: 24,
			},
			Seed: 1, Std: 0.2, HeadSeed: 2, PixelSeed: 3, NumImages: 2,
			InputIDs: [][]int64{
				{sot, 5, 17, 300, eot, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
				{sot, 44, eot, 12, eot, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},  // two maxima: pool at 2
				{sot, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, eot}, // full length
				{3, 500, 7, 500, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},      // no eot: pool at 1
			},
		},
		{
			Name: "vision-quick_gelu_text-gelu_new",
			Config: clip.Config{
				Vision: clip.TowerConfig{HiddenSize: 24, IntermediateSize: 40, NumLayers: 3, NumHeads: 3,
					HiddenAct: clip.QuickGELU, LayerNormEps: 1e-6, ImageSize: 28, PatchSize: 7, NumChannels: 3},
				Text: clip.TowerConfig{HiddenSize: 16, IntermediateSize: 48, NumLayers: 2, NumHeads: 2,
					HiddenAct: clip.GELUTanh, LayerNormEps: 1e-6, VocabSize: 300, MaxPositions: 12},
				ProjectionDim: 8,
			},
			Seed: 11, Std: 0.3, HeadSeed: 12, PixelSeed: 13, NumImages: 3,
			InputIDs: [][]int64{ // length 10 < max_position_embeddings 12
				{298, 20, 21, 299, 0, 0, 0, 0, 0, 0},
				{298, 100, 200, 150, 7, 9, 299, 0, 0, 0},
				{298, 299, 299, 299, 299, 299, 299, 299, 299, 299},
			},
		},
		{
			Name: "vision-gelu_text-gelu",
			Config: clip.Config{
				Vision: clip.TowerConfig{HiddenSize: 16, IntermediateSize: 64, NumLayers: 1, NumHeads: 1,
					HiddenAct: clip.GELU, LayerNormEps: 1e-5, ImageSize: 16, PatchSize: 4, NumChannels: 3},
				Text: clip.TowerConfig{HiddenSize: 20, IntermediateSize: 36, NumLayers: 3, NumHeads: 5,
					HiddenAct: clip.GELU, LayerNormEps: 1e-5, VocabSize: 64, MaxPositions: 8},
				ProjectionDim: 12,
			},
			Seed: 21, Std: 0.25, HeadSeed: 22, PixelSeed: 23, NumImages: 1,
			InputIDs: [][]int64{
				{62, 1, 2, 3, 4, 5, 6, 63},
				{62, 63, 0, 0, 0, 0, 0, 0},
			},
		},
	}
}

// testPixels is n preprocessed images for cfg: rand.NewPCG(uint64(seed), 0),
// NormFloat64 rounded to float32, NCHW row-major.
func testPixels(cfg *clip.Config, seed int64, n int) []float32 {
	r := rand.New(rand.NewPCG(uint64(seed), 0))
	H := cfg.Vision.ImageSize
	px := make([]float32, n*channels(&cfg.Vision)*H*H)
	for i := range px {
		px[i] = float32(r.NormFloat64())
	}
	return px
}

func flatIDs(rows [][]int64) []int64 {
	var ids []int64
	for _, r := range rows {
		ids = append(ids, r...)
	}
	return ids
}

type tensorEntry struct {
	Name   string  `json:"name"`
	Shape  []int64 `json:"shape"`
	Offset int64   `json:"offset"`
}

type tensorFile struct {
	File    string        `json:"file"`
	Tensors []tensorEntry `json:"tensors"`
}

// serialize concatenates the tensors of ps, in order, as little-endian
// float32, returning the bytes and the index.
func serialize(w MapWeights, ps []Param) ([]byte, []tensorEntry) {
	var buf []byte
	var idx []tensorEntry
	off := int64(0)
	for _, p := range ps {
		t := w[p.Name]
		idx = append(idx, tensorEntry{Name: p.Name, Shape: p.Shape, Offset: off})
		for _, v := range t.Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		off += int64(len(t.Data))
	}
	return buf, idx
}

// caseInputs regenerates a case's weights, head and pixels, serialized.
func caseInputs(c *torchCase) (weights, head, pixels []byte, wIdx, hIdx, pIdx []tensorEntry) {
	cfg := &c.Config
	weights, wIdx = serialize(RandomWeights(cfg, c.Seed, c.Std), Params(cfg))
	head, hIdx = serialize(RandomHead(cfg.ProjectionDim, c.HeadSeed), HeadParams(cfg.ProjectionDim))
	H := int64(cfg.Vision.ImageSize)
	pp := []Param{{Name: "pixel_values", Shape: []int64{int64(c.NumImages), int64(channels(&cfg.Vision)), H, H}}}
	pixels, pIdx = serialize(MapWeights{"pixel_values": {Shape: pp[0].Shape, Data: testPixels(cfg, c.PixelSeed, c.NumImages)}}, pp)
	return
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestWriteTorchInputs writes the inputs of torch_clip.py into $CLIPREF_WRITE.
func TestWriteTorchInputs(t *testing.T) {
	dir := os.Getenv("CLIPREF_WRITE")
	if dir == "" {
		t.Skip("set CLIPREF_WRITE=dir to write the inputs of testdata/torch_clip.py")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	type indexCase struct {
		torchCase
		Weights tensorFile `json:"weights"`
		Head    tensorFile `json:"head"`
		Pixels  tensorFile `json:"pixels"`
	}
	var index struct {
		Cases []indexCase `json:"cases"`
	}
	for i, c := range torchCases() {
		weights, head, pixels, wIdx, hIdx, pIdx := caseInputs(&c)
		ic := indexCase{torchCase: c}
		for _, f := range []struct {
			dst  *tensorFile
			kind string
			data []byte
			idx  []tensorEntry
		}{{&ic.Weights, "weights", weights, wIdx}, {&ic.Head, "head", head, hIdx}, {&ic.Pixels, "pixels", pixels, pIdx}} {
			name := fmt.Sprintf("case%d.%s.bin", i, f.kind)
			if err := os.WriteFile(filepath.Join(dir, name), f.data, 0o644); err != nil {
				t.Fatal(err)
			}
			*f.dst = tensorFile{File: name, Tensors: f.idx}
		}
		index.Cases = append(index.Cases, ic)
	}
	data, err := json.MarshalIndent(index, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

type torchResult struct {
	torchCase
	WeightsSHA    string      `json:"weights_sha256"`
	HeadSHA       string      `json:"head_sha256"`
	PixelsSHA     string      `json:"pixels_sha256"`
	ImageFeatures [][]float64 `json:"image_features"`
	TextFeatures  [][]float64 `json:"text_features"`
	HPLogits      []float64   `json:"hp_logits"`
}

func TestAgainstTorch(t *testing.T) {
	var doc struct {
		Cases []torchResult `json:"cases"`
	}
	readJSON(t, "testdata/torch_features.json", &doc)
	if len(doc.Cases) != len(torchCases()) {
		t.Errorf("torch_features.json has %d cases, torchCases %d: regenerate it", len(doc.Cases), len(torchCases()))
	}
	worst := 0.0
	for _, c := range doc.Cases {
		t.Run(c.Name, func(t *testing.T) {
			cfg := &c.Config
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			weights, head, pixels, _, _, _ := caseInputs(&c.torchCase)
			// The generators must still produce the bytes torch read.
			for _, s := range []struct{ what, got, want string }{
				{"weights", sha(weights), c.WeightsSHA},
				{"head", sha(head), c.HeadSHA},
				{"pixels", sha(pixels), c.PixelsSHA},
			} {
				if s.got != s.want {
					t.Fatalf("%s regenerate to sha256 %s, torch read %s", s.what, s.got, s.want)
				}
			}
			img, txt, hp := goFeatures(t, &c.torchCase)
			var wantHP [][]float64
			for _, l := range c.HPLogits {
				wantHP = append(wantHP, []float64{l})
			}
			caseWorst := max(compareRows(t, "image_features", img, c.ImageFeatures),
				compareRows(t, "text_features", txt, c.TextFeatures),
				compareRows(t, "hp_logits", hp, wantHP))
			t.Logf("max |Go − torch| = %.3g", caseWorst)
			worst = max(worst, caseWorst)
		})
	}
	t.Logf("max |Go − torch| over all cases = %.3g (tolerance %g)", worst, torchTol)
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(data, v)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// goFeatures is this package's image features, text features and hp
// logits (one a row) of a case's inputs.
func goFeatures(t *testing.T, c *torchCase) (img, txt, hp [][]float64) {
	t.Helper()
	cfg := &c.Config
	w := RandomWeights(cfg, c.Seed, c.Std)
	img, err := ImageFeatures(cfg, w, testPixels(cfg, c.PixelSeed, c.NumImages), c.NumImages)
	if err != nil {
		t.Fatal(err)
	}
	txt, err = TextFeatures(cfg, w, flatIDs(c.InputIDs), len(c.InputIDs))
	if err != nil {
		t.Fatal(err)
	}
	hw := RandomHead(cfg.ProjectionDim, c.HeadSeed)
	for _, e := range img {
		l, err := HPLogit(hw, e)
		if err != nil {
			t.Fatal(err)
		}
		hp = append(hp, []float64{l})
	}
	return img, txt, hp
}

// compareRows holds got to torch's want within torchTol, value by value,
// and returns the largest difference.
func compareRows(t *testing.T, what string, got, want [][]float64) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, torch %d", what, len(got), len(want))
	}
	worst := 0.0
	for i := range got {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("%s[%d]: width %d, torch %d", what, i, len(got[i]), len(want[i]))
		}
		for j := range got[i] {
			d := math.Abs(got[i][j] - want[i][j])
			if !(d <= torchTol) {
				t.Errorf("%s[%d][%d] = %.17g, torch %.17g", what, i, j, got[i][j], want[i][j])
			}
			worst = max(worst, d)
		}
	}
	return worst
}
