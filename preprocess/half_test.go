package preprocess

import (
	"testing"

	"github.com/x448/float16"
)

// halfPipeline is one pipeline's float32 and binary16 writers over decoded
// RGB.
type halfPipeline struct {
	name    string
	n       int
	float32 func(*RGB, []float32) error
	half    func(*RGB, []float16.Float16) error
}

func halfPipelines(t testing.TB) []halfPipeline {
	clip, err := NewImagePipeline(ImageOptions{ShortestEdge: 224, CropSize: 224, Mean: clipMean, Std: clipStd})
	if err != nil {
		t.Fatal(err)
	}
	tv, err := NewTorchvisionPipeline(torchvisionOptions())
	if err != nil {
		t.Fatal(err)
	}
	return []halfPipeline{
		{"clip", clip.TensorLen(), clip.TensorRGB, clip.TensorRGBHalf},
		{"torchvision", tv.TensorLen(), tv.TensorRGB, tv.TensorRGBHalf},
	}
}

// The half-precision tensor is the float32 tensor rounded to nearest-even,
// value by value (float16.Fromfloat32, onnxruntime's Cast): the host writes
// what the older fp16 graphs computed inside. Images of every value 0..255
// in each channel, of several shapes (upscaled, downscaled, padded crop).
func TestTensorRGBHalfRoundsTensorRGB(t *testing.T) {
	imgs := map[string]*RGB{"640x480": formulaRGB(640, 480), "100x300": formulaRGB(100, 300), "all-bytes 256x256": allBytesRGB()}
	for _, p := range halfPipelines(t) {
		for name, img := range imgs {
			f := make([]float32, p.n)
			h := make([]float16.Float16, p.n)
			if err := p.float32(img, f); err != nil {
				t.Fatal(err)
			}
			if err := p.half(img, h); err != nil {
				t.Fatal(err)
			}
			for i := range f {
				if want := float16.Fromfloat32(f[i]); h[i] != want {
					t.Fatalf("%s %s: value %d is %#04x, float32 %v rounds to %#04x", p.name, name, i, uint16(h[i]), f[i], uint16(want))
				}
			}
		}
	}
}

// allBytesRGB is a 256×256 image whose rows each hold every byte value, in
// a different order per channel, so the crop meets every table entry.
func allBytesRGB() *RGB {
	img := &RGB{W: 256, H: 256, Pix: make([]uint8, 256*256*3)}
	for y := 0; y < 256; y++ {
		for x := 0; x < 256; x++ {
			o := (y*256 + x) * 3
			img.Pix[o], img.Pix[o+1], img.Pix[o+2] = uint8(x), uint8(255-x), uint8(x*7+y)
		}
	}
	return img
}

// A buffer too short for the tensor is an error, not a panic.
func TestTensorRGBHalfShortBuffer(t *testing.T) {
	for _, p := range halfPipelines(t) {
		if err := p.half(formulaRGB(64, 64), make([]float16.Float16, p.n-1)); err == nil {
			t.Errorf("%s: a buffer of %d values for %d was accepted", p.name, p.n-1, p.n)
		}
	}
}

// The half-precision writer allocates no more than the float32 one (once
// the pools are warm, the one small pixbuf header).
func TestTensorRGBHalfNoGarbage(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers on purpose")
	}
	p := halfPipelines(t)[0]
	src, dst := formulaRGB(640, 480), make([]float16.Float16, p.n)
	allocs := testing.AllocsPerRun(20, func() {
		if err := p.half(src, dst); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Fatalf("TensorRGBHalf allocates %.1f times per image, want at most 1", allocs)
	}
}

// BenchmarkTensorRGBHalf: resize + crop + normalise of a decoded 1024² image
// into the 224² tensor a model is fed (ImagePipeline), per image: as float32
// (what float32 graphs take, 602 112 bytes), as binary16 directly (what
// --fp16 graphs take, 301 056 bytes), and as float32 then rounded per value
// with float16.Fromfloat32 (what feeding an fp16 graph from a float32 tensor
// costs). "tensor-B/op" is the tensor's size, what the host hands the device.
//
//	go test ./preprocess -run '^$' -bench TensorRGBHalf -cpu 1 -benchmem
func BenchmarkTensorRGBHalf(b *testing.B) {
	src := formulaRGB(1024, 1024)
	p := halfPipelines(b)[0]
	f := make([]float32, p.n)
	h := make([]float16.Float16, p.n)
	b.Run("float32", func(b *testing.B) {
		loopCPU(b, 4*p.n, func() error { return p.float32(src, f) })
	})
	b.Run("float16-direct", func(b *testing.B) {
		loopCPU(b, 2*p.n, func() error { return p.half(src, h) })
	})
	b.Run("float32-then-Fromfloat32", func(b *testing.B) {
		loopCPU(b, 4*p.n+2*p.n, func() error {
			if err := p.float32(src, f); err != nil {
				return err
			}
			for i, v := range f {
				h[i] = float16.Fromfloat32(v)
			}
			return nil
		})
	})
}

// loopCPU runs f b.N times and reports the process CPU time per run
// ("cpu-µs/op": on a shared machine wall time swings with the load) and the
// bytes of tensor it leaves ("tensor-B/op").
func loopCPU(b *testing.B, tensorBytes int, f func() error) {
	c0 := processCPU()
	for b.Loop() {
		if err := f(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((processCPU()-c0)*1e6/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(tensorBytes), "tensor-B/op")
}

// BenchmarkWritePlanes is the normalising pass alone (a 224² crop through
// the table into the three planes): float32 values against binary16 ones.
func BenchmarkWritePlanes(b *testing.B) {
	p, err := NewImagePipeline(ImageOptions{ShortestEdge: 224, CropSize: 224, Mean: clipMean, Std: clipStd})
	if err != nil {
		b.Fatal(err)
	}
	crop := formulaRGB(224, 224).Pix
	f := make([]float32, p.TensorLen())
	h := make([]float16.Float16, p.TensorLen())
	b.Run("float32", func(b *testing.B) {
		loopCPU(b, 4*len(f), func() error { writePlanes(f, crop, &p.lut); return nil })
	})
	b.Run("float16", func(b *testing.B) {
		loopCPU(b, 2*len(h), func() error { writePlanes(h, crop, &p.hlut); return nil })
	})
}
