package zooscorer_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/icthp/icthp/internal/zooscorer"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scorer"
)

func hpsv2Opts(edge, crop int) preprocess.ImageOptions {
	return preprocess.ImageOptions{ShortestEdge: edge, CropSize: crop, Mean: models.CLIPMean, Std: models.CLIPStd}
}

// hpsv2Pixels is HPSv2's pixel pipeline for options o.
func hpsv2Pixels(t *testing.T, o preprocess.ImageOptions) *zooscorer.HPSv2Pixels {
	t.Helper()
	p, err := zooscorer.NewHPSv2Pixels(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Hand-computed: halving [0, 1, 0, 1] with the antialiased Keys cubic
// (a = −0.5, support 4 at scale 2) takes taps at x = ∓0.25, 0.75, 1.25
// scaled distances: weights 0.8671875, 0.8671875, 0.2265625, −0.0703125
// over 1.890625, so the outputs are (0.8671875 − 0.0703125)/1.890625 and
// (0.2265625 + 0.8671875)/1.890625.
func TestHPSv2PixelsHandComputed(t *testing.T) {
	p := hpsv2Pixels(t, hpsv2Opts(2, 2))
	img := &preprocess.RGB{W: 4, H: 4, Pix: make([]uint8, 4*4*3)}
	for y := 0; y < 4; y++ {
		for x := 1; x < 4; x += 2 {
			for c := 0; c < 3; c++ {
				img.Pix[(y*4+x)*3+c] = 255
			}
		}
	}
	got, err := p.ResizeCrop(img)
	if err != nil {
		t.Fatal(err)
	}
	a, b := (0.8671875-0.0703125)/1.890625, (0.2265625+0.8671875)/1.890625
	for c := 0; c < 3; c++ {
		for y := 0; y < 2; y++ {
			for x, want := range []float64{a, b} {
				if v := float64(got[(c*2+y)*2+x]); math.Abs(v-want) > 1e-6 {
					t.Errorf("c%d (%d,%d) = %v, want %v", c, x, y, v, want)
				}
			}
		}
	}
}

// An image already at the crop size is ToTensor exactly (v / 255), then
// Normalize.
func TestHPSv2PixelsIdentity(t *testing.T) {
	p := hpsv2Pixels(t, hpsv2Opts(224, 224))
	img := &preprocess.RGB{W: 224, H: 224, Pix: make([]uint8, 224*224*3)}
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	dst := make([]float32, p.TensorLen())
	if err := p.Tensor(scorer.Source{RGB: img}, dst); err != nil {
		t.Fatal(err)
	}
	n := 224 * 224
	for c := 0; c < 3; c++ {
		for i := 0; i < n; i++ {
			want := (float32(img.Pix[i*3+c])/255 - models.CLIPMean[c]) / models.CLIPStd[c]
			if dst[c*n+i] != want {
				t.Fatalf("c%d pixel %d = %v, want %v", c, i, dst[c*n+i], want)
			}
		}
	}
}

// Against Pillow's resize (the torchvision pipeline, byte-exact with Pillow
// 9.4): the same filter on the same taps, so where Pillow's per-pass
// clamping to 0..255 does not bite (values kept in 64..192, so that the
// cubic's overshoot stays inside), the float result rounds to Pillow's
// uint8 crop within Pillow's two roundings; downscaled, upscaled, odd and
// extreme aspect ratios.
func TestHPSv2PixelsAgainstPillow(t *testing.T) {
	o := hpsv2Opts(224, 224)
	p := hpsv2Pixels(t, o)
	tv, err := preprocess.NewTorchvisionPipeline(o)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	worst, off1 := 0.0, 0
	for _, size := range [][2]int{{301, 199}, {333, 517}, {1280, 960}, {17, 9}, {224, 225}, {227, 226}, {2000, 3}, {5, 7}, {448, 448}} {
		img := &preprocess.RGB{W: size[0], H: size[1], Pix: make([]uint8, size[0]*size[1]*3)}
		for i := range img.Pix {
			img.Pix[i] = uint8(64 + rng.IntN(129))
		}
		pil, err := tv.CropRGB(img)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.ResizeCrop(img)
		if err != nil {
			t.Fatal(err)
		}
		n, w := 224*224, 0.0
		for c := 0; c < 3; c++ {
			for i := 0; i < n; i++ {
				d := math.Abs(float64(got[c*n+i])*255 - float64(pil.Pix[i*3+c]))
				w = math.Max(w, d)
				if d > 1 {
					off1++
				}
			}
		}
		t.Logf("%dx%d: max |255·float − Pillow uint8| = %.3f", size[0], size[1], w)
		worst = math.Max(worst, w)
	}
	if worst > 1.5 {
		t.Fatalf("max |255·float − Pillow uint8| = %v (%d values off by more than 1)", worst, off1)
	}
}
