package zooscorer_test

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/icthp/icthp/internal/zooscorer"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scorer"
)

// hpsv2TorchFixture is testdata/hpsv2torch/index.json, written by gen.py
// there from torch/torchvision's own HPSv2 transform.
type hpsv2TorchFixture struct {
	Torch       string `json:"torch"`
	Torchvision string `json:"torchvision"`
	Size        int    `json:"size"`
	Stride      int    `json:"stride"`
	Images      []struct {
		Name    string  `json:"name"`
		PNG     string  `json:"png"`
		W       int     `json:"w"`
		H       int     `json:"h"`
		Offset  int     `json:"offset"`
		Sum64   float64 `json:"sum64"`
		SumSq64 float64 `json:"sumsq64"`
		Sum32   float64 `json:"sum32"`
	} `json:"images"`
}

// TestHPSv2PixelsAgainstTorch holds HPSv2Pixels' normalised tensor to
// torch's (ToTensor, Resize(224, BICUBIC, antialias=True) on the float
// tensor, CenterCrop, Normalize; torch 1.13's ATen antialiased bicubic) on
// sampled indices of up- and downscaled synthetic images and the sunset
// demo, and over the whole tensor through its sum and sum of squares. Both
// are float32 computations in the same tap order, so they agree to float32
// rounding: 3.3e-6 here, all of it torch 1.13's own (its |x| < 1 cubic
// branch in double, FMA in its AVX2 kernel; mirroring both gave 0). Weights
// in float64 would be 8e-5 off, a = −0.75 far more.
func TestHPSv2PixelsAgainstTorch(t *testing.T) {
	dir := filepath.Join("testdata", "hpsv2torch")
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx hpsv2TorchFixture
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	o := hpsv2Opts(fx.Size, fx.Size)
	p, err := zooscorer.NewHPSv2Pixels(o)
	if err != nil {
		t.Fatal(err)
	}
	worst32, worst64 := 0.0, 0.0
	for _, im := range fx.Images {
		data, err := os.ReadFile(filepath.Join(dir, im.PNG))
		if err != nil {
			t.Fatal(err)
		}
		img, err := preprocess.DecodeRGB(data, o)
		if err != nil {
			t.Fatal(err)
		}
		if img.W != im.W || img.H != im.H {
			t.Fatalf("%s: decoded %dx%d, want %dx%d", im.Name, img.W, img.H, im.W, im.H)
		}
		got := make([]float32, p.TensorLen())
		if err := p.Tensor(scorer.Source{RGB: img}, got); err != nil {
			t.Fatal(err)
		}
		ref32, ref64 := readHPSv2Samples(t, filepath.Join(dir, im.Name+".bin"))
		d32, d64 := 0.0, 0.0
		for k, i := 0, im.Offset; i < len(got); k, i = k+1, i+fx.Stride {
			d32 = math.Max(d32, math.Abs(float64(got[i])-float64(ref32[k])))
			d64 = math.Max(d64, math.Abs(float64(got[i])-ref64[k]))
		}
		var sum, sumSq float64
		for _, v := range got {
			sum += float64(v)
			sumSq += float64(v) * float64(v)
		}
		t.Logf("%s %dx%d: max |Go − torch f32| = %.3g, max |Go − torch f64| = %.3g, Σ %.6f (torch f32 %.6f, f64 %.6f)",
			im.Name, im.W, im.H, d32, d64, sum, im.Sum32, im.Sum64)
		n := float64(len(got))
		if math.Abs(sum-im.Sum64) > 1e-5*n || math.Abs(sumSq-im.SumSq64) > 1e-4*n {
			t.Errorf("%s: Σ %v, Σ² %v; torch float64 %v, %v", im.Name, sum, sumSq, im.Sum64, im.SumSq64)
		}
		worst32, worst64 = math.Max(worst32, d32), math.Max(worst64, d64)
	}
	t.Logf("torch %s / torchvision %s: max |Go − torch float32| = %.3g, max |Go − torch float64| = %.3g", fx.Torch, fx.Torchvision, worst32, worst64)
	// Normalised values span about ±2.2; float32 rounding after a few
	// dozen taps and a division by std ≈ 0.27 stays within a few 1e-6.
	if worst32 > 5e-6 {
		t.Errorf("max |Go − torch float32| = %v, want float32 rounding (≤ 5e-6)", worst32)
	}
	if worst64 > 1e-4 {
		t.Errorf("max |Go − torch float64| = %v, want ≤ 1e-4", worst64)
	}
}

// readHPSv2Samples reads gen.py's .bin: n float32 then n float64, little-endian.
func readHPSv2Samples(t *testing.T, path string) ([]float32, []float64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b)%12 != 0 {
		t.Fatalf("%s: %d bytes is not n·(4+8)", path, len(b))
	}
	n := len(b) / 12
	f32, f64 := make([]float32, n), make([]float64, n)
	for k := range n {
		f32[k] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*k:]))
		f64[k] = math.Float64frombits(binary.LittleEndian.Uint64(b[4*n+8*k:]))
	}
	return f32, f64
}
